//! Tests of the ClientHello reader: captured hellos of real clients, hand-built malformed
//! ones, and properties over arbitrary and generated input.

mod builder;
mod captured;
mod malformed;
mod properties;

use super::{ClientHelloError, ClientHelloInfo, MAX_CLIENT_HELLO_BYTES, Peek, peek_client_hello};

/// What routing depends on, owned, so hellos read from different buffers can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    sni: Option<String>,
    alpn: Vec<Vec<u8>>,
    legacy_version: u16,
}

impl Summary {
    fn of(info: &ClientHelloInfo<'_>) -> Self {
        Self {
            sni: info.sni.as_ref().map(|name| name.as_str().to_owned()),
            alpn: info
                .alpn
                .iter()
                .map(|name| name.as_bytes().to_vec())
                .collect(),
            legacy_version: info.legacy_version,
        }
    }
}

/// Reads a buffer expected to hold one complete, valid hello.
fn read_done(buf: &[u8]) -> ClientHelloInfo<'_> {
    match peek_client_hello(buf) {
        Ok(Peek::Done(info)) => info,
        other => panic!("expected a complete ClientHello, got {other:?}"),
    }
}

fn read_err(buf: &[u8]) -> ClientHelloError {
    match peek_client_hello(buf) {
        Err(error) => error,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Feeds every prefix of `data`, as a peer sending one byte per read would, and checks the
/// contract: no panic, `NeedMore` asks for more than it has and no more than the cap, and
/// the first final answer is the answer for every longer prefix. Returns that answer.
fn settle_over_prefixes(data: &[u8]) -> Option<Result<Peek<'_>, ClientHelloError>> {
    let mut settled: Option<Result<Peek<'_>, ClientHelloError>> = None;
    for end in 0..=data.len() {
        let outcome = peek_client_hello(&data[..end]);
        if let Ok(Peek::NeedMore { at_least }) = outcome {
            assert!(
                settled.is_none(),
                "NeedMore at prefix {end} after {settled:?}"
            );
            assert!(
                at_least > end,
                "NeedMore {{ at_least: {at_least} }} with {end} bytes"
            );
            assert!(
                at_least <= MAX_CLIENT_HELLO_BYTES,
                "at_least {at_least} over the cap"
            );
            continue;
        }
        if let Ok(Peek::Done(info)) = &outcome {
            assert!(info.record_len <= end);
        }
        match &settled {
            None => settled = Some(outcome),
            Some(first) => assert_eq!(first, &outcome, "answer changed at prefix {end}"),
        }
    }
    settled
}
