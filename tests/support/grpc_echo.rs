//! An h2c-only gRPC backend that echoes the request body with `grpc-status: 0` trailers and
//! names the content type it received, so a test sees exactly what the gateway forwarded
//! (gRPC on GRPC servers, gRPC-web translated to gRPC on GRPC-WEB servers).

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{HeaderMap, Request, Response};

/// Starts the echo on a free loopback port; it runs until the test's runtime ends.
pub async fn start() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(echo);
                // Only HTTP/2: an HTTP/1 request (no translation) fails the connection.
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
            });
        }
    });
    address
}

async fn echo(
    request: Request<Incoming>,
) -> Result<
    Response<
        http_body_util::combinators::WithTrailers<
            Full<Bytes>,
            std::future::Ready<Option<Result<HeaderMap, Infallible>>>,
        >,
    >,
    Infallible,
> {
    let content_type = request.headers().get("content-type").cloned();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", hyper::header::HeaderValue::from_static("0"));
    if let Some(content_type) = content_type {
        trailers.insert("x-echo-content-type", content_type);
    }
    let body = Full::new(body).with_trailers(std::future::ready(Some(Ok(trailers))));
    let mut response = Response::new(body);
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/grpc"),
    );
    Ok(response)
}
