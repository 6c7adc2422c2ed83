//! Gateway servers → listeners, merged by (bind address, port).
//!
//! Servers that share a port must agree on how a connection is recognised: plaintext HTTP
//! servers merge into one route table, TLS servers share the port by SNI host, and a TCP server
//! owns its port alone. A server that cannot share is rejected on its own.

use std::collections::BTreeMap;

use multicluster::proto::{self, server::Routing};

use crate::istio::gateway::{Server, ServerTlsMode, ServerTlsSettings, TlsProtocolVersion};
use crate::istio::{GatewaySpec, IstioObject, Protocol};

use super::hosts::{ServerHost, covers};
use super::select::match_applies_to;
use super::{Item, Translator};

/// How connections on a port are told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortClass {
    PlainHttp,
    /// Every TLS server (terminated or passed through): told apart by SNI.
    Tls,
    /// Opaque bytes: nothing to tell servers apart by.
    Tcp,
}

impl PortClass {
    fn of(protocol: Protocol) -> PortClass {
        match protocol {
            Protocol::Https | Protocol::Tls => PortClass::Tls,
            Protocol::Http | Protocol::Http2 | Protocol::Grpc | Protocol::GrpcWeb => {
                PortClass::PlainHttp
            }
            Protocol::Tcp | Protocol::Mongo | Protocol::Mysql | Protocol::Redis => PortClass::Tcp,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            PortClass::PlainHttp => "plaintext HTTP",
            PortClass::Tls => "TLS",
            PortClass::Tcp => "TCP",
        }
    }
}

struct PortListener {
    listener: proto::Listener,
    class: PortClass,
    /// TLS hosts already claimed on this port, with the server that claimed them.
    tls_hosts: Vec<(String, String)>,
}

/// Everything a routing builder needs to know about the server it builds for.
pub(super) struct ServerContext<'g> {
    pub gateway: &'g IstioObject<GatewaySpec>,
    pub index: usize,
    pub port: u32,
    pub hosts: Vec<ServerHost>,
}

impl ServerContext<'_> {
    pub fn field(&self) -> String {
        format!("spec.servers[{}]", self.index)
    }

    /// Whether a VirtualService match (its `port`, 0 for any, and its route-level `gateways`)
    /// written in `namespace` applies to this server.
    pub fn match_applies(&self, port: u32, gateways: &[String], namespace: &str) -> bool {
        (port == 0 || port == self.port) && match_applies_to(gateways, namespace, self.gateway)
    }
}

impl<'a> Translator<'a> {
    pub(super) fn listeners(&mut self) -> Vec<proto::Listener> {
        let mut ports: BTreeMap<(String, u32), PortListener> = BTreeMap::new();
        for gateway in self.selected_gateways() {
            for (index, server) in gateway.spec.servers.iter().enumerate() {
                self.add_server(&mut ports, gateway, index, server);
            }
        }
        ports.into_values().map(|port| port.listener).collect()
    }

    fn add_server(
        &mut self,
        ports: &mut BTreeMap<(String, u32), PortListener>,
        gateway: &'a IstioObject<GatewaySpec>,
        index: usize,
        server: &Server,
    ) {
        let item = Item::of("Gateway", gateway);
        let field = format!("spec.servers[{index}]");
        let Some(port) = &server.port else {
            return self.reject(&item, format!("{field}.port"), "server has no port");
        };
        let Some(protocol) = port.protocol() else {
            return self.reject(
                &item,
                format!("{field}.port.protocol"),
                format!("unknown protocol {:?}", port.protocol),
            );
        };
        let bind = if server.bind.is_empty() {
            "0.0.0.0"
        } else {
            &server.bind
        };
        let name = server_name(protocol, port.number, &port.name, gateway);
        let class = PortClass::of(protocol);
        let context = ServerContext {
            gateway,
            index,
            port: port.number,
            hosts: server
                .hosts
                .iter()
                .map(|host| ServerHost::parse(host, gateway.namespace()))
                .collect(),
        };

        let entry = ports
            .entry((bind.to_owned(), port.number))
            .or_insert_with(|| PortListener {
                listener: proto::Listener {
                    name: format!("{bind}_{}", port.number),
                    bind_address: bind.to_owned(),
                    port: port.number,
                    servers: Vec::new(),
                },
                class,
                tls_hosts: Vec::new(),
            });
        if let Some(conflict) = conflict(entry, class, &context.hosts) {
            return self.reject(&item, field, conflict);
        }

        let tls = server.tls.as_ref();
        let mode = tls.map(|tls| tls.mode);
        let routing = match (class, mode) {
            (PortClass::PlainHttp, _) => Some(Routing::RouteTable(
                self.http_route_table(&context, format!("http.{}", port.number)),
            )),
            (PortClass::Tls, Some(ServerTlsMode::AutoPassthrough)) => {
                Some(Routing::AutoPassthrough(self.sni_table(&context)))
            }
            (PortClass::Tls, Some(ServerTlsMode::Passthrough)) => {
                Some(Routing::TlsRoutes(self.tls_routes(&context)))
            }
            (PortClass::Tls, Some(_)) if protocol == Protocol::Https => Some(Routing::RouteTable(
                self.http_route_table(&context, name.clone()),
            )),
            (PortClass::Tls, Some(_)) | (PortClass::Tcp, _) => {
                Some(Routing::TcpRoutes(self.tcp_routes(&context)))
            }
            (PortClass::Tls, None) => {
                return self.reject(
                    &item,
                    field,
                    format!(
                        "server must have TLS settings for {} protocol",
                        protocol.name()
                    ),
                );
            }
        };

        let server_tls = match tls {
            None => None,
            // On plaintext HTTP the only meaningful TLS field is the redirect to HTTPS.
            Some(settings) if class == PortClass::PlainHttp => Some(proto::ServerTls {
                https_redirect: settings.https_redirect,
                ..Default::default()
            }),
            Some(settings) => match self.server_tls(&context, settings) {
                Ok(tls) => Some(tls),
                Err(reason) => return self.reject(&item, format!("{field}.tls"), reason),
            },
        };

        if class == PortClass::Tls {
            for host in &context.hosts {
                entry.tls_hosts.push((host.host.clone(), name.clone()));
            }
        }
        entry.listener.servers.push(proto::Server {
            name,
            protocol: proto_protocol(protocol) as i32,
            hosts: context.hosts.iter().map(|h| h.host.clone()).collect(),
            tls: server_tls,
            routing,
        });
    }

