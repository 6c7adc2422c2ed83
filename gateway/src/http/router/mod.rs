//! VirtualService semantics as pure functions over a route table compiled at apply time:
//! choose the virtual host by Host/:authority, then the first route whose matches hold.
//!
//! Nothing here does IO or allocates per request beyond what a redirect's `location` needs,
//! so HTTP/1, HTTP/2 and HTTP/3 front ends all call the same [`RouteTable::decide`].

mod action;
mod matcher;
#[cfg(test)]
mod tests;

use multicluster::proto;
use rustc_hash::FxHashMap;
use thiserror::Error;

pub use action::{
    Action, Cors, Fault, Forward, HeaderOps, MirrorPolicy, Redirect, RetryOn, RetryPolicy, Route,
};
pub use matcher::{RequestMatch, RequestView, StringMatcher, query_value};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RouterError {
    #[error("route table {table}: regex {regex:?} does not compile: {reason}")]
    Regex {
        table: String,
        regex: String,
        reason: String,
    },
    #[error("route table {table}: {name:?} is not a valid HTTP header name")]
    HeaderName { table: String, name: String },
    #[error("route table {table}: {field} value {value:?} is not a valid HTTP header value")]
    HeaderValue {
        table: String,
        field: String,
        value: String,
    },
    #[error("route table {table}: status {status} is not an HTTP status code (100-999)")]
    Status { table: String, status: u32 },
    #[error(
        "route table {table}: route {route:?} has no action; give it a route, redirect or directResponse"
    )]
    NoAction { table: String, route: String },
}

#[derive(Debug, Clone)]
pub struct VirtualHost {
    pub name: String,
    pub routes: Vec<Route>,
}

/// One route table (`http.80`, `https.443.https.gw.ns`) ready for lookups: exact domains in a
/// map, `*.suffix` domains longest first, and the `*` host.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    pub name: String,
    pub hosts: Vec<VirtualHost>,
    /// Fx, not SipHash: the keys come from configuration, and a client's host only looks
    /// up, so it cannot crowd the table.
    exact: FxHashMap<String, usize>,
    /// (suffix including its leading dot, host index), longest suffix first.
    suffixes: Vec<(String, usize)>,
    any: Option<usize>,
    /// Some route matches on query parameters; otherwise the query is never parsed.
    pub uses_query: bool,
}

/// What the router decided for one request.
#[derive(Debug, Clone, Copy)]
pub enum Decision<'t> {
    /// No virtual host covers the request's host: 404 (Envoy's NR).
    NoVirtualHost,
    /// A virtual host, but none of its routes match: 404 (NR).
    NoRoute { host: &'t VirtualHost },
    Matched {
        host: &'t VirtualHost,
        route: &'t Route,
        /// The match that held, if the route has any; rewrites depend on it.
        matched: Option<&'t RequestMatch>,
    },
}

impl RouteTable {
    pub fn compile(table: &proto::RouteTable) -> Result<Self, Vec<RouterError>> {
        let mut errors = Vec::new();
        let mut compiled = RouteTable {
            name: table.name.clone(),
            ..RouteTable::default()
        };
        for (index, host) in table.virtual_hosts.iter().enumerate() {
            let mut routes = Vec::with_capacity(host.routes.len());
            for route in &host.routes {
                match Route::compile(&table.name, route) {
                    Ok(route) => routes.push(route),
                    Err(error) => errors.push(error),
                }
            }
            compiled.uses_query |= routes
                .iter()
                .any(|r| r.matches.iter().any(|m| !m.query_params.is_empty()));
            compiled.hosts.push(VirtualHost {
                name: host.name.clone(),
                routes,
            });
            for domain in &host.domains {
                // A domain listed by two hosts keeps the first: configuration order decides.
                let domain = strip_port(domain).to_ascii_lowercase();
                if domain == "*" {
                    compiled.any.get_or_insert(index);
                } else if let Some(suffix) = domain.strip_prefix('*') {
                    if !compiled.suffixes.iter().any(|(s, _)| s == suffix) {
                        compiled.suffixes.push((suffix.to_owned(), index));
                    }
                } else {
                    compiled.exact.entry(domain).or_insert(index);
                }
            }
        }
        compiled
            .suffixes
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        if errors.is_empty() {
            Ok(compiled)
        } else {
            Err(errors)
        }
    }

