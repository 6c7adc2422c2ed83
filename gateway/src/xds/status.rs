//! Where the discovery client stands, for the admin endpoint, metrics and tests.

/// A snapshot of the discovery client's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStatus {
    /// A stream to discovery is open.
    pub connected: bool,
    /// The version the sink last accepted; what the gateway is serving.
    pub last_applied_version: Option<String>,
    /// The latest version refused, and why.
    pub last_nack: Option<RefusedVersion>,
    /// Why the last stream or connection attempt ended.
    pub last_error: Option<String>,
    /// Connection attempts since start, successful or not.
    pub connect_attempts: u64,
}

/// A configuration the gateway refused, as reported to discovery in the NACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedVersion {
    pub version: String,
    pub problems: Vec<String>,
}
