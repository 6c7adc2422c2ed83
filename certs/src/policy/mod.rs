//! Gateway TLS options mapped onto what rustls can do: protocol versions, cipher suites,
//! and client-certificate allow-lists.

pub mod ciphers;
pub mod client_cert;
pub mod versions;
