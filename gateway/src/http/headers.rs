//! Standard proxy headers: hop-by-hop removal, `x-forwarded-*`, `x-request-id`,
//! `x-forwarded-client-cert`, and the ones added to responses.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::upstream::random::random_u64;

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_FORWARDED_CLIENT_CERT: HeaderName = HeaderName::from_static("x-forwarded-client-cert");
pub static X_ENVOY_UPSTREAM_SERVICE_TIME: HeaderName =
    HeaderName::from_static("x-envoy-upstream-service-time");
pub static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
pub static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The `server` header of every response, upstream or local (Envoy overwrites it too).
pub static SERVER_NAME: HeaderValue = HeaderValue::from_static("isthmus");

/// Headers that only describe one hop, besides `connection` and `te` (handled apart).
const HOP_BY_HOP: [&HeaderName; 6] = [
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &header::TRANSFER_ENCODING,
    &header::UPGRADE,
    &header::PROXY_AUTHENTICATE,
    &header::PROXY_AUTHORIZATION,
];

/// Which of the headers the gateway edits a message carries, from one pass over its names:
/// looking up or removing a name that is absent still hashes it and probes the table, and
/// most requests carry none of these.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Carried {
    connection: bool,
    te: bool,
    other_hop_by_hop: bool,
    forwarded_for: bool,
    request_id: bool,
    client_cert: bool,
}

impl Carried {
    fn scan(headers: &HeaderMap) -> Self {
        let mut carried = Carried::default();
        for name in headers.keys() {
            // By text: a string match dispatches on length and compares only names of that
            // length, where `HeaderName` equality took a comparison per candidate.
            match name.as_str() {
                "connection" => carried.connection = true,
                "te" => carried.te = true,
                "keep-alive"
                | "proxy-connection"
                | "transfer-encoding"
                | "upgrade"
                | "proxy-authenticate"
                | "proxy-authorization" => carried.other_hop_by_hop = true,
                "x-forwarded-for" => carried.forwarded_for = true,
                "x-request-id" => carried.request_id = true,
                "x-forwarded-client-cert" => carried.client_cert = true,
                _ => {}
            }
        }
        carried
    }
}

/// A request's headers as the edge gateway forwards them: hop-by-hop headers removed,
/// `x-forwarded-for`/`-proto` set ([`add_forwarded`]), a client's `x-forwarded-client-cert`
/// dropped (never trusted from outside), and an `x-request-id` kept or made. Returns the
/// request id.
pub fn edge_request(
    headers: &mut HeaderMap,
    peer: &HeaderValue,
    scheme: &'static str,
) -> HeaderValue {
    let carried = Carried::scan(headers);
    strip_hop_by_hop(headers, carried);
    set_forwarded(headers, peer, scheme, carried.forwarded_for);
    if carried.client_cert {
        headers.remove(&X_FORWARDED_CLIENT_CERT);
    }
    request_id(headers, carried.request_id)
}

/// Headers that describe one hop's connection and must not be forwarded (RFC 9110 §7.6.1),
/// plus any the `connection` header names. `te: trailers` survives: gRPC needs it.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers, Carried::scan(headers));
}

fn strip_hop_by_hop(headers: &mut HeaderMap, carried: Carried) {
    let Carried {
        connection,
        te,
        other_hop_by_hop: other,
        ..
    } = carried;
    // Nearly always `connection: keep-alive` or `close`, which name no other header: checked
    // as whole values before the general token walk.
    let names_others = connection
        && headers.get_all(header::CONNECTION).iter().any(|value| {
            let value = value.as_bytes();
            !value.eq_ignore_ascii_case(b"keep-alive") && !value.eq_ignore_ascii_case(b"close")
        });
    if names_others {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            // The usual tokens name no header that is not removed anyway.
            .filter(|token| {
                !token.eq_ignore_ascii_case("close") && !token.eq_ignore_ascii_case("keep-alive")
            })
            .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    if connection {
        headers.remove(header::CONNECTION);
    }
    if other {
        for name in HOP_BY_HOP {
            headers.remove(name);
        }
    }
    if te {
        let keeps_trailers = headers
            .get(header::TE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
            });
        if keeps_trailers {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        } else {
            headers.remove(header::TE);
        }
    }
}

/// Writes `value`'s `Display` form into `buf` without allocating; `None` if it does not fit.
pub fn display_into(buf: &mut [u8], value: impl std::fmt::Display) -> Option<&[u8]> {
    use std::io::Write as _;
    let remaining = {
        let mut cursor = &mut buf[..];
        write!(cursor, "{value}").ok()?;
        cursor.len()
    };
    let written = buf.len() - remaining;
    Some(&buf[..written])
}

/// Room for any IP address or socket address in text (`[v6%scope]:port`).
pub const ADDRESS_TEXT_MAX: usize = 64;

