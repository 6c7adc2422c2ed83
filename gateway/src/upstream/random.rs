//! Random numbers for load balancing, fault injection and request ids: fastrand's
//! thread-local generator (seeded from the OS once per thread). Balancing only needs
//! spread, not secrecy, and this is on every request's path.

pub fn random_u64() -> u64 {
    fastrand::u64(..)
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
