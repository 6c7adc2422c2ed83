//! Serializers that write the contract's enum fields by name (prost stores them as `i32`).
//! An unknown number is written as a number, so a dump never hides what was received.

use serde::Serializer;

use crate::proto::{Health, LoadBalancer, Protocol, TlsMode, TlsVersion};

macro_rules! by_name {
    ($name:ident, $enum:ty) => {
        pub fn $name<S: Serializer>(value: &i32, serializer: S) -> Result<S::Ok, S::Error> {
            match <$enum>::try_from(*value) {
                Ok(known) => serializer.serialize_str(known.as_str_name()),
                Err(_) => serializer.serialize_i32(*value),
            }
        }
    };
}

by_name!(protocol, Protocol);
by_name!(tls_mode, TlsMode);
by_name!(tls_version, TlsVersion);
by_name!(load_balancer, LoadBalancer);
by_name!(health, Health);