/// `ip` as a header value (`x-forwarded-for`'s form: no brackets, no port).
/// Once per connection, so a formatted `String` is fine here.
pub fn ip_value(ip: IpAddr) -> HeaderValue {
    HeaderValue::try_from(ip.to_string())
        // An address's text is ASCII digits, dots, colons and hex: always a valid value.
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// The gateway is the edge: it appends the client address (`peer`, from [`ip_value`]) to
/// `x-forwarded-for` and states the scheme the client used, replacing whatever the client
/// claimed.
pub fn add_forwarded(headers: &mut HeaderMap, peer: &HeaderValue, scheme: &'static str) {
    set_forwarded(headers, peer, scheme, true);
}

/// `may_carry` false: the caller's scan found no `x-forwarded-for`, so it is not looked up.
fn set_forwarded(
    headers: &mut HeaderMap,
    peer: &HeaderValue,
    scheme: &'static str,
    may_carry: bool,
) {
    let existing = if may_carry {
        headers.get(&X_FORWARDED_FOR).map(HeaderValue::as_bytes)
    } else {
        None
    };
    let value = match existing {
        Some(existing) if !existing.is_empty() => {
            let peer = peer.as_bytes();
            let mut joined = Vec::with_capacity(existing.len() + 1 + peer.len());
            joined.extend_from_slice(existing);
            joined.push(b',');
            joined.extend_from_slice(peer);
            HeaderValue::from_maybe_shared(bytes::Bytes::from(joined)).ok()
        }
        _ => Some(peer.clone()),
    };
    if let Some(value) = value {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(scheme));
}

/// Keeps the client's `x-request-id` (so a trace can start at the client) or makes one.
pub fn ensure_request_id(headers: &mut HeaderMap) -> HeaderValue {
    request_id(headers, true)
}

/// `may_carry` false: the caller's scan found no `x-request-id`, so it is not looked up.
fn request_id(headers: &mut HeaderMap, may_carry: bool) -> HeaderValue {
    if may_carry
        && let Some(id) = headers.get(&X_REQUEST_ID)
        && !id.is_empty()
    {
        return id.clone();
    }
    let id = new_request_id();
    headers.insert(X_REQUEST_ID.clone(), id.clone());
    id
}

/// A random version-4 UUID, the shape Envoy generates.
pub fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Where each byte's two hex digits go in `8-4-4-4-12`.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    // Version 4 in bits 76..80, the RFC 9562 variant `10` in bits 62..64.
    let high = (random_u64() & !0xf000) | 0x4000;
    let low = (random_u64() & !(0b11 << 62)) | (0b10 << 62);
    let bytes = (u128::from(high) << 64 | u128::from(low)).to_be_bytes();
    let mut text = [b'-'; 36];
    for (byte, at) in bytes.iter().zip(AT) {
        text[at] = HEX[usize::from(byte >> 4)];
        text[at + 1] = HEX[usize::from(byte & 0xf)];
    }
    // Hex digits and dashes are always a valid header value.
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// `x-envoy-upstream-service-time` for `ms`. Under 10 ms, the common case, the value is a
/// static one: `HeaderValue::from(u64)` allocates for every response.
pub fn service_time(ms: u64) -> HeaderValue {
    const SMALL: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match usize::try_from(ms).ok().and_then(|index| SMALL.get(index)) {
        Some(text) => HeaderValue::from_static(text),
        None => HeaderValue::from(ms),
    }
}

/// `x-forwarded-client-cert` in Envoy's format for a verified client certificate:
/// `Hash=<sha256 hex>;Subject="<subject>";URI=<uri SAN>` (and `DNS=` for DNS SANs).
pub fn client_cert_header(leaf_der: &[u8]) -> Option<HeaderValue> {
    let info = certs::inspect::inspect(leaf_der).ok()?;
    let mut value = format!("Hash={}", certs::cert_sha256_hex(leaf_der));
    value.push_str(";Subject=\"");
    value.push_str(&info.subject.replace('"', "\\\""));
    value.push('"');
    for uri in info.uri_sans() {
        value.push_str(";URI=");
        value.push_str(uri);
    }
    for san in &info.subject_alt_names {
        if let certs::inspect::SubjectAltName::Dns(dns) = san {
            value.push_str(";DNS=");
            value.push_str(dns);
        }
    }
    HeaderValue::from_str(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_and_te_trailers_stays() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, "keep-alive, x-secret".parse().unwrap());
        headers.insert("x-secret", "1".parse().unwrap());
        headers.insert(header::TE, "trailers, deflate".parse().unwrap());
        headers.insert(header::UPGRADE, "h2c".parse().unwrap());
        headers.insert("x-kept", "1".parse().unwrap());
        headers.insert(&KEEP_ALIVE, "timeout=5".parse().unwrap());
        remove_hop_by_hop(&mut headers);
        assert!(headers.get("x-secret").is_none());
        assert!(headers.get(&KEEP_ALIVE).is_none());
        assert!(headers.get(header::UPGRADE).is_none());
        assert!(headers.get(header::CONNECTION).is_none());
        assert_eq!(headers.get(header::TE).unwrap(), "trailers");
        assert_eq!(headers.get("x-kept").unwrap(), "1");
    }

    #[test]
    fn messages_without_hop_by_hop_headers_are_left_alone() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "a.example".parse().unwrap());
        headers.insert("x-kept", "1".parse().unwrap());
        let before = headers.clone();
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers, before);
        headers.insert(header::TE, "gzip".parse().unwrap());
        remove_hop_by_hop(&mut headers);
        assert!(headers.get(header::TE).is_none());
    }

    /// `edge_request`'s one pass against the edits made one by one, for every mix of the
    /// headers it looks for (a `connection` header naming one of them included).
    #[test]
    fn edge_request_equals_its_edits_made_one_by_one() {
        let peer = ip_value("192.0.2.7".parse().unwrap());
        let present: [(&str, &str); 8] = [
            ("connection", "keep-alive, x-request-id"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-request-id", "client-id"),
            ("x-forwarded-client-cert", "By=spoofed"),
            ("host", "a.example"),
            ("x-other", "1"),
        ];
        for mask in 0u32..(1 << present.len()) {
            let mut headers = HeaderMap::new();
            for (bit, (name, value)) in present.iter().enumerate() {
                if mask & (1 << bit) != 0 {
                    headers.insert(*name, value.parse().unwrap());
                }
            }
            let mut expected = headers.clone();
            remove_hop_by_hop(&mut expected);
            add_forwarded(&mut expected, &peer, "https");
            let expected_id = ensure_request_id(&mut expected);
            expected.remove(&X_FORWARDED_CLIENT_CERT);

            let id = edge_request(&mut headers, &peer, "https");
            assert_eq!(headers.get(&X_REQUEST_ID), Some(&id), "mask {mask:#b}");
            if expected_id == "client-id" {
                assert_eq!(id, expected_id, "mask {mask:#b}");
            } else {
                // Both made a fresh id; the rest must match.
                assert_eq!(id.len(), 36, "mask {mask:#b}");
                headers.remove(&X_REQUEST_ID);
                expected.remove(&X_REQUEST_ID);
            }
            assert_eq!(headers, expected, "mask {mask:#b}");
        }
    }

    #[test]
    fn every_hop_by_hop_name_is_recognised_by_the_scan() {
        for name in HOP_BY_HOP {
            let mut headers = HeaderMap::new();
            headers.insert(name, "1".parse().unwrap());
            assert!(Carried::scan(&headers).other_hop_by_hop, "{name}");
            remove_hop_by_hop(&mut headers);
            assert!(headers.is_empty(), "{name}");
        }
    }

    #[test]
    fn connection_keep_alive_or_close_alone_is_just_removed() {
        for value in ["keep-alive", "Keep-Alive", "close"] {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONNECTION, value.parse().unwrap());
            headers.insert("x-kept", "1".parse().unwrap());
            remove_hop_by_hop(&mut headers);
            assert!(headers.get(header::CONNECTION).is_none(), "{value}");
            assert_eq!(headers.len(), 1, "{value}");
        }
    }

    #[test]
    fn service_times_read_as_their_milliseconds() {
        for ms in [0, 1, 9, 10, 11, 99, 1234, u64::MAX] {
            assert_eq!(service_time(ms), ms.to_string().as_str(), "{ms}");
        }
    }

    #[test]
    fn forwarded_for_is_set_when_absent() {
        let mut headers = HeaderMap::new();
        add_forwarded(
            &mut headers,
            &ip_value("2001:db8::1".parse().unwrap()),
            "https",
        );
        assert_eq!(headers.get(&X_FORWARDED_FOR).unwrap(), "2001:db8::1");
    }

    #[test]
    fn forwarded_for_appends_and_proto_is_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_FORWARDED_FOR, "203.0.113.9".parse().unwrap());
        headers.insert(&X_FORWARDED_PROTO, "https".parse().unwrap());
        add_forwarded(
            &mut headers,
            &ip_value("127.0.0.1".parse().unwrap()),
            "http",
        );
        assert_eq!(
            headers.get(&X_FORWARDED_FOR).unwrap(),
            "203.0.113.9,127.0.0.1"
        );
        assert_eq!(headers.get(&X_FORWARDED_PROTO).unwrap(), "http");
    }

    #[test]
    fn request_ids_are_kept_or_made_unique() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_REQUEST_ID, "abc".parse().unwrap());
        assert_eq!(ensure_request_id(&mut headers), "abc");
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        let text = a.to_str().unwrap();
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "4");
        assert!(matches!(&text[19..20], "8" | "9" | "a" | "b"), "{text}");
        assert!(
            text.bytes()
                .enumerate()
                .all(|(i, b)| if matches!(i, 8 | 13 | 18 | 23) {
                    b == b'-'
                } else {
                    b.is_ascii_hexdigit()
                }),
            "{text}"
        );
    }
}
