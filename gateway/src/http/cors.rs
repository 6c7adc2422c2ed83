//! CORS per a route's `corsPolicy`: preflights answered by the gateway, and the
//! `access-control-*` headers on actual responses whose origin the policy allows.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use super::body::{HttpBody, empty};
use super::router::Cors;

/// The preflight answer, when this is a preflight from an allowed origin. A preflight from
/// an origin the policy does not allow goes on to the upstream, as Envoy's filter does.
pub fn preflight(
    policy: &Cors,
    method: &Method,
    headers: &HeaderMap,
) -> Option<Response<HttpBody>> {
    if method != Method::OPTIONS || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        return None;
    }
    let origin = headers.get(header::ORIGIN)?;
    if !policy.allows_origin(origin.to_str().ok()?) {
        return None;
    }
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::OK;
    let out = response.headers_mut();
    out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    if let Some(methods) = &policy.allow_methods {
        out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, methods.clone());
    }
    if let Some(allowed) = &policy.allow_headers {
        out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allowed.clone());
    }
    if let Some(max_age) = &policy.max_age {
        out.insert(header::ACCESS_CONTROL_MAX_AGE, max_age.clone());
    }
    if policy.allow_credentials {
        out.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    Some(response)
}

/// Decorates an actual (non-preflight) response for an allowed origin.
pub fn decorate(policy: &Cors, origin: Option<&HeaderValue>, response: &mut HeaderMap) {
    let Some(origin) = origin else {
        return;
    };
    if !origin.to_str().is_ok_and(|o| policy.allows_origin(o)) {
        return;
    }
    response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    if let Some(expose) = &policy.expose_headers {
        response.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
    }
    if policy.allow_credentials {
        response.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::router::StringMatcher;

    fn policy() -> Cors {
        Cors {
            allow_origins: vec![StringMatcher::Regex(
                regex::Regex::new("^(?:https://.*\\.example\\.com)$").unwrap(),
            )],
            allow_methods: Some("POST,GET".parse().unwrap()),
            allow_headers: Some("grpc-timeout,content-type".parse().unwrap()),
            expose_headers: Some("grpc-status,grpc-message".parse().unwrap()),
            max_age: Some(HeaderValue::from(86400u32)),
            allow_credentials: true,
        }
    }

    fn preflight_headers(origin: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ORIGIN, origin.parse().unwrap());
        headers.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            "POST".parse().unwrap(),
        );
        headers
    }

    #[test]
    fn preflight_from_an_allowed_origin_is_answered() {
        let response = preflight(
            &policy(),
            &Method::OPTIONS,
            &preflight_headers("https://app.example.com"),
        )
        .unwrap();
        let h = response.headers();
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_METHODS], "POST,GET");
        assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "86400");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    }

    #[test]
    fn other_origins_and_non_preflights_pass_through() {
        assert!(
            preflight(
                &policy(),
                &Method::OPTIONS,
                &preflight_headers("https://evil.org")
            )
            .is_none()
        );
        assert!(
            preflight(
                &policy(),
                &Method::GET,
                &preflight_headers("https://app.example.com")
            )
            .is_none()
        );
        let mut response = HeaderMap::new();
        decorate(
            &policy(),
            Some(&"https://evil.org".parse().unwrap()),
            &mut response,
        );
        assert!(response.is_empty());
        decorate(
            &policy(),
            Some(&"https://a.example.com".parse().unwrap()),
            &mut response,
        );
        assert_eq!(
            response[header::ACCESS_CONTROL_EXPOSE_HEADERS],
            "grpc-status,grpc-message"
        );
    }
}
