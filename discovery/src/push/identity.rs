//! Checks the identity a gateway announces in its `Hello`.
//!
//! Discovery selects Gateway resources and computes the split-horizon view from these fields;
//! an empty one would silently select nothing (or the wrong network), so it is refused up front.

use multicluster::proto::GatewayIdentity;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "gateway hello has an empty `{field}`; configure the gateway's {field} so discovery can \
         select its configuration"
    )]
    MissingField { field: &'static str },
}

/// Returns the first required field that is empty, in the order name, namespace, cluster,
/// network.
pub fn check(identity: &GatewayIdentity) -> Result<(), IdentityError> {
    let required = [
        ("name", &identity.name),
        ("namespace", &identity.namespace),
        ("cluster", &identity.cluster),
        ("network", &identity.network),
    ];
    for (field, value) in required {
        if value.trim().is_empty() {
            return Err(IdentityError::MissingField { field });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete() -> GatewayIdentity {
        GatewayIdentity {
            name: "eastwest".into(),
            namespace: "istio-system".into(),
            cluster: "cluster-1".into(),
            network: "network-1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn complete_identity_passes() {
        assert_eq!(check(&complete()), Ok(()));
    }

    #[test]
    fn each_missing_field_is_named() {
        type Blank = fn(&mut GatewayIdentity);
        let cases: [(&str, Blank); 4] = [
            ("name", |id| id.name.clear()),
            ("namespace", |id| id.namespace.clear()),
            ("cluster", |id| id.cluster.clear()),
            ("network", |id| id.network = "  ".into()),
        ];
        for (field, blank) in cases {
            let mut identity = complete();
            blank(&mut identity);
            let error = check(&identity).expect_err(field);
            assert!(
                error.to_string().contains(&format!("empty `{field}`")),
                "{field}: {error}"
            );
        }
    }
}
