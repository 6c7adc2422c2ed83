use http::HeaderMap;
use multicluster::proto::{self, http_route::Action as ProtoAction, string_match::Kind};
use proptest::prelude::*;

use super::*;

fn exact(value: &str) -> Option<proto::StringMatch> {
    Some(proto::StringMatch {
        kind: Some(Kind::Exact(value.into())),
    })
}
fn prefix(value: &str) -> Option<proto::StringMatch> {
    Some(proto::StringMatch {
        kind: Some(Kind::Prefix(value.into())),
    })
}
fn regex(value: &str) -> Option<proto::StringMatch> {
    Some(proto::StringMatch {
        kind: Some(Kind::Regex(value.into())),
    })
}

fn direct(name: &str, matches: Vec<proto::HttpMatch>) -> proto::HttpRoute {
    proto::HttpRoute {
        name: name.into(),
        matches,
        action: Some(ProtoAction::DirectResponse(proto::DirectResponse {
            status: 200,
            body: name.into(),
        })),
        ..Default::default()
    }
}

fn table(hosts: Vec<(&str, Vec<&str>, Vec<proto::HttpRoute>)>) -> RouteTable {
    RouteTable::compile(&proto::RouteTable {
        name: "http.80".into(),
        virtual_hosts: hosts
            .into_iter()
            .map(|(name, domains, routes)| proto::VirtualHost {
                name: name.into(),
                domains: domains.into_iter().map(Into::into).collect(),
                routes,
            })
            .collect(),
    })
    .unwrap()
}

struct Req {
    method: &'static str,
    scheme: &'static str,
    authority: String,
    path: String,
    query: Option<String>,
    port: u16,
    headers: HeaderMap,
}

fn req(authority: &str, path_and_query: &str) -> Req {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (path_and_query.to_owned(), None),
    };
    Req {
        method: "GET",
        scheme: "http",
        authority: authority.into(),
        path,
        query,
        port: 80,
        headers: HeaderMap::new(),
    }
}

impl Req {
    fn view(&self) -> RequestView<'_> {
        RequestView {
            method: self.method,
            scheme: self.scheme,
            authority: &self.authority,
            path: &self.path,
            query: self.query.as_deref(),
            port: self.port,
            headers: &self.headers,
        }
    }
}

fn decided(table: &RouteTable, request: &Req) -> Option<String> {
    match table.decide(&request.view()) {
        Decision::Matched { route, .. } => Some(route.name.clone()),
        _ => None,
    }
}

fn host_of(table: &RouteTable, authority: &str) -> Option<String> {
    table.virtual_host(authority).map(|h| h.name.clone())
}

#[test]
fn virtual_host_exact_then_longest_suffix_then_any() {
    let table = table(vec![
        ("any", vec!["*"], vec![]),
        ("com", vec!["*.com"], vec![]),
        ("example", vec!["*.example.com"], vec![]),
        ("exact", vec!["a.example.com"], vec![]),
    ]);
    assert_eq!(host_of(&table, "a.example.com").as_deref(), Some("exact"));
    assert_eq!(
        host_of(&table, "A.Example.COM:8080").as_deref(),
        Some("exact")
    );
    assert_eq!(host_of(&table, "b.example.com").as_deref(), Some("example"));
    assert_eq!(host_of(&table, "example.com").as_deref(), Some("com"));
    assert_eq!(host_of(&table, "x.org").as_deref(), Some("any"));
    let no_any = self::table(vec![("exact", vec!["bookinfo.com"], vec![])]);
    assert_eq!(host_of(&no_any, "mypage.com"), None);
    assert_eq!(
        host_of(&no_any, "bookinfo.com:80").as_deref(),
        Some("exact")
    );
}

