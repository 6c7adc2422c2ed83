//! Trace context on the wire: W3C `traceparent` and Zipkin's B3 (single `b3` header and the
//! multi-header `X-B3-*` form), read from a request and written back for the upstream.
//!
//! Plain functions over header values, so the parsers can be tested on exact strings. They
//! are strict where the specifications are (lowercase hex, fixed lengths, no all-zero ids):
//! a malformed header is ignored and the request starts a new trace, as the W3C spec asks.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub static B3: HeaderName = HeaderName::from_static("b3");
pub static B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
pub static B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
pub static B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
pub static B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
pub static B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// How the caller's context arrived, so the upstream gets it back in the same form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    W3c,
    B3Single,
    B3Multi,
}

/// A caller's sampling decision; B3 lets a caller leave it to the next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    Sampled,
    NotSampled,
    Deferred,
}

/// The caller's span, as read from one of the formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub sampling: Sampling,
    pub format: Format,
    /// B3 allows 64-bit trace ids; they are written back at the width they came in.
    pub short_trace_id: bool,
}

impl Parent {
    /// The remote span context a child span is started under, given the decision for a
    /// deferred caller.
    pub fn span_context(&self, sample_deferred: bool) -> SpanContext {
        let sampled = match self.sampling {
            Sampling::Sampled => true,
            Sampling::NotSampled => false,
            Sampling::Deferred => sample_deferred,
        };
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanContext::new(self.trace_id, self.span_id, flags, true, TraceState::NONE)
    }
}

/// What the request headers say about tracing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// No (valid) context: a new trace starts here.
    None,
    Parent(Parent),
    /// B3's `b3: 0`: the caller asked that nothing be traced; the header is passed on as is.
    Deny,
}

/// W3C first, then single-header B3, then multi-header B3; a format that is present but
/// malformed is skipped.
pub fn extract(headers: &HeaderMap) -> Incoming {
    if let Some(parent) = headers.get(&TRACEPARENT).and_then(parse_traceparent) {
        return Incoming::Parent(parent);
    }
    if let Some(value) = headers.get(&B3) {
        match parse_b3_single(value) {
            Some(Incoming::None) => {}
            Some(incoming) => return incoming,
            None => {}
        }
    }
    parse_b3_multi(headers).map_or(Incoming::None, Incoming::Parent)
}

/// Writes `span` (the gateway's own span, a child of the caller's) as the upstream's parent:
/// always as `traceparent`, and also in the B3 form the caller used.
pub fn inject(headers: &mut HeaderMap, span: &SpanContext, caller: Option<&Parent>) {
    let trace = hex32(span.trace_id());
    let id = hex16(span.span_id());
    let sampled = span.is_sampled();
    if let Ok(value) = HeaderValue::from_str(&format!(
        "00-{trace}-{id}-{:02x}",
        span.trace_flags().to_u8()
    )) {
        headers.insert(TRACEPARENT.clone(), value);
    }
    let Some(caller) = caller else {
        return;
    };
    let trace = if caller.short_trace_id {
        &trace[16..]
    } else {
        trace.as_str()
    };
    let flag = if sampled { "1" } else { "0" };
    match caller.format {
        Format::W3c => {}
        Format::B3Single => {
            if let Ok(value) = HeaderValue::from_str(&format!("{trace}-{id}-{flag}")) {
                headers.insert(B3.clone(), value);
            }
        }
        Format::B3Multi => {
            let parent = hex16(caller.span_id);
            for (name, value) in [
                (&B3_TRACE_ID, trace),
                (&B3_SPAN_ID, id.as_str()),
                (&B3_PARENT_SPAN_ID, parent.as_str()),
                (&B3_SAMPLED, flag),
            ] {
                if let Ok(value) = HeaderValue::from_str(value) {
                    headers.insert(name.clone(), value);
                }
            }
            // Debug (`X-B3-Flags: 1`) was folded into the sampling decision above.
            headers.remove(&B3_FLAGS);
        }
    }
}

pub fn hex32(id: TraceId) -> String {
    format!("{:032x}", u128::from_be_bytes(id.to_bytes()))
}

pub fn hex16(id: SpanId) -> String {
    format!("{:016x}", u64::from_be_bytes(id.to_bytes()))
}

