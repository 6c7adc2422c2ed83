//! Sans-IO reader for the TLS ClientHello that opens a connection.
//!
//! AUTO_PASSTHROUGH and PASSTHROUGH listeners route on the SNI without terminating TLS, so
//! they must read the ClientHello while keeping every byte to forward unchanged. This module
//! only looks at bytes: the caller reads from the socket into a buffer it grows, calls
//! [`peek_client_hello`] on the whole buffer after every read, and stops on the first answer
//! that is not [`Peek::NeedMore`]. Nothing here blocks, allocates or keeps state between
//! calls.
//!
//! # Outcomes
//!
//! | outcome | meaning | what a passthrough listener does |
//! |---|---|---|
//! | `Ok(Peek::NeedMore { at_least })` | the bytes so far are a valid beginning; read until `buf.len() >= at_least` and call again | keep reading, under its own deadline |
//! | `Ok(Peek::NotTls)` | the first bytes (at most 3) cannot start a TLS record: plain HTTP, SSH, random bytes | close: "not TLS" |
//! | `Ok(Peek::Done(info))` with `info.sni == None` | a well-formed ClientHello without a server_name extension | close: "no SNI" |
//! | `Ok(Peek::Done(info))` with `Some(sni)` | a well-formed ClientHello | match the SNI |
//! | `Err(ClientHelloError)` | TLS-shaped bytes that are malformed, unsupported (SSLv2 compat hello) or larger than [`MAX_CLIENT_HELLO_BYTES`] | close: the error names what was wrong |
//!
//! "Not TLS" is decided on the record header alone: a content type that TLS defines (20..=24)
//! followed by major version 3 is TLS; anything else is `NotTls`. A TLS record that is not a
//! handshake (an alert, application data) is an error, not `NotTls`, because the peer does
//! speak TLS and a log should say so.
//!
//! The answer depends only on the bytes seen: once a prefix gets `Done`, `NotTls` or an error,
//! every longer buffer starting with that prefix gets the same answer, and bytes after the
//! ClientHello's last record are never read (`record_len` says where they start).
//!
//! # What is checked
//!
//! - Record layer: handshake records (22), major version 3, no empty record, no record over
//!   2^14 bytes; a ClientHello fragmented over several records is reassembled (records of any
//!   size down to one byte), other record types between its fragments are rejected, and its
//!   last record must end where the ClientHello ends.
//! - The first handshake message is a ClientHello (type 1) whose length fields nest exactly:
//!   every length that overruns its enclosing structure, and every byte left over, is an error.
//! - Extensions: at most one of each type (RFC 8446 §4.2), GREASE and unknown types skipped.
//! - server_name (RFC 6066): exactly one entry, of type host_name, as OpenSSL also requires.
//!   The host name must be DNS-shaped ASCII: 1 to 253 bytes of letters, digits, `-`, `_`
//!   (Istio's `outbound_.9080_._.…` names) and dots between non-empty labels of at most 63
//!   bytes; no trailing dot. It is returned **as sent**, case included: DNS names compare
//!   case-insensitively, so callers compare with `eq_ignore_ascii_case` or lowercase it.
//! - application_layer_protocol_negotiation (RFC 7301): a non-empty list of non-empty names.
//!
//! # Limits and allocation
//!
//! The whole ClientHello, record headers included, must fit in [`MAX_CLIENT_HELLO_BYTES`]
//! (one maximal TLS record: 2^14 + 5). Real hellos are far smaller (Chromium with an
//! X25519MLKEM768 key share: about 2 KB), so that is the most a caller ever buffers per
//! connection. Deadlines for slow clients belong to the caller, which owns the clock.
//!
//! Results borrow from the caller's buffer. Only when a fragmented ClientHello splits the host
//! name or one ALPN name across two records are that name's bytes (at most 255) copied, into
//! the returned value itself: no heap allocation on any path.

mod alpn;
mod cursor;
mod error;
mod hello;
mod records;
mod server_name;
mod wire_bytes;

#[cfg(test)]
mod tests;

pub use alpn::{AlpnList, AlpnProtocol, AlpnProtocols, ISTIO_MTLS_ALPNS, has_istio_alpn};
pub use error::ClientHelloError;
pub use server_name::ServerName;

/// The most bytes a ClientHello may occupy on the wire, record headers included: one TLS
/// record of the largest plaintext size (2^14 bytes) plus its 5-byte header. A hello
/// fragmented over n records may carry up to this cap minus 5·n bytes of handshake data.
pub const MAX_CLIENT_HELLO_BYTES: usize = 16 * 1024 + 5;

/// What the bytes received so far say about the connection's first TLS message.
// `Done` carries up to two inline names (about 320 bytes): boxing it would put a heap
// allocation on every connection's path to keep a short-lived stack value small.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peek<'a> {
    /// A valid beginning; call again once the buffer holds at least `at_least` bytes
    /// (always more than it holds now, and never more than [`MAX_CLIENT_HELLO_BYTES`]).
    NeedMore { at_least: usize },
    /// A complete, well-formed ClientHello.
    Done(ClientHelloInfo<'a>),
    /// The first bytes cannot start a TLS record.
    NotTls,
}

/// What a passthrough listener needs from a ClientHello, borrowed from the caller's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHelloInfo<'a> {
    /// The host_name from the server_name extension, as sent (not lowercased).
    pub sni: Option<ServerName<'a>>,
    /// The ALPN protocols in the client's order of preference; empty without the extension.
    pub alpn: AlpnList<'a>,
    /// The ClientHello's `legacy_version` (0x0303 for TLS 1.2 and 1.3 clients).
    pub legacy_version: u16,
    /// How many bytes at the start of the buffer the ClientHello's records occupy; bytes
    /// after them belong to later records and were not inspected.
    pub record_len: usize,
}

/// Reads the ClientHello at the start of `buf`, the bytes received so far on a connection.
///
/// See the [module documentation](self) for the outcomes and what is checked.
pub fn peek_client_hello(buf: &[u8]) -> Result<Peek<'_>, ClientHelloError> {
    match records::frame(buf)? {
        records::Framing::NotTls => Ok(Peek::NotTls),
        records::Framing::NeedMore { at_least } => Ok(Peek::NeedMore { at_least }),
        records::Framing::Complete(message) => hello::parse(message).map(Peek::Done),
    }
}
