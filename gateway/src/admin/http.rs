//! A minimal HTTP/1.1 server for the admin endpoints: GET in, text or JSON out.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub async fn serve<H>(listener: TcpListener, handler: H, shutdown: CancellationToken)
where
    H: Fn(&str, Option<&str>) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let handler = Arc::clone(&handler);
        let service = service_fn(move |request: Request<Incoming>| {
            let response = handler(request.uri().path(), request.uri().query());
            async move { Ok::<_, Infallible>(response) }
        });
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = connection => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "admin connection ended with an error");
                    }
                }
                () = shutdown.cancelled() => {}
            }
        });
    }
}