/// `version-traceid-parentid-flags`; a future version may append fields after a `-`.
fn parse_traceparent(value: &HeaderValue) -> Option<Parent> {
    let text = value.to_str().ok()?;
    let bytes = text.as_bytes();
    if bytes.len() < 55 {
        return None;
    }
    let version = lower_hex(&text[0..2])?;
    if version == 0xff
        || (version == 0 && bytes.len() != 55)
        || (bytes.len() > 55 && bytes[55] != b'-')
    {
        return None;
    }
    if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return None;
    }
    let trace_id = trace_id(&text[3..35])?;
    let span_id = span_id(&text[36..52])?;
    let flags = lower_hex(&text[53..55])?;
    Some(Parent {
        trace_id,
        span_id,
        sampling: if flags & 1 == 1 {
            Sampling::Sampled
        } else {
            Sampling::NotSampled
        },
        format: Format::W3c,
        short_trace_id: false,
    })
}

/// `{traceid}-{spanid}[-{sampling}[-{parentspanid}]]`, or a lone sampling decision.
/// `Some(Incoming::None)` means the header only carries a decision other than deny.
fn parse_b3_single(value: &HeaderValue) -> Option<Incoming> {
    let text = value.to_str().ok()?;
    match text {
        "0" => return Some(Incoming::Deny),
        "1" | "d" => return Some(Incoming::None),
        _ => {}
    }
    let mut parts = text.split('-');
    let (trace, short) = b3_trace_id(parts.next()?)?;
    let span = span_id(parts.next()?)?;
    let sampling = match parts.next() {
        None => Sampling::Deferred,
        Some("1" | "d") => Sampling::Sampled,
        Some("0") => Sampling::NotSampled,
        Some(_) => return None,
    };
    if let Some(parent) = parts.next() {
        span_id(parent)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Incoming::Parent(Parent {
        trace_id: trace,
        span_id: span,
        sampling,
        format: Format::B3Single,
        short_trace_id: short,
    }))
}

fn parse_b3_multi(headers: &HeaderMap) -> Option<Parent> {
    let text = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let (trace, short) = b3_trace_id(text(&B3_TRACE_ID)?)?;
    let span = span_id(text(&B3_SPAN_ID)?)?;
    let sampling = if text(&B3_FLAGS) == Some("1") {
        Sampling::Sampled
    } else {
        match text(&B3_SAMPLED) {
            None => Sampling::Deferred,
            Some("1" | "true") => Sampling::Sampled,
            Some("0" | "false") => Sampling::NotSampled,
            Some(_) => return None,
        }
    };
    Some(Parent {
        trace_id: trace,
        span_id: span,
        sampling,
        format: Format::B3Multi,
        short_trace_id: short,
    })
}

fn b3_trace_id(text: &str) -> Option<(TraceId, bool)> {
    match text.len() {
        16 => trace_id(&format!("{:0>32}", text)).map(|id| (id, true)),
        32 => trace_id(text).map(|id| (id, false)),
        _ => None,
    }
}

fn trace_id(text: &str) -> Option<TraceId> {
    if text.len() != 32 {
        return None;
    }
    let high = lower_hex(&text[..16])?;
    let low = lower_hex(&text[16..])?;
    let id = (u128::from(high) << 64) | u128::from(low);
    (id != 0).then(|| TraceId::from_bytes(id.to_be_bytes()))
}

fn span_id(text: &str) -> Option<SpanId> {
    if text.len() != 16 {
        return None;
    }
    let id = lower_hex(text)?;
    (id != 0).then(|| SpanId::from_bytes(id.to_be_bytes()))
}

