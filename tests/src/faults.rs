//! The fault suite's ledger. Each fault test appends one JSON line to the file named by
//! `KG_FAULT_REPORT`; `scripts/test` prints the lines as one table (tests/fault_summary.py) and
//! fails if anything was lost or duplicated. Without the variable nothing is written.

use std::io::Write as _;

#[derive(Debug, serde::Serialize)]
pub struct FaultRecord<'a> {
    /// The test, `file::function`.
    pub test: &'a str,
    /// What was broken: "review service down", "Redis killed", …
    pub fault: &'a str,
    /// Requests (or events) pushed through while the fault was on.
    pub load: u64,
    /// Faults injected (kills, outages, restarts).
    pub faults: u64,
    /// Hostile inputs thrown at the services.
    pub bad_inputs: u64,
    /// Records that should exist and do not.
    pub lost: u64,
    /// Records that exist more than once.
    pub duplicates: u64,
}

pub fn record(entry: FaultRecord<'_>) {
    let Ok(path) = std::env::var("KG_FAULT_REPORT") else {
        return;
    };
    let backend = match crate::mesh::backend() {
        crate::mesh::Backend::Postgres => "postgres",
        crate::mesh::Backend::Sqlite => "sqlite",
    };
    let Ok(mut value) = serde_json::to_value(&entry) else {
        return;
    };
    value["backend"] = serde_json::Value::from(backend);
    let line = value.to_string();
    // One write of a short line to a file opened for append: lines of concurrent tests
    // do not interleave.
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = file.write_all(format!("{line}\n").as_bytes());
    }
}