#[test]
fn no_vhost_and_no_route_are_distinct() {
    let table = table(vec![(
        "h",
        vec!["httpbin.example.com"],
        vec![direct(
            "status",
            vec![proto::HttpMatch {
                uri: prefix("/status"),
                ..Default::default()
            }],
        )],
    )]);
    assert!(matches!(
        table.decide(&req("other.example.com", "/status/418").view()),
        Decision::NoVirtualHost
    ));
    assert!(matches!(
        table.decide(&req("httpbin.example.com", "/ip").view()),
        Decision::NoRoute { .. }
    ));
    assert_eq!(
        decided(&table, &req("httpbin.example.com", "/status/418?x=1")).as_deref(),
        Some("status")
    );
}

#[test]
fn uri_exact_prefix_regex_and_ignore_case() {
    let routes = vec![
        direct(
            "exact",
            vec![proto::HttpMatch {
                uri: exact("/exact"),
                ..Default::default()
            }],
        ),
        direct(
            "regex",
            vec![proto::HttpMatch {
                uri: regex("/items/[0-9]+"),
                ..Default::default()
            }],
        ),
        direct(
            "caseless",
            vec![proto::HttpMatch {
                uri: prefix("/Caseless"),
                ignore_uri_case: true,
                ..Default::default()
            }],
        ),
    ];
    let table = table(vec![("h", vec!["*"], routes)]);
    let pick = |p: &str| decided(&table, &req("h", p));
    assert_eq!(pick("/exact").as_deref(), Some("exact"));
    assert_eq!(pick("/exact?q=1").as_deref(), Some("exact"));
    assert_eq!(pick("/exact/more"), None);
    assert_eq!(pick("/items/42").as_deref(), Some("regex"));
    // Anchored: a regex must match the whole path, not a part of it.
    assert_eq!(pick("/items/42/x"), None);
    assert_eq!(pick("/x/items/42"), None);
    assert_eq!(pick("/CASELESS/a").as_deref(), Some("caseless"));
    assert_eq!(pick("/caseless").as_deref(), Some("caseless"));
}

#[test]
fn headers_present_absent_method_authority_scheme_port_query() {
    let mut headers = std::collections::BTreeMap::new();
    headers.insert("want".to_owned(), exact("v1").unwrap());
    let mut present = std::collections::BTreeMap::new();
    present.insert("x-debug".to_owned(), proto::StringMatch { kind: None });
    let mut query = std::collections::BTreeMap::new();
    query.insert("version".to_owned(), regex("v[0-9]").unwrap());
    let routes = vec![
        direct(
            "want-v1",
            vec![proto::HttpMatch {
                headers,
                ..Default::default()
            }],
        ),
        direct(
            "debug-not-internal",
            vec![proto::HttpMatch {
                headers: present,
                without_headers: vec!["x-internal".into()],
                ..Default::default()
            }],
        ),
        direct(
            "post-on-api",
            vec![proto::HttpMatch {
                method: exact("POST"),
                authority: prefix("api."),
                ..Default::default()
            }],
        ),
        direct(
            "https-8443",
            vec![proto::HttpMatch {
                scheme: exact("https"),
                port: 8443,
                ..Default::default()
            }],
        ),
        direct(
            "query",
            vec![proto::HttpMatch {
                query_params: query,
                ..Default::default()
            }],
        ),
    ];
    let table = table(vec![("h", vec!["*"], routes)]);
    assert!(table.uses_query);

    let mut r = req("h", "/");
    assert_eq!(decided(&table, &r), None);
    r.headers.insert("want", "v1".parse().unwrap());
    assert_eq!(decided(&table, &r).as_deref(), Some("want-v1"));
    r.headers.insert("want", "v2".parse().unwrap());
    assert_eq!(decided(&table, &r), None);

    let mut r = req("h", "/");
    r.headers.insert("x-debug", "".parse().unwrap());
    assert_eq!(decided(&table, &r).as_deref(), Some("debug-not-internal"));
    r.headers.insert("x-internal", "1".parse().unwrap());
    assert_eq!(decided(&table, &r), None);

    let mut r = req("api.example.com", "/");
    assert_eq!(decided(&table, &r), None);
    r.method = "POST";
    assert_eq!(decided(&table, &r).as_deref(), Some("post-on-api"));

    let mut r = req("h", "/");
    r.scheme = "https";
    assert_eq!(decided(&table, &r), None);
    r.port = 8443;
    assert_eq!(decided(&table, &r).as_deref(), Some("https-8443"));

    assert_eq!(
        decided(&table, &req("h", "/?a=1&version=v2")).as_deref(),
        Some("query")
    );
    assert_eq!(decided(&table, &req("h", "/?version=v22")), None);
    assert_eq!(decided(&table, &req("h", "/?myversion=v2")), None);
}

