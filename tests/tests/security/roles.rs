//! The services' role tables (each service's `roles.rs`) against the RPCs in proto/ and the
//! matrix in docs/security.md: no RPC ships without roles, and the documentation says what the
//! code enforces.

use std::collections::HashMap;

use kg_runtime::auth::{Role, RoleTable, allowed_roles};

/// The roles the auth layer in front of the service of `path` admits.
fn allowed(path: &str) -> &'static [Role] {
    let tables: [(&str, RoleTable); 4] = [
        (
            kg_proto::identity::identity_check_service_server::SERVICE_NAME,
            kg_identity_check::roles::allowed,
        ),
        (
            kg_proto::registration::registration_service_server::SERVICE_NAME,
            kg_registration::roles::allowed,
        ),
        (
            kg_proto::review::review_service_server::SERVICE_NAME,
            kg_review::roles::allowed,
        ),
        (
            kg_proto::notification::notification_service_server::SERVICE_NAME,
            kg_notification::roles::allowed,
        ),
    ];
    tables
        .iter()
        .map(|(service, table)| allowed_roles(service, *table, path))
        .find(|roles| !roles.is_empty())
        .unwrap_or(&[])
}

#[test]
fn the_matrix_keeps_internal_rpcs_for_services() {
    assert_eq!(
        allowed("/koogallery.registration.v1.RegistrationService/ApplyReviewDecision"),
        &[Role::Service]
    );
    assert!(
        !allowed("/koogallery.review.v1.ReviewService/ApproveReviewTask")
            .contains(&Role::Applicant)
    );
    assert!(allowed("/unknown.Service/Method").is_empty());
}

/// Every RPC of every service in `proto/` (the generated descriptor set), as `/pkg.Service/Method`.
fn every_rpc() -> Vec<String> {
    use prost::Message as _;
    let set = prost_types::FileDescriptorSet::decode(kg_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut paths = Vec::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                paths.push(format!(
                    "/{}.{}/{}",
                    file.package(),
                    service.name(),
                    method.name()
                ));
            }
        }
    }
    assert!(
        paths.len() > 20,
        "the descriptor set lists the services: {paths:?}"
    );
    paths
}

#[test]
fn every_rpc_in_the_protos_has_roles_in_the_matrix() {
    let unlisted: Vec<String> = every_rpc()
        .into_iter()
        .filter(|p| allowed(p).is_empty())
        .collect();
    assert!(
        unlisted.is_empty(),
        "RPCs without an entry in their service's roles.rs (and docs/security.md): {unlisted:?}"
    );
}

/// docs/security.md's matrix is the code's: one row per RPC, the same roles.
#[test]
fn the_documented_matrix_is_the_enforced_one() {
    let doc = include_str!("../../../docs/security.md");
    let mut documented = HashMap::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[1].starts_with("`/") {
            continue;
        }
        let path = cells[1].trim_matches('`').to_string();
        let mut roles: Vec<&str> = cells[2]
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .collect();
        roles.sort_unstable();
        documented.insert(path, roles);
    }
    let mut problems = Vec::new();
    for path in every_rpc() {
        let mut enforced: Vec<&str> = allowed(&path).iter().map(|r| r.as_str()).collect();
        enforced.sort_unstable();
        match documented.remove(&path) {
            None => problems.push(format!("{path}: not in docs/security.md")),
            Some(roles) if roles != enforced => problems.push(format!(
                "{path}: docs say {roles:?}, code enforces {enforced:?}"
            )),
            Some(_) => {}
        }
    }
    for path in documented.keys() {
        problems.push(format!("{path}: documented but not in proto/"));
    }
    assert!(
        problems.is_empty(),
        "docs/security.md out of sync:\n{}",
        problems.join("\n")
    );
}
