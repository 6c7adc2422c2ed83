//! Properties over arbitrary bytes, mutated captures, arbitrary read splits and
//! re-framings, and hellos generated from arbitrary valid names.

use proptest::collection::vec;
use proptest::prelude::*;

use super::builder::{HANDSHAKE, Hello, fragment, record};
use super::captured::CAPTURES;
use super::{Summary, peek_client_hello, read_done, settle_over_prefixes};
use crate::client_hello::server_name::validate_host_name;
use crate::client_hello::{MAX_CLIENT_HELLO_BYTES, Peek};

fn capture_index() -> impl Strategy<Value = usize> {
    0..CAPTURES.len()
}

/// DNS-shaped names: 1 to 5 labels of the allowed characters, at most 253 bytes.
fn host_name() -> impl Strategy<Value = String> {
    vec("[a-zA-Z0-9_-]{1,63}", 1..=5)
        .prop_map(|labels| labels.join("."))
        .prop_filter("DNS names have at most 253 bytes", |name| name.len() <= 253)
}

/// ALPN names are opaque bytes; long ones make record splits inside a name likely.
fn alpn_names() -> impl Strategy<Value = Vec<Vec<u8>>> {
    vec(
        prop_oneof![vec(any::<u8>(), 1..=16), vec(any::<u8>(), 1..=255)],
        0..8,
    )
}

/// A GREASE extension type (RFC 8701): 0x0a0a, 0x1a1a, ... 0xfafa.
fn grease_type() -> impl Strategy<Value = u16> {
    (0u16..16).prop_map(|nibble| (nibble << 12) | (nibble << 4) | 0x0a0a)
}

/// The reference answer for host names, written as a different algorithm than the reader's.
fn reference_accepts(name: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(name) else {
        return false;
    };
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn client_hello_arbitrary_bytes_never_panic_and_settle_once(data in vec(any::<u8>(), 0..600)) {
        settle_over_prefixes(&data);
    }

    #[test]
    fn client_hello_tls_shaped_bytes_never_panic_and_settle_once(
        minor in 0u8..=4,
        record_len in 0u16..=700,
        handshake_len in 0u32..=800,
        rest in vec(any::<u8>(), 0..800),
    ) {
        let mut data = vec![HANDSHAKE, 3, minor];
        data.extend(record_len.to_be_bytes());
        data.push(1);
        data.extend(&handshake_len.to_be_bytes()[1..]);
        data.extend(rest);
        settle_over_prefixes(&data);
    }

    #[test]
    fn client_hello_mutated_captures_never_panic_and_settle_once(
        index in capture_index(),
        mutations in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut data = CAPTURES[index].wire.to_vec();
        for (at, byte) in mutations {
            let at = at.index(data.len());
            data[at] = byte;
        }
        settle_over_prefixes(&data);
    }

    /// A caller growing its buffer read by read sees `NeedMore` until the whole hello is in,
    /// then the same answer as from the whole capture.
    #[test]
    fn client_hello_split_across_reads_gives_the_same_answer(
        index in capture_index(),
        reads in vec(1usize..400, 1..40),
    ) {
        let capture = &CAPTURES[index];
        let mut received = 0;
        for read in reads.iter().cycle() {
            received = (received + read).min(capture.wire.len());
            let outcome = peek_client_hello(&capture.wire[..received]);
            if received < capture.wire.len() {
                match outcome {
                    Ok(Peek::NeedMore { at_least }) => {
                        prop_assert!(at_least > received && at_least <= capture.wire.len());
                    }
                    other => prop_assert!(false, "{} bytes of {}: {other:?}", received, capture.name),
                }
            } else {
                let Ok(Peek::Done(info)) = outcome else {
                    return Err(TestCaseError::fail(format!("{}: {outcome:?}", capture.name)));
                };
                prop_assert_eq!(Summary::of(&info), capture.expected());
                break;
            }
        }
    }

    #[test]
    fn client_hello_captures_in_arbitrary_records_read_the_same(
        index in capture_index(),
        sizes in vec(1usize..600, 1..12),
    ) {
        let capture = &CAPTURES[index];
        let wire = fragment(&super::builder::defragment(capture.wire), &sizes);
        prop_assume!(wire.len() <= MAX_CLIENT_HELLO_BYTES);
        let info = read_done(&wire);
        prop_assert_eq!(Summary::of(&info), capture.expected());
        prop_assert_eq!(info.record_len, wire.len());
    }

    #[test]
    fn client_hello_built_from_valid_names_round_trips(
        sni in proptest::option::of(host_name()),
        alpn in alpn_names(),
        greases in proptest::sample::subsequence((0u16..16).collect::<Vec<_>>(), 0..3),
        padding in 0usize..3000,
        sizes in vec(1usize..700, 1..6),
        single_record in any::<bool>(),
        trailing in vec(any::<u8>(), 0..16),
    ) {
        let mut hello = Hello::default();
        for nibble in &greases {
            hello = hello.extension((nibble << 12) | (nibble << 4) | 0x0a0a, &[]);
        }
        if let Some(name) = &sni {
            hello = hello.sni(name.as_bytes());
        }
        if !alpn.is_empty() {
            let names: Vec<&[u8]> = alpn.iter().map(Vec::as_slice).collect();
            hello = hello.alpn(&names);
        }
        hello = hello.extension(21, &vec![0; padding]);
        let message = hello.message();
        let mut wire = if single_record { record(HANDSHAKE, &message) } else { fragment(&message, &sizes) };
        prop_assume!(wire.len() <= MAX_CLIENT_HELLO_BYTES);
        let hello_len = wire.len();
        wire.extend(trailing);

        let info = read_done(&wire);
        prop_assert_eq!(
            Summary::of(&info),
            Summary { sni, alpn, legacy_version: 0x0303 }
        );
        prop_assert_eq!(info.record_len, hello_len);
    }

    #[test]
    fn client_hello_grease_types_are_skipped(ty in grease_type(), data in vec(any::<u8>(), 0..40)) {
        let wire = Hello::default().extension(ty, &data).sni(b"a.test").wire();
        let info = read_done(&wire);
        prop_assert_eq!(info.sni.as_deref(), Some("a.test"));
    }

    #[test]
    fn client_hello_host_name_rules_match_a_reference(
        name in prop_oneof![
            vec(any::<u8>(), 0..80),
            vec(prop::sample::select(b"aZ9-_.\0 *\xc3".to_vec()), 0..80),
            host_name().prop_map(String::into_bytes),
        ],
    ) {
        prop_assert_eq!(validate_host_name(&name).is_ok(), reference_accepts(&name), "{:?}", name.escape_ascii().to_string());
    }
}