#[test]
fn first_matching_route_wins_in_order() {
    let routes = vec![
        direct(
            "first",
            vec![proto::HttpMatch {
                uri: prefix("/a"),
                ..Default::default()
            }],
        ),
        direct(
            "second",
            vec![proto::HttpMatch {
                uri: prefix("/a/b"),
                ..Default::default()
            }],
        ),
        direct("catch-all", vec![]),
    ];
    let table = table(vec![("h", vec!["*"], routes)]);
    assert_eq!(decided(&table, &req("h", "/a/b")).as_deref(), Some("first"));
    assert_eq!(
        decided(&table, &req("h", "/z")).as_deref(),
        Some("catch-all")
    );
}

#[test]
fn bad_regex_and_header_names_are_reported_with_the_table() {
    let bad = proto::RouteTable {
        name: "http.80".into(),
        virtual_hosts: vec![proto::VirtualHost {
            name: "h".into(),
            domains: vec!["*".into()],
            routes: vec![direct(
                "r",
                vec![proto::HttpMatch {
                    uri: regex("/(unclosed"),
                    ..Default::default()
                }],
            )],
        }],
    };
    let errors = RouteTable::compile(&bad).unwrap_err();
    assert!(errors[0].to_string().contains("http.80"), "{:?}", errors);
    assert!(matches!(&errors[0], RouterError::Regex { regex, .. } if regex == "/(unclosed"));
}

