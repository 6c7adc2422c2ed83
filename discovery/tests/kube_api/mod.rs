//! An in-test Kubernetes API server speaking the real list/watch wire format over plain HTTP:
//! JSON lists with `metadata.resourceVersion`, `?watch=true` streams of newline-delimited
//! `ADDED`/`MODIFIED`/`DELETED`/`BOOKMARK` events, `ERROR` events with `410 Gone` (status
//! `Expired`) for compacted versions, and connections that can be dropped or refused.
//!
//! Shared by `discovery/tests/kube_*.rs` and the root package's `tests/kube_*.rs` (by path).
#![allow(dead_code, clippy::unwrap_used)] // test helpers: a panic is how they report a failure

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body_util::{Either, Full};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

type Body = Either<Full<Bytes>, WatchBody>;

/// A watch response: one chunk per event line, ending when the sender goes.
pub struct WatchBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for WatchBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|line| line.map(|line| Ok(Frame::data(line))))
    }
}

/// `(plural, namespace, name)`.
type Key = (String, String, String);

const ISTIO_GROUP: &str = "networking.istio.io";

struct Logged {
    revision: u64,
    plural: String,
    kind: &'static str,
    object: Value,
}

#[derive(Clone)]
enum Broadcast {
    Event(Arc<Logged>),
    Expire,
    Bookmark(u64),
}

struct State {
    revision: u64,
    /// Watches from a version before this one get `410 Gone`.
    compacted: u64,
    objects: BTreeMap<Key, Value>,
    log: Vec<Arc<Logged>>,
    istio_versions: Vec<String>,
    /// Collections answered with 403 Forbidden, as without RBAC for them.
    forbidden: Vec<String>,
    requests: Vec<String>,
}

struct Inner {
    state: Mutex<State>,
    events: broadcast::Sender<Broadcast>,
    connections: Mutex<Vec<JoinHandle<()>>>,
}

pub struct ApiServer {
    address: SocketAddr,
    inner: Arc<Inner>,
    accept: JoinHandle<()>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.accept.abort();
        self.drop_connections();
    }
}

impl ApiServer {
    /// Serves `networking.istio.io/v1` only.
    pub async fn start() -> ApiServer {
        ApiServer::start_with_istio(&["v1"]).await
    }

    pub async fn start_with_istio(versions: &[&str]) -> ApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                revision: 100,
                compacted: 0,
                objects: BTreeMap::new(),
                log: Vec::new(),
                istio_versions: versions.iter().map(|v| v.to_string()).collect(),
                forbidden: Vec::new(),
                requests: Vec::new(),
            }),
            events: broadcast::channel(1024).0,
            connections: Mutex::new(Vec::new()),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&inner)));
        ApiServer {
            address,
            inner,
            accept,
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// A kubeconfig for this server (token auth, plain HTTP).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster: {{server: \"http://{}\"}}\nusers:\n- name: test\n  user: {{token: test-token}}\ncontexts:\n- name: test\n  context: {{cluster: test, user: test}}\ncurrent-context: test\n",
            self.address
        )
    }

    /// Creates or replaces every object of a multi-document YAML text, one event each.
    pub fn apply_yaml(&self, text: &str) {
        for object in yaml_objects(text) {
            self.apply(object);
        }
    }

    pub fn apply(&self, object: Value) {
        let mut state = self.inner.state.lock().unwrap();
        let event = state.store(object, true);
        drop(state);
        if let Some(event) = event {
            let _ = self.inner.events.send(Broadcast::Event(event));
        }
    }

    pub fn delete(&self, kind: &str, namespace: &str, name: &str) {
        let mut state = self.inner.state.lock().unwrap();
        let event = state.remove(kind, namespace, name, true);
        drop(state);
        if let Some(event) = event {
            let _ = self.inner.events.send(Broadcast::Event(event));
        }
    }

    /// Changes objects without any watch seeing it, then compacts history: every open watch
    /// gets `410 Gone` and must relist to find out (as after etcd compaction).
    pub fn expire_watches(&self, changes: impl FnOnce(&mut Silent<'_>)) {
        let mut state = self.inner.state.lock().unwrap();
        changes(&mut Silent { state: &mut state });
        state.compacted = state.revision;
        drop(state);
        let _ = self.inner.events.send(Broadcast::Expire);
    }

    /// Sends every open watch that asked for bookmarks a BOOKMARK at a new revision, which
    /// is returned.
    pub fn bookmark(&self) -> u64 {
        let mut state = self.inner.state.lock().unwrap();
        state.revision += 1;
        let revision = state.revision;
        drop(state);
        let _ = self.inner.events.send(Broadcast::Bookmark(revision));
        revision
    }

    /// Cuts every open connection (watches included) mid-stream.
    pub fn drop_connections(&self) {
        for connection in self.inner.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    /// Stops answering: the port refuses connections from now on.
    pub fn stop(&self) {
        self.accept.abort();
        self.drop_connections();
    }

    /// Refuses lists and watches of `plural` (e.g. `pods`) with 403 Forbidden.
    pub fn forbid(&self, plural: &str) {
        self.inner
            .state
            .lock()
            .unwrap()
            .forbidden
            .push(plural.to_string());
    }

    /// Every request so far, as `path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.inner.state.lock().unwrap().requests.clone()
    }

    /// The requests for one collection path that watch (`true`) or list (`false`).
    pub fn requests_to(&self, path: &str, watching: bool) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|request| {
                request.split('?').next() == Some(path)
                    && request.contains("watch=true") == watching
            })
            .collect()
    }
}

