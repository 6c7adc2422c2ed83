//! One test per VirtualService rule, checking the exact field and message.

mod validation_support;

use validation_support::*;

const ROUTE: &str =
    "  http:\n  - route: [{destination: {host: productpage, port: {number: 9080}}}]\n";

fn bound(hosts: &str, rest: &str) -> String {
    virtual_service(&format!(
        "  hosts: {hosts}\n  gateways: [bookinfo-gateway]\n{rest}"
    ))
}

#[test]
fn wildcard_as_last_label_is_rejected_with_istios_words() {
    let report = report_for(&bound("[\"bookinfo.*\"]", ROUTE));
    assert_only_errors(
        &report,
        &[(
            "spec.hosts[0]",
            "domain name \"*\" invalid (label \"*\" invalid)",
        )],
    );
}

#[test]
fn hosts_are_required() {
    let report = report_for(&virtual_service(ROUTE));
    assert_only_errors(
        &report,
        &[(
            "spec.hosts",
            "virtual service must have at least one host: delegate virtual services (no hosts) are not supported by Isthmus",
        )],
    );
}

#[test]
fn labels_must_be_valid() {
    let report = report_for(&bound("[\"book_info.com\", \"a..b\", \"x.123\"]", ROUTE));
    assert_only_errors(
        &report,
        &[
            (
                "spec.hosts[0]",
                "domain name \"book_info.com\" invalid (label \"book_info\" invalid)",
            ),
            (
                "spec.hosts[1]",
                "domain name \".b\" invalid (label \"\" invalid)",
            ),
            (
                "spec.hosts[2]",
                "domain name \"123\" invalid (top level domain \"123\" cannot be all-numeric)",
            ),
        ],
    );
}

#[test]
fn mesh_bound_service_cannot_use_star() {
    let report = report_for(&virtual_service(&format!("  hosts: [\"*\"]\n{ROUTE}")));
    assert_only_errors(
        &report,
        &[(
            "spec.hosts[0]",
            "wildcard host * is not allowed for virtual services bound to the mesh gateway",
        )],
    );
    let gateway_bound = report_for(&bound("[\"*\"]", ROUTE));
    assert_valid(&gateway_bound);
}

#[test]
fn overlapping_hosts_are_duplicates() {
    let report = report_for(&bound("[\"*.foo.com\", bar.foo.com]", ROUTE));
    assert_only_errors(
        &report,
        &[(
            "spec.hosts",
            "duplicate hosts in virtual service: *.foo.com & bar.foo.com",
        )],
    );
}

#[test]
fn gateway_references_must_be_well_formed() {
    let report = report_for(&virtual_service(&format!(
        "  hosts: [a.example.com]\n  gateways: [\"istio-system/\", \"Bad_NS/gw\", \"istio-system/my-gateway\", mesh]\n{ROUTE}"
    )));
    assert_only_errors(
        &report,
        &[
            (
                "spec.gateways[0]",
                "config namespace and gateway name cannot be empty",
            ),
            ("spec.gateways[0]", "invalid value for gateway name: \"\""),
            (
                "spec.gateways[1]",
                "invalid value for namespace: \"Bad_NS\"",
            ),
        ],
    );
}

#[test]
fn legacy_gateway_reference_warns() {
    let report = report_for(&virtual_service(&format!(
        "  hosts: [a.example.com]\n  gateways: [gw.istio-system]\n{ROUTE}"
    )));
    assert_valid(&report);
    assert_warning(
        &report,
        "spec.gateways[0]",
        "using legacy gatewayName format \"gw.istio-system\"; prefer the <namespace>/<name> format: \"istio-system/gw\"",
    );
}

#[test]
fn some_route_kind_is_required() {
    let report = report_for(&bound("[a.example.com]", ""));
    assert_only_errors(
        &report,
        &[(
            "spec",
            "http, tcp or tls must be provided in virtual service",
        )],
    );
}

#[test]
fn http_route_needs_route_redirect_or_direct_response() {
    let report = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - match: [{uri: {prefix: /}}]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.http[0]",
            "HTTP route, redirect or direct_response is required",
        )],
    );
}

#[test]
fn route_and_redirect_conflict() {
    let report = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - redirect: {uri: /new}\n    rewrite: {uri: /x}\n    route: [{destination: {host: a}}]\n",
    ));
    assert_only_errors(
        &report,
        &[
            (
                "spec.http[0]",
                "HTTP route cannot contain both route and redirect",
            ),
            (
                "spec.http[0]",
                "HTTP route rule cannot contain both rewrite and redirect",
            ),
        ],
    );
}

