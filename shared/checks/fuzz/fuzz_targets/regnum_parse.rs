//! Registration number parsing must never panic, and normalization must be idempotent.
#![no_main]

use kg_checks::regnum::{normalize, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first two characters play the country, the rest the number.
    let split = text.char_indices().nth(2).map_or(text.len(), |(i, _)| i);
    let (country, raw) = text.split_at(split);
    let _ = parse(country, raw);
    for country in ["CN", "HK", "SG", "GB", "DE", "US", "FR", "JP", "IN", "BR"] {
        if let Ok(number) = parse(country, text) {
            // An accepted number is already normalized and parses to itself.
            assert_eq!(normalize(&number.number), number.number);
            assert!(parse(country, &number.number).is_ok());
        }
    }
    let once = normalize(text);
    assert_eq!(normalize(&once), once);
});
