//! Compiles `proto/` with protox (a pure-Rust protobuf compiler), so no system `protoc` is needed.
//!
//! Two outputs: Rust code for `proto/` only, and the descriptor set server reflection serves,
//! which also holds what the services put in a `grpc-status-details-bin` (google.rpc.Status and
//! its error details, vendored in `third_party/` from tonic-types) and every google.protobuf
//! well-known type, so that grpcurl and other reflection clients decode error details.

use std::path::{Path, PathBuf};

use prost::Message;

/// Files served by reflection besides `proto/`: protox ships the well-known types itself.
const EXTRA_FILES: &[&str] = &[
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
    "google/protobuf/any.proto",
    "google/protobuf/api.proto",
    "google/protobuf/descriptor.proto",
    "google/protobuf/duration.proto",
    "google/protobuf/empty.proto",
    "google/protobuf/field_mask.proto",
    "google/protobuf/source_context.proto",
    "google/protobuf/struct.proto",
    "google/protobuf/timestamp.proto",
    "google/protobuf/type.proto",
    "google/protobuf/wrappers.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest.join("../../proto").canonicalize()?;
    let third_party = manifest.join("third_party").canonicalize()?;
    println!("cargo:rerun-if-changed={}", root.display());
    println!("cargo:rerun-if-changed={}", third_party.display());

    let mut files = Vec::new();
    collect_protos(&root, &mut files)?;
    files.sort();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut served: Vec<PathBuf> = files.clone();
    served.extend(EXTRA_FILES.iter().map(PathBuf::from));
    let reflected = protox::compile(&served, [&root, &third_party])?;
    std::fs::write(
        out.join("koogallery_descriptor.bin"),
        reflected.encode_to_vec(),
    )?;

    let descriptors = protox::compile(&files, [&root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
