//! StringMatch, regex and header-name rules.

use std::sync::LazyLock;

use regex::Regex;

use crate::istio::common::StringMatch;

const REGEX_MAX_LENGTH: usize = 1024;

// Constant pattern, checked by the tests in this crate.
#[allow(clippy::expect_used)]
static HEADER_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("^[-_A-Za-z0-9]+$").expect("constant header pattern compiles"));

/// A regex as Envoy will run it (RE2 syntax; Rust's `regex` crate has the same guarantees).
pub(super) fn validate_regex(pattern: &str, place: &str) -> Result<(), String> {
    if pattern.len() > REGEX_MAX_LENGTH {
        return Err(format!(
            "{place:?}: regex is too large, max length allowed is 1024"
        ));
    }
    match Regex::new(pattern) {
        Ok(_) => Ok(()),
        Err(error) => {
            // The crate's message spans several lines (pattern, caret, reason): keep one line.
            let reason = error
                .to_string()
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            Err(format!(
                "{place:?}: {reason}; Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)"
            ))
        }
    }
}

fn single_form(matcher: &StringMatch, place: &str) -> Result<(), String> {
    if matcher.forms_set() > 1 {
        return Err(format!(
            "{place:?}: only one of exact, prefix or regex may be set"
        ));
    }
    Ok(())
}

/// Istio's validateStringMatch: non-empty prefix and regex, compiling regex.
pub(super) fn validate_string_match(matcher: &StringMatch, place: &str) -> Result<(), String> {
    single_form(matcher, place)?;
    if matcher.exact.is_none()
        && let Some(prefix) = &matcher.prefix
    {
        if prefix.is_empty() {
            return Err(format!(
                "{place:?}: prefix string match should not be empty"
            ));
        }
        return Ok(());
    }
    validate_string_match_regex(matcher, place)
}

/// Istio's validateStringMatchRegexp: only the regex form is checked (an empty URI prefix is
/// allowed and matches everything).
pub(super) fn validate_string_match_regex(
    matcher: &StringMatch,
    place: &str,
) -> Result<(), String> {
    single_form(matcher, place)?;
    if matcher.exact.is_some() || matcher.prefix.is_some() {
        return Ok(());
    }
    match &matcher.regex {
        None => Ok(()),
        Some(regex) if regex.is_empty() => {
            Err(format!("{place:?}: regex string match should not be empty"))
        }
        Some(regex) => validate_regex(regex, place),
    }
}

pub(super) fn validate_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".to_string());
    }
    if !HEADER_NAME.is_match(name) {
        return Err(format!("header name {name} is not a valid header name"));
    }
    Ok(())
}

/// Header names in matches may also be JWT claims (`@request.auth.claims.group`).
pub(super) fn validate_header_name_or_jwt_claim(name: &str) -> Result<(), String> {
    if is_jwt_claim_route(name) {
        return Ok(());
    }
    validate_header_name(name)
}

pub(super) fn is_jwt_claim_route(name: &str) -> bool {
    name.strip_prefix("@request.auth.claims")
        .is_some_and(|rest| {
            (rest.starts_with('.') && rest.len() > 1)
                || (rest.starts_with('[') && rest.ends_with(']') && rest.len() > 2)
        })
}

/// CORS header lists also accept `*`.
pub(super) fn validate_cors_header_name(name: &str) -> Result<(), String> {
    if name == "*" {
        return Ok(());
    }
    validate_header_name(name)
}

fn is_internal_header(name: &str) -> bool {
    name.starts_with(':') || name.eq_ignore_ascii_case("host")
}

pub(super) fn is_authority_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

/// Names in request `set`/`add`: the authority may be rewritten, other pseudo-headers not.
pub(super) fn validate_request_header_edit_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".to_string());
    }
    if is_internal_header(name) && !is_authority_header(name) {
        return Err(format!(
            "invalid header {name:?}: header cannot have \":\" prefix"
        ));
    }
    Ok(())
}

/// Names in request `remove` and every response edit.
pub(super) fn validate_header_edit_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".to_string());
    }
    if name.eq_ignore_ascii_case("host") {
        return Err(format!("invalid header {name:?}: cannot set Host header"));
    }
    if is_internal_header(name) {
        return Err(format!(
            "invalid header {name:?}: header cannot have \":\" prefix"
        ));
    }
    Ok(())
}

/// Values may not contain control characters other than tab.
pub(super) fn validate_header_value(value: &str) -> Result<(), String> {
    let invalid = value
        .chars()
        .any(|c| (c as u32) < 0x20 && c != '\t' || c as u32 == 0x7f);
    if invalid {
        return Err(format!("header value configuration {value} is invalid"));
    }
    Ok(())
}
