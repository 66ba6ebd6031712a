//! The cross-service tests that share no process-wide state, one module per area, in one test
//! binary (one link of the four services instead of one per file). Each area's module says what
//! it covers. The log-capturing security tests (`tests/tests/security`) and the OpenTelemetry
//! tests (`tests/tests/telemetry`) install process-wide subscribers and run in binaries of
//! their own.

mod contracts;
mod corrupt_rows;
mod db_sessions;
mod duplicates;
mod e2e;
mod events;
mod harness_selftest;
mod health;
mod identity_checks;
mod lifecycle;
mod notification;
mod observability;
mod resubmit;
mod review;
mod submission;