#[test]
fn redirect_needs_a_target_and_valid_code() {
    let empty = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - redirect: {redirectCode: 301}\n",
    ));
    assert_only_errors(
        &empty,
        &[(
            "spec.http[0].redirect",
            "redirect must specify URI, authority, scheme, or port",
        )],
    );
    let code = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - redirect: {uri: /x, redirectCode: 200}\n",
    ));
    assert_only_errors(
        &code,
        &[(
            "spec.http[0].redirect",
            "200 is not a valid redirect code, must be 3xx",
        )],
    );
    let scheme = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - redirect: {scheme: ftp}\n",
    ));
    assert_only_errors(
        &scheme,
        &[(
            "spec.http[0].redirect",
            "invalid redirect scheme, must be \"http\" or \"https\"",
        )],
    );
}

#[test]
fn direct_response_status_range() {
    let report = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - directResponse: {status: 700, body: {string: nope}}\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.http[0].directResponse.status",
            "HTTP status 700 is not in range 200-599",
        )],
    );
}

#[test]
fn uri_regex_must_compile() {
    let report = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - match: [{uri: {regex: \"/api/(v1\"}}]\n    route: [{destination: {host: a}}]\n",
    ));
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    let problem = &report.errors[0];
    assert_eq!(problem.field, "spec.http[0].match[0].uri");
    assert_eq!(
        problem.message,
        "\"uri\": regex parse error: /api/(v1 ^ error: unclosed group; Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)"
    );
}

#[test]
fn empty_prefix_and_regex_matches_are_rejected() {
    let report = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - match:\n    - uri: {prefix: \"\"}\n      headers: {x-team: {prefix: \"\"}}\n      queryParams: {q: {regex: \"\"}}\n    route: [{destination: {host: a}}]\n",
    ));
    assert_only_errors(
        &report,
        &[
            (
                "spec.http[0].match[0].headers.x-team",
                "\"headers\": prefix string match should not be empty",
            ),
            (
                "spec.http[0].match[0].queryParams.q",
                "\"queryParams\": regex string match should not be empty",
            ),
        ],
    );
}

#[test]
fn string_match_sets_one_form() {
    let report = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - match: [{method: {exact: GET, prefix: G}}]\n    route: [{destination: {host: a}}]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.http[0].match[0].method",
            "\"method\": only one of exact, prefix or regex may be set",
        )],
    );
}

#[test]
fn header_names_in_matches() {
    let report = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - match: [{headers: {\"bad header\": {exact: x}, \"@request.auth.claims.group\": {exact: admin}}}]\n    route: [{destination: {host: a}}]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.http[0].match[0].headers.bad header",
            "header name bad header is not a valid header name",
        )],
    );
}

#[test]
fn jwt_claim_routes_need_a_gateway() {
    let report = report_for(&virtual_service(
        "  hosts: [a.example.com]\n  http:\n  - match: [{headers: {\"@request.auth.claims.group\": {exact: admin}}}]\n    route: [{destination: {host: a}}]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.http[0].match[0]",
            "JWT claim based routing (key: @request.auth.claims.group) is only supported for gateway, found no gateways: []",
        )],
    );
}

#[test]
fn destination_rules() {
    let report = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - route:\n    - destination: {host: \"*\"}\n      weight: 50\n    - destination: {host: reviews, subset: V_1, port: {number: 0}}\n      weight: 50\n",
    ));
    assert_only_errors(
        &report,
        &[
            (
                "spec.http[0].route[0].destination.host",
                "invalid destination host *",
            ),
            (
                "spec.http[0].route[1].destination.subset",
                "subset name is invalid: V_1",
            ),
            (
                "spec.http[0].route[1].destination.port.number",
                "port number 0 must be in the range 1..65535",
            ),
        ],
    );
}

#[test]
fn destination_is_required() {
    let report = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - route: [{weight: 100}]\n",
    ));
    assert_only_errors(
        &report,
        &[("spec.http[0].route[0]", "destination is required")],
    );
}

#[test]
fn weights_are_not_negative_and_not_all_zero() {
    let negative = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - route:\n    - {destination: {host: a}, weight: -10}\n    - {destination: {host: b}, weight: 110}\n",
    ));
    assert_only_errors(
        &negative,
        &[("spec.http[0].route[0].weight", "weight -10 < 0")],
    );
    let zero = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - route:\n    - {destination: {host: a}}\n    - {destination: {host: b}}\n",
    ));
    assert_only_errors(
        &zero,
        &[("spec.http[0].route", "total destination weight = 0")],
    );
    let partial = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - route:\n    - {destination: {host: a}, weight: 30}\n    - {destination: {host: b}, weight: 30}\n",
    ));
    assert_valid(&partial);
}

