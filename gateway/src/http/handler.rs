//! The one entry point every HTTP front end calls: route a request by the VirtualService
//! rules of its connection's route table, then answer locally or forward it.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;

use super::body::{BoxError, HttpBody, boxed, collect_limited, empty, full};
use super::client::UpstreamError;
use super::context::{ConnectionContext, HttpProtocol};
use super::grpc_web::{self, GrpcWeb};
use super::headers;
use super::local::{self, flags};
use super::router::{
    Action, Decision, Forward, RequestMatch, RequestView, Route, redirect_location, rewritten_path,
};
use super::{access_log, cors};
use crate::config::ClusterConfig;
use crate::proxy::Proxy;
use crate::upstream::{EndpointFilter, random::random_u64};

/// Request bodies kept in memory so a retry or a mirror can send them again; larger ones
/// stream once and are not retried.
const MAX_REPLAYABLE_BODY: u64 = 64 * 1024;
/// gRPC-web bodies are translated whole (unary and small server-streaming calls).
const MAX_GRPC_WEB_BODY: usize = 4 * 1024 * 1024;

/// What happened to one request, for the access log and metrics.
#[derive(Debug, Default)]
pub struct Outcome<'c> {
    pub flags: &'static str,
    /// Borrowed from the connection's configuration: naming it costs no copy.
    pub cluster: Option<&'c ClusterConfig>,
    pub upstream: Option<SocketAddr>,
    /// The Istio cluster id of the endpoint the request went to (empty if unknown).
    pub destination_cluster: Option<Arc<str>>,
    pub upstream_ms: Option<u64>,
    /// The `x-request-id` sent upstream (the client's or a generated one).
    pub request_id: Option<HeaderValue>,
}

impl Outcome<'_> {
    fn flagged(flags: &'static str) -> Self {
        Outcome {
            flags,
            ..Outcome::default()
        }
    }
}

/// Routes and serves one request. Never fails: every problem becomes a response with the
/// status and flag Envoy would give.
pub async fn handle_request<B>(
    proxy: Arc<Proxy>,
    conn: Arc<ConnectionContext>,
    request: Request<B>,
) -> Response<HttpBody>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let started = Instant::now();
    let conn = match conn.under(&proxy.http.configs.load()) {
        Some(newer) => Arc::new(newer),
        None => conn,
    };
    let protocol = HttpProtocol::of(request.version());
    let (mut parts, body) = request.into_parts();
    let span = crate::telemetry::http::start(proxy.settings.telemetry.as_ref(), &mut parts.headers);
    // The URI and Host are taken out of the parts (refcounted, no copy) so the router can
    // borrow path, query and authority while the headers are edited for the upstream.
    let uri = std::mem::take(&mut parts.uri);
    let host_header = parts.headers.get(header::HOST).cloned();
    let authority = request_authority(&uri, host_header.as_ref());
    let origin = parts.headers.get(header::ORIGIN).cloned();
    let grpc = is_grpc(&parts.headers);
    let (mut response, outcome, route) =
        route_request(&proxy, &conn, &mut parts, &uri, authority, boxed(body)).await;
    if let Some(route) = route {
        route.response_headers.apply(response.headers_mut());
        if let Some(policy) = &route.cors {
            cors::decorate(policy, origin.as_ref(), response.headers_mut());
        }
    }
    let out = response.headers_mut();
    out.insert(header::SERVER, headers::SERVER_NAME.clone());
    if let Some(alt_svc) = &conn.alt_svc {
        out.insert(header::ALT_SVC, alt_svc.clone());
    }
    let logged = access_log::Request {
        method: &parts.method,
        authority,
        path: uri.path(),
        protocol,
        grpc,
        request_id: outcome
            .request_id
            .as_ref()
            .or_else(|| parts.headers.get(&headers::X_REQUEST_ID)),
    };
    access_log::record(
        &proxy.metrics,
        &conn,
        &logged,
        &response,
        &outcome,
        started.elapsed(),
    );
    let route_name = route.map(|route| route.name.as_str());
    crate::telemetry::http::finish(span, &conn, &logged, &response, &outcome, route_name);
    response
}

