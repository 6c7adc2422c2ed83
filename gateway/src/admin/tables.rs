//! Istio-style tables of the admin listings, for `isthmus proxy-config`. Pure: rows in,
//! text out.
//!
//! Columns are separated by at least one space and padded to their widest cell, the last
//! column unpadded, as istioctl's tab writer prints them.

use super::views::{ClusterView, EndpointView, ListenerView};

/// `ADDRESS PORT MATCH DESTINATION`, one row per match.
pub fn listeners_table(listeners: &[ListenerView]) -> String {
    let mut rows = vec![row(["ADDRESS", "PORT", "MATCH", "DESTINATION"])];
    for listener in listeners {
        let port = listener.port.to_string();
        // The UDP twin of a port shares its address and port: mark which one a row is.
        let address = if listener.transport.is_empty() {
            listener.address.clone()
        } else {
            format!("{}/{}", listener.address, listener.transport)
        };
        if listener.matches.is_empty() {
            rows.push(row([&address, &port, "ALL", "-"]));
        }
        for matched in &listener.matches {
            rows.push(row([
                &address,
                &port,
                &matched.matcher,
                &matched.destination,
            ]));
        }
    }
    render(&rows)
}

/// `SERVICE FQDN PORT SUBSET DIRECTION TYPE DESTINATION RULE`.
pub fn clusters_table(clusters: &[ClusterView]) -> String {
    let mut rows = vec![row([
        "SERVICE FQDN",
        "PORT",
        "SUBSET",
        "DIRECTION",
        "TYPE",
        "DESTINATION RULE",
    ])];
    for cluster in clusters {
        rows.push(row([
            &cluster.service,
            &cluster.port.to_string(),
            or_dash(&cluster.subset),
            &cluster.direction,
            &cluster.kind,
            &cluster.destination_rule,
        ]));
    }
    render(&rows)
}

/// `ENDPOINT STATUS OUTLIER CHECK CLUSTER`, plus the endpoint's network.
pub fn endpoints_table(endpoints: &[EndpointView]) -> String {
    let mut rows = vec![row([
        "ENDPOINT",
        "STATUS",
        "OUTLIER CHECK",
        "CLUSTER",
        "NETWORK",
    ])];
    for endpoint in endpoints {
        rows.push(row([
            &endpoint.endpoint,
            &endpoint.status,
            &endpoint.outlier_check,
            &endpoint.cluster,
            or_dash(&endpoint.network),
        ]));
    }
    render(&rows)
}

fn or_dash(value: &str) -> &str {
    if value.is_empty() { "-" } else { value }
}

fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|cell| (*cell).to_owned()).collect()
}

fn render(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if column + 1 < row.len() {
                let pad = widths[column] - cell.chars().count() + 1;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::views::MatchView;

    #[test]
    fn listeners_render_like_istioctl() {
        let listeners = vec![
            ListenerView {
                name: "0.0.0.0_15443".into(),
                address: "0.0.0.0".into(),
                port: 15443,
                transport: String::new(),
                bound: None,
                matches: vec![MatchView {
                    matcher: "SNI: outbound_.9080_._.reviews.default.svc.cluster.local".into(),
                    destination: "Cluster: outbound|9080||reviews.default.svc.cluster.local".into(),
                }],
            },
            ListenerView {
                name: "0.0.0.0_31400".into(),
                address: "0.0.0.0".into(),
                port: 31400,
                transport: String::new(),
                bound: None,
                matches: vec![MatchView {
                    matcher: "ALL".into(),
                    destination: "Cluster: outbound|9000|v1|tcp-echo.default.svc.cluster.local"
                        .into(),
                }],
            },
        ];
        let table = listeners_table(&listeners);
        let expected = "\
ADDRESS PORT  MATCH                                                    DESTINATION
0.0.0.0 15443 SNI: outbound_.9080_._.reviews.default.svc.cluster.local Cluster: outbound|9080||reviews.default.svc.cluster.local
0.0.0.0 31400 ALL                                                      Cluster: outbound|9000|v1|tcp-echo.default.svc.cluster.local
";
        assert_eq!(table, expected);
    }

    #[test]
    fn clusters_and_endpoints_fill_empty_cells() {
        let clusters = vec![ClusterView {
            name: "outbound|9080||reviews.default.svc.cluster.local".into(),
            service: "reviews.default.svc.cluster.local".into(),
            port: 9080,
            subset: String::new(),
            direction: "outbound".into(),
            kind: "EDS".into(),
            destination_rule: String::new(),
            load_balancer: "RoundRobin".into(),
            endpoints: 1,
        }];
        assert_eq!(
            clusters_table(&clusters),
            "\
SERVICE FQDN                      PORT SUBSET DIRECTION TYPE DESTINATION RULE
reviews.default.svc.cluster.local 9080 -      outbound  EDS
"
        );
        let endpoints = vec![EndpointView {
            endpoint: "10.244.0.5:9080".into(),
            status: "HEALTHY".into(),
            outlier_check: "FAILED".into(),
            cluster: "outbound|9080||reviews.default.svc.cluster.local".into(),
            network: "network-2".into(),
            weight: 1,
            active_connections: 0,
            network_gateway: false,
        }];
        assert_eq!(
            endpoints_table(&endpoints),
            "\
ENDPOINT        STATUS  OUTLIER CHECK CLUSTER                                          NETWORK
10.244.0.5:9080 HEALTHY FAILED        outbound|9080||reviews.default.svc.cluster.local network-2
"
        );
    }

    #[test]
    fn views_round_trip_through_json() {
        let view = ListenerView {
            name: "0.0.0.0_443".into(),
            address: "0.0.0.0".into(),
            port: 443,
            transport: String::new(),
            bound: Some("127.0.0.1:40000".into()),
            matches: vec![MatchView {
                matcher: "SNI: nginx.example.com".into(),
                destination: "Cluster: outbound|443||my-nginx".into(),
            }],
        };
        let json = serde_json::to_string(&view).unwrap();
        assert!(
            json.contains("\"match\":\"SNI: nginx.example.com\""),
            "{json}"
        );
        let back: ListenerView = serde_json::from_str(&json).unwrap();
        assert_eq!(back, view);
    }
}
