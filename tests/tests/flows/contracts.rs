//! What the proto comments promise, checked against the code where a machine can check it:
//! every ErrorInfo reason is an `ErrorReason` value (declared, documented, and emitted by some
//! code), and the message limits the protos state are the services' `MAX_MESSAGE_BYTES`. The
//! roles per RPC are checked against docs/security.md by kg-runtime's
//! `auth::tests::the_documented_matrix_is_the_enforced_one`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use prost::Message;
use prost_types::FileDescriptorSet;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under the services' and the shared runtime's `src/`.
fn sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
    }
    let mut out = Vec::new();
    for service in ["identity-check", "registration", "review", "notification"] {
        walk(&repo().join("services").join(service).join("src"), &mut out);
    }
    walk(&repo().join("shared/runtime/src"), &mut out);
    out
}

/// `(name, leading comment)` of every value of koogallery.common.v1.ErrorReason that is not
/// deprecated (a deprecated value is kept for clients and no longer raised).
fn error_reasons() -> Vec<(String, String)> {
    let set = FileDescriptorSet::decode(kg_proto::FILE_DESCRIPTOR_SET).unwrap();
    let file = set
        .file
        .iter()
        .find(|f| f.name() == "koogallery/common/v1/error_reason.proto")
        .expect("error_reason.proto is in the descriptor set");
    let (index, reason) = file
        .enum_type
        .iter()
        .enumerate()
        .find(|(_, e)| e.name() == "ErrorReason")
        .unwrap();
    let info = file.source_code_info.as_ref().expect("source info kept");
    reason
        .value
        .iter()
        .enumerate()
        .filter(|(_, value)| !value.options.as_ref().is_some_and(|o| o.deprecated()))
        .map(|(i, value)| {
            // path of a value: [5 = enum_type, enum index, 2 = value, value index]
            let path = [5, index as i32, 2, i as i32];
            let comment = info
                .location
                .iter()
                .find(|l| l.path == path)
                .and_then(|l| l.leading_comments.clone())
                .unwrap_or_default();
            (value.name().to_string(), comment.trim().to_string())
        })
        .collect()
}

/// `ACCOUNT_NOT_FOUND` -> `AccountNotFound`, as prost names the variant.
fn variant(name: &str) -> String {
    name.split('_')
        .map(|w| w[..1].to_string() + &w[1..].to_lowercase())
        .collect()
}

#[test]
fn every_error_reason_is_documented_with_its_domains_and_status() {
    let domains = ["auth", "identity", "registration", "review", "notification"];
    let codes = [
        "INVALID_ARGUMENT",
        "FAILED_PRECONDITION",
        "OUT_OF_RANGE",
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
        "NOT_FOUND",
        "ABORTED",
        "ALREADY_EXISTS",
        "RESOURCE_EXHAUSTED",
        "UNAVAILABLE",
        "INTERNAL",
    ];
    let reasons = error_reasons();
    assert!(reasons.len() > 40, "{reasons:?}");
    for (name, comment) in &reasons[1..] {
        // "<domain>, <domain>; <STATUS> (...) ... . <what it means>"
        let (who, rest) = comment
            .split_once(';')
            .unwrap_or_else(|| panic!("{name}: comment {comment:?} names no domain"));
        for domain in who.split(',').map(str::trim) {
            assert!(
                domains.contains(&domain),
                "{name}: unknown domain {domain:?}"
            );
        }
        let rest = rest.trim();
        assert!(
            codes.iter().any(|c| rest.starts_with(c)),
            "{name}: comment {comment:?} does not start with its status code"
        );
        assert!(rest.len() > 30, "{name}: say what it means: {comment:?}");
    }
}

#[test]
fn every_declared_reason_is_emitted_and_nothing_else_is() {
    let sources = sources();
    let all: String = sources.iter().map(|(_, t)| t.as_str()).collect();
    // Declared => emitted: a value no code uses documents an error that never happens.
    // (PERMISSION_DENIED, deprecated, is the one value no longer raised.)
    let unused: Vec<_> = error_reasons()[1..]
        .iter()
        .map(|(name, _)| name.clone())
        .filter(|name| !all.contains(&format!("ErrorReason::{}", variant(name))))
        .collect();
    assert!(unused.is_empty(), "declared but never emitted: {unused:?}");

    // Emitted => declared: `ApiError::new` takes only an ErrorReason, so the ways around it
    // are a string handed to `set_error_info` or an `ApiError` built field by field.
    let mut bypasses = BTreeSet::new();
    for (path, text) in &sources {
        for (at, _) in text.match_indices("set_error_info(") {
            let args = text[at + "set_error_info(".len()..].trim_start();
            if !args.starts_with("ErrorReason::")
                && !args.starts_with("crate::error::ErrorReason::")
                && !args.starts_with("err.reason")
            {
                bypasses.insert(format!(
                    "{}: set_error_info({})",
                    path.display(),
                    &args[..40.min(args.len())]
                ));
            }
        }
        // a struct literal, not a function returning one (`-> ApiError {`)
        let literal = text
            .match_indices("ApiError {")
            .any(|(at, _)| !text[..at].ends_with("-> "));
        if literal && !path.ends_with("runtime/src/error.rs") {
            bypasses.insert(format!("{}: builds an ApiError literally", path.display()));
        }
    }
    assert!(
        bypasses.is_empty(),
        "reasons outside ErrorReason: {bypasses:#?}"
    );
}

#[test]
fn the_message_limits_in_the_protos_are_the_services() {
    let mib = |service: &str| -> Option<u64> {
        let lib = std::fs::read_to_string(repo().join("services").join(service).join("src/lib.rs"))
            .unwrap();
        let line = lib
            .lines()
            .find(|l| l.contains("MAX_MESSAGE_BYTES: usize ="))?;
        let expr = line.split('=').nth(1)?.trim().trim_end_matches(';');
        let bytes: u64 = expr
            .split('*')
            .map(|f| f.trim().parse::<u64>().unwrap())
            .product();
        Some(bytes / (1024 * 1024))
    };
    // notification sets no limit of its own: tonic's default, 4 MiB
    let limits: Vec<(&str, u64)> = ["identity-check", "registration", "review", "notification"]
        .into_iter()
        .map(|s| (s, mib(s).unwrap_or(4)))
        .collect();
    assert_eq!(
        limits,
        [
            ("identity-check", 6),
            ("registration", 6),
            ("review", 6),
            ("notification", 4)
        ],
        "the services changed their limits: update common.proto and error_reason.proto"
    );
    let squash = |p: &str| {
        std::fs::read_to_string(repo().join("proto/koogallery/common/v1").join(p))
            .unwrap()
            .replace("//", " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        squash("common.proto").contains(
            "(6 MiB for identity, registration and review, gRPC's default of 4 MiB for notification"
        ),
        "common.proto's MESSAGE_TOO_LARGE limits"
    );
    assert!(
        squash("error_reason.proto")
            .contains("(6 MiB for identity, registration and review, 4 MiB for notification)"),
        "error_reason.proto's MESSAGE_TOO_LARGE limits"
    );
}
