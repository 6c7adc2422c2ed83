//! The demo's sample backend: a tiny HTTP/1.1 responder that says which backend answered and
//! which mesh identity called it, read from the `x-forwarded-client-cert` header its inbound
//! sidecar adds. Also runs alone as `isthmus demo backend` (the network-namespace test uses it).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The first line of every answer, so clients can tell backends apart.
pub const BACKEND_PREFIX: &str = "backend: ";
/// The second line: the caller's SPIFFE id, or `none` when no sidecar vouched for one.
pub const CALLER_PREFIX: &str = "caller: ";

/// Answers every request on `listener` as `name` until `stop` is cancelled.
pub async fn serve(listener: TcpListener, name: String, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, _) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(backend = %name, %error, "accept failed");
                continue;
            }
        };
        let name = name.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let body = answer(&name, &request);
                async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
            });
            // A client hanging up mid-request is its business, not the backend's.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer<B>(name: &str, request: &Request<B>) -> String {
    let caller = request
        .headers()
        .get("x-forwarded-client-cert")
        .and_then(|value| value.to_str().ok())
        .and_then(caller_from_xfcc)
        .unwrap_or("none");
    format!(
        "{BACKEND_PREFIX}{name}\n{CALLER_PREFIX}{caller}\npath: {}\n",
        request.uri()
    )
}

/// The `URI=` of the last XFCC element: the hop the inbound sidecar itself verified.
fn caller_from_xfcc(value: &str) -> Option<&str> {
    let last = value.rsplit(',').next()?;
    last.split(';')
        .find_map(|pair| pair.trim().strip_prefix("URI="))
        .map(|uri| uri.trim_matches('"'))
}

/// What a demo client read back: which backend answered and whom it saw calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub backend: String,
    pub caller: String,
}

impl Answer {
    pub fn parse(body: &str) -> Option<Answer> {
        let mut backend = None;
        let mut caller = None;
        for line in body.lines() {
            if let Some(value) = line.strip_prefix(BACKEND_PREFIX) {
                backend = Some(value.to_owned());
            } else if let Some(value) = line.strip_prefix(CALLER_PREFIX) {
                caller = Some(value.to_owned());
            }
        }
        Some(Answer {
            backend: backend?,
            caller: caller?,
        })
    }
}

/// `isthmus demo backend --serve ADDR=NAME ...`: backends only, until Ctrl-C.
pub fn run_standalone(
    serve_specs: Vec<(SocketAddr, String)>,
) -> anyhow::Result<std::process::ExitCode> {
    super::super::runtime()?.block_on(async {
        let stop = CancellationToken::new();
        for (address, name) in serve_specs {
            let listener = TcpListener::bind(address).await.map_err(|error| {
                anyhow::anyhow!("sample backend {name} cannot listen on {address}: {error}")
            })?;
            tracing::info!(backend = %name, %address, "sample backend listening");
            tokio::spawn(serve(listener, name, stop.clone()));
        }
        super::super::wait_for_ctrl_c().await;
        stop.cancel();
        Ok(std::process::ExitCode::SUCCESS)
    })
}

/// Parses `ADDR=NAME`.
pub fn parse_serve(text: &str) -> Result<(SocketAddr, String), String> {
    let (address, name) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected ADDR=NAME, e.g. 127.0.0.1:8080=reviews-v1"))?;
    let address = address
        .parse()
        .map_err(|_| format!("{text:?}: {address:?} is not an address:port"))?;
    if name.is_empty() {
        return Err(format!("{text:?}: the backend needs a name after '='"));
    }
    Ok((address, name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caller_is_the_last_xfcc_hop() {
        let value = "By=spiffe://td/ns/default/sa/reviews;Hash=ab;URI=spiffe://td/ns/default/sa/productpage";
        assert_eq!(
            caller_from_xfcc(value),
            Some("spiffe://td/ns/default/sa/productpage")
        );
        let two = "By=a;URI=spiffe://td/ns/x/sa/first,By=b;Hash=c;URI=spiffe://td/ns/y/sa/second";
        assert_eq!(caller_from_xfcc(two), Some("spiffe://td/ns/y/sa/second"));
        assert_eq!(caller_from_xfcc("By=a;Hash=b"), None);
    }

    #[test]
    fn answers_round_trip() {
        let request = Request::builder()
            .uri("/hello")
            .header(
                "x-forwarded-client-cert",
                "By=x;URI=spiffe://td/ns/default/sa/productpage",
            )
            .body(())
            .unwrap();
        let parsed = Answer::parse(&answer("reviews-v1", &request)).unwrap();
        assert_eq!(parsed.backend, "reviews-v1");
        assert_eq!(parsed.caller, "spiffe://td/ns/default/sa/productpage");
        let anonymous = Request::builder().body(()).unwrap();
        assert_eq!(
            Answer::parse(&answer("b", &anonymous)).unwrap().caller,
            "none"
        );
    }

    #[test]
    fn serve_specs_are_checked() {
        assert_eq!(
            parse_serve("127.0.0.1:8080=reviews-v1").unwrap(),
            ("127.0.0.1:8080".parse().unwrap(), "reviews-v1".to_owned())
        );
        assert!(parse_serve("reviews").unwrap_err().contains("ADDR=NAME"));
        assert!(parse_serve("x=y").unwrap_err().contains("not an address"));
    }
}