/// Lowercase hex only (both specifications), at most 16 digits; `from_str_radix` alone
/// would accept a sign and uppercase.
fn lower_hex(text: &str) -> Option<u64> {
    if text.is_empty()
        || text.len() > 16
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    fn parent(incoming: Incoming) -> Parent {
        match incoming {
            Incoming::Parent(parent) => parent,
            other => panic!("expected a parent, got {other:?}"),
        }
    }

    #[test]
    fn traceparent_is_read_exactly() {
        let p = parent(extract(&headers(&[(
            "traceparent",
            &format!("00-{TRACE}-{SPAN}-01"),
        )])));
        assert_eq!(hex32(p.trace_id), TRACE);
        assert_eq!(hex16(p.span_id), SPAN);
        assert_eq!(p.sampling, Sampling::Sampled);
        assert_eq!(p.format, Format::W3c);
        let p = parent(extract(&headers(&[(
            "traceparent",
            &format!("00-{TRACE}-{SPAN}-00"),
        )])));
        assert_eq!(p.sampling, Sampling::NotSampled);
    }

    #[test]
    fn malformed_traceparents_start_a_new_trace() {
        for bad in [
            format!("00-{}-{SPAN}-01", TRACE.to_uppercase()),
            format!("00-{}-{SPAN}-01", "0".repeat(32)),
            format!("00-{TRACE}-{}-01", "0".repeat(16)),
            format!("ff-{TRACE}-{SPAN}-01"),
            format!("00-{TRACE}-{SPAN}-01-extra"),
            format!("00-{TRACE}-{SPAN}"),
            format!("00_{TRACE}-{SPAN}-01"),
            format!("00-+{}-{SPAN}-01", &TRACE[1..]),
        ] {
            assert_eq!(
                extract(&headers(&[("traceparent", &bad)])),
                Incoming::None,
                "{bad}"
            );
        }
        // A later version may add fields.
        let p = parent(extract(&headers(&[(
            "traceparent",
            &format!("01-{TRACE}-{SPAN}-01-what-comes-next"),
        )])));
        assert_eq!(hex16(p.span_id), SPAN);
    }

    #[test]
    fn b3_single_and_multi_are_read() {
        let p = parent(extract(&headers(&[("b3", &format!("{TRACE}-{SPAN}-1"))])));
        assert_eq!(
            (hex32(p.trace_id).as_str(), p.format),
            (TRACE, Format::B3Single)
        );
        assert_eq!(p.sampling, Sampling::Sampled);
        let p = parent(extract(&headers(&[(
            "b3",
            &format!("{}-{SPAN}-0-{SPAN}", &TRACE[16..]),
        )])));
        assert!(p.short_trace_id);
        assert_eq!(hex32(p.trace_id), format!("{:0>32}", &TRACE[16..]));
        assert_eq!(p.sampling, Sampling::NotSampled);
        let p = parent(extract(&headers(&[("b3", &format!("{TRACE}-{SPAN}"))])));
        assert_eq!(p.sampling, Sampling::Deferred);
        assert_eq!(extract(&headers(&[("b3", "0")])), Incoming::Deny);
        assert_eq!(extract(&headers(&[("b3", "x-y")])), Incoming::None);

        let p = parent(extract(&headers(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "true"),
        ])));
        assert_eq!((p.format, p.sampling), (Format::B3Multi, Sampling::Sampled));
        let p = parent(extract(&headers(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "0"),
            ("x-b3-flags", "1"),
        ])));
        assert_eq!(p.sampling, Sampling::Sampled, "debug forces sampling");
    }

    #[test]
    fn injection_writes_the_child_in_the_callers_formats() {
        let child = SpanContext::new(
            TraceId::from_bytes(u128::from_str_radix(TRACE, 16).unwrap().to_be_bytes()),
            SpanId::from_bytes(0x1122334455667788u64.to_be_bytes()),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        );
        let mut out = headers(&[("x-b3-flags", "1")]);
        let caller = parent(extract(&headers(&[
            ("x-b3-traceid", &TRACE[16..]),
            ("x-b3-spanid", SPAN),
        ])));
        inject(&mut out, &child, Some(&caller));
        let get = |name: &str| out.get(name).unwrap().to_str().unwrap().to_owned();
        assert_eq!(
            get("traceparent"),
            format!("00-{TRACE}-1122334455667788-01")
        );
        assert_eq!(get("x-b3-traceid"), &TRACE[16..]);
        assert_eq!(get("x-b3-spanid"), "1122334455667788");
        assert_eq!(get("x-b3-parentspanid"), SPAN);
        assert_eq!(get("x-b3-sampled"), "1");
        assert!(out.get("x-b3-flags").is_none());

        let mut out = HeaderMap::new();
        let caller = parent(extract(&headers(&[("b3", &format!("{TRACE}-{SPAN}-1"))])));
        inject(&mut out, &child, Some(&caller));
        assert_eq!(
            out.get("b3").unwrap(),
            &format!("{TRACE}-1122334455667788-1")
        );
    }
}
