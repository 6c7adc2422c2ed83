//! Feeds every prefix of the input to the ClientHello reader, as a connection delivering
//! one byte per read would, and checks that it never panics, that `NeedMore` always asks
//! for more than it has, and that once a prefix gets a final answer every longer one gets
//! the same answer.
#![no_main]

// The reader is compiled in by path rather than by depending on `gateway`: it is pure and
// needs only thiserror, while the gateway crate pulls tokio, rustls, quinn, tonic and a
// protobuf build script into every fuzz build.
#[path = "../../src/client_hello/mod.rs"]
#[allow(dead_code, unused_imports)]
mod client_hello;

use client_hello::{MAX_CLIENT_HELLO_BYTES, Peek, peek_client_hello};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut settled = None;
    for end in 0..=data.len() {
        let outcome = peek_client_hello(&data[..end]);
        if let Ok(Peek::NeedMore { at_least }) = outcome {
            assert!(settled.is_none(), "NeedMore after a final answer at {end}");
            assert!(at_least > end && at_least <= MAX_CLIENT_HELLO_BYTES);
            continue;
        }
        if let Ok(Peek::Done(info)) = &outcome {
            assert!(info.record_len <= end);
            if let Some(sni) = &info.sni {
                assert!(!sni.is_empty() && sni.is_ascii());
            }
            for protocol in info.alpn.iter() {
                assert!(!protocol.is_empty());
            }
            let _ = client_hello::has_istio_alpn(info);
        }
        match &settled {
            None => settled = Some(outcome),
            Some(first) => assert_eq!(first, &outcome, "answer changed at prefix {end}"),
        }
    }
});
