//! The application_layer_protocol_negotiation extension (RFC 7301) and Istio's mTLS ALPNs.

use std::fmt;
use std::ops::Deref;

use super::ClientHelloError;
use super::ClientHelloInfo;
use super::cursor::Cursor;
use super::wire_bytes::WireBytes;

/// The ALPNs Istio's workload proxies offer on mesh mTLS; an AUTO_PASSTHROUGH listener
/// only forwards hellos that offer one of them.
pub const ISTIO_MTLS_ALPNS: [&str; 5] = [
    "istio",
    "istio-peer-exchange",
    "istio-http/1.0",
    "istio-http/1.1",
    "istio-h2",
];

/// Whether the client offers one of [`ISTIO_MTLS_ALPNS`] (compared byte for byte, as
/// RFC 7301 compares protocol names).
pub fn has_istio_alpn(info: &ClientHelloInfo<'_>) -> bool {
    info.alpn
        .iter()
        .any(|offered| ISTIO_MTLS_ALPNS.iter().any(|istio| offered == *istio))
}

/// The protocols a ClientHello offers, validated when the hello was read and walked in
/// place on each iteration.
#[derive(Clone, Copy)]
pub struct AlpnList<'a> {
    /// The protocol_name_list; `None` when the hello has no ALPN extension.
    names: Option<Cursor<'a>>,
}

impl<'a> AlpnList<'a> {
    pub(super) const ABSENT: Self = Self { names: None };

    /// Reads and checks the body of an ALPN extension.
    pub(super) fn from_extension(mut data: Cursor<'a>) -> Result<Self, ClientHelloError> {
        let list_len = data.u16("ALPN protocol_name_list length")?;
        let names = data.take(usize::from(list_len), "ALPN protocol_name_list")?;
        if !data.is_empty() {
            return Err(ClientHelloError::TrailingBytes {
                field: "ALPN protocol_name_list",
                extra: data.remaining(),
            });
        }
        if names.is_empty() {
            return Err(ClientHelloError::AlpnListEmpty);
        }
        let mut check = names;
        while !check.is_empty() {
            let len = check.u8("ALPN protocol name length")?;
            if len == 0 {
                return Err(ClientHelloError::AlpnProtocolEmpty);
            }
            check.skip(usize::from(len), "ALPN protocol name")?;
        }
        Ok(Self { names: Some(names) })
    }

    pub fn iter(&self) -> AlpnProtocols<'a> {
        AlpnProtocols { names: self.names }
    }

    /// True when the hello has no ALPN extension (an extension with no names is rejected).
    pub fn is_empty(&self) -> bool {
        self.names.is_none()
    }

    pub fn contains(&self, protocol: &[u8]) -> bool {
        self.iter().any(|offered| offered.as_bytes() == protocol)
    }
}

impl<'a> IntoIterator for AlpnList<'a> {
    type Item = AlpnProtocol<'a>;
    type IntoIter = AlpnProtocols<'a>;

    fn into_iter(self) -> AlpnProtocols<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &AlpnList<'a> {
    type Item = AlpnProtocol<'a>;
    type IntoIter = AlpnProtocols<'a>;

    fn into_iter(self) -> AlpnProtocols<'a> {
        self.iter()
    }
}

impl PartialEq for AlpnList<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.is_empty() == other.is_empty() && self.iter().eq(other.iter())
    }
}

impl Eq for AlpnList<'_> {}

impl fmt::Debug for AlpnList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterator over the protocol names of an [`AlpnList`], in the client's order.
#[derive(Clone, Copy)]
pub struct AlpnProtocols<'a> {
    names: Option<Cursor<'a>>,
}

impl<'a> Iterator for AlpnProtocols<'a> {
    type Item = AlpnProtocol<'a>;

    fn next(&mut self) -> Option<AlpnProtocol<'a>> {
        let names = self.names.as_mut().filter(|names| !names.is_empty())?;
        // The list was checked when the hello was read, so these reads cannot fail.
        let len = names.u8("ALPN protocol name length").ok()?;
        let name = names.bytes(len, "ALPN protocol name").ok()?;
        Some(AlpnProtocol(name))
    }
}

/// One protocol name offered by the client: opaque bytes, usually ASCII.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AlpnProtocol<'a>(WireBytes<'a>);

impl AlpnProtocol<'_> {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Deref for AlpnProtocol<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq<[u8]> for AlpnProtocol<'_> {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_bytes() == other
    }
}

impl PartialEq<str> for AlpnProtocol<'_> {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for AlpnProtocol<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl fmt::Debug for AlpnProtocol<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.as_bytes().escape_ascii())
    }
}
