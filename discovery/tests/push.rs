//! The discovery push server over real loopback gRPC, driven by a minimal hand-written gateway
//! (this crate must not depend on the gateway crate; the real client is exercised end to end in
//! the root package's `tests/push_protocol.rs`).

#![allow(clippy::unwrap_used)] // test helpers: a panic is how they report a failure

mod push {
    mod support;

    mod answers;
    mod handshake;
    mod lifecycle;
    mod monitor;
    mod updates;
}