fn request_authority<'r>(uri: &'r Uri, host: Option<&'r HeaderValue>) -> &'r str {
    uri.authority()
        .map(|a| a.as_str())
        .or_else(|| host.and_then(|h| h.to_str().ok()))
        .unwrap_or("")
}

fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

async fn route_request<'c>(
    proxy: &Proxy,
    conn: &'c ConnectionContext,
    parts: &mut Parts,
    uri: &Uri,
    authority: &str,
    body: HttpBody,
) -> (Response<HttpBody>, Outcome<'c>, Option<&'c Route>) {
    let path = uri.path();
    let query = uri.query();
    if conn.checks_https_redirect
        && let Some(listener) = conn.config.listener(&conn.listener)
        && let Some(server) =
            listener.http_server_for(&super::router::strip_port(authority).to_ascii_lowercase())
        && server.https_redirect
    {
        let https = super::router::Redirect {
            scheme: Some("https".to_owned()),
            status: StatusCode::MOVED_PERMANENTLY,
            ..Default::default()
        };
        let location = redirect_location(&https, "http", authority, path, query);
        return (
            local::redirect(StatusCode::MOVED_PERMANENTLY, &location),
            Outcome::flagged(flags::NONE),
            None,
        );
    }
    let view = RequestView {
        method: parts.method.as_str(),
        scheme: conn.scheme(),
        authority,
        path,
        query,
        port: conn.listener.port,
        headers: &parts.headers,
    };
    let (route, matched) = match conn.route_table.decide(&view) {
        Decision::NoVirtualHost | Decision::NoRoute { .. } => {
            return (local::no_route(), Outcome::flagged(flags::NO_ROUTE), None);
        }
        Decision::Matched { route, matched, .. } => (route, matched),
    };
    if let Some(policy) = &route.cors
        && let Some(answer) = cors::preflight(policy, &parts.method, &parts.headers)
    {
        return (answer, Outcome::flagged(flags::NONE), Some(route));
    }
    let mut fault_flags = flags::NONE;
    if let Some(fault) = &route.fault {
        if let Some((delay, percentage)) = fault.delay
            && rolls_under(percentage)
        {
            // Boxed: a fault is rare, and its timer would otherwise enlarge every request's
            // future.
            Box::pin(tokio::time::sleep(delay)).await;
            fault_flags = flags::FAULT_DELAY;
        }
        if let Some((status, percentage)) = fault.abort
            && rolls_under(percentage)
        {
            let mut response = local::text(status, "fault filter abort");
            *response.status_mut() = status;
            return (response, Outcome::flagged(flags::FAULT_ABORT), Some(route));
        }
    }
    let (response, mut outcome) = match &route.action {
        Action::Redirect(redirect) => {
            let location = redirect_location(redirect, conn.scheme(), authority, path, query);
            (
                local::redirect(redirect.status, &location),
                Outcome::flagged(flags::NONE),
            )
        }
        Action::Direct { status, body } => {
            let mut response = Response::new(full(body.clone()));
            *response.status_mut() = *status;
            if !body.is_empty() {
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            }
            (response, Outcome::flagged(flags::NONE))
        }
        Action::Forward(forward) => {
            let request_id = prepare_upstream_headers(conn, parts, route, forward, authority);
            let target = Target {
                original: uri.path_and_query(),
                path,
                query,
                matched,
            };
            let (response, mut outcome) =
                forward_request(proxy, conn, parts, body, forward, &target).await;
            outcome.request_id = Some(request_id);
            (response, outcome)
        }
    };
    if outcome.flags == flags::NONE {
        outcome.flags = fault_flags;
    }
    (response, outcome, Some(route))
}

fn rolls_under(percentage: f64) -> bool {
    if percentage >= 100.0 {
        return true;
    }
    // 1e-6 resolution is finer than any percentage a VirtualService can state.
    ((random_u64() % 100_000_000) as f64) < percentage * 1_000_000.0
}