#[test]
fn rewrite_replaces_the_matched_prefix() {
    let m = RequestMatch::compile(
        "t",
        &proto::HttpMatch {
            uri: prefix("/api/v1"),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        rewritten_path("/v2", Some(&m), "/api/v1/users", Some("a=1")),
        "/v2/users?a=1"
    );
    assert_eq!(
        rewritten_path("/anything/", None, "/x", None),
        "/anything/x"
    );
    let e = RequestMatch::compile(
        "t",
        &proto::HttpMatch {
            uri: exact("/old"),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(rewritten_path("/new", Some(&e), "/old", None), "/new");
}

#[test]
fn redirect_locations() {
    let https = Redirect {
        scheme: Some("https".into()),
        status: http::StatusCode::MOVED_PERMANENTLY,
        ..Default::default()
    };
    assert_eq!(
        redirect_location(
            &https,
            "http",
            "h.example.com:80",
            "/status/418",
            Some("a=b")
        ),
        "https://h.example.com/status/418?a=b"
    );
    let moved = Redirect {
        uri: Some("/v2/new".into()),
        authority: Some("other.example.com".into()),
        port: Some(8080),
        status: http::StatusCode::FOUND,
        ..Default::default()
    };
    assert_eq!(
        redirect_location(&moved, "http", "h", "/old", Some("q=1")),
        "http://other.example.com:8080/v2/new?q=1"
    );
    let keep_port = Redirect {
        uri: Some("/x".into()),
        ..Default::default()
    };
    assert_eq!(
        redirect_location(&keep_port, "http", "h:8080", "/old", None),
        "http://h:8080/x"
    );
}

#[test]
fn strip_port_keeps_ipv6_literals() {
    assert_eq!(strip_port("a.example.com:8080"), "a.example.com");
    assert_eq!(strip_port("a.example.com"), "a.example.com");
    assert_eq!(strip_port("[::1]:80"), "[::1]");
    assert_eq!(strip_port("a:"), "a:");
    assert_eq!(strip_port("a:8x"), "a:8x");
    assert_eq!(strip_port("a:1:2"), "a:1");
    assert_eq!(strip_port(":80"), "");
    assert_eq!(strip_port(""), "");
}

proptest! {
    /// The byte search against the plain definition: the text before the last `:` when
    /// what follows it is a non-empty run of digits.
    #[test]
    fn strip_port_is_the_text_before_a_numeric_last_colon(
        authority in "[a-z0-9.:\\[\\]]{0,12}",
    ) {
        let expected = if authority.starts_with('[') {
            authority.find(']').map_or(authority.as_str(), |end| &authority[..=end])
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
                _ => authority.as_str(),
            }
        };
        prop_assert_eq!(strip_port(&authority), expected);
    }
}

#[test]
fn retry_on_parses_istio_conditions() {
    let on = RetryOn::parse("5xx,connect-failure,unknown-thing");
    assert!(on.server_error && on.connect_failure && !on.reset);
    assert!(on.retries_status(http::StatusCode::INTERNAL_SERVER_ERROR));
    assert!(!on.retries_status(http::StatusCode::NOT_FOUND));
    let default = RetryOn::parse("");
    assert!(default.retries_status(http::StatusCode::BAD_GATEWAY));
    assert!(!default.retries_status(http::StatusCode::INTERNAL_SERVER_ERROR));
}

proptest! {
    // The compiled lookup agrees with the plain definition: the most specific pattern wins
    // (exact > longer suffix > shorter suffix > any), and ties go to the first host.
    #[test]
    fn vhost_lookup_agrees_with_the_ranking(
        domains in proptest::collection::vec(
            prop_oneof![
                Just("*".to_owned()),
                "[a-c]{1,2}(\\.[a-c]{1,2}){0,2}",
                "\\*(\\.[a-c]{1,2}){1,3}",
            ],
            1..6,
        ),
        host in "[a-c]{1,2}(\\.[a-c]{1,2}){0,3}",
    ) {
        let hosts: Vec<(String, Vec<String>)> = domains
            .iter()
            .enumerate()
            .map(|(i, d)| (format!("h{i}"), vec![d.clone()]))
            .collect();
        let compiled = RouteTable::compile(&proto::RouteTable {
            name: "t".into(),
            virtual_hosts: hosts
                .iter()
                .map(|(name, domains)| proto::VirtualHost {
                    name: name.clone(),
                    domains: domains.clone(),
                    routes: vec![],
                })
                .collect(),
        })
        .unwrap();
        let patterns: Vec<crate::config::HostPattern> =
            domains.iter().map(|d| crate::config::HostPattern::parse(d)).collect();
        let expected = crate::config::most_specific(
            patterns.iter().map(|p| p.matches(&host)),
        )
        .map(|i| format!("h{i}"));
        prop_assert_eq!(compiled.virtual_host(&host).map(|h| h.name.clone()), expected);
    }

    // A prefix match holds exactly when the path starts with the prefix, and with
    // ignoreUriCase exactly when the lowercased path starts with the lowercased prefix.
    #[test]
    fn prefix_match_is_starts_with(pre in "/[a-zA-Z]{0,4}", path in "/[a-zA-Z/]{0,8}", caseless: bool) {
        let m = RequestMatch::compile("t", &proto::HttpMatch {
            uri: prefix(&pre),
            ignore_uri_case: caseless,
            ..Default::default()
        }).unwrap();
        let r = req("h", &path);
        let expected = if caseless {
            path.to_ascii_lowercase().starts_with(&pre.to_ascii_lowercase())
        } else {
            path.starts_with(&pre)
        };
        prop_assert_eq!(m.matches(&r.view()), expected);
    }
}
