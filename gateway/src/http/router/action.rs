//! What a matched route does, compiled from `HttpRoute`: forward, redirect or answer, plus
//! header edits, CORS, fault injection, retries and mirroring.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use multicluster::proto::{self, http_route::Action as ProtoAction};

use super::RouterError;
use super::matcher::{StringMatcher, anchored};
use crate::config::WeightedDestinations;

#[derive(Debug, Clone)]
pub enum Action {
    Forward(Forward),
    Redirect(Redirect),
    Direct { status: StatusCode, body: Bytes },
}

#[derive(Debug, Clone)]
pub struct Forward {
    pub destinations: WeightedDestinations,
    pub rewrite_uri: Option<String>,
    pub rewrite_authority: Option<HeaderValue>,
    pub timeout: Option<Duration>,
    pub retries: Option<RetryPolicy>,
    pub mirror: Option<MirrorPolicy>,
}

/// Istio's `retryOn` conditions this gateway implements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryOn {
    pub server_error: bool,
    pub gateway_error: bool,
    pub connect_failure: bool,
    pub reset: bool,
    pub retriable_4xx: bool,
    pub refused_stream: bool,
}

impl RetryOn {
    /// Istio's default when `retryOn` is empty.
    pub const ISTIO_DEFAULT: RetryOn = RetryOn {
        server_error: false,
        gateway_error: true,
        connect_failure: true,
        reset: false,
        retriable_4xx: false,
        refused_stream: true,
    };

    /// Unknown conditions (gRPC status names, retriable-headers...) are skipped: they cannot
    /// make a request fail, only make fewer requests retry.
    pub fn parse(value: &str) -> RetryOn {
        if value.trim().is_empty() {
            return RetryOn::ISTIO_DEFAULT;
        }
        let mut on = RetryOn::default();
        for condition in value.split(',').map(str::trim) {
            match condition {
                "5xx" => on.server_error = true,
                "gateway-error" => on.gateway_error = true,
                "connect-failure" => on.connect_failure = true,
                "reset" => on.reset = true,
                "retriable-4xx" => on.retriable_4xx = true,
                "refused-stream" => on.refused_stream = true,
                _ => {}
            }
        }
        on
    }

