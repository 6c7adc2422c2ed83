//! The TLS record layer in front of the ClientHello: tells TLS from other protocols, waits
//! for the records that carry the whole handshake message, and enforces the size cap.

use super::{ClientHelloError, MAX_CLIENT_HELLO_BYTES};

pub(super) const RECORD_HEADER_LEN: usize = 5;
pub(super) const HANDSHAKE_HEADER_LEN: usize = 4;
const CONTENT_TYPE_HANDSHAKE: u8 = 22;
/// change_cipher_spec (20), alert, handshake, application_data, heartbeat (24).
const TLS_CONTENT_TYPES: std::ops::RangeInclusive<u8> = 20..=24;
/// TLS 1.0 is 3.1, TLS 1.3 records still say 3.3; 3.4 leaves room for a lenient future.
const MAX_RECORD_MINOR_VERSION: u8 = 4;
/// RFC 8446 §5.1: a plaintext record carries at most 2^14 bytes.
const MAX_RECORD_PAYLOAD: usize = 1 << 14;
const HANDSHAKE_TYPE_CLIENT_HELLO: u8 = 1;
const SSLV2_CLIENT_HELLO: u8 = 1;

pub(super) enum Framing<'a> {
    NotTls,
    NeedMore { at_least: usize },
    Complete(HandshakeMessage<'a>),
}

/// Complete records at the start of the buffer that carry exactly one handshake message,
/// which starts at the first record's payload and ends at the last record's end.
#[derive(Clone, Copy)]
pub(super) struct HandshakeMessage<'a> {
    /// From the first record header to the end of the last record.
    pub(super) wire: &'a [u8],
    /// Handshake header plus body: the bytes the records' payloads add up to.
    pub(super) message_len: usize,
}

pub(super) fn frame(buf: &[u8]) -> Result<Framing<'_>, ClientHelloError> {
    if let Some(verdict) = classify_start(buf)? {
        return Ok(verdict);
    }
    let mut record_start = 0;
    // Handshake bytes carried by the complete records before `record_start`.
    let mut covered = 0;
    let mut header = HandshakeHeader::default();
    loop {
        // A further record adds at least a header and one byte.
        let smallest_next = record_start + RECORD_HEADER_LEN + 1;
        if smallest_next > MAX_CLIENT_HELLO_BYTES {
            return Err(too_large(smallest_next));
        }
        let Some(payload_len) = record_header(buf, record_start)? else {
            return Ok(Framing::NeedMore {
                at_least: record_start + RECORD_HEADER_LEN,
            });
        };
        if payload_len == 0 {
            return Err(ClientHelloError::EmptyRecord {
                offset: record_start,
            });
        }
        let payload_start = record_start + RECORD_HEADER_LEN;
        let record_end = payload_start + payload_len;
        if payload_len > MAX_RECORD_PAYLOAD || record_end > MAX_CLIENT_HELLO_BYTES {
            return Err(too_large(record_end));
        }

        let received = buf.get(payload_start..).unwrap_or_default();
        header.absorb(&received[..received.len().min(payload_len)])?;
        let carried = covered + payload_len;
        if let Some(message_len) = header.message_len {
            if carried > message_len {
                return Err(ClientHelloError::TrailingRecordData {
                    extra: carried - message_len,
                });
            }
            if carried < message_len {
                // The rest needs at least one more record header.
                let smallest_total = record_end + RECORD_HEADER_LEN + (message_len - carried);
                if smallest_total > MAX_CLIENT_HELLO_BYTES {
                    return Err(too_large(smallest_total));
                }
            }
        }

        if buf.len() < record_end {
            return Ok(Framing::NeedMore {
                at_least: record_end,
            });
        }
        covered = carried;
        if header.message_len == Some(covered) {
            return Ok(Framing::Complete(HandshakeMessage {
                wire: &buf[..record_end],
                message_len: covered,
            }));
        }
        record_start = record_end;
    }
}

