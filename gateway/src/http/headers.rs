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

/// Headers that describe one hop's connection and must not be forwarded (RFC 9110 §7.6.1),
/// plus any the `connection` header names. `te: trailers` survives: gRPC needs it.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
        &header::PROXY_AUTHENTICATE,
        &header::PROXY_AUTHORIZATION,
    ] {
        headers.remove(name);
    }
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

/// The gateway is the edge: it appends the client address to `x-forwarded-for` and states
/// the scheme the client used, replacing whatever the client claimed.
pub fn add_forwarded(headers: &mut HeaderMap, peer: IpAddr, scheme: &'static str) {
    let peer = peer.to_string();
    let value = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.is_empty() => format!("{existing},{peer}"),
        _ => peer,
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(scheme));
}

/// Keeps the client's `x-request-id` (so a trace can start at the client) or makes one.
pub fn ensure_request_id(headers: &mut HeaderMap) -> HeaderValue {
    if let Some(id) = headers.get(&X_REQUEST_ID)
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
    let high = random_u64();
    let low = random_u64();
    let time_low = high >> 32;
    let time_mid = (high >> 16) & 0xffff;
    let version = (high & 0x0fff) | 0x4000;
    let variant = ((low >> 48) & 0x3fff) | 0x8000;
    let node = low & 0xffff_ffff_ffff;
    let text = format!("{time_low:08x}-{time_mid:04x}-{version:04x}-{variant:04x}-{node:012x}");
    // Hex digits and dashes are always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("0"))
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
        remove_hop_by_hop(&mut headers);
        assert!(headers.get("x-secret").is_none());
        assert!(headers.get(header::UPGRADE).is_none());
        assert!(headers.get(header::CONNECTION).is_none());
        assert_eq!(headers.get(header::TE).unwrap(), "trailers");
        assert_eq!(headers.get("x-kept").unwrap(), "1");
    }

    #[test]
    fn forwarded_for_appends_and_proto_is_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_FORWARDED_FOR, "203.0.113.9".parse().unwrap());
        headers.insert(&X_FORWARDED_PROTO, "https".parse().unwrap());
        add_forwarded(&mut headers, "127.0.0.1".parse().unwrap(), "http");
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
    }
}