    pub fn retries_status(&self, status: StatusCode) -> bool {
        let code = status.as_u16();
        (self.server_error && status.is_server_error())
            || (self.gateway_error && matches!(code, 502..=504))
            || (self.retriable_4xx && code == 409)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub per_try_timeout: Option<Duration>,
    pub on: RetryOn,
}

#[derive(Debug, Clone)]
pub struct MirrorPolicy {
    pub cluster: String,
    /// 0.0–100.0
    pub percentage: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Redirect {
    pub uri: Option<String>,
    pub authority: Option<String>,
    pub scheme: Option<String>,
    pub port: Option<u16>,
    pub status: StatusCode,
}

#[derive(Debug, Clone, Default)]
pub struct HeaderOps {
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub add: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

impl HeaderOps {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    /// Remove, then set, then add: the order Envoy applies them in.
    pub fn apply(&self, headers: &mut http::HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}

#[derive(Debug, Clone)]
pub struct Cors {
    pub allow_origins: Vec<StringMatcher>,
    pub allow_methods: Option<HeaderValue>,
    pub allow_headers: Option<HeaderValue>,
    pub expose_headers: Option<HeaderValue>,
    pub max_age: Option<HeaderValue>,
    pub allow_credentials: bool,
}

impl Cors {
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allow_origins.iter().any(|m| m.matches(origin))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fault {
    pub delay: Option<(Duration, f64)>,
    pub abort: Option<(StatusCode, f64)>,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub matches: Vec<super::RequestMatch>,
    pub action: Action,
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
    pub cors: Option<Cors>,
    pub fault: Option<Fault>,
}

impl Route {
    pub fn compile(table: &str, route: &proto::HttpRoute) -> Result<Self, RouterError> {
        let matches = route
            .matches
            .iter()
            .map(|m| super::RequestMatch::compile(table, m))
            .collect::<Result<Vec<_>, _>>()?;
        let action = match &route.action {
            Some(ProtoAction::Route(action)) => Action::Forward(forward(table, action)?),
            Some(ProtoAction::Redirect(redirect)) => Action::Redirect(Redirect {
                uri: non_empty(&redirect.uri),
                authority: non_empty(&redirect.authority),
                scheme: non_empty(&redirect.scheme),
                port: u16::try_from(redirect.port).ok().filter(|p| *p != 0),
                status: status(table, redirect.status, StatusCode::MOVED_PERMANENTLY)?,
            }),
            Some(ProtoAction::DirectResponse(direct)) => Action::Direct {
                status: status(table, direct.status, StatusCode::OK)?,
                body: Bytes::from(direct.body.clone()),
            },
            None => {
                return Err(RouterError::NoAction {
                    table: table.to_owned(),
                    route: route.name.clone(),
                });
            }
        };
        Ok(Route {
            name: route.name.clone(),
            matches,
            action,
            request_headers: header_ops(table, route.request_headers.as_ref())?,
            response_headers: header_ops(table, route.response_headers.as_ref())?,
            cors: route.cors.as_ref().map(|c| cors(table, c)).transpose()?,
            fault: route.fault.as_ref().map(|f| fault(table, f)).transpose()?,
        })
    }
}

fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

fn status(table: &str, code: u32, default: StatusCode) -> Result<StatusCode, RouterError> {
    if code == 0 {
        return Ok(default);
    }
    u16::try_from(code)
        .ok()
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or(RouterError::Status {
            table: table.to_owned(),
            status: code,
        })
}

fn millis(value: u32) -> Option<Duration> {
    (value > 0).then(|| Duration::from_millis(u64::from(value)))
}

fn forward(table: &str, action: &proto::RouteAction) -> Result<Forward, RouterError> {
    let rewrite = action.rewrite.as_ref();
    Ok(Forward {
        destinations: WeightedDestinations::from_proto(&action.destinations),
        rewrite_uri: rewrite.and_then(|r| non_empty(&r.uri)),
        rewrite_authority: rewrite
            .and_then(|r| non_empty(&r.authority))
            .map(|a| header_value(table, "rewrite.authority", &a))
            .transpose()?,
        timeout: millis(action.timeout_ms),
        retries: action
            .retries
            .as_ref()
            .filter(|r| r.attempts > 0)
            .map(|r| RetryPolicy {
                attempts: r.attempts,
                per_try_timeout: millis(r.per_try_timeout_ms),
                on: RetryOn::parse(&r.retry_on),
            }),
        mirror: action.mirror.as_ref().map(|m| MirrorPolicy {
            cluster: m.cluster.clone(),
            percentage: m.percentage.clamp(0.0, 100.0),
        }),
    })
}

fn header_value(table: &str, field: &str, value: &str) -> Result<HeaderValue, RouterError> {
    HeaderValue::from_str(value).map_err(|_| RouterError::HeaderValue {
        table: table.to_owned(),
        field: field.to_owned(),
        value: value.to_owned(),
    })
}

fn header_name(table: &str, name: &str) -> Result<HeaderName, RouterError> {
    HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| {
        RouterError::HeaderName {
            table: table.to_owned(),
            name: name.to_owned(),
        }
    })
}

fn header_ops(
    table: &str,
    ops: Option<&proto::HeaderOperations>,
) -> Result<HeaderOps, RouterError> {
    let Some(ops) = ops else {
        return Ok(HeaderOps::default());
    };
    let pairs = |map: &std::collections::BTreeMap<String, String>| {
        map.iter()
            .map(|(name, value)| Ok((header_name(table, name)?, header_value(table, name, value)?)))
            .collect::<Result<Vec<_>, RouterError>>()
    };
    Ok(HeaderOps {
        set: pairs(&ops.set)?,
        add: pairs(&ops.add)?,
        remove: ops
            .remove
            .iter()
            .map(|name| header_name(table, name))
            .collect::<Result<_, _>>()?,
    })
}

fn cors(table: &str, policy: &proto::CorsPolicy) -> Result<Cors, RouterError> {
    let list = |field: &str, values: &[String]| {
        (!values.is_empty())
            .then(|| header_value(table, field, &values.join(",")))
            .transpose()
    };
    Ok(Cors {
        allow_origins: policy
            .allow_origins
            .iter()
            .map(|m| match &m.kind {
                // Origins are compared whole; a regex must match the whole origin.
                Some(proto::string_match::Kind::Regex(regex)) => {
                    anchored(table, regex).map(StringMatcher::Regex)
                }
                _ => StringMatcher::compile(table, m, false),
            })
            .collect::<Result<_, _>>()?,
        allow_methods: list("corsPolicy.allowMethods", &policy.allow_methods)?,
        allow_headers: list("corsPolicy.allowHeaders", &policy.allow_headers)?,
        expose_headers: list("corsPolicy.exposeHeaders", &policy.expose_headers)?,
        max_age: (policy.max_age_seconds > 0).then(|| HeaderValue::from(policy.max_age_seconds)),
        allow_credentials: policy.allow_credentials,
    })
}

fn fault(table: &str, fault: &proto::Fault) -> Result<Fault, RouterError> {
    let delay = (fault.fixed_delay_ms > 0).then(|| {
        (
            Duration::from_millis(u64::from(fault.fixed_delay_ms)),
            fault.delay_percentage.clamp(0.0, 100.0),
        )
    });
    let abort = if fault.abort_http_status > 0 {
        Some((
            status(
                table,
                fault.abort_http_status,
                StatusCode::SERVICE_UNAVAILABLE,
            )?,
            fault.abort_percentage.clamp(0.0, 100.0),
        ))
    } else {
        None
    };
    Ok(Fault { delay, abort })
}
