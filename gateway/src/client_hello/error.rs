use thiserror::Error;

/// Why TLS-shaped bytes are not a ClientHello a passthrough listener can route.
///
/// Offsets are byte positions in the caller's buffer; "position" in a host name counts from
/// the name's first byte.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientHelloError {
    #[error(
        "TLS record of content type {content_type} where the client's first handshake record (type 22) was expected: \
         the client speaks TLS but did not start with a ClientHello"
    )]
    NotHandshakeRecord { content_type: u8 },

    #[error(
        "SSLv2-compatible ClientHello: it cannot carry SNI or ALPN; the client must send a TLS 1.0 or later ClientHello"
    )]
    Sslv2CompatHello,

    #[error(
        "TLS ClientHello needs at least {needed} bytes, over the {max}-byte cap: the hello is too large to inspect"
    )]
    TooLarge { needed: usize, max: usize },

    #[error(
        "malformed TLS ClientHello: empty handshake record at byte {offset} (RFC 8446 §5.1 forbids zero-length handshake fragments)"
    )]
    EmptyRecord { offset: usize },

    #[error(
        "malformed TLS ClientHello: record at byte {offset} has content type {content_type} between fragments of the ClientHello; \
         only handshake records (22) may carry them"
    )]
    InterleavedRecord { offset: usize, content_type: u8 },

    #[error(
        "malformed TLS ClientHello: record at byte {offset} has major version {major}; TLS records have major version 3"
    )]
    RecordVersion { offset: usize, major: u8 },

    #[error(
        "TLS handshake starts with message type {handshake_type}, not ClientHello (1): this is not a client opening a connection"
    )]
    NotClientHello { handshake_type: u8 },

    #[error(
        "malformed TLS ClientHello: {extra} bytes follow it in its last record; a client's first flight carries the ClientHello alone"
    )]
    TrailingRecordData { extra: usize },

    #[error(
        "TLS ClientHello legacy_version {version:#06x} is not SSL 3.0/TLS (major version 3); the client must speak TLS 1.0 or later"
    )]
    HelloVersion { version: u16 },

    #[error(
        "malformed TLS ClientHello: {field} needs {needed} bytes but only {available} remain in its enclosing structure"
    )]
    Truncated {
        field: &'static str,
        needed: usize,
        available: usize,
    },

    #[error("malformed TLS ClientHello: {extra} unexpected bytes after the {field}")]
    TrailingBytes { field: &'static str, extra: usize },

    #[error("malformed TLS ClientHello: session_id of {len} bytes, over TLS's 32")]
    SessionIdTooLong { len: u8 },

    #[error(
        "malformed TLS ClientHello: cipher_suites length {len} is not a non-zero multiple of 2"
    )]
    CipherSuites { len: u16 },

    #[error(
        "malformed TLS ClientHello: compression_methods is empty; TLS requires at least the null method"
    )]
    NoCompressionMethods,

    #[error(
        "malformed TLS ClientHello: extension {ext_type:#06x} appears twice; RFC 8446 §4.2 allows one of each type"
    )]
    DuplicateExtension { ext_type: u16 },

    #[error("malformed TLS ClientHello: the server_name extension lists no names")]
    ServerNameListEmpty,

    #[error(
        "TLS ClientHello server_name has name type {name_type}; only host_name (0) is defined (RFC 6066)"
    )]
    ServerNameType { name_type: u8 },

    #[error(
        "TLS ClientHello server_name lists more than one name; a client sends one host_name (RFC 6066)"
    )]
    ServerNameMultiple,

    #[error(
        "TLS ClientHello SNI host name is empty; a client without a name must omit server_name"
    )]
    ServerNameEmpty,

    #[error("TLS ClientHello SNI host name is {len} bytes, over the 253 of a DNS name")]
    ServerNameTooLong { len: usize },

    #[error(
        "TLS ClientHello SNI host name has byte {byte:#04x} at position {position}; only ASCII letters, digits, '-', '_' and '.' may appear"
    )]
    ServerNameByte { byte: u8, position: usize },

    #[error(
        "TLS ClientHello SNI host name has an empty label at position {position} (leading, doubled or trailing dot)"
    )]
    ServerNameEmptyLabel { position: usize },

    #[error(
        "TLS ClientHello SNI host name has a {len}-byte label at position {position}, over DNS's 63"
    )]
    ServerNameLabelTooLong { position: usize, len: usize },

    #[error("malformed TLS ClientHello: the ALPN extension lists no protocols (RFC 7301)")]
    AlpnListEmpty,

    #[error(
        "malformed TLS ClientHello: the ALPN extension lists an empty protocol name (RFC 7301)"
    )]
    AlpnProtocolEmpty,
}
