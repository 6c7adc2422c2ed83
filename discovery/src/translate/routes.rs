//! VirtualService routes bound to one Gateway server: HTTP route tables, `tls` routes for
//! PASSTHROUGH servers, `tcp` routes for TCP servers and terminated TLS.

use multicluster::proto::{self, http_route::Action, string_match::Kind};

use crate::istio::common::{Destination, HeaderOperations, StringMatch};
use crate::istio::virtual_service::{HttpRoute, HttpRouteDestination, RouteDestination};
use crate::istio::{IstioObject, VirtualServiceSpec};

use super::clusters::{EndpointScope, Target};
use super::hosts::{fully_qualify, intersect};
use super::listeners::ServerContext;
use super::{Item, Translator};

type VirtualService = IstioObject<VirtualServiceSpec>;

impl Translator<'_> {
    /// Adds the virtual hosts of every VirtualService bound to this server to the route table
    /// `table_name` (shared by every plaintext HTTP server of a port) and returns the name.
    pub(super) fn http_route_table(
        &mut self,
        context: &ServerContext<'_>,
        table_name: String,
    ) -> String {
        let mut table =
            self.route_tables
                .remove(&table_name)
                .unwrap_or_else(|| proto::RouteTable {
                    name: table_name.clone(),
                    virtual_hosts: Vec::new(),
                });
        for vs in self.bound_virtual_services(context.gateway) {
            let domains = bound_domains(context, vs);
            if domains.is_empty() {
                continue;
            }
            let item = Item::of("VirtualService", vs);
            let routes: Vec<proto::HttpRoute> = vs
                .spec
                .http
                .iter()
                .enumerate()
                .filter_map(|(index, route)| self.http_route(&item, vs, index, route, context))
                .collect();
            for domain in domains {
                let position = table
                    .virtual_hosts
                    .iter()
                    .position(|host| host.domains.contains(&domain));
                let host = match position {
                    Some(position) => &mut table.virtual_hosts[position],
                    None => {
                        table.virtual_hosts.push(proto::VirtualHost {
                            name: format!("{domain}:{}", context.port),
                            domains: vec![domain],
                            routes: Vec::new(),
                        });
                        let last = table.virtual_hosts.len() - 1;
                        &mut table.virtual_hosts[last]
                    }
                };
                host.routes.extend(routes.iter().cloned());
            }
        }
        self.route_tables.insert(table_name.clone(), table);
        table_name
    }

    fn http_route(
        &mut self,
        item: &Item<'_>,
        vs: &VirtualService,
        index: usize,
        route: &HttpRoute,
        context: &ServerContext<'_>,
    ) -> Option<proto::HttpRoute> {
        let field = format!("spec.http[{index}]");
        let applicable: Vec<_> = route
            .matches
            .iter()
            .filter(|m| context.match_applies(m.port, &m.gateways, vs.namespace()))
            .collect();
        if !route.matches.is_empty() && applicable.is_empty() {
            return None;
        }
        let action = if let Some(redirect) = &route.redirect {
            Action::Redirect(proto::Redirect {
                uri: redirect.uri.clone(),
                authority: redirect.authority.clone(),
                scheme: redirect.scheme.clone(),
                port: redirect.port.unwrap_or(0),
                status: if redirect.redirect_code == 0 {
                    301
                } else {
                    redirect.redirect_code
                },
            })
        } else if let Some(direct) = &route.direct_response {
            Action::DirectResponse(proto::DirectResponse {
                status: direct.status,
                body: direct
                    .body
                    .as_ref()
                    .and_then(|body| body.string.clone())
                    .unwrap_or_default(),
            })
        } else if !route.route.is_empty() {
            Action::Route(self.route_action(item, vs, &field, route))
        } else {
            self.reject(item, &field, "route has no destination, redirect or directResponse (delegate is not supported); skipped");
            return None;
        };
        let headers = route.headers.as_ref();
        Some(proto::HttpRoute {
            name: if route.name.is_empty() {
                format!("{}.{}.{index}", vs.namespace(), vs.name())
            } else {
                route.name.clone()
            },
            matches: applicable
                .iter()
                .map(|m| proto::HttpMatch {
                    name: m.name.clone(),
                    uri: m.uri.as_ref().map(string_match),
                    scheme: m.scheme.as_ref().map(string_match),
                    method: m.method.as_ref().map(string_match),
                    authority: m.authority.as_ref().map(string_match),
                    headers: m
                        .headers
                        .iter()
                        .map(|(k, v)| (k.to_ascii_lowercase(), string_match(v)))
                        .collect(),
                    query_params: m
                        .query_params
                        .iter()
                        .map(|(k, v)| (k.clone(), string_match(v)))
                        .collect(),
                    without_headers: m
                        .without_headers
                        .keys()
                        .map(|k| k.to_ascii_lowercase())
                        .collect(),
                    port: m.port,
                    ignore_uri_case: m.ignore_uri_case,
                })
                .collect(),
            action: Some(action),
            request_headers: headers
                .and_then(|h| h.request.as_ref())
                .map(header_operations),
            response_headers: headers
                .and_then(|h| h.response.as_ref())
                .map(header_operations),
            cors: route.cors_policy.as_ref().map(|cors| proto::CorsPolicy {
                allow_origins: cors
                    .allow_origins
                    .iter()
                    .map(string_match)
                    .chain(
                        cors.allow_origin
                            .iter()
                            .map(|o| string_match(&StringMatch::exact(o))),
                    )
                    .collect(),
                allow_methods: cors.allow_methods.clone(),
                allow_headers: cors.allow_headers.clone(),
                expose_headers: cors.expose_headers.clone(),
                max_age_seconds: cors
                    .max_age
                    .as_ref()
                    .and_then(|d| d.duration())
                    .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX)),
                allow_credentials: cors.allow_credentials.unwrap_or(false),
            }),
            fault: route.fault.as_ref().map(|fault| proto::Fault {
                delay_percentage: fault.delay.as_ref().map_or(0.0, |d| {
                    d.percentage
                        .as_ref()
                        .map_or(d.percent.map_or(100.0, f64::from), |p| p.value)
                }),
                fixed_delay_ms: fault
                    .delay
                    .as_ref()
                    .and_then(|d| d.fixed_delay.as_ref())
                    .and_then(|d| d.duration())
                    .map_or(0, |d| millis(d.as_millis())),
                abort_percentage: fault
                    .abort
                    .as_ref()
                    .map_or(0.0, |a| a.percentage.as_ref().map_or(100.0, |p| p.value)),
                abort_http_status: fault
                    .abort
                    .as_ref()
                    .and_then(|a| a.http_status)
                    .and_then(|s| u32::try_from(s).ok())
                    .unwrap_or(0),
            }),
        })
    }

    fn route_action(
        &mut self,
        item: &Item<'_>,
        vs: &VirtualService,
        field: &str,
        route: &HttpRoute,
    ) -> proto::RouteAction {
        let destinations = self.http_destinations(item, vs, field, &route.route);
        let mirror = route
            .mirror
            .as_ref()
            .or_else(|| route.mirrors.first().and_then(|m| m.destination.as_ref()));
        let mirror_percentage = route
            .mirror_percentage
            .as_ref()
            .map(|p| p.value)
            .or(route.mirror_percent.map(f64::from))
            .or_else(|| {
                route
                    .mirrors
                    .first()
                    .and_then(|m| m.percentage.as_ref())
                    .map(|p| p.value)
            })
            .unwrap_or(100.0);
        let mirror = mirror.and_then(|destination| {
            self.destination_cluster(item, vs, &format!("{field}.mirror"), destination)
                .map(|cluster| proto::Mirror {
                    cluster,
                    percentage: mirror_percentage,
                })
        });
        proto::RouteAction {
            destinations,
            rewrite: route.rewrite.as_ref().map(|rewrite| proto::Rewrite {
                uri: rewrite.uri.clone(),
                authority: rewrite.authority.clone(),
            }),
            timeout_ms: route
                .timeout
                .as_ref()
                .and_then(|d| d.duration())
                .map_or(0, |d| millis(d.as_millis())),
            retries: route.retries.as_ref().map(|retries| proto::Retries {
                attempts: u32::try_from(retries.attempts).unwrap_or(0),
                per_try_timeout_ms: retries
                    .per_try_timeout
                    .as_ref()
                    .and_then(|d| d.duration())
                    .map_or(0, |d| millis(d.as_millis())),
                retry_on: retries.retry_on.clone(),
            }),
            mirror,
        }
    }

    fn http_destinations(
        &mut self,
        item: &Item<'_>,
        vs: &VirtualService,
        field: &str,
        destinations: &[HttpRouteDestination],
    ) -> Vec<proto::WeightedCluster> {
        let plain: Vec<RouteDestination> = destinations
            .iter()
            .map(|d| RouteDestination {
                destination: d.destination.clone(),
                weight: d.weight,
            })
            .collect();
        if destinations.iter().any(|d| d.headers.is_some()) {
            self.reject(
                item,
                field,
                "destination-level headers are not applied yet; use route-level headers",
            );
        }
        self.weighted(item, vs, field, &plain)
    }

    fn weighted(
        &mut self,
        item: &Item<'_>,
        vs: &VirtualService,
        field: &str,
        destinations: &[RouteDestination],
    ) -> Vec<proto::WeightedCluster> {
        let single = destinations.len() == 1;
        destinations
            .iter()
            .enumerate()
            .filter_map(|(index, route)| {
                let field = format!("{field}.route[{index}]");
                let destination = route.destination.as_ref()?;
                let cluster = self.destination_cluster(item, vs, &field, destination)?;
                let weight = u32::try_from(route.weight).unwrap_or(0);
                Some(proto::WeightedCluster {
                    cluster,
                    weight: if single && weight == 0 { 100 } else { weight },
                })
            })
            .collect()
    }

    fn destination_cluster(
        &mut self,
        item: &Item<'_>,
        vs: &VirtualService,
        field: &str,
        destination: &Destination,
    ) -> Option<String> {
        let host = fully_qualify(
            &destination.host,
            vs.namespace(),
            &self.snapshot.domain_suffix,
        );
        let target = Target {
            host: &host,
            port: destination.port.as_ref().map(|p| p.number),
            subset: &destination.subset,
        };
        self.cluster_for(
            item,
            &format!("{field}.destination"),
            &target,
            EndpointScope::Reachable,
        )
    }

    /// `tls` routes of bound VirtualServices for a PASSTHROUGH server.
    pub(super) fn tls_routes(&mut self, context: &ServerContext<'_>) -> proto::TlsRoutes {
        let mut routes = Vec::new();
        for vs in self.bound_virtual_services(context.gateway) {
            if bound_domains(context, vs).is_empty() {
                continue;
            }
            let item = Item::of("VirtualService", vs);
            for (index, route) in vs.spec.tls.iter().enumerate() {
                let applicable: Vec<_> = route
                    .matches
                    .iter()
                    .filter(|m| context.match_applies(m.port, &m.gateways, vs.namespace()))
                    .collect();
                if applicable.is_empty() {
                    continue;
                }
                let destinations =
                    self.weighted(&item, vs, &format!("spec.tls[{index}]"), &route.route);
                routes.push(proto::TlsRoute {
                    sni_hosts: applicable
                        .iter()
                        .flat_map(|m| m.sni_hosts.iter().map(|h| h.to_ascii_lowercase()))
                        .collect(),
                    destinations,
                });
            }
            let tcp_for_port = vs.spec.tcp.iter().any(|route| {
                route.matches.is_empty()
                    || route
                        .matches
                        .iter()
                        .any(|m| m.port == 0 || m.port == context.port)
            });
            if tcp_for_port && vs.spec.tls.is_empty() {
                self.reject(
                    &item,
                    "spec.tcp",
                    format!(
                        "server port {} is TLS PASSTHROUGH: `tcp` routes do not apply to it (Istio ignores them too); \
                         write a `tls` route with `match: [{{port: {}, sniHosts: [...]}}]`",
                        context.port, context.port
                    ),
                );
            }
        }
        proto::TlsRoutes { routes }
    }

    /// `tcp` routes of bound VirtualServices for TCP servers and terminated TLS servers.
    pub(super) fn tcp_routes(&mut self, context: &ServerContext<'_>) -> proto::TcpRoutes {
        let mut routes = Vec::new();
        for vs in self.bound_virtual_services(context.gateway) {
            if bound_domains(context, vs).is_empty() {
                continue;
            }
            let item = Item::of("VirtualService", vs);
            for (index, route) in vs.spec.tcp.iter().enumerate() {
                let applies = route.matches.is_empty()
                    || route
                        .matches
                        .iter()
                        .any(|m| context.match_applies(m.port, &m.gateways, vs.namespace()));
                if !applies {
                    continue;
                }
                let destinations =
                    self.weighted(&item, vs, &format!("spec.tcp[{index}]"), &route.route);
                routes.push(proto::TcpRoute { destinations });
            }
        }
        proto::TcpRoutes { routes }
    }
}

/// The names under which a VirtualService is served by this server (conformance A3).
fn bound_domains(context: &ServerContext<'_>, vs: &VirtualService) -> Vec<String> {
    let mut domains = Vec::new();
    for vs_host in &vs.spec.hosts {
        for server_host in &context.hosts {
            if !server_host.admits_namespace(vs.namespace()) {
                continue;
            }
            if let Some(domain) = intersect(&server_host.host, vs_host)
                && !domains.contains(&domain)
            {
                domains.push(domain);
            }
        }
    }
    domains
}

fn string_match(value: &StringMatch) -> proto::StringMatch {
    let kind = value
        .exact
        .clone()
        .map(Kind::Exact)
        .or_else(|| value.prefix.clone().map(Kind::Prefix))
        .or_else(|| value.regex.clone().map(Kind::Regex));
    proto::StringMatch { kind }
}

fn header_operations(operations: &HeaderOperations) -> proto::HeaderOperations {
    proto::HeaderOperations {
        set: operations.set.clone(),
        add: operations.add.clone(),
        remove: operations.remove.clone(),
    }
}

fn millis(value: u128) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}
