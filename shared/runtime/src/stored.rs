//! Protobuf messages stored in database columns, decoded fail-closed.
//!
//! Bytes that are present but do not decode are never read as an empty (default) message: a
//! handler that did so would answer with made-up data, or write it back over the real record.
//! [`decode`] refuses them with a [`StoredCorrupt`] instead, logged once (at error level) with
//! the column and the row's key; each service maps it to INTERNAL with the reason
//! STORED_DATA_CORRUPT and writes nothing. A column that is NULL is not corrupt:
//! [`decode_opt`] keeps it `None`.
//!
//! Code that can only return a database error (helpers shared by transactions) carries the
//! fault inside a [`DbErr`] (`?` converts it); [`StoredCorrupt::in_db_err`] finds it again, so
//! that the service still answers STORED_DATA_CORRUPT rather than "database unavailable". An
//! outbox delivery that meets one is refused (and ends as a dead letter).

use std::sync::Arc;

use prost::Message;
use sea_orm::DbErr;

/// A stored message whose bytes do not decode.
#[derive(Debug, Clone, thiserror::Error)]
#[error("stored {what} of {key} does not decode: {source}")]
pub struct StoredCorrupt {
    /// The table and column, e.g. `registration_sellers.profile`.
    pub what: &'static str,
    /// The row's key, as a resource name where there is one (e.g. `sellers/{id}`).
    pub key: String,
    /// The decoder's complaint (protobuf, or JSON for the few JSON columns).
    #[source]
    pub source: Arc<dyn std::error::Error + Send + Sync>,
}

/// `bytes` (the column `what` of the row `key`) as an `M`; bytes that do not decode are an
/// error, logged here.
pub fn decode<M: Message + Default>(
    bytes: &[u8],
    what: &'static str,
    key: &str,
) -> Result<M, StoredCorrupt> {
    M::decode(bytes).map_err(|source| corrupt(what, key, bytes.len(), source))
}

/// The JSON column `what` of the row `key` as a `T`, fail-closed like [`decode`].
pub fn decode_json<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &'static str,
    key: &str,
) -> Result<T, StoredCorrupt> {
    serde_json::from_str(text).map_err(|source| corrupt(what, key, text.len(), source))
}

fn corrupt(
    what: &'static str,
    key: &str,
    len: usize,
    source: impl std::error::Error + Send + Sync + 'static,
) -> StoredCorrupt {
    tracing::error!(
        column = what,
        key,
        len,
        error = %source,
        "stored message does not decode; refusing to use or overwrite it"
    );
    StoredCorrupt {
        what,
        key: key.to_string(),
        source: Arc::new(source),
    }
}

/// [`decode`] for a nullable column: NULL stays `None`.
pub fn decode_opt<M: Message + Default>(
    bytes: Option<&[u8]>,
    what: &'static str,
    key: &str,
) -> Result<Option<M>, StoredCorrupt> {
    bytes.map(|b| decode(b, what, key)).transpose()
}

impl StoredCorrupt {
    /// The fault carried by a database error made from it (`From<StoredCorrupt> for DbErr`).
    pub fn in_db_err(err: &DbErr) -> Option<&StoredCorrupt> {
        match err {
            DbErr::TryIntoErr { source, .. } => source.downcast_ref::<StoredCorrupt>(),
            _ => None,
        }
    }
}

impl From<StoredCorrupt> for DbErr {
    fn from(err: StoredCorrupt) -> Self {
        DbErr::TryIntoErr {
            from: "stored bytes",
            into: "protobuf message",
            source: Arc::new(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_null_is_none_and_the_fault_survives_a_db_err() {
        let good = prost_types::Timestamp {
            seconds: 7,
            nanos: 0,
        }
        .encode_to_vec();
        let t: prost_types::Timestamp = decode(&good, "t.c", "k").unwrap();
        assert_eq!(t.seconds, 7);
        // empty bytes are a valid (default) message
        let empty: prost_types::Timestamp = decode(&[], "t.c", "k").unwrap();
        assert_eq!(empty, Default::default());
        assert_eq!(
            decode_opt::<prost_types::Timestamp>(None, "t.c", "k").unwrap(),
            None
        );

        let err =
            decode::<prost_types::Timestamp>(&[0xFF, 0xFF, 0xFF], "t.c", "rows/1").unwrap_err();
        assert_eq!((err.what, err.key.as_str()), ("t.c", "rows/1"));
        assert!(
            decode_opt::<prost_types::Timestamp>(Some(&[0xFF]), "t.c", "k").is_err(),
            "present but corrupt"
        );

        let db: DbErr = err.into();
        let back = StoredCorrupt::in_db_err(&db).expect("carried");
        assert_eq!(back.key, "rows/1");
        assert!(StoredCorrupt::in_db_err(&DbErr::Custom("x".into())).is_none());
    }

    #[test]
    fn a_json_column_that_does_not_parse_is_an_error_not_an_empty_list() {
        let ok: Vec<String> = decode_json(r#"["a"]"#, "t.changes", "k").unwrap();
        assert_eq!(ok, ["a"]);
        let err = decode_json::<Vec<String>>("{not json", "t.changes", "rows/2").unwrap_err();
        assert_eq!((err.what, err.key.as_str()), ("t.changes", "rows/2"));
    }
}
