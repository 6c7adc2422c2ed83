//! Bodies between h3 streams and the router, frame by frame: neither direction is buffered
//! whole, so uploads and downloads larger than memory pass through.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::Frame;

use crate::http::HttpBody;

type RecvStream = ::h3::server::RequestStream<h3_quinn::RecvStream, Bytes>;
type SendStream = ::h3::server::RequestStream<h3_quinn::SendStream<Bytes>, Bytes>;

/// The request body of one HTTP/3 stream, with its trailers (gRPC sends them).
pub struct RequestBody {
    stream: RecvStream,
    data_done: bool,
    finished: bool,
}

impl RequestBody {
    pub fn new(stream: RecvStream) -> Self {
        RequestBody {
            stream,
            data_done: false,
            finished: false,
        }
    }
}

impl hyper::body::Body for RequestBody {
    type Data = Bytes;
    type Error = ::h3::error::StreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        if !this.data_done {
            match ready!(this.stream.poll_recv_data(cx)) {
                Ok(Some(mut chunk)) => {
                    let bytes = chunk.copy_to_bytes(chunk.remaining());
                    return Poll::Ready(Some(Ok(Frame::data(bytes))));
                }
                Ok(None) => this.data_done = true,
                Err(error) => {
                    this.finished = true;
                    return Poll::Ready(Some(Err(error)));
                }
            }
        }
        let trailers = ready!(this.stream.poll_recv_trailers(cx));
        this.finished = true;
        match trailers {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(error) => Poll::Ready(Some(Err(error))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }
}

/// Why a response could not be written to its stream (the client reset it or went away).
pub type SendError = ::h3::error::StreamError;

/// Writes `body` to `stream` as it arrives, then its trailers, then ends the stream.
pub async fn send_body(stream: &mut SendStream, mut body: HttpBody) -> Result<(), SendError> {
    let mut trailers: Option<HeaderMap> = None;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => {
                // The upstream broke off mid-body: reset the stream so the client does not
                // mistake a truncated body for a whole one.
                tracing::debug!(%error, "response body failed; resetting the HTTP/3 stream");
                stream.stop_stream(::h3::error::Code::H3_INTERNAL_ERROR);
                return Ok(());
            }
        };
        match frame.into_data() {
            Ok(data) => {
                if !data.is_empty() {
                    stream.send_data(data).await?;
                }
            }
            Err(frame) => {
                if let Ok(more) = frame.into_trailers() {
                    trailers.get_or_insert_with(HeaderMap::new).extend(more);
                }
            }
        }
    }
    if let Some(trailers) = trailers {
        stream.send_trailers(trailers).await?;
    }
    stream.finish().await
}
