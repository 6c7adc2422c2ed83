//! Endpoint choice, as pure functions over the candidates' weights and counters.

/// nginx's smooth weighted round robin: every pick adds each candidate's weight to its
/// `current`, takes the largest (first on ties) and subtracts the total from it. Over any
/// `sum(weights)` picks from a zeroed state, each candidate is chosen exactly `weight` times,
/// interleaved rather than in bursts (weights 1:3 give b, a, b, b, ...).
///
/// `current` and `weights` are parallel; returns the chosen index.
pub fn smooth_weighted_round_robin(current: &mut [i64], weights: &[u32]) -> Option<usize> {
    if current.is_empty() || current.len() != weights.len() {
        return None;
    }
    let mut total: i64 = 0;
    let mut best: Option<usize> = None;
    for index in 0..current.len() {
        let weight = i64::from(weights[index]);
        current[index] += weight;
        total += weight;
        if best.is_none_or(|b| current[index] > current[b]) {
            best = Some(index);
        }
    }
    let best = best?;
    current[best] -= total;
    Some(best)
}

/// Fewest active connections relative to weight: minimises `(active + 1) / weight`, compared
/// by cross-multiplication so no floating point is involved. Ties are broken starting from
/// `rotation`, so equal candidates share new connections instead of the first taking all.
///
/// `candidates` are `(weight, active)` pairs; weights must be at least 1.
pub fn least_request(candidates: &[(u32, u64)], rotation: usize) -> Option<usize> {
    let len = candidates.len();
    if len == 0 {
        return None;
    }
    let mut best: Option<(usize, u128, u128)> = None;
    for offset in 0..len {
        let index = (rotation + offset) % len;
        let (weight, active) = candidates[index];
        let load = u128::from(active) + 1;
        let weight = u128::from(weight.max(1));
        let better = match best {
            None => true,
            Some((_, best_load, best_weight)) => load * best_weight < best_load * weight,
        };
        if better {
            best = Some((index, load, weight));
        }
    }
    best.map(|(index, _, _)| index)
}

/// A weighted random choice for a uniformly random `roll`.
pub fn weighted_random(weights: &[u32], roll: u64) -> Option<usize> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if total == 0 {
        return None;
    }
    let mut point = roll % total;
    for (index, weight) in weights.iter().enumerate() {
        let weight = u64::from(*weight);
        if point < weight {
            return Some(index);
        }
        point -= weight;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_round_robin_is_exact_and_interleaved() {
        let weights = [1, 3];
        let mut current = [0, 0];
        let picks: Vec<usize> = (0..400)
            .map(|_| smooth_weighted_round_robin(&mut current, &weights).unwrap())
            .collect();
        assert_eq!(picks.iter().filter(|p| **p == 0).count(), 100);
        assert_eq!(&picks[..4], &[1, 0, 1, 1]);
        // Never more than three of the heavy one in a row.
        assert!(picks.windows(4).all(|w| w.contains(&0)));
    }

    #[test]
    fn smooth_round_robin_with_equal_weights_alternates() {
        let mut current = [0, 0, 0];
        let picks: Vec<usize> = (0..6)
            .map(|_| smooth_weighted_round_robin(&mut current, &[1, 1, 1]).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        assert_eq!(smooth_weighted_round_robin(&mut [], &[]), None);
    }

    #[test]
    fn least_request_honours_weights_and_rotates_ties() {
        // (1+1)/1 = 2 against (3+1)/3 = 1.33: the heavier endpoint takes more load.
        assert_eq!(least_request(&[(1, 1), (3, 3)], 0), Some(1));
        assert_eq!(least_request(&[(1, 0), (1, 5)], 1), Some(0));
        assert_eq!(least_request(&[(1, 2), (1, 2), (1, 2)], 2), Some(2));
        assert_eq!(least_request(&[(1, 2), (1, 2), (1, 2)], 4), Some(1));
        assert_eq!(least_request(&[], 0), None);
    }

    #[test]
    fn weighted_random_covers_each_range() {
        let weights = [1, 0, 3];
        let picks: Vec<usize> = (0..8)
            .map(|roll| weighted_random(&weights, roll).unwrap())
            .collect();
        assert_eq!(picks, [0, 2, 2, 2, 0, 2, 2, 2]);
        assert_eq!(weighted_random(&[0, 0], 5), None);
    }
}