fn prepare_upstream_headers(
    conn: &ConnectionContext,
    parts: &mut Parts,
    route: &Route,
    forward: &Forward,
    authority: &str,
) -> HeaderValue {
    let out = &mut parts.headers;
    let request_id = headers::edge_request(out, &conn.peer_ip, conn.scheme());
    if let Some(cert) = conn.tls.as_ref().and_then(|tls| tls.client_cert.clone()) {
        out.insert(headers::X_FORWARDED_CLIENT_CERT.clone(), cert);
    }
    let host = match &forward.rewrite_authority {
        Some(rewritten) => Some(rewritten.clone()),
        // An HTTP/1 request's Host already says it: keep the client's value, no copy.
        None if out.get(header::HOST).map(HeaderValue::as_bytes) == Some(authority.as_bytes()) => {
            None
        }
        None => HeaderValue::from_str(authority).ok(),
    };
    if let Some(host) = host {
        out.insert(header::HOST, host);
    }
    route.request_headers.apply(out);
    request_id
}

struct Target<'a> {
    /// The request's own path and query: forwarded as they are (a refcount, no copy)
    /// unless the route rewrites them.
    original: Option<&'a PathAndQuery>,
    path: &'a str,
    query: Option<&'a str>,
    matched: Option<&'a RequestMatch>,
}

impl Target<'_> {
    /// `None` when a rewrite produced something that is not a request target.
    fn path_and_query(&self, forward: &Forward) -> Option<PathAndQuery> {
        match (&forward.rewrite_uri, self.original) {
            (None, Some(original)) => Some(original.clone()),
            (Some(rewrite), _) => {
                let rewritten = rewritten_path(rewrite, self.matched, self.path, self.query);
                PathAndQuery::from_maybe_shared(Bytes::from(rewritten)).ok()
            }
            (None, None) => PathAndQuery::try_from(self.path).ok(),
        }
    }
}

/// The request body, kept when it may have to be sent more than once.
enum Payload {
    Buffered(Bytes),
    Streaming(Option<HttpBody>),
}

impl Payload {
    fn take(&mut self) -> Option<HttpBody> {
        match self {
            // An empty body boxes nothing (`Empty` has no size): no allocation for the
            // common bodiless request.
            Payload::Buffered(bytes) if bytes.is_empty() => Some(empty()),
            Payload::Buffered(bytes) => Some(full(bytes.clone())),
            Payload::Streaming(body) => body.take(),
        }
    }

    fn replayable(&self) -> bool {
        matches!(self, Payload::Buffered(_))
    }
}

enum AttemptError {
    Timeout,
    Connect,
    Reset,
}

