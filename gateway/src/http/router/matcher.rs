//! Request matching of one `HttpMatch`: every condition it sets must hold.

use http::HeaderMap;
use multicluster::proto::{self, string_match::Kind};
use regex::Regex;

use super::RouterError;

/// One StringMatch, compiled. Regexes are anchored because Envoy's `safe_regex` (which Istio
/// emits) must match the whole value, not a substring.
#[derive(Debug, Clone)]
pub enum StringMatcher {
    Exact(String),
    Prefix(String),
    Regex(Regex),
    /// `{}`: the value only has to be present (headers and query parameters).
    Present,
}

impl StringMatcher {
    pub fn compile(
        table: &str,
        matcher: &proto::StringMatch,
        ignore_case: bool,
    ) -> Result<Self, RouterError> {
        Ok(match &matcher.kind {
            None => StringMatcher::Present,
            Some(Kind::Exact(exact)) if ignore_case => {
                StringMatcher::Exact(exact.to_ascii_lowercase())
            }
            Some(Kind::Exact(exact)) => StringMatcher::Exact(exact.clone()),
            Some(Kind::Prefix(prefix)) if ignore_case => {
                StringMatcher::Prefix(prefix.to_ascii_lowercase())
            }
            Some(Kind::Prefix(prefix)) => StringMatcher::Prefix(prefix.clone()),
            Some(Kind::Regex(regex)) => StringMatcher::Regex(anchored(table, regex)?),
        })
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringMatcher::Exact(exact) => value == exact,
            StringMatcher::Prefix(prefix) => value.starts_with(prefix.as_str()),
            StringMatcher::Regex(regex) => regex.is_match(value),
            StringMatcher::Present => true,
        }
    }

    /// Like [`StringMatcher::matches`] with ASCII case folded on both sides; the pattern was
    /// lowercased at compile time, so only the value is folded, and without allocating.
    fn matches_ignoring_case(&self, value: &str) -> bool {
        match self {
            StringMatcher::Exact(exact) => value.eq_ignore_ascii_case(exact),
            StringMatcher::Prefix(prefix) => value
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix)),
            StringMatcher::Regex(regex) => regex.is_match(value),
            StringMatcher::Present => true,
        }
    }
}

pub(super) fn anchored(table: &str, regex: &str) -> Result<Regex, RouterError> {
    Regex::new(&format!("^(?:{regex})$")).map_err(|error| RouterError::Regex {
        table: table.to_owned(),
        regex: regex.to_owned(),
        reason: error.to_string(),
    })
}

/// What a request offers to the matchers; borrowed from the request, built once per request.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'r> {
    pub method: &'r str,
    /// `http` or `https`, as the client reached the gateway.
    pub scheme: &'r str,
    /// Host or :authority as sent, port included.
    pub authority: &'r str,
    /// The path without the query.
    pub path: &'r str,
    pub query: Option<&'r str>,
    /// The gateway port the request arrived on (the configured one).
    pub port: u16,
    pub headers: &'r HeaderMap,
}

#[derive(Debug, Clone)]
pub struct RequestMatch {
    pub name: String,
    pub uri: Option<StringMatcher>,
    pub ignore_uri_case: bool,
    pub scheme: Option<StringMatcher>,
    pub method: Option<StringMatcher>,
    pub authority: Option<StringMatcher>,
    /// Names lowercase.
    pub headers: Vec<(http::HeaderName, StringMatcher)>,
    pub query_params: Vec<(String, StringMatcher)>,
    pub without_headers: Vec<http::HeaderName>,
    pub port: Option<u16>,
}

impl RequestMatch {
    pub fn compile(table: &str, matcher: &proto::HttpMatch) -> Result<Self, RouterError> {
        let compile = |m: &Option<proto::StringMatch>, ignore_case| {
            m.as_ref()
                .map(|m| StringMatcher::compile(table, m, ignore_case))
                .transpose()
        };
        let header_name = |name: &str| {
            http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| {
                RouterError::HeaderName {
                    table: table.to_owned(),
                    name: name.to_owned(),
                }
            })
        };
        let mut headers = Vec::with_capacity(matcher.headers.len());
        for (name, value) in &matcher.headers {
            headers.push((
                header_name(name)?,
                StringMatcher::compile(table, value, false)?,
            ));
        }
        let mut query_params = Vec::with_capacity(matcher.query_params.len());
        for (name, value) in &matcher.query_params {
            query_params.push((name.clone(), StringMatcher::compile(table, value, false)?));
        }
        Ok(RequestMatch {
            name: matcher.name.clone(),
            uri: compile(&matcher.uri, matcher.ignore_uri_case)?,
            ignore_uri_case: matcher.ignore_uri_case,
            scheme: compile(&matcher.scheme, false)?,
            method: compile(&matcher.method, false)?,
            authority: compile(&matcher.authority, false)?,
            headers,
            query_params,
            without_headers: matcher
                .without_headers
                .iter()
                .map(|name| header_name(name))
                .collect::<Result<_, _>>()?,
            port: u16::try_from(matcher.port).ok().filter(|port| *port != 0),
        })
    }

    pub fn matches(&self, request: &RequestView<'_>) -> bool {
        if let Some(port) = self.port
            && port != request.port
        {
            return false;
        }
        if let Some(uri) = &self.uri {
            let matched = if self.ignore_uri_case {
                uri.matches_ignoring_case(request.path)
            } else {
                uri.matches(request.path)
            };
            if !matched {
                return false;
            }
        }
        let simple = [
            (&self.scheme, request.scheme),
            (&self.method, request.method),
            (&self.authority, request.authority),
        ];
        if simple
            .iter()
            .any(|(matcher, value)| matcher.as_ref().is_some_and(|m| !m.matches(value)))
        {
            return false;
        }
        for (name, matcher) in &self.headers {
            // Several values of one header are matched as Envoy does: joined by commas.
            let mut values = request.headers.get_all(name).iter();
            let Some(first) = values.next() else {
                return false;
            };
            let Ok(first) = first.to_str() else {
                return false;
            };
            let matched = match values.next() {
                None => matcher.matches(first),
                Some(_) => {
                    let joined = request
                        .headers
                        .get_all(name)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .collect::<Vec<_>>()
                        .join(",");
                    matcher.matches(&joined)
                }
            };
            if !matched {
                return false;
            }
        }
        if self
            .without_headers
            .iter()
            .any(|name| request.headers.contains_key(name))
        {
            return false;
        }
        for (name, matcher) in &self.query_params {
            match query_value(request.query, name) {
                Some(value) if matcher.matches(value) => {}
                _ => return false,
            }
        }
        true
    }

    /// The part of the path a prefix rewrite replaces: the matched prefix, the whole path for
    /// an exact match, and `/` otherwise (Envoy's default route prefix).
    pub fn rewrite_prefix_len(&self, path: &str) -> usize {
        match &self.uri {
            Some(StringMatcher::Prefix(prefix)) => prefix.len(),
            Some(StringMatcher::Exact(_)) => path.len(),
            _ => usize::from(path.starts_with('/')),
        }
    }
}

/// The first value of `name` in a raw query string; no percent-decoding, as Envoy's
/// query parameter matcher compares the raw value.
pub fn query_value<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}