/// Changes no watch is told about.
pub struct Silent<'a> {
    state: &'a mut State,
}

impl Silent<'_> {
    pub fn apply_yaml(&mut self, text: &str) {
        for object in yaml_objects(text) {
            self.state.store(object, false);
        }
    }

    pub fn delete(&mut self, kind: &str, namespace: &str, name: &str) {
        self.state.remove(kind, namespace, name, false);
    }
}

pub fn yaml_objects(text: &str) -> Vec<Value> {
    let mut documents = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            documents.push(String::new());
        } else {
            let current = documents.last_mut().unwrap();
            current.push_str(line);
            current.push('\n');
        }
    }
    documents
        .iter()
        .filter(|document| !document.trim().is_empty())
        .map(|document| serde_saphyr::from_str::<Value>(document).unwrap())
        .filter(|value| !value.is_null())
        .collect()
}

fn plural_of(kind: &str) -> (&'static str, bool) {
    match kind {
        "Namespace" => ("namespaces", false),
        "Service" => ("services", true),
        "Pod" => ("pods", true),
        "Secret" => ("secrets", true),
        "EndpointSlice" => ("endpointslices", true),
        "Gateway" => ("gateways", true),
        "VirtualService" => ("virtualservices", true),
        "DestinationRule" => ("destinationrules", true),
        "ServiceEntry" => ("serviceentries", true),
        other => panic!("the test API server does not serve {other}"),
    }
}

fn is_istio(plural: &str) -> bool {
    matches!(
        plural,
        "gateways" | "virtualservices" | "destinationrules" | "serviceentries"
    )
}

