//! The ClientHello body (RFC 8446 §4.1.2; TLS 1.0–1.2 hellos share its layout).

use super::alpn::AlpnList;
use super::cursor::Cursor;
use super::records::{HANDSHAKE_HEADER_LEN, HandshakeMessage};
use super::server_name::ServerName;
use super::{ClientHelloError, ClientHelloInfo};

const RANDOM_LEN: usize = 32;
const MAX_SESSION_ID_LEN: u8 = 32;
const EXTENSION_SERVER_NAME: u16 = 0;
const EXTENSION_ALPN: u16 = 16;

pub(super) fn parse(
    message: HandshakeMessage<'_>,
) -> Result<ClientHelloInfo<'_>, ClientHelloError> {
    let mut body = Cursor::over(message);
    // Framing already checked the type and that the length matches the records.
    body.skip(HANDSHAKE_HEADER_LEN, "handshake header")?;

    let legacy_version = body.u16("legacy_version")?;
    if legacy_version >> 8 != 3 {
        return Err(ClientHelloError::HelloVersion {
            version: legacy_version,
        });
    }
    body.skip(RANDOM_LEN, "random")?;
    let session_id_len = body.u8("session_id length")?;
    if session_id_len > MAX_SESSION_ID_LEN {
        return Err(ClientHelloError::SessionIdTooLong {
            len: session_id_len,
        });
    }
    body.skip(usize::from(session_id_len), "session_id")?;
    let cipher_suites_len = body.u16("cipher_suites length")?;
    if cipher_suites_len == 0 || cipher_suites_len % 2 != 0 {
        return Err(ClientHelloError::CipherSuites {
            len: cipher_suites_len,
        });
    }
    body.skip(usize::from(cipher_suites_len), "cipher_suites")?;
    let compression_len = body.u8("compression_methods length")?;
    if compression_len == 0 {
        return Err(ClientHelloError::NoCompressionMethods);
    }
    body.skip(usize::from(compression_len), "compression_methods")?;

    let mut info = ClientHelloInfo {
        sni: None,
        alpn: AlpnList::ABSENT,
        legacy_version,
        record_len: message.wire.len(),
    };
    // Hellos of TLS 1.0-era clients may end here, without an extensions block.
    if body.is_empty() {
        return Ok(info);
    }
    let extensions_len = body.u16("extensions length")?;
    let mut extensions = body.take(usize::from(extensions_len), "extensions")?;
    if !body.is_empty() {
        return Err(ClientHelloError::TrailingBytes {
            field: "extensions",
            extra: body.remaining(),
        });
    }
    let mut seen = ExtensionTypes::default();
    while !extensions.is_empty() {
        let ext_type = extensions.u16("extension type")?;
        let data_len = extensions.u16("extension length")?;
        let data = extensions.take(usize::from(data_len), "extension data")?;
        if !seen.insert(ext_type) {
            return Err(ClientHelloError::DuplicateExtension { ext_type });
        }
        match ext_type {
            EXTENSION_SERVER_NAME => info.sni = Some(ServerName::from_extension(data)?),
            EXTENSION_ALPN => info.alpn = AlpnList::from_extension(data)?,
            // GREASE (RFC 8701), ECH, key shares, padding and the rest do not route.
            _ => {}
        }
    }
    Ok(info)
}

/// One bit per possible extension type: 8 KiB on the stack, so duplicate detection is
/// linear and allocation-free however many extensions a hostile hello lists.
struct ExtensionTypes([u64; 1 << 10]);

impl Default for ExtensionTypes {
    fn default() -> Self {
        Self([0; 1 << 10])
    }
}

impl ExtensionTypes {
    /// Records `ext_type`; false if it was already there.
    fn insert(&mut self, ext_type: u16) -> bool {
        let word = usize::from(ext_type >> 6);
        let bit = 1u64 << (ext_type & 63);
        // 2^16 types / 64 bits per word = 1024 words: every index exists.
        let Some(slot) = self.0.get_mut(word) else {
            return false;
        };
        let fresh = *slot & bit == 0;
        *slot |= bit;
        fresh
    }
}
