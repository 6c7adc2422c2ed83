//! Random numbers for load balancing without another dependency.
//!
//! `RandomState` is seeded from the OS once per thread and each new one advances its keys, so
//! hashing nothing through a fresh one yields a well-mixed 64-bit value. Load balancing only
//! needs spread, not secrecy.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

pub fn random_u64() -> u64 {
    RandomState::new().build_hasher().finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_differ_and_spread() {
        let values: Vec<u64> = (0..1000).map(|_| random_u64()).collect();
        let distinct: std::collections::HashSet<_> = values.iter().collect();
        assert!(distinct.len() > 990);
        let low_half = values.iter().filter(|v| **v % 2 == 0).count();
        assert!((350..650).contains(&low_half), "{low_half}");
    }
}
