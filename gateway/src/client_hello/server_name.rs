//! The server_name extension (RFC 6066) and the rules a host name in it must follow.

use std::fmt;
use std::ops::Deref;

use super::ClientHelloError;
use super::cursor::Cursor;
use super::wire_bytes::WireBytes;

const NAME_TYPE_HOST_NAME: u8 = 0;
/// A DNS name in text form, without the trailing dot, has at most 253 bytes.
const MAX_HOST_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// The SNI host name exactly as the client sent it: DNS-shaped ASCII, case preserved.
///
/// Derefs to `str`; compare with `eq_ignore_ascii_case`, as DNS names are case-insensitive.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ServerName<'a>(WireBytes<'a>);

impl<'a> ServerName<'a> {
    /// Reads the body of a server_name extension.
    pub(super) fn from_extension(mut data: Cursor<'a>) -> Result<Self, ClientHelloError> {
        let list_len = data.u16("server_name list length")?;
        let mut list = data.take(usize::from(list_len), "server_name list")?;
        if !data.is_empty() {
            return Err(ClientHelloError::TrailingBytes {
                field: "server_name list",
                extra: data.remaining(),
            });
        }
        if list.is_empty() {
            return Err(ClientHelloError::ServerNameListEmpty);
        }
        let name_type = list.u8("server_name name type")?;
        if name_type != NAME_TYPE_HOST_NAME {
            return Err(ClientHelloError::ServerNameType { name_type });
        }
        let name_len = usize::from(list.u16("host_name length")?);
        let mut name = list.take(name_len, "host_name")?;
        if !list.is_empty() {
            return Err(ClientHelloError::ServerNameMultiple);
        }
        let len = match u8::try_from(name_len) {
            Ok(0) => return Err(ClientHelloError::ServerNameEmpty),
            Ok(len) if usize::from(len) <= MAX_HOST_NAME_LEN => len,
            _ => return Err(ClientHelloError::ServerNameTooLong { len: name_len }),
        };
        let raw = name.bytes(len, "host_name")?;
        validate_host_name(&raw)?;
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        // Validation admitted ASCII only, which is always UTF-8: the fallback is unreachable.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Letters, digits, '-', '_' (Istio's `outbound_.9080_._.…` names need it) and dots
/// between non-empty labels of at most 63 bytes.
pub(super) fn validate_host_name(name: &[u8]) -> Result<(), ClientHelloError> {
    if name.is_empty() {
        return Err(ClientHelloError::ServerNameEmpty);
    }
    if name.len() > MAX_HOST_NAME_LEN {
        return Err(ClientHelloError::ServerNameTooLong { len: name.len() });
    }
    let mut label_start = 0;
    for (position, &byte) in name.iter().enumerate() {
        match byte {
            b'.' => {
                check_label(label_start, position)?;
                label_start = position + 1;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => {}
            _ => return Err(ClientHelloError::ServerNameByte { byte, position }),
        }
    }
    check_label(label_start, name.len())
}

fn check_label(start: usize, end: usize) -> Result<(), ClientHelloError> {
    let len = end - start;
    if len == 0 {
        return Err(ClientHelloError::ServerNameEmptyLabel { position: start });
    }
    if len > MAX_LABEL_LEN {
        return Err(ClientHelloError::ServerNameLabelTooLong {
            position: start,
            len,
        });
    }
    Ok(())
}

impl Deref for ServerName<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for ServerName<'_> {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for ServerName<'_> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ServerName<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for ServerName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ServerName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}
