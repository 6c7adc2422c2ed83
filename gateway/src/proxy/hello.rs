//! Reading a connection's ClientHello without consuming it: every byte read is kept so it
//! can be replayed to the upstream unchanged.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::reject::RejectReason;
use crate::client_hello::{
    ClientHelloError, MAX_CLIENT_HELLO_BYTES, Peek, has_istio_alpn, peek_client_hello,
};

/// Enough for the hellos Istio's proxies send (about 300-600 bytes) in one allocation;
/// larger hellos grow the buffer once, to the size their record header announces.
const INITIAL_BUFFER: usize = 1024;

#[derive(Debug)]
pub enum HelloRead {
    Hello {
        /// Everything read so far: the ClientHello and anything the client sent after it.
        bytes: Vec<u8>,
        /// Lowercased: DNS names compare case-insensitively and the tables are lowercase.
        sni: Option<String>,
        istio_alpn: bool,
    },
    /// The bytes are not TLS; kept in case the listener also forwards raw TCP.
    NotTls(Vec<u8>),
    Rejected {
        reason: RejectReason,
        detail: String,
    },
    /// The client hung up before sending anything: a TCP health check, not an attack.
    ClosedEmpty,
}

/// Reads until the ClientHello is complete, the bytes are known not to be one, or
/// `deadline` passes. The parser runs only when enough bytes have arrived for its next step,
/// so a client dribbling one byte at a time costs one read each, not one parse each.
pub async fn read_client_hello<R>(stream: &mut R, deadline: Duration) -> HelloRead
where
    R: AsyncRead + Unpin,
{
    let mut bytes = Vec::with_capacity(INITIAL_BUFFER);
    match tokio::time::timeout(deadline, read_until_decided(stream, &mut bytes)).await {
        Ok(outcome) => outcome,
        Err(_) => HelloRead::Rejected {
            reason: RejectReason::HelloTimeout,
            detail: format!(
                "ClientHello incomplete after {} ms ({} bytes received)",
                deadline.as_millis(),
                bytes.len()
            ),
        },
    }
}

async fn read_until_decided<R>(stream: &mut R, bytes: &mut Vec<u8>) -> HelloRead
where
    R: AsyncRead + Unpin,
{
    let mut at_least = 1;
    loop {
        while bytes.len() < at_least {
            if bytes.capacity() < at_least {
                bytes.reserve_exact(at_least - bytes.len());
            }
            match stream.read_buf(bytes).await {
                Ok(0) if bytes.is_empty() => return HelloRead::ClosedEmpty,
                Ok(0) => {
                    return HelloRead::Rejected {
                        reason: RejectReason::MalformedHello,
                        detail: format!(
                            "client closed after {} bytes of an incomplete ClientHello",
                            bytes.len()
                        ),
                    };
                }
                Ok(_) => {}
                Err(error) => {
                    return HelloRead::Rejected {
                        reason: RejectReason::MalformedHello,
                        detail: format!("reading the ClientHello failed: {error}"),
                    };
                }
            }
        }
        match peek_client_hello(bytes) {
            Ok(Peek::NeedMore { at_least: more }) => at_least = more.min(MAX_CLIENT_HELLO_BYTES),
            Ok(Peek::NotTls) => return HelloRead::NotTls(std::mem::take(bytes)),
            Ok(Peek::Done(info)) => {
                let sni = info.sni.map(|name| name.as_str().to_ascii_lowercase());
                let istio_alpn = has_istio_alpn(&info);
                return HelloRead::Hello {
                    bytes: std::mem::take(bytes),
                    sni,
                    istio_alpn,
                };
            }
            Err(error @ ClientHelloError::TooLarge { .. }) => {
                return HelloRead::Rejected {
                    reason: RejectReason::HelloTooLarge,
                    detail: error.to_string(),
                };
            }
            Err(error) => {
                return HelloRead::Rejected {
                    reason: RejectReason::MalformedHello,
                    detail: error.to_string(),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENSSL_HELLO: &[u8] = include_bytes!("../../testdata/client_hello/openssl.bin");

    #[tokio::test]
    async fn reads_a_hello_split_over_many_reads() {
        let mut builder = tokio_test_reader(OPENSSL_HELLO, 7);
        match read_client_hello(&mut builder, Duration::from_secs(5)).await {
            HelloRead::Hello { bytes, sni, .. } => {
                assert_eq!(bytes, OPENSSL_HELLO);
                assert!(sni.is_some());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn plain_http_is_not_tls_and_kept() {
        let mut reader: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        match read_client_hello(&mut reader, Duration::from_secs(5)).await {
            HelloRead::NotTls(bytes) => assert!(bytes.starts_with(b"GET")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn early_close_and_empty_close_differ() {
        let mut empty: &[u8] = b"";
        assert!(matches!(
            read_client_hello(&mut empty, Duration::from_secs(5)).await,
            HelloRead::ClosedEmpty
        ));
        let mut truncated: &[u8] = &OPENSSL_HELLO[..40];
        assert!(matches!(
            read_client_hello(&mut truncated, Duration::from_secs(5)).await,
            HelloRead::Rejected {
                reason: RejectReason::MalformedHello,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn oversized_record_is_too_large() {
        let mut header: &[u8] = &[22, 3, 1, 0xff, 0xff, 1, 0, 0];
        assert!(matches!(
            read_client_hello(&mut header, Duration::from_secs(5)).await,
            HelloRead::Rejected {
                reason: RejectReason::HelloTooLarge,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn a_silent_client_times_out() {
        let (mut client, _server) = tokio::io::duplex(64);
        assert!(matches!(
            read_client_hello(&mut client, Duration::from_millis(100)).await,
            HelloRead::Rejected {
                reason: RejectReason::HelloTimeout,
                ..
            }
        ));
    }

    /// A reader that receives `data` in writes of `chunk` bytes, one task hop apart.
    fn tokio_test_reader(data: &'static [u8], chunk: usize) -> impl AsyncRead + Unpin {
        use tokio::io::AsyncWriteExt;
        let (reader, mut writer) = tokio::io::duplex(chunk);
        tokio::spawn(async move {
            for part in data.chunks(chunk) {
                if writer.write_all(part).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
        });
        reader
    }
}
