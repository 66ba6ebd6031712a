//! List paging, the same in every service (AIP-158): `page_size` 0 is the default, a larger
//! value than the maximum is capped, a negative one is refused (PAGE_SIZE_INVALID); page tokens
//! are opaque, say where the last page ended and are bound to the filters of the request that
//! got them, so a token is accepted only with the same filters (INVALID_PAGE_TOKEN otherwise).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest as _, Sha256};

use crate::error::{CommonError, Violations};

pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 500;
/// Longer tokens are refused before they are decoded.
pub const MAX_TOKEN_BYTES: usize = 1024;

/// The page size of a List request; a negative one is recorded in `violations` (and the default
/// returned, so that the other fields are still checked).
pub fn page_size(requested: i32, violations: &mut Violations) -> u64 {
    match requested {
        n if n < 0 => {
            violations.add(
                "page_size",
                "PAGE_SIZE_INVALID",
                "page_size must not be negative",
            );
            DEFAULT_PAGE_SIZE
        }
        0 => DEFAULT_PAGE_SIZE,
        n => Ord::min(n as u64, MAX_PAGE_SIZE),
    }
}

/// What a token holds: the key of the last row of its page and the hash of its filters.
#[derive(Serialize, serde::Deserialize)]
struct Token<K> {
    #[serde(rename = "a")]
    after: K,
    #[serde(rename = "f")]
    filters: String,
}

/// One List request's paging: its size and the hash of its filters.
#[derive(Debug, Clone)]
pub struct Paging {
    size: u64,
    filters: String,
}

impl Paging {
    /// `filters`: every request field that narrows the list, in a fixed order.
    pub fn new(size: u64, filters: &impl Serialize) -> Self {
        let canonical = serde_json::to_vec(filters).unwrap_or_default();
        Self {
            size,
            filters: hex::encode(&Sha256::digest(canonical)[..12]),
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// How many rows to read: one more than a page, to know whether another page follows.
    pub fn fetch_limit(&self) -> u64 {
        self.size + 1
    }

    /// The key the page starts after; `None` for the first page (an empty token).
    pub fn after<K: DeserializeOwned>(&self, page_token: &str) -> Result<Option<K>, CommonError> {
        if page_token.is_empty() {
            return Ok(None);
        }
        if page_token.len() > MAX_TOKEN_BYTES {
            return Err(CommonError::InvalidPageToken);
        }
        let token: Token<K> = URL_SAFE_NO_PAD
            .decode(page_token)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(CommonError::InvalidPageToken)?;
        if token.filters != self.filters {
            return Err(CommonError::InvalidPageToken);
        }
        Ok(Some(token.after))
    }

    /// Cuts `rows` (read with [`Paging::fetch_limit`]) to one page and returns the next page's
    /// token, empty on the last page.
    pub fn finish<T, K: Serialize>(&self, rows: &mut Vec<T>, key: impl FnOnce(&T) -> K) -> String {
        if rows.len() as u64 <= self.size {
            return String::new();
        }
        rows.truncate(self.size as usize);
        let Some(last) = rows.last() else {
            return String::new();
        };
        let token = Token {
            after: key(last),
            filters: self.filters.clone(),
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_default_cap_and_refuse_negatives() {
        let mut v = Violations::default();
        assert_eq!(page_size(0, &mut v), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(7, &mut v), 7);
        assert_eq!(page_size(i32::MAX, &mut v), MAX_PAGE_SIZE);
        assert!(v.is_empty());
        page_size(-1, &mut v);
        assert_eq!(v.0[0].reason, "PAGE_SIZE_INVALID");
    }

    #[test]
    fn a_token_walks_the_rows_and_only_with_its_filters() {
        let paging = Paging::new(2, &("acct-1", ["PENDING"]));
        let mut rows = vec![10, 20, 30];
        let token = paging.finish(&mut rows, |r| *r);
        assert_eq!(rows, [10, 20]);
        assert_eq!(paging.after::<i32>(&token).unwrap(), Some(20));
        assert_eq!(paging.after::<i32>("").unwrap(), None);

        let other = Paging::new(2, &("acct-2", ["PENDING"]));
        assert!(matches!(
            other.after::<i32>(&token),
            Err(CommonError::InvalidPageToken)
        ));
        for garbage in ["garbage!", "bm90LWEtdG9rZW4", &"A".repeat(2000)] {
            assert!(paging.after::<i32>(garbage).is_err(), "{garbage}");
        }
        // the last page has no next token
        let mut last = vec![1, 2];
        assert_eq!(paging.finish(&mut last, |r| *r), "");
    }
}
