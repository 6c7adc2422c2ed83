//! ClientHellos recorded from real clients on loopback (testdata/client_hello/README.md).

use super::builder::{defragment, fragment};
use super::{Summary, peek_client_hello, read_done, settle_over_prefixes};
use crate::client_hello::{Peek, has_istio_alpn};

pub(super) struct Capture {
    pub(super) name: &'static str,
    pub(super) wire: &'static [u8],
    sni: &'static str,
    alpn: &'static [&'static str],
    offers_istio: bool,
}

macro_rules! capture {
    ($file:literal, $sni:literal, [$($alpn:literal),* $(,)?], $istio:literal) => {
        Capture {
            name: $file,
            wire: include_bytes!(concat!("../../../testdata/client_hello/", $file, ".bin")),
            sni: $sni,
            alpn: &[$($alpn),*],
            offers_istio: $istio,
        }
    };
}

const FRAGMENTED_ALPN: [&str; 42] = [
    "istio-http/1.1",
    "istio",
    "x-padding-protocol-00",
    "x-padding-protocol-01",
    "x-padding-protocol-02",
    "x-padding-protocol-03",
    "x-padding-protocol-04",
    "x-padding-protocol-05",
    "x-padding-protocol-06",
    "x-padding-protocol-07",
    "x-padding-protocol-08",
    "x-padding-protocol-09",
    "x-padding-protocol-10",
    "x-padding-protocol-11",
    "x-padding-protocol-12",
    "x-padding-protocol-13",
    "x-padding-protocol-14",
    "x-padding-protocol-15",
    "x-padding-protocol-16",
    "x-padding-protocol-17",
    "x-padding-protocol-18",
    "x-padding-protocol-19",
    "x-padding-protocol-20",
    "x-padding-protocol-21",
    "x-padding-protocol-22",
    "x-padding-protocol-23",
    "x-padding-protocol-24",
    "x-padding-protocol-25",
    "x-padding-protocol-26",
    "x-padding-protocol-27",
    "x-padding-protocol-28",
    "x-padding-protocol-29",
    "x-padding-protocol-30",
    "x-padding-protocol-31",
    "x-padding-protocol-32",
    "x-padding-protocol-33",
    "x-padding-protocol-34",
    "x-padding-protocol-35",
    "x-padding-protocol-36",
    "x-padding-protocol-37",
    "x-padding-protocol-38",
    "x-padding-protocol-39",
];

pub(super) const CAPTURES: [Capture; 6] = [
    capture!("curl", "curl.isthmus.test", ["h2", "http/1.1"], false),
    capture!(
        "openssl",
        "outbound_.9080_.v1_.reviews.default.svc.cluster.local",
        ["istio", "istio-http/1.1"],
        true
    ),
    Capture {
        name: "openssl_fragmented",
        wire: include_bytes!("../../../testdata/client_hello/openssl_fragmented.bin"),
        sni: "fragmented.isthmus.test",
        alpn: &FRAGMENTED_ALPN,
        offers_istio: true,
    },
    capture!(
        "python",
        "outbound_.9080_._.ratings.default.svc.cluster.local",
        ["istio-peer-exchange", "istio"],
        true
    ),
    capture!(
        "go",
        "outbound_.15443_._.details.bookinfo.svc.cluster.local",
        ["istio-h2", "istio"],
        true
    ),
    capture!(
        "chromium",
        "chromium.isthmus.test",
        ["h2", "http/1.1"],
        false
    ),
];

impl Capture {
    pub(super) fn expected(&self) -> Summary {
        Summary {
            sni: Some(self.sni.to_owned()),
            alpn: self
                .alpn
                .iter()
                .map(|name| name.as_bytes().to_vec())
                .collect(),
            legacy_version: 0x0303,
        }
    }
}

#[test]
fn client_hello_captures_give_their_exact_sni_and_alpn() {
    for capture in &CAPTURES {
        let info = read_done(capture.wire);
        assert_eq!(Summary::of(&info), capture.expected(), "{}", capture.name);
        assert_eq!(info.record_len, capture.wire.len(), "{}", capture.name);
        assert_eq!(
            has_istio_alpn(&info),
            capture.offers_istio,
            "{}",
            capture.name
        );
    }
}

