//! The generated client side of the `Certificates` service (compiled with `MeshDiscovery` in
//! build.rs, so this file holds both services' client code).
//!
//! Generated code is not ours to lint.
#![allow(clippy::all, missing_docs, rust_2018_idioms, dead_code)]

include!(concat!(env!("OUT_DIR"), "/isthmus.v1.rs"));
