//! The names an RPC is known by in spans and metrics, shared by [`crate::telemetry`] and
//! [`crate::metrics`] (which re-exports them): the method label, the status code's name and the
//! side of the call. A leaf: it imports nothing else of this crate.

use std::collections::HashSet;
use std::sync::OnceLock;

/// Which end of a call a [`CallMetrics`](crate::metrics::CallMetrics) measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
}

/// `package.Service/Method` of a request path, or `_OTHER` when no service here has it: the
/// label set stays bounded whatever paths callers send (the conventions' rule for unknown
/// methods).
pub fn method_label(path: &str) -> String {
    let method = path.trim_start_matches('/');
    if known_methods().contains(method) {
        method.to_string()
    } else {
        "_OTHER".to_string()
    }
}

/// Every method of the mesh's services, health and reflection, from their descriptor sets.
fn known_methods() -> &'static HashSet<String> {
    static KNOWN: OnceLock<HashSet<String>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        use prost::Message;
        let mut known = HashSet::new();
        for encoded in [
            kg_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ] {
            let Ok(set) = prost_types::FileDescriptorSet::decode(encoded) else {
                continue;
            };
            for file in set.file {
                let package = file.package.unwrap_or_default();
                for service in file.service {
                    let service_name = service.name.unwrap_or_default();
                    for method in service.method {
                        known.insert(format!(
                            "{package}.{service_name}/{}",
                            method.name.unwrap_or_default()
                        ));
                    }
                }
            }
        }
        for version in ["v1", "v1alpha"] {
            known.insert(format!(
                "grpc.reflection.{version}.ServerReflection/ServerReflectionInfo"
            ));
        }
        known
    })
}

/// The canonical upper-case name of a gRPC status code, as other gRPC tooling labels it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_paths_share_one_label() {
        assert_eq!(
            method_label("/grpc.health.v1.Health/Check"),
            "grpc.health.v1.Health/Check"
        );
        assert_eq!(method_label("/x.Y/Z"), "_OTHER");
    }
}
