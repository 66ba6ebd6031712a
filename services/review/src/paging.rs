//! The page size of List requests, shared by the queue and audit queries (`queries.rs`) and the
//! rejection-reason catalogue (`catalogue.rs`). A leaf: it uses only the error type.

use crate::error::ReviewError;

pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 500;

/// The page size of a List request: 0 means the default, larger values are capped.
pub fn page_size(requested: i32) -> Result<u64, ReviewError> {
    match requested {
        n if n < 0 => Err(ReviewError::field(
            "page_size",
            "PAGE_SIZE_INVALID",
            "page_size must not be negative",
        )),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok(Ord::min(n as u64, MAX_PAGE_SIZE)),
    }
}
