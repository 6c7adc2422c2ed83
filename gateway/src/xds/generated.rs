//! The generated client side of the `MeshDiscovery` service.
//!
//! Generated code is not ours to lint.
#![allow(clippy::all, missing_docs, rust_2018_idioms)]

include!(concat!(env!("OUT_DIR"), "/isthmus.v1.rs"));
