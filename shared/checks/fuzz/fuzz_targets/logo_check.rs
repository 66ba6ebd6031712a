//! The logo check must never panic, whatever the bytes.
#![no_main]

use kg_checks::logo::{LogoPolicy, check_logo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let policy = LogoPolicy::default();
    let _ = check_logo(&policy, data, None, None);
    let _ = check_logo(&policy, data, Some("image/png"), Some("logo.png"));
});
