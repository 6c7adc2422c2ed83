//! The current configuration, swapped whole.

use std::sync::{Arc, RwLock};

use super::RuntimeConfig;

/// Readers clone the `Arc` under a read lock held for a pointer copy; writers replace it.
/// Connections keep the `Arc` they took, so a swap never reaches an open connection.
///
/// A plain `RwLock` rather than `arc-swap`: it is taken once per accepted connection, never
/// per byte, and held for a reference-count increment, so it never shows up next to the
/// connection's own syscalls; one dependency fewer is worth more.
pub struct ConfigCell(RwLock<Arc<RuntimeConfig>>);

impl ConfigCell {
    pub fn new(config: RuntimeConfig) -> Self {
        ConfigCell(RwLock::new(Arc::new(config)))
    }

    pub fn load(&self) -> Arc<RuntimeConfig> {
        // Only `store` writes, with a single assignment that cannot panic halfway: a
        // poisoned lock still holds a whole value.
        Arc::clone(&self.0.read().unwrap_or_else(|poison| poison.into_inner()))
    }

    pub fn store(&self, config: Arc<RuntimeConfig>) {
        *self.0.write().unwrap_or_else(|poison| poison.into_inner()) = config;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_keep_the_config_they_took() {
        let cell = ConfigCell::new(RuntimeConfig::empty());
        let before = cell.load();
        let mut next = RuntimeConfig::empty();
        next.version = "2".into();
        cell.store(Arc::new(next));
        assert_eq!(before.version, "");
        assert_eq!(cell.load().version, "2");
    }
}