/// Decides on the first bytes alone whether they can start a TLS connection, so a plain
/// HTTP request is told apart after one byte. `None`: a TLS handshake record starts here.
fn classify_start(buf: &[u8]) -> Result<Option<Framing<'static>>, ClientHelloError> {
    let need_header = Framing::NeedMore {
        at_least: RECORD_HEADER_LEN,
    };
    let Some(&content_type) = buf.first() else {
        return Ok(Some(need_header));
    };
    if content_type & 0x80 != 0 {
        return classify_sslv2(buf);
    }
    if !TLS_CONTENT_TYPES.contains(&content_type) {
        return Ok(Some(Framing::NotTls));
    }
    match buf.get(1) {
        None => return Ok(Some(need_header)),
        Some(3) => {}
        Some(_) => return Ok(Some(Framing::NotTls)),
    }
    match buf.get(2) {
        None => return Ok(Some(need_header)),
        Some(minor) if *minor <= MAX_RECORD_MINOR_VERSION => {}
        Some(_) => return Ok(Some(Framing::NotTls)),
    }
    if content_type != CONTENT_TYPE_HANDSHAKE {
        return Err(ClientHelloError::NotHandshakeRecord { content_type });
    }
    Ok(None)
}

/// An SSLv2 record header has its top bit set; an SSLv2 CLIENT-HELLO then names version 3.x
/// (the compatible hello of old TLS clients) or 0.2 (SSLv2 itself).
fn classify_sslv2(buf: &[u8]) -> Result<Option<Framing<'static>>, ClientHelloError> {
    let need_more = Framing::NeedMore {
        at_least: RECORD_HEADER_LEN,
    };
    match buf.get(2) {
        None => return Ok(Some(need_more)),
        Some(&SSLV2_CLIENT_HELLO) => {}
        Some(_) => return Ok(Some(Framing::NotTls)),
    }
    match (buf.get(3), buf.get(4)) {
        (Some(3), _) | (Some(0), Some(2)) => Err(ClientHelloError::Sslv2CompatHello),
        (None, _) | (Some(0), None) => Ok(Some(need_more)),
        _ => Ok(Some(Framing::NotTls)),
    }
}

/// Checks the record header at `start` as far as it has arrived; its payload length once
/// all of it has.
fn record_header(buf: &[u8], start: usize) -> Result<Option<usize>, ClientHelloError> {
    let received = buf.get(start..).unwrap_or_default();
    if let Some(&content_type) = received.first()
        && content_type != CONTENT_TYPE_HANDSHAKE
    {
        return Err(ClientHelloError::InterleavedRecord {
            offset: start,
            content_type,
        });
    }
    // Only the major version is known to be wrong here; the minor may not have arrived,
    // and the error must not change when it does.
    if let Some(&major) = received.get(1)
        && major != 3
    {
        return Err(ClientHelloError::RecordVersion {
            offset: start,
            major,
        });
    }
    Ok(record_payload_len(buf, start))
}

/// The payload length in the record header at `start`, if the header is in `buf`.
pub(super) fn record_payload_len(buf: &[u8], start: usize) -> Option<usize> {
    let &[high, low] = buf.get(start + 3..start + RECORD_HEADER_LEN)? else {
        return None;
    };
    Some(usize::from(u16::from_be_bytes([high, low])))
}

fn too_large(needed: usize) -> ClientHelloError {
    ClientHelloError::TooLarge {
        needed,
        max: MAX_CLIENT_HELLO_BYTES,
    }
}

/// The 4-byte handshake header, gathered across records that may be as small as one byte,
/// and checked as soon as each byte arrives.
#[derive(Default)]
struct HandshakeHeader {
    bytes: [u8; HANDSHAKE_HEADER_LEN],
    filled: usize,
    /// Header plus body, once the whole header is known.
    message_len: Option<usize>,
}

impl HandshakeHeader {
    fn absorb(&mut self, payload: &[u8]) -> Result<(), ClientHelloError> {
        for &byte in payload.iter().take(HANDSHAKE_HEADER_LEN - self.filled) {
            if self.filled == 0 && byte != HANDSHAKE_TYPE_CLIENT_HELLO {
                return Err(ClientHelloError::NotClientHello {
                    handshake_type: byte,
                });
            }
            self.bytes[self.filled] = byte;
            self.filled += 1;
        }
        if self.filled == HANDSHAKE_HEADER_LEN && self.message_len.is_none() {
            let [_, high, mid, low] = self.bytes;
            let body_len = usize::from(high) << 16 | usize::from(mid) << 8 | usize::from(low);
            let message_len = HANDSHAKE_HEADER_LEN + body_len;
            if RECORD_HEADER_LEN + message_len > MAX_CLIENT_HELLO_BYTES {
                return Err(too_large(RECORD_HEADER_LEN + message_len));
            }
            self.message_len = Some(message_len);
        }
        Ok(())
    }
}