async fn forward_request<'c>(
    proxy: &Proxy,
    conn: &'c ConnectionContext,
    parts: &mut Parts,
    body: HttpBody,
    forward: &Forward,
    target: &Target<'_>,
) -> (Response<HttpBody>, Outcome<'c>) {
    let Some(cluster) = forward
        .destinations
        .pick(random_u64())
        .and_then(|name| conn.config.cluster(name))
    else {
        return (
            local::no_healthy_upstream(),
            Outcome::flagged(flags::NO_CLUSTER),
        );
    };
    let mut outcome = Outcome {
        flags: flags::NONE,
        cluster: Some(cluster),
        ..Outcome::default()
    };
    let origination = conn.config.upstream_tls.get(&cluster.name);
    if cluster.tls.is_some() && origination.is_none() {
        // The cluster's TLS was rejected at apply: never send in the clear what the
        // DestinationRule says must be encrypted.
        outcome.flags = flags::UPSTREAM_CONNECT_FAILURE;
        return (local::connect_failure(), outcome);
    }
    let dns_wait = cluster
        .connect_timeout
        .unwrap_or(proxy.settings.connect_timeout);
    if let Err(error) = proxy.upstreams.resolve_dns(cluster, dns_wait).await {
        outcome.flags = flags::DNS_RESOLUTION_FAILED;
        return (local::dns_unresolved(&error), outcome);
    }
    let Some(_in_flight) = proxy.http.clients.admit(cluster) else {
        outcome.flags = flags::UPSTREAM_OVERFLOW;
        return (local::overflow(), outcome);
    };
    // gRPC-web's content types are gRPC's with a suffix: a request that is neither (the
    // common case) reads its content type once.
    let grpc = is_grpc(&parts.headers);
    let web = if grpc {
        GrpcWeb::detect(&parts.headers)
    } else {
        None
    };
    let wants_replay = forward.retries.is_some() || forward.mirror.is_some();
    let mut payload = match read_payload(body, web, wants_replay).await {
        Ok(payload) => payload,
        Err(response) => {
            outcome.flags = flags::DOWNSTREAM_PROTOCOL_ERROR;
            return (response, outcome);
        }
    };
    if web.is_some() {
        grpc_web::to_grpc_request(&mut parts.headers);
    }
    let http2 = cluster.http2 || grpc;
    let client =
        proxy
            .http
            .clients
            .client(cluster, http2, origination, proxy.settings.connect_timeout);
    let Some(path_and_query) = target.path_and_query(forward) else {
        outcome.flags = flags::DOWNSTREAM_PROTOCOL_ERROR;
        return (unforwardable_path(), outcome);
    };
    if let Some(mirror) = &forward.mirror
        && let Payload::Buffered(bytes) = &payload
        && rolls_under(mirror.percentage)
    {
        mirror_request(
            proxy,
            conn,
            parts,
            &path_and_query,
            &mirror.cluster,
            bytes.clone(),
        );
    }
    let sent = Instant::now();
    let attempts = forward.retries.map_or(1, |r| 1 + r.attempts);
    let per_try = forward.retries.and_then(|r| r.per_try_timeout);
    let retry_on = forward.retries.map(|r| r.on).unwrap_or_default();
    let exchange = async {
        let mut attempt = 0;
        // Only a request that may be retried remembers where it went.
        let mut tried: Vec<SocketAddr> = Vec::new();
        loop {
            attempt += 1;
            let last = attempt >= attempts || !payload.replayable();
            // Retries prefer endpoints not tried yet, then any.
            let picked = proxy
                .upstreams
                .pick(cluster, &EndpointFilter::default(), &tried)
                .or_else(|| {
                    proxy
                        .upstreams
                        .pick(cluster, &EndpointFilter::default(), &[])
                });
            let Some(picked) = picked else {
                return Err((
                    local::no_healthy_upstream(),
                    flags::NO_HEALTHY_UPSTREAM,
                    None,
                ));
            };
            if !last {
                tried.push(picked.address);
            }
            let Some(body) = payload.take() else {
                return Err((
                    local::upstream_reset(),
                    flags::UPSTREAM_RESET,
                    Some((picked.address, picked.cluster_id)),
                ));
            };
            // The last attempt takes the headers instead of copying them.
            let headers = if last {
                std::mem::take(&mut parts.headers)
            } else {
                parts.headers.clone()
            };
            let request = match upstream_request(
                &parts.method,
                headers,
                picked.address,
                &path_and_query,
                http2,
                body,
            ) {
                Some(request) => request,
                None => {
                    return Err((unforwardable_path(), flags::DOWNSTREAM_PROTOCOL_ERROR, None));
                }
            };
            // Pinned where it stands: the bounded and the unbounded branch then both hold a
            // pointer to it, not a copy each (see `exchanged` below).
            let mut call = pin!(client.request(picked.address, request));
            let result = match per_try {
                Some(limit) => match tokio::time::timeout(limit, call.as_mut()).await {
                    Ok(result) => result.map_err(classify),
                    Err(_) => Err(AttemptError::Timeout),
                },
                None => call.await.map_err(classify),
            };
            drop(picked.active);
            match result {
                Ok(response) => {
                    let status = response.status();
                    if status.is_server_error() {
                        proxy.upstreams.record_failure(cluster, picked.address);
                    } else {
                        picked.health.record_success();
                    }
                    if !last && retry_on.retries_status(status) {
                        continue;
                    }
                    let flags = if attempt > 1 && retry_on.retries_status(status) {
                        flags::RETRY_LIMIT
                    } else {
                        flags::NONE
                    };
                    return Ok((response, (picked.address, picked.cluster_id), flags));
                }
                Err(error) => {
                    let (retry, response, flag) = match error {
                        AttemptError::Timeout => (
                            retry_on.gateway_error || retry_on.server_error,
                            local::upstream_timeout(),
                            flags::UPSTREAM_TIMEOUT,
                        ),
                        AttemptError::Connect => {
                            proxy.upstreams.record_failure(cluster, picked.address);
                            (
                                retry_on.connect_failure || retry_on.gateway_error,
                                local::connect_failure(),
                                flags::UPSTREAM_CONNECT_FAILURE,
                            )
                        }
                        AttemptError::Reset => (
                            retry_on.reset || retry_on.gateway_error,
                            local::upstream_reset(),
                            flags::UPSTREAM_RESET,
                        ),
                    };
                    if !last && retry {
                        continue;
                    }
                    return Err((response, flag, Some((picked.address, picked.cluster_id))));
                }
            }
        }
    };
    // Awaiting `exchange` itself in one branch and a timeout owning it in the other would
    // give the state machine room for two copies, and every request's future is copied
    // whole as it moves (bench/https.sh --instructions counted the copies). Pinned, both
    // branches hold a pointer.
    let mut exchange = pin!(exchange);
    let exchanged = match forward.timeout {
        Some(limit) => match tokio::time::timeout(limit, exchange.as_mut()).await {
            Ok(result) => result,
            Err(_) => Err((local::upstream_timeout(), flags::UPSTREAM_TIMEOUT, None)),
        },
        None => exchange.await,
    };
    let (response, address, flags) = match exchanged {
        Ok(ok) => ok,
        Err((response, flags, address)) => {
            outcome.flags = flags;
            (outcome.upstream, outcome.destination_cluster) = address.unzip();
            return (response, outcome);
        }
    };
    let upstream_ms = sent.elapsed().as_millis() as u64;
    outcome.flags = flags;
    outcome.upstream = Some(address.0);
    outcome.destination_cluster = Some(address.1);
    outcome.upstream_ms = Some(upstream_ms);
    let (mut head, body) = response.into_parts();
    headers::remove_hop_by_hop(&mut head.headers);
    head.headers.insert(
        headers::X_ENVOY_UPSTREAM_SERVICE_TIME.clone(),
        headers::service_time(upstream_ms),
    );
    head.version = Version::default();
    let body = match web {
        // Already boxed by the upstream client: boxing again would add an allocation and a
        // layer to every frame.
        None => body,
        Some(web) => match collect_limited(body, MAX_GRPC_WEB_BODY).await {
            Some((messages, trailers)) => {
                head.headers
                    .insert(header::CONTENT_TYPE, web.response_content_type());
                head.headers.remove(header::CONTENT_LENGTH);
                full(web.encode_response(&messages, &trailers))
            }
            None => {
                tracing::debug!("gRPC-web: upstream response could not be read or is too large");
                outcome.flags = flags::UPSTREAM_RESET;
                return (local::upstream_reset(), outcome);
            }
        },
    };
    (Response::from_parts(head, body), outcome)
}