#[test]
fn client_hello_captures_need_more_on_every_proper_prefix() {
    for capture in &CAPTURES {
        let full = capture.wire.len();
        for end in 0..full {
            match peek_client_hello(&capture.wire[..end]) {
                Ok(Peek::NeedMore { at_least }) => assert!(
                    at_least > end && at_least <= full,
                    "{}: at_least {at_least} for {end} of {full} bytes",
                    capture.name
                ),
                other => panic!("{}: prefix of {end} bytes gave {other:?}", capture.name),
            }
        }
        let settled = settle_over_prefixes(capture.wire);
        assert_eq!(settled, Some(Ok(Peek::Done(read_done(capture.wire)))));
    }
}

#[test]
fn client_hello_bytes_after_the_hello_are_not_read() {
    for capture in &CAPTURES {
        let mut followed = capture.wire.to_vec();
        // A ChangeCipherSpec record, then garbage: neither may change the answer.
        followed.extend([0x14, 0x03, 0x03, 0x00, 0x01, 0x01, 0xff, 0x00, 0xee]);
        let info = read_done(&followed);
        assert_eq!(Summary::of(&info), capture.expected(), "{}", capture.name);
        assert_eq!(info.record_len, capture.wire.len(), "{}", capture.name);
    }
}

/// The capture must really be fragmented, or the tests that rely on it prove nothing.
#[test]
fn client_hello_openssl_capture_spans_three_records_and_splits_alpn_names() {
    let wire = CAPTURES[2].wire;
    let first_len = usize::from(u16::from_be_bytes([wire[3], wire[4]]));
    let second_start = 5 + first_len;
    let second_len = usize::from(u16::from_be_bytes([
        wire[second_start + 3],
        wire[second_start + 4],
    ]));
    assert_eq!((first_len, second_len), (512, 512));
    assert_eq!(wire.len(), 5 + 512 + 5 + 512 + 5 + 207);
    // The first record ends inside the ALPN list: a name's bytes continue after a header.
    let first_payload = &wire[5..5 + first_len];
    let tail = String::from_utf8_lossy(&first_payload[first_len - 12..]);
    assert!(
        tail.contains("x-padding"),
        "first record ends with {tail:?}"
    );
}

#[test]
fn client_hello_captures_refragmented_into_tiny_records_read_the_same() {
    for capture in &CAPTURES {
        let message = defragment(capture.wire);
        for sizes in [&[1][..], &[2, 3], &[7, 1, 300], &[4]] {
            let wire = fragment(&message, sizes);
            let info = read_done(&wire);
            assert_eq!(
                Summary::of(&info),
                capture.expected(),
                "{} in {sizes:?}",
                capture.name
            );
            assert_eq!(info.record_len, wire.len());
        }
    }
}

#[test]
fn client_hello_chromium_capture_has_grease_ech_and_mlkem_key_share() {
    let message = defragment(CAPTURES[5].wire);
    let contains = |needle: &[u8]| message.windows(needle.len()).any(|window| window == needle);
    // X25519MLKEM768 (0x11ec) key share of 1216 bytes.
    assert!(contains(&[0x11, 0xec, 0x04, 0xc0]));
    let types = extension_types(&message);
    assert!(
        types.contains(&0xfe0d),
        "no encrypted_client_hello outer extension: {types:x?}"
    );
    let grease = types
        .iter()
        .filter(|&&ty| ty & 0x0f0f == 0x0a0a && ty >> 8 == ty & 0xff);
    assert_eq!(
        grease.count(),
        2,
        "Chromium sends two GREASE extensions: {types:x?}"
    );
    let info = read_done(CAPTURES[5].wire);
    assert_eq!(
        info.sni.map(|name| name.to_ascii_uppercase()).as_deref(),
        Some("CHROMIUM.ISTHMUS.TEST")
    );
}

/// The extension types of a ClientHello message, walked independently of the reader.
fn extension_types(message: &[u8]) -> Vec<u16> {
    let mut at = 4 + 2 + 32;
    at += 1 + usize::from(message[at]);
    at += 2 + usize::from(u16::from_be_bytes([message[at], message[at + 1]]));
    at += 1 + usize::from(message[at]);
    at += 2;
    let mut types = Vec::new();
    while at < message.len() {
        types.push(u16::from_be_bytes([message[at], message[at + 1]]));
        at += 4 + usize::from(u16::from_be_bytes([message[at + 2], message[at + 3]]));
    }
    types
}
