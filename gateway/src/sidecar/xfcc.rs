//! `x-forwarded-client-cert` as the inbound sidecar writes it, in Envoy's format:
//! `By=<own SPIFFE URI>;Hash=<hex SHA-256 of the caller's leaf>;URI=<caller's SPIFFE URI>`.
//!
//! Written from the verified handshake only. Whatever the caller sent under this name is
//! replaced, never appended to: a client must not be able to claim another identity.

use certs::Identity;
use http::HeaderValue;
use http::header::InvalidHeaderValue;

/// Envoy's element order (`By`, `Hash`, `URI`). SPIFFE URIs and hex digests hold no `;`, `,`
/// or `"`, so no value needs quoting.
pub fn client_cert_value(
    own: &Identity,
    peer: &Identity,
    peer_leaf_der: &[u8],
) -> Result<HeaderValue, InvalidHeaderValue> {
    let hash = certs::cert_sha256_hex(peer_leaf_der);
    HeaderValue::from_str(&format!("By={own};Hash={hash};URI={peer}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_names_both_sides_and_hashes_the_leaf() {
        let own: Identity = "spiffe://cluster.local/ns/default/sa/reviews"
            .parse()
            .unwrap();
        let peer: Identity = "spiffe://cluster.local/ns/default/sa/productpage"
            .parse()
            .unwrap();
        let value = client_cert_value(&own, &peer, b"leaf").unwrap();
        let expected_hash = certs::cert_sha256_hex(b"leaf");
        assert_eq!(expected_hash.len(), 64);
        assert_eq!(
            value.to_str().unwrap(),
            format!(
                "By=spiffe://cluster.local/ns/default/sa/reviews;Hash={expected_hash};URI=spiffe://cluster.local/ns/default/sa/productpage"
            )
        );
    }
}
