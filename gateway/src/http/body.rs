//! Body types shared by the front ends (h1, h2, h3) and the upstream client.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Not `Sync`: h3 request streams are not, and nothing shares a body across threads.
pub type HttpBody = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> HttpBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> HttpBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Boxes any body whose errors can be boxed: hyper's `Incoming`, h3 streams, test bodies.
pub fn boxed<B>(body: B) -> HttpBody
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// The whole body and its trailers, or `None` when it is larger than `limit` or fails.
/// Written out rather than `http_body_util::Limited` because `Limited`'s boxed-error bound
/// makes futures that hold it fail the `Send` check hyper's executor needs.
pub async fn collect_limited<B>(mut body: B, limit: usize) -> Option<(Bytes, http::HeaderMap)>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    let mut data = bytes::BytesMut::new();
    let mut trailers = http::HeaderMap::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.ok()?;
        match frame.into_data() {
            Ok(chunk) => {
                if data.len() + chunk.len() > limit {
                    return None;
                }
                data.extend_from_slice(&chunk);
            }
            Err(frame) => {
                if let Ok(more) = frame.into_trailers() {
                    trailers.extend(more);
                }
            }
        }
    }
    Some((data.freeze(), trailers))
}
