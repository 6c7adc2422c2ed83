//! The generated protobuf types of the discovery ↔ gateway contract.
//!
//! Generated code is not ours to lint: prost output trips pedantic lints we keep elsewhere.
#![allow(clippy::all, missing_docs, rust_2018_idioms)]

include!(concat!(env!("OUT_DIR"), "/isthmus.v1.rs"));
