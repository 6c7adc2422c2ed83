//! SNI host patterns of PASSTHROUGH servers and `tls` routes: exact names, `*.suffix`
//! wildcards and `*`, ranked so the most specific pattern wins.

use std::cmp::Ordering;

/// One host pattern, stored lowercase: DNS names compare case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `*`, or an empty host list: every name.
    Any,
    /// `*.example.com`, kept as `.example.com`: any name ending with it, with at least one
    /// label in front (Istio's and Envoy's wildcard never matches the bare suffix).
    Suffix(String),
    Exact(String),
}

/// How closely a pattern matched; greater is more specific.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Specificity {
    Any,
    /// Longer suffixes are more specific: `*.a.example.com` beats `*.example.com`.
    Suffix(usize),
    Exact,
}

impl HostPattern {
    pub fn parse(pattern: &str) -> Self {
        let pattern = pattern.to_ascii_lowercase();
        if pattern.is_empty() || pattern == "*" {
            HostPattern::Any
        } else if let Some(suffix) = pattern.strip_prefix('*') {
            HostPattern::Suffix(suffix.to_owned())
        } else {
            HostPattern::Exact(pattern)
        }
    }

    /// `name` must already be lowercase.
    pub fn matches(&self, name: &str) -> Option<Specificity> {
        match self {
            HostPattern::Any => Some(Specificity::Any),
            HostPattern::Suffix(suffix) => (name.len() > suffix.len() && name.ends_with(suffix))
                .then_some(Specificity::Suffix(suffix.len())),
            HostPattern::Exact(exact) => (exact == name).then_some(Specificity::Exact),
        }
    }
}

/// A set of patterns (a server's `hosts`, a route's `sniHosts`): the best match among them.
/// An empty set matches everything, least specifically.
pub fn best_match(patterns: &[HostPattern], name: &str) -> Option<Specificity> {
    if patterns.is_empty() {
        return Some(Specificity::Any);
    }
    patterns
        .iter()
        .filter_map(|pattern| pattern.matches(name))
        .max()
}

/// Index of the most specific candidate; ties go to the earliest, so configuration order
/// decides between equally specific routes.
pub fn most_specific<I>(candidates: I) -> Option<usize>
where
    I: IntoIterator<Item = Option<Specificity>>,
{
    let mut best: Option<(usize, Specificity)> = None;
    for (index, specificity) in candidates.into_iter().enumerate() {
        let Some(specificity) = specificity else {
            continue;
        };
        let better = match best {
            None => true,
            Some((_, current)) => specificity.cmp(&current) == Ordering::Greater,
        };
        if better {
            best = Some((index, specificity));
        }
    }
    best.map(|(index, _)| index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(list: &[&str]) -> Vec<HostPattern> {
        list.iter().map(|p| HostPattern::parse(p)).collect()
    }

    #[test]
    fn wildcard_needs_a_label_in_front() {
        let wildcard = HostPattern::parse("*.example.com");
        assert_eq!(
            wildcard.matches("a.example.com"),
            Some(Specificity::Suffix(12))
        );
        assert_eq!(wildcard.matches("example.com"), None);
        assert_eq!(wildcard.matches("a.example.org"), None);
    }

    #[test]
    fn patterns_are_case_insensitive() {
        assert_eq!(
            HostPattern::parse("Nginx.Example.COM").matches("nginx.example.com"),
            Some(Specificity::Exact)
        );
    }

    #[test]
    fn most_specific_wins_then_order() {
        let routes = [
            patterns(&["*.com"]),
            patterns(&["*.example.com"]),
            patterns(&["a.example.com"]),
            patterns(&["*.example.com"]),
            patterns(&[]),
        ];
        let pick = |name: &str| most_specific(routes.iter().map(|r| best_match(r, name)));
        assert_eq!(pick("a.example.com"), Some(2));
        assert_eq!(pick("b.example.com"), Some(1));
        assert_eq!(pick("b.other.com"), Some(0));
        assert_eq!(pick("b.other.org"), Some(4));
    }

    #[test]
    fn no_candidate_matches() {
        let routes = [patterns(&["a.example.com"]), patterns(&["*.example.org"])];
        assert_eq!(
            most_specific(routes.iter().map(|r| best_match(r, "z.example.net"))),
            None
        );
    }
}