#[test]
fn timeouts_are_durations_of_at_least_a_millisecond() {
    let garbage = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - timeout: soon\n    route: [{destination: {host: a}}]\n",
    ));
    assert_only_errors(
        &garbage,
        &[(
            "spec.http[0].timeout",
            "invalid duration \"soon\": write a number followed by a unit (ns, us, ms, s, m, h), e.g. \"1s\", \"500ms\", \"1.5s\" or \"1m\"",
        )],
    );
    let tiny = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - timeout: 500us\n    route: [{destination: {host: a}}]\n",
    ));
    assert_only_errors(
        &tiny,
        &[("spec.http[0].timeout", "duration must be greater than 1ms")],
    );
    let precise = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - timeout: 1.0005s\n    route: [{destination: {host: a}}]\n",
    ));
    assert_only_errors(
        &precise,
        &[(
            "spec.http[0].timeout",
            "only durations to ms precision are supported",
        )],
    );
}

#[test]
fn retry_policy_rules() {
    let report = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - retries: {attempts: 0, retryOn: \"5xx,bogus,503\"}\n    route: [{destination: {host: a}}]\n",
    ));
    assert_only_errors(
        &report,
        &[
            (
                "spec.http[0].retries",
                "http retry policy configured when attempts are set to 0 (disabled)",
            ),
            (
                "spec.http[0].retries.retryOn",
                "\"bogus\" is not a valid retryOn policy",
            ),
        ],
    );
    let negative = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - retries: {attempts: -1}\n    route: [{destination: {host: a}}]\n",
    ));
    assert_only_errors(
        &negative,
        &[(
            "spec.http[0].retries.attempts",
            "attempts cannot be negative",
        )],
    );
}

#[test]
fn fault_injection_rules() {
    let empty = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - fault: {}\n    route: [{destination: {host: a}}]\n",
    ));
    assert_only_errors(
        &empty,
        &[(
            "spec.http[0].fault",
            "HTTP fault injection must have an abort and/or a delay",
        )],
    );
    let bad = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - fault:\n      abort: {httpStatus: 99, percentage: {value: 150}}\n      delay: {fixedDelay: 5s, percentage: {value: 10}}\n    route: [{destination: {host: a}}]\n",
    ));
    assert_only_errors(
        &bad,
        &[
            (
                "spec.http[0].fault.abort.percentage",
                "percentage 150 is neither 0.0, nor in range [0.0001, 100.0]",
            ),
            (
                "spec.http[0].fault.abort.httpStatus",
                "HTTP status 99 is not in range 200-599",
            ),
        ],
    );
}

#[test]
fn mirror_percentage_range() {
    let report = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - mirror: {host: shadow}\n    mirrorPercentage: {value: 150}\n    route: [{destination: {host: a}}]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.http[0].mirrorPercentage",
            "mirror_percentage must have a max value of 100 (it has 150.000000)",
        )],
    );
}

#[test]
fn cors_policy_rules() {
    let report = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - corsPolicy:\n      allowOrigin: [https://old.example.com]\n      allowOrigins: [{exact: \"\"}, {regex: \"(\"}]\n      allowMethods: [GET, FETCH]\n      allowHeaders: [\"bad header\", \"*\"]\n      maxAge: 1.5s\n    route: [{destination: {host: a}}]\n",
    ));
    assert_only_errors(
        &report,
        &[
            (
                "spec.http[0].corsPolicy.allowOrigins[0]",
                "'' is not a valid match type for CORS allow origins",
            ),
            (
                "spec.http[0].corsPolicy.allowOrigins[1]",
                "\"corsPolicy.allowOrigins\": regex parse error: ( ^ error: unclosed group; Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)",
            ),
            (
                "spec.http[0].corsPolicy.allowMethods[1]",
                "\"FETCH\" is not a supported HTTP method",
            ),
            (
                "spec.http[0].corsPolicy.allowHeaders[0]",
                "header name bad header is not a valid header name",
            ),
            (
                "spec.http[0].corsPolicy.maxAge",
                "max_age duration is accurate only to seconds precision",
            ),
        ],
    );
    assert_warning(
        &report,
        "spec.http[0].corsPolicy.allowOrigin",
        "using deprecated setting \"allowOrigin\", use \"allowOrigins\" (a list of StringMatch) instead",
    );
}

#[test]
fn header_edits_cannot_touch_pseudo_headers() {
    let report = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - headers:\n      request:\n        set: {\":path\": /x, \":authority\": b.example.com}\n      response:\n        set: {host: x}\n        remove: [\":status\"]\n    route: [{destination: {host: a}}]\n",
    ));
    assert_only_errors(
        &report,
        &[
            (
                "spec.http[0].headers.request.:path",
                "invalid header \":path\": header cannot have \":\" prefix",
            ),
            (
                "spec.http[0].headers.response.host",
                "invalid header \"host\": cannot set Host header",
            ),
            (
                "spec.http[0].headers.response.remove[0]",
                "invalid header \":status\": header cannot have \":\" prefix",
            ),
        ],
    );
}