impl State {
    fn store(&mut self, mut object: Value, logged: bool) -> Option<Arc<Logged>> {
        let kind = object["kind"].as_str().unwrap().to_string();
        let (plural, namespaced) = plural_of(&kind);
        if namespaced && object["metadata"]["namespace"].is_null() {
            object["metadata"]["namespace"] = json!("default");
        }
        // The API server keeps Secrets' stringData as data.
        if let Some(Value::Object(strings)) = object.as_object_mut().unwrap().remove("stringData") {
            let data = object["data"].as_object().cloned().unwrap_or_default();
            let mut data = data;
            for (key, value) in strings {
                data.insert(key, json!(base64(value.as_str().unwrap().as_bytes())));
            }
            object["data"] = Value::Object(data);
        }
        self.revision += 1;
        object["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        let key = key_of(plural, &object);
        let kind_name = if self.objects.insert(key, object.clone()).is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.log_event(plural, kind_name, object, logged)
    }

    fn remove(
        &mut self,
        kind: &str,
        namespace: &str,
        name: &str,
        logged: bool,
    ) -> Option<Arc<Logged>> {
        let (plural, namespaced) = plural_of(kind);
        let namespace = if namespaced { namespace } else { "" };
        let mut object = self
            .objects
            .remove(&(plural.to_string(), namespace.to_string(), name.to_string()))
            .unwrap_or_else(|| panic!("no {kind} {namespace}/{name} to delete"));
        self.revision += 1;
        object["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        self.log_event(plural, "DELETED", object, logged)
    }

    fn log_event(
        &mut self,
        plural: &str,
        kind: &'static str,
        object: Value,
        logged: bool,
    ) -> Option<Arc<Logged>> {
        if !logged {
            return None;
        }
        let event = Arc::new(Logged {
            revision: self.revision,
            plural: plural.to_string(),
            kind,
            object,
        });
        self.log.push(Arc::clone(&event));
        Some(event)
    }
}

fn key_of(plural: &str, object: &Value) -> Key {
    (
        plural.to_string(),
        object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        object["metadata"]["name"].as_str().unwrap().to_string(),
    )
}

async fn accept_loop(listener: TcpListener, inner: Arc<Inner>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let served = Arc::clone(&inner);
        let connection = tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let inner = Arc::clone(&served);
                async move { Ok::<_, Infallible>(respond(&inner, &request)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        let mut connections = inner.connections.lock().unwrap();
        connections.retain(|connection| !connection.is_finished());
        connections.push(connection);
    }
}

/// What a list or watch asks for.
struct Collection {
    /// `/api/v1` or `/apis/<group>/<version>`.
    api_version: String,
    plural: String,
    namespace: Option<String>,
}

fn respond(inner: &Arc<Inner>, request: &Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_string();
    let query: BTreeMap<String, String> = request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.to_string(), percent_decode(value)))
        .collect();
    inner
        .state
        .lock()
        .unwrap()
        .requests
        .push(match request.uri().query() {
            Some(q) => format!("{path}?{}", percent_decode(q)),
            None => path.clone(),
        });
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if path == "/version" {
        return json_response(
            StatusCode::OK,
            json!({"major": "1", "minor": "34", "gitVersion": "v1.34.0", "gitCommit": "test",
                   "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                   "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}),
        );
    }
    let served_istio = inner.state.lock().unwrap().istio_versions.clone();
    let (api_version, rest) = match segments.as_slice() {
        ["api", "v1", rest @ ..] => ("v1".to_string(), rest),
        ["apis", "discovery.k8s.io", "v1", rest @ ..] => ("discovery.k8s.io/v1".to_string(), rest),
        ["apis", ISTIO_GROUP, version, rest @ ..] if served_istio.iter().any(|v| v == version) => {
            if rest.is_empty() {
                return json_response(StatusCode::OK, istio_resources(version));
            }
            (format!("{ISTIO_GROUP}/{version}"), rest)
        }
        _ => return not_found(&path),
    };
    let (namespace, plural) = match rest {
        [plural] => (None, plural.to_string()),
        ["namespaces", namespace, plural] => (Some(namespace.to_string()), plural.to_string()),
        _ => return not_found(&path),
    };
    if inner.state.lock().unwrap().forbidden.contains(&plural) {
        return json_response(
            StatusCode::FORBIDDEN,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": format!("{plural} is forbidden: User \"system:serviceaccount:istio-system:isthmus\" cannot list resource \"{plural}\""),
                   "reason": "Forbidden", "code": 403}),
        );
    }
    let collection = Collection {
        api_version,
        plural,
        namespace,
    };
    let selector = query.get("labelSelector").cloned();
    if query.get("watch").map(String::as_str) == Some("true") {
        let from: u64 = query
            .get("resourceVersion")
            .and_then(|version| version.parse().ok())
            .unwrap_or(0);
        let bookmarks = query.get("allowWatchBookmarks").map(String::as_str) == Some("true");
        return watch(inner, collection, selector, from, bookmarks);
    }
    list(inner, &collection, selector.as_deref())
}

fn istio_resources(version: &str) -> Value {
    let resources: Vec<Value> = [
        ("gateways", "Gateway"),
        ("virtualservices", "VirtualService"),
        ("destinationrules", "DestinationRule"),
        ("serviceentries", "ServiceEntry"),
    ]
    .iter()
    .map(|(plural, kind)| {
        json!({"name": plural, "singularName": kind.to_lowercase(), "namespaced": true,
               "kind": kind, "verbs": ["get", "list", "watch"]})
    })
    .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1",
           "groupVersion": format!("{ISTIO_GROUP}/{version}"), "resources": resources})
}

fn matches(collection: &Collection, selector: Option<&str>, plural: &str, object: &Value) -> bool {
    if plural != collection.plural {
        return false;
    }
    if let Some(namespace) = &collection.namespace
        && object["metadata"]["namespace"].as_str() != Some(namespace)
    {
        return false;
    }
    selector.into_iter().flat_map(|s| s.split(',')).all(|term| {
        let (key, value) = term.split_once('=').unwrap();
        object["metadata"]["labels"][key].as_str() == Some(value)
    })
}