fn classify(error: UpstreamError) -> AttemptError {
    if error.is_connect() {
        AttemptError::Connect
    } else {
        tracing::debug!(%error, "upstream request failed");
        AttemptError::Reset
    }
}

async fn read_payload(
    body: HttpBody,
    web: Option<GrpcWeb>,
    wants_replay: bool,
) -> Result<Payload, Response<HttpBody>> {
    use hyper::body::Body as _;
    if hyper::body::Body::is_end_stream(&body) {
        return Ok(Payload::Buffered(Bytes::new()));
    }
    if let Some(web) = web {
        let (bytes, _) = collect_limited(body, MAX_GRPC_WEB_BODY)
            .await
            .ok_or_else(|| local::text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"))?;
        return web
            .decode_request(bytes)
            .map(Payload::Buffered)
            .map_err(|_| {
                local::text(
                    StatusCode::BAD_REQUEST,
                    "grpc-web-text request body is not valid base64",
                )
            });
    }
    let small = body
        .size_hint()
        .upper()
        .is_some_and(|upper| upper <= MAX_REPLAYABLE_BODY);
    if wants_replay && small {
        // The size hint bounds the body; the limit only guards a body that lies about it.
        let limit = usize::try_from(MAX_REPLAYABLE_BODY).unwrap_or(usize::MAX);
        let (bytes, _) = collect_limited(body, limit).await.ok_or_else(|| {
            local::text(StatusCode::BAD_REQUEST, "request body could not be read")
        })?;
        return Ok(Payload::Buffered(bytes));
    }
    Ok(Payload::Streaming(Some(body)))
}

fn unforwardable_path() -> Response<HttpBody> {
    local::text(
        StatusCode::BAD_REQUEST,
        "the request path cannot be forwarded",
    )
}

fn upstream_request(
    method: &http::Method,
    headers: http::HeaderMap,
    address: SocketAddr,
    path_and_query: &PathAndQuery,
    http2: bool,
    body: HttpBody,
) -> Option<Request<HttpBody>> {
    let mut uri = http::uri::Parts::default();
    if http2 {
        // HTTP/2 needs `:scheme` and `:authority`; the endpoint address names the peer
        // (Host is sent as a header), written without going through a formatted String.
        let mut buf = [0u8; headers::ADDRESS_TEXT_MAX];
        uri.scheme = Some(Scheme::HTTP);
        uri.authority = Some(Authority::try_from(headers::display_into(&mut buf, address)?).ok()?);
    }
    // HTTP/1 sends the origin form, `/path?query`.
    uri.path_and_query = Some(path_and_query.clone());
    let uri = Uri::from_parts(uri).ok()?;
    let mut request = Request::new(body);
    *request.method_mut() = method.clone();
    *request.uri_mut() = uri;
    *request.version_mut() = if http2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    *request.headers_mut() = headers;
    Some(request)
}

/// Sends a copy to the mirror cluster and forgets it: its answer, or failure, never
/// reaches the client. The authority gets Envoy's `-shadow` suffix.
fn mirror_request(
    proxy: &Proxy,
    conn: &ConnectionContext,
    parts: &Parts,
    path_and_query: &PathAndQuery,
    cluster_name: &str,
    body: Bytes,
) {
    let Some(cluster) = conn.config.cluster(cluster_name) else {
        return;
    };
    if cluster.tls.is_some() && !conn.config.upstream_tls.contains_key(&cluster.name) {
        return;
    }
    let Some(picked) = proxy
        .upstreams
        .pick(cluster, &EndpointFilter::default(), &[])
    else {
        return;
    };
    let Some(mut request) = upstream_request(
        &parts.method,
        parts.headers.clone(),
        picked.address,
        path_and_query,
        cluster.http2,
        full(body),
    ) else {
        return;
    };
    if let Some(host) = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| HeaderValue::from_str(&format!("{h}-shadow")).ok())
    {
        request.headers_mut().insert(header::HOST, host);
    }
    let client = mirror_client(proxy, conn, cluster);
    tokio::spawn(async move {
        let _active = picked.active;
        // The limit covers the body too: a mirror that never finishes its answer must not
        // hold this task and its connection forever.
        let exchange = async {
            let response = client.request(picked.address, request).await?;
            // Read to the end so the pooled connection can be reused.
            let _ = response.into_body().collect().await;
            Ok::<_, super::client::UpstreamError>(())
        };
        match tokio::time::timeout(Duration::from_secs(30), exchange).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::debug!(%error, "mirror request failed"),
            Err(_) => tracing::debug!("mirror request timed out"),
        }
    });
}

fn mirror_client(
    proxy: &Proxy,
    conn: &ConnectionContext,
    cluster: &ClusterConfig,
) -> super::client::UpstreamClient {
    proxy.http.clients.client(
        cluster,
        cluster.http2,
        conn.config.upstream_tls.get(&cluster.name),
        proxy.settings.connect_timeout,
    )
}