    fn server_tls(
        &mut self,
        context: &ServerContext<'_>,
        settings: &ServerTlsSettings,
    ) -> Result<proto::ServerTls, String> {
        let credential = match settings.mode {
            ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual => {
                self.server_credential(context.gateway, settings)?
            }
            _ => String::new(),
        };
        Ok(proto::ServerTls {
            mode: proto_tls_mode(settings.mode) as i32,
            https_redirect: settings.https_redirect,
            credential,
            subject_alt_names: settings.subject_alt_names.clone(),
            verify_certificate_spki: settings.verify_certificate_spki.clone(),
            verify_certificate_hash: settings.verify_certificate_hash.clone(),
            min_version: proto_tls_version(settings.min_protocol_version) as i32,
            max_version: proto_tls_version(settings.max_protocol_version) as i32,
            cipher_suites: settings.cipher_suites.clone(),
        })
    }
}

/// Why a server cannot join the listener already on its port, if it cannot.
fn conflict(entry: &PortListener, class: PortClass, hosts: &[ServerHost]) -> Option<String> {
    let port = entry.listener.port;
    let first = entry.listener.servers.first()?;
    if entry.class != class {
        return Some(format!(
            "port {port} already serves {} (server {}); a {} server cannot share it: use another port",
            entry.class.describe(),
            first.name,
            class.describe()
        ));
    }
    match class {
        PortClass::PlainHttp => None,
        PortClass::Tcp => Some(format!(
            "port {port} already serves TCP for server {}; two TCP servers cannot share a port",
            first.name
        )),
        PortClass::Tls => hosts.iter().find_map(|host| {
            entry
                .tls_hosts
                .iter()
                .find(|(claimed, _)| covers(claimed, &host.host) || covers(&host.host, claimed))
                .map(|(claimed, server)| {
                    format!(
                        "host {} on port {port} overlaps host {claimed} of server {server}: a TLS connection could not be told apart by SNI",
                        host.host
                    )
                })
        }),
    }
}

/// Istio's server/route name: `<protocol>.<port>.<port name>.<gateway>.<namespace>`.
fn server_name(
    protocol: Protocol,
    port: u32,
    port_name: &str,
    gateway: &IstioObject<GatewaySpec>,
) -> String {
    format!(
        "{}.{port}.{port_name}.{}.{}",
        protocol.name().to_ascii_lowercase(),
        gateway.name(),
        gateway.namespace()
    )
}

pub(super) fn proto_protocol(protocol: Protocol) -> proto::Protocol {
    match protocol {
        Protocol::Http => proto::Protocol::Http,
        Protocol::Https => proto::Protocol::Https,
        Protocol::Grpc => proto::Protocol::Grpc,
        Protocol::GrpcWeb => proto::Protocol::GrpcWeb,
        Protocol::Http2 => proto::Protocol::Http2,
        Protocol::Mongo => proto::Protocol::Mongo,
        Protocol::Mysql => proto::Protocol::Mysql,
        Protocol::Redis => proto::Protocol::Redis,
        Protocol::Tcp => proto::Protocol::Tcp,
        Protocol::Tls => proto::Protocol::Tls,
    }
}

fn proto_tls_mode(mode: ServerTlsMode) -> proto::TlsMode {
    match mode {
        ServerTlsMode::Passthrough => proto::TlsMode::Passthrough,
        ServerTlsMode::Simple => proto::TlsMode::Simple,
        ServerTlsMode::Mutual => proto::TlsMode::Mutual,
        ServerTlsMode::AutoPassthrough => proto::TlsMode::AutoPassthrough,
        ServerTlsMode::IstioMutual => proto::TlsMode::IstioMutual,
        ServerTlsMode::OptionalMutual => proto::TlsMode::OptionalMutual,
    }
}

fn proto_tls_version(version: TlsProtocolVersion) -> proto::TlsVersion {
    match version {
        TlsProtocolVersion::TlsAuto => proto::TlsVersion::TlsAuto,
        TlsProtocolVersion::TlsV1_0 => proto::TlsVersion::Tlsv10,
        TlsProtocolVersion::TlsV1_1 => proto::TlsVersion::Tlsv11,
        TlsProtocolVersion::TlsV1_2 => proto::TlsVersion::Tlsv12,
        TlsProtocolVersion::TlsV1_3 => proto::TlsVersion::Tlsv13,
    }
}