/// As the API server serves it: Istio objects at the requested version; built-in list items
/// without their type (kube-rs must cope, as with a real server).
fn served(collection: &Collection, mut object: Value, in_list: bool) -> Value {
    if is_istio(&collection.plural) {
        object["apiVersion"] = json!(collection.api_version);
    } else if in_list {
        let map = object.as_object_mut().unwrap();
        map.remove("apiVersion");
        map.remove("kind");
    }
    object
}

fn list(inner: &Arc<Inner>, collection: &Collection, selector: Option<&str>) -> Response<Body> {
    let state = inner.state.lock().unwrap();
    let items: Vec<Value> = state
        .objects
        .iter()
        .filter(|((plural, _, _), object)| matches(collection, selector, plural, object))
        .map(|(_, object)| served(collection, object.clone(), true))
        .collect();
    json_response(
        StatusCode::OK,
        json!({"kind": "List", "apiVersion": collection.api_version,
               "metadata": {"resourceVersion": state.revision.to_string()}, "items": items}),
    )
}

fn watch(
    inner: &Arc<Inner>,
    collection: Collection,
    selector: Option<String>,
    from: u64,
    bookmarks: bool,
) -> Response<Body> {
    let (mut sender, body) = mpsc::channel::<Bytes>(64);
    let body = WatchBody(body);
    // Subscribed before the backlog is read, so nothing falls between the two.
    let mut live = inner.events.subscribe();
    let (backlog, expired, kind) = {
        let state = inner.state.lock().unwrap();
        let backlog: Vec<Arc<Logged>> = state
            .log
            .iter()
            .filter(|event| event.revision > from)
            .filter(|event| {
                matches(
                    &collection,
                    selector.as_deref(),
                    &event.plural,
                    &event.object,
                )
            })
            .cloned()
            .collect();
        let kind = state
            .objects
            .iter()
            .find(|((plural, _, _), _)| *plural == collection.plural)
            .and_then(|(_, object)| object["kind"].as_str().map(str::to_string))
            .unwrap_or_default();
        (backlog, from < state.compacted, kind)
    };
    tokio::spawn(async move {
        if expired {
            let _ = send(&mut sender, &gone(from)).await;
            return;
        }
        let mut last = from;
        for event in backlog {
            last = event.revision;
            if send(&mut sender, &event_line(&collection, &event))
                .await
                .is_err()
            {
                return;
            }
        }
        loop {
            let line = match live.recv().await {
                Ok(Broadcast::Event(event)) => {
                    if event.revision <= last
                        || !matches(
                            &collection,
                            selector.as_deref(),
                            &event.plural,
                            &event.object,
                        )
                    {
                        continue;
                    }
                    last = event.revision;
                    event_line(&collection, &event)
                }
                Ok(Broadcast::Expire) => {
                    let _ = send(&mut sender, &gone(last)).await;
                    return;
                }
                Ok(Broadcast::Bookmark(revision)) if bookmarks => json!({
                    "type": "BOOKMARK",
                    "object": {"kind": kind, "apiVersion": collection.api_version,
                               "metadata": {"resourceVersion": revision.to_string()}}
                }),
                Ok(Broadcast::Bookmark(_)) => continue,
                Err(_) => return,
            };
            if send(&mut sender, &line).await.is_err() {
                return;
            }
        }
    });
    let mut response = Response::new(Either::Right(body));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn event_line(collection: &Collection, event: &Logged) -> Value {
    json!({"type": event.kind, "object": served(collection, event.object.clone(), false)})
}

fn gone(version: u64) -> Value {
    json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": format!("too old resource version: {version}"),
        "reason": "Expired", "code": 410}})
}

async fn send(sender: &mut mpsc::Sender<Bytes>, line: &Value) -> Result<(), ()> {
    let mut text = line.to_string();
    text.push('\n');
    sender.send(Bytes::from(text)).await.map_err(|_| ())
}

fn json_response(status: StatusCode, body: Value) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(body.to_string()))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn not_found(path: &str) -> Response<Body> {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("the server could not find the requested resource ({path})"),
               "reason": "NotFound", "code": 404}),
    )
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' && index + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            index += 3;
        } else {
            out.push(if bytes[index] == b'+' {
                b' '
            } else {
                bytes[index]
            });
            index += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

pub fn base64(input: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