#[test]
fn authority_is_rewritten_once() {
    let report = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - rewrite: {authority: b.example.com}\n    headers: {request: {set: {host: c.example.com}}}\n    route: [{destination: {host: a}}]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.http[0].headers",
            "authority header cannot be set multiple times: have \"b.example.com\", attempting to set \"c.example.com\"",
        )],
    );
}

#[test]
fn rewrite_needs_something_to_rewrite() {
    let report = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - rewrite: {}\n    route: [{destination: {host: a}}]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.http[0].rewrite",
            "rewrite must specify at least one of URI, UriRegexRewrite, or authority. Only one of URI or UriRegexRewrite may be specified",
        )],
    );
}

#[test]
fn tls_route_rules() {
    let report = report_for(&bound(
        "[nginx.example.com]",
        "  tls:\n  - match: [{port: 443}]\n    route: [{destination: {host: my-nginx}}]\n  - match: [{sniHosts: [other.example.com]}]\n  - route: [{destination: {host: my-nginx}}]\n",
    ));
    assert_only_errors(
        &report,
        &[
            (
                "spec.tls[0].match[0].sniHosts",
                "TLS match must have at least one SNI host",
            ),
            (
                "spec.tls[1].match[0].sniHosts[0]",
                "SNI host \"other.example.com\" is not a compatible subset of any of the virtual service hosts: [nginx.example.com]",
            ),
            ("spec.tls[1].route", "TLS route is required"),
            (
                "spec.tls[2].match",
                "TLS route must have at least one match condition",
            ),
        ],
    );
}

#[test]
fn tcp_route_rules() {
    let report = report_for(&bound(
        "[\"*\"]",
        "  tcp:\n  - match: [{port: 70000, destinationSubnets: [10.0.0.0/40]}]\n",
    ));
    assert_only_errors(
        &report,
        &[
            (
                "spec.tcp[0].match[0].destinationSubnets[0]",
                "10.0.0.0/40 is not a valid CIDR block",
            ),
            (
                "spec.tcp[0].match[0].port",
                "port number 70000 must be in the range 1..65535",
            ),
            ("spec.tcp[0].route", "TCP route is required"),
        ],
    );
}

#[test]
fn export_to_rules() {
    let report = report_for(&virtual_service(&format!(
        "  hosts: [a.example.com]\n  exportTo: [default, \".\", \"~\"]\n{ROUTE}"
    )));
    assert_only_errors(
        &report,
        &[
            (
                "spec.exportTo",
                "duplicate entries in exportTo: . and current namespace default",
            ),
            (
                "spec.exportTo",
                "exportTo ~ (none) is not allowed for Istio configuration objects",
            ),
        ],
    );
}

#[test]
fn unreachable_rules_warn() {
    let report = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - match: [{uri: {prefix: /a}}]\n    route: [{destination: {host: a}}]\n  - route: [{destination: {host: b}}]\n  - match: [{uri: {prefix: /a}, name: again}]\n    route: [{destination: {host: c}}]\n  - route: [{destination: {host: d}}]\n",
    ));
    assert_valid(&report);
    assert_warning(
        &report,
        "spec.http[2]",
        "virtualService rule #2 match \"again\" is not used (duplicate/overlapping match in rule #0)",
    );
    assert_warning(
        &report,
        "spec.http[2]",
        "virtualService rule #2 not used (all matches used by prior rules)",
    );
    assert_warning(
        &report,
        "spec.http[3]",
        "virtualService rule #3 not used (only the last rule can have no matches)",
    );
}

#[test]
fn delegation_is_reported() {
    let report = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - name: root\n    delegate: {name: reviews, namespace: nsA}\n",
    ));
    assert_valid(&report);
    assert_warning(
        &report,
        "spec.http[0].delegate",
        "delegate is not supported by Isthmus: this route matches nothing; inline the delegate's routes instead",
    );
}

#[test]
fn misspelled_field_is_a_warning_and_its_consequence_an_error() {
    let report = report_for(&bound(
        "[a.example.com]",
        "  http:\n  - rout: [{destination: {host: a}}]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.http[0]",
            "HTTP route, redirect or direct_response is required",
        )],
    );
    assert_warning(
        &report,
        "spec.http[0].rout",
        "unknown field, ignored: check its spelling and the Istio API version",
    );
}
