//! Who is connected, and where each gateway stands: the data behind `/debug/gateways`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use multicluster::proto::GatewayIdentity;
use prometheus_client::metrics::gauge::Gauge;
use serde::{Serialize, Serializer};

/// One connected gateway stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayStatus {
    /// Distinguishes two streams from gateways that announce the same identity (a rollout).
    pub connection: u64,
    pub name: String,
    pub namespace: String,
    pub cluster: String,
    pub network: String,
    #[serde(
        rename = "connected_since_unix_seconds",
        serialize_with = "unix_seconds"
    )]
    pub connected_since: SystemTime,
    pub last_sent_version: Option<String>,
    pub last_acked_version: Option<String>,
    pub last_nack: Option<NackRecord>,
    pub nacks: u64,
}

/// The latest version a gateway refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NackRecord {
    pub version: String,
    pub problems: Vec<String>,
}

/// Shared, cheaply cloned table of connected gateways.
#[derive(Debug, Clone, Default)]
pub struct GatewayTable {
    inner: Arc<Mutex<Table>>,
    /// Kept here, not in the session, so the gauge can never drift from the table.
    connected_gauge: Gauge,
}

#[derive(Debug, Default)]
struct Table {
    next_connection: u64,
    connected: BTreeMap<u64, GatewayStatus>,
    /// Outlives connections so a gateway that reconnects keeps seeing versions go up.
    versions: HashMap<GatewayKey, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GatewayKey {
    cluster: String,
    namespace: String,
    name: String,
}

impl GatewayKey {
    fn of(identity: &GatewayIdentity) -> Self {
        GatewayKey {
            cluster: identity.cluster.clone(),
            namespace: identity.namespace.clone(),
            name: identity.name.clone(),
        }
    }
}

impl GatewayTable {
    /// Every connected gateway, in connection order.
    pub fn snapshot(&self) -> Vec<GatewayStatus> {
        self.lock().connected.values().cloned().collect()
    }

    /// The connected streams of the gateway called `name` (usually one).
    pub fn find(&self, name: &str) -> Vec<GatewayStatus> {
        self.lock()
            .connected
            .values()
            .filter(|status| status.name == name)
            .cloned()
            .collect()
    }

    pub fn connected_count(&self) -> usize {
        self.lock().connected.len()
    }

    /// A gauge that follows the number of connected streams, for registration.
    pub fn connected_gauge(&self) -> Gauge {
        self.connected_gauge.clone()
    }

    /// Records a new stream; the entry disappears when the returned handle is dropped.
    pub(crate) fn connect(&self, identity: &GatewayIdentity) -> Connection {
        let mut table = self.lock();
        table.next_connection += 1;
        let id = table.next_connection;
        table.connected.insert(
            id,
            GatewayStatus {
                connection: id,
                name: identity.name.clone(),
                namespace: identity.namespace.clone(),
                cluster: identity.cluster.clone(),
                network: identity.network.clone(),
                connected_since: SystemTime::now(),
                last_sent_version: None,
                last_acked_version: None,
                last_nack: None,
                nacks: 0,
            },
        );
        self.connected_gauge.inc();
        Connection {
            table: self.clone(),
            id,
            key: GatewayKey::of(identity),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // Every update is a plain field assignment; a panic elsewhere cannot leave the table
        // half-written, so a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, id: u64, change: impl FnOnce(&mut GatewayStatus)) {
        if let Some(status) = self.lock().connected.get_mut(&id) {
            change(status);
        }
    }
}

/// One stream's entry in the table; removes itself when dropped.
#[derive(Debug)]
pub(crate) struct Connection {
    table: GatewayTable,
    id: u64,
    key: GatewayKey,
}

impl Connection {
    /// The next version for this gateway: decimal, strictly increasing per gateway identity.
    pub(crate) fn next_version(&self) -> String {
        let mut table = self.table.lock();
        let counter = table.versions.entry(self.key.clone()).or_insert(0);
        *counter += 1;
        counter.to_string()
    }

    pub(crate) fn sent(&self, version: &str) {
        self.table.update(self.id, |status| {
            status.last_sent_version = Some(version.to_owned());
        });
    }

    pub(crate) fn acked(&self, version: &str) {
        self.table.update(self.id, |status| {
            status.last_acked_version = Some(version.to_owned());
        });
    }

    pub(crate) fn nacked(&self, version: &str, problems: &[String]) {
        self.table.update(self.id, |status| {
            status.nacks += 1;
            status.last_nack = Some(NackRecord {
                version: version.to_owned(),
                problems: problems.to_vec(),
            });
        });
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.table.lock().connected.remove(&self.id).is_some() {
            self.table.connected_gauge.dec();
        }
    }
}

fn unix_seconds<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    // A clock before 1970 is a broken clock; report 0 rather than fail the whole listing.
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0);
    serializer.serialize_u64(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(name: &str) -> GatewayIdentity {
        GatewayIdentity {
            name: name.into(),
            namespace: "istio-system".into(),
            cluster: "cluster-1".into(),
            network: "network-1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn connection_appears_and_disappears() {
        let table = GatewayTable::default();
        let connection = table.connect(&identity("eastwest"));
        assert_eq!(table.connected_count(), 1);
        assert_eq!(table.connected_gauge().get(), 1);
        assert_eq!(table.find("eastwest")[0].connection, connection.id);
        drop(connection);
        assert_eq!(table.connected_count(), 0);
        assert_eq!(table.connected_gauge().get(), 0);
    }

    #[test]
    fn versions_keep_increasing_across_reconnects() {
        let table = GatewayTable::default();
        let first = table.connect(&identity("eastwest"));
        assert_eq!(first.next_version(), "1");
        assert_eq!(first.next_version(), "2");
        drop(first);
        let second = table.connect(&identity("eastwest"));
        assert_eq!(second.next_version(), "3");
        let other = table.connect(&identity("ingress"));
        assert_eq!(other.next_version(), "1");
    }

    #[test]
    fn sent_acked_and_nacked_are_recorded() {
        let table = GatewayTable::default();
        let connection = table.connect(&identity("eastwest"));
        connection.sent("1");
        connection.acked("1");
        connection.sent("2");
        connection.nacked("2", &["clusters[x]: bad".to_owned()]);
        let status = &table.find("eastwest")[0];
        assert_eq!(status.last_sent_version.as_deref(), Some("2"));
        assert_eq!(status.last_acked_version.as_deref(), Some("1"));
        assert_eq!(status.nacks, 1);
        assert_eq!(
            status.last_nack,
            Some(NackRecord {
                version: "2".into(),
                problems: vec!["clusters[x]: bad".into()],
            })
        );
    }

    #[test]
    fn status_serializes_with_unix_seconds() {
        let table = GatewayTable::default();
        let _connection = table.connect(&identity("eastwest"));
        let json = serde_json::to_value(table.snapshot()).expect("serializable");
        let since = json[0]["connected_since_unix_seconds"]
            .as_u64()
            .expect("a number");
        assert!(since > 1_600_000_000, "{since}");
        assert_eq!(json[0]["name"], "eastwest");
    }
}
