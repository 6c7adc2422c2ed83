//! gRPC-web ⇄ gRPC: requests with `application/grpc-web[-text][+proto]` are sent upstream as
//! gRPC over HTTP/2; the gRPC response's trailers come back as a trailer frame in the body
//! (flag 0x80), base64-encoded again for `-text`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderMap;
use http::header::{self, HeaderValue};

/// What kind of gRPC-web request this is, from its `content-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcWeb {
    Binary,
    Text,
}

impl GrpcWeb {
    pub fn detect(headers: &HeaderMap) -> Option<GrpcWeb> {
        let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let kind = content_type.strip_prefix("application/grpc-web")?;
        if kind.starts_with("-text") {
            Some(GrpcWeb::Text)
        } else if kind.is_empty() || kind.starts_with('+') || kind.starts_with(';') {
            Some(GrpcWeb::Binary)
        } else {
            None
        }
    }

    pub fn response_content_type(self) -> HeaderValue {
        match self {
            GrpcWeb::Binary => HeaderValue::from_static("application/grpc-web+proto"),
            GrpcWeb::Text => HeaderValue::from_static("application/grpc-web-text+proto"),
        }
    }

    /// The gRPC request body: `-text` bodies are base64 (possibly in several padded chunks).
    pub fn decode_request(self, body: Bytes) -> Result<Bytes, base64::DecodeError> {
        match self {
            GrpcWeb::Binary => Ok(body),
            GrpcWeb::Text => {
                let text: Vec<u8> = body
                    .iter()
                    .copied()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect();
                let mut out = Vec::with_capacity(text.len() * 3 / 4);
                // Clients may send several base64 chunks, each with its own padding; every
                // 4-character group decodes on its own, so decoding group by group accepts
                // padding in the middle.
                for group in text.chunks(4) {
                    out.extend(STANDARD.decode(group)?);
                }
                Ok(Bytes::from(out))
            }
        }
    }

    /// The gRPC-web response body: the gRPC messages, then the trailers as a frame.
    pub fn encode_response(self, messages: &[u8], trailers: &HeaderMap) -> Bytes {
        let mut block = Vec::new();
        for (name, value) in trailers {
            block.extend_from_slice(name.as_str().as_bytes());
            block.push(b':');
            block.extend_from_slice(value.as_bytes());
            block.extend_from_slice(b"\r\n");
        }
        let mut out = BytesMut::with_capacity(messages.len() + 5 + block.len());
        out.put_slice(messages);
        out.put_u8(0x80);
        // A trailer block is a few headers; it cannot reach 4 GiB.
        out.put_u32(u32::try_from(block.len()).unwrap_or(u32::MAX));
        out.put_slice(&block);
        match self {
            GrpcWeb::Binary => out.freeze(),
            GrpcWeb::Text => Bytes::from(STANDARD.encode(&out)),
        }
    }
}

/// Rewrites request headers from gRPC-web to gRPC.
pub fn to_grpc_request(headers: &mut HeaderMap) {
    let suffix = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.find('+').map(|at| v[at..].to_owned()));
    let content_type = match suffix.as_deref() {
        Some("+json") => "application/grpc+json",
        _ => "application/grpc",
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::ACCEPT);
    headers.remove("x-grpc-web");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_type(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
        headers
    }

    #[test]
    fn detects_variants() {
        assert_eq!(
            GrpcWeb::detect(&with_type("application/grpc-web")),
            Some(GrpcWeb::Binary)
        );
        assert_eq!(
            GrpcWeb::detect(&with_type("application/grpc-web+proto")),
            Some(GrpcWeb::Binary)
        );
        assert_eq!(
            GrpcWeb::detect(&with_type("application/grpc-web-text+proto")),
            Some(GrpcWeb::Text)
        );
        assert_eq!(GrpcWeb::detect(&with_type("application/grpc")), None);
        assert_eq!(GrpcWeb::detect(&with_type("application/grpc-webby")), None);
    }

    #[test]
    fn text_bodies_round_trip_with_a_trailer_frame() {
        let message = [0u8, 0, 0, 0, 2, 8, 1];
        let encoded = STANDARD.encode(message);
        let decoded = GrpcWeb::Text.decode_request(Bytes::from(encoded)).unwrap();
        assert_eq!(&decoded[..], &message);
        let two_chunks = format!(
            "{}{}",
            STANDARD.encode(&message[..4]),
            STANDARD.encode(&message[4..])
        );
        let decoded = GrpcWeb::Text
            .decode_request(Bytes::from(two_chunks))
            .unwrap();
        assert_eq!(&decoded[..], &message);
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let body = GrpcWeb::Binary.encode_response(&message, &trailers);
        assert_eq!(&body[..7], &message);
        assert_eq!(body[7], 0x80);
        assert_eq!(&body[8..12], &[0, 0, 0, 15]);
        assert_eq!(&body[12..], b"grpc-status:0\r\n");
        let text = GrpcWeb::Text.encode_response(&message, &trailers);
        assert_eq!(STANDARD.decode(&text).unwrap(), body.to_vec());
    }

    #[test]
    fn request_headers_become_grpc() {
        let mut headers = with_type("application/grpc-web-text+proto");
        headers.insert(header::CONTENT_LENGTH, "12".parse().unwrap());
        to_grpc_request(&mut headers);
        assert_eq!(headers[header::CONTENT_TYPE], "application/grpc");
        assert_eq!(headers[header::TE], "trailers");
        assert!(headers.get(header::CONTENT_LENGTH).is_none());
    }
}
