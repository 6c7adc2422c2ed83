//! Property tests of the SNI codec: every valid key survives both spellings unchanged, and no
//! input string can make the decoder panic.

#![allow(clippy::unwrap_used)] // test helpers panic on bad fixtures by design

use multicluster::sni::{MAX_LABEL_LEN, MAX_NAME_LEN, SniError, SniKey};
use proptest::prelude::*;

fn label() -> impl Strategy<Value = String> {
    // RFC 1123 label: alphanumeric ends, '-' allowed inside.
    "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
}

fn host() -> impl Strategy<Value = String> {
    prop::collection::vec(label(), 1..6).prop_map(|labels| labels.join("."))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_encode_round_trips(port in 1u16.., subset in prop::option::of(label()), host in host()) {
        match SniKey::new(port, subset.as_deref(), &host) {
            Ok(key) => {
                let sni = key.to_sni();
                prop_assert!(sni.len() <= MAX_NAME_LEN);
                prop_assert_eq!(SniKey::from_sni(&sni).unwrap(), key.clone());
                prop_assert_eq!(SniKey::from_cluster_name(&key.to_cluster_name()).unwrap(), key.clone());
                prop_assert_eq!(key.port(), port);
                prop_assert_eq!(key.subset(), subset.as_deref());
                prop_assert_eq!(key.host(), host.as_str());
            }
            // The only way generated parts can fail is the 255-byte limit on the whole name.
            Err(SniError::NameTooLong { len, .. }) => prop_assert!(len > MAX_NAME_LEN),
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }

    #[test]
    fn decoding_arbitrary_text_never_panics(name in ".{0,300}") {
        if let Ok(key) = SniKey::from_sni(&name) {
            // Anything accepted must be canonical: encoding gives back the very same bytes.
            prop_assert_eq!(key.to_sni(), name.clone());
        }
        if let Ok(key) = SniKey::from_cluster_name(&name) {
            prop_assert_eq!(key.to_cluster_name(), name);
        }
    }

    #[test]
    fn decoding_near_valid_names_never_panics(
        prefix in prop::sample::select(vec!["outbound_.", "inbound_.", "outbound|", ""]),
        port in "[0-9x]{0,6}",
        sep in prop::sample::select(vec!["_.", ".", "_", "|"]),
        subset in "[a-zA-Z0-9_-]{0,70}",
        host in "[a-z0-9.-]{0,80}",
    ) {
        let name = format!("{prefix}{port}{sep}{subset}{sep}{host}");
        if let Ok(key) = SniKey::from_sni(&name) {
            prop_assert_eq!(key.to_sni(), name);
        }
    }

    #[test]
    fn over_long_labels_are_refused(port in 1u16.., len in (MAX_LABEL_LEN + 1)..200usize) {
        let host = format!("{}.svc", "a".repeat(len));
        let refused = matches!(SniKey::new(port, None, &host),
            Err(SniError::LabelTooLong { .. } | SniError::NameTooLong { .. }));
        prop_assert!(refused);
    }
}