    /// The virtual host for `authority` (port stripped, any case): exact, then the longest
    /// `*.suffix` with at least one label in front, then `*`.
    pub fn virtual_host(&self, authority: &str) -> Option<&VirtualHost> {
        let host = strip_port(authority);
        let index = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.lookup(&host.to_ascii_lowercase())
        } else {
            self.lookup(host)
        };
        index.and_then(|index| self.hosts.get(index))
    }

    fn lookup(&self, host: &str) -> Option<usize> {
        if let Some(index) = self.exact.get(host) {
            return Some(*index);
        }
        self.suffixes
            .iter()
            .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
            .map(|(_, index)| *index)
            .or(self.any)
    }

    /// First route (in order) with a holding match wins; a route without matches takes all.
    pub fn decide(&self, request: &RequestView<'_>) -> Decision<'_> {
        let Some(host) = self.virtual_host(request.authority) else {
            return Decision::NoVirtualHost;
        };
        for route in &host.routes {
            if route.matches.is_empty() {
                return Decision::Matched {
                    host,
                    route,
                    matched: None,
                };
            }
            if let Some(matched) = route.matches.iter().find(|m| m.matches(request)) {
                return Decision::Matched {
                    host,
                    route,
                    matched: Some(matched),
                };
            }
        }
        Decision::NoRoute { host }
    }
}

/// `host:port` → `host`, leaving IPv6 literals (`[::1]:80` → `[::1]`) intact.
pub fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    // A byte search: `rsplit_once(':')` goes through the generic pattern searcher, several
    // times the cost for a host name of a few bytes.
    match authority.bytes().rposition(|b| b == b':') {
        Some(colon)
            if colon + 1 < authority.len()
                && authority.as_bytes()[colon + 1..]
                    .iter()
                    .all(u8::is_ascii_digit) =>
        {
            &authority[..colon]
        }
        _ => authority,
    }
}

/// The path (and query) sent upstream after `rewrite.uri`: the part of the path the match
/// consumed is replaced, the rest and the query are kept.
pub fn rewritten_path(
    rewrite: &str,
    matched: Option<&RequestMatch>,
    path: &str,
    query: Option<&str>,
) -> String {
    let consumed = matched.map_or(usize::from(path.starts_with('/')), |m| {
        m.rewrite_prefix_len(path)
    });
    let rest = path.get(consumed.min(path.len())..).unwrap_or("");
    let mut out =
        String::with_capacity(rewrite.len() + rest.len() + query.map_or(0, |q| q.len() + 1));
    out.push_str(rewrite);
    out.push_str(rest);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// The `location` of a redirect: parts the redirect names replace the request's, the query
/// is kept unless the new uri brings its own (Envoy's `path_redirect`).
pub fn redirect_location(
    redirect: &Redirect,
    scheme: &str,
    authority: &str,
    path: &str,
    query: Option<&str>,
) -> String {
    let scheme = redirect.scheme.as_deref().unwrap_or(scheme);
    let host = redirect
        .authority
        .as_deref()
        .map_or_else(|| strip_port(authority), strip_port);
    let original_port = authority
        .strip_prefix(strip_port(authority))
        .and_then(|rest| rest.strip_prefix(':'))
        .filter(|_| redirect.authority.is_none());
    let port = redirect
        .port
        .map(|p| p.to_string())
        .or_else(|| original_port.map(str::to_owned));
    // The scheme's default port is left out, as browsers and Envoy write URLs.
    let port = port.filter(|p| {
        !((scheme == "https" && p == "443") || (scheme == "http" && p == "80"))
            && (redirect.scheme.is_none() || redirect.port.is_some())
    });
    let mut location = format!("{scheme}://{host}");
    if let Some(port) = port {
        location.push(':');
        location.push_str(&port);
    }
    match redirect.uri.as_deref() {
        Some(uri) => {
            location.push_str(uri);
            if !uri.contains('?')
                && let Some(query) = query
            {
                location.push('?');
                location.push_str(query);
            }
        }
        None => {
            location.push_str(path);
            if let Some(query) = query {
                location.push('?');
                location.push_str(query);
            }
        }
    }
    location
}
