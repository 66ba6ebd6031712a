//! Resource names: building and parsing `applications/{id}`, `sellers/{id}` and
//! `sellers/{id}/modificationRequests/{id}` (contact names, `accounts/{id}/contacts/{id}`, are
//! in contacts/). The bottom layer: it imports only error.

use kg_runtime::error::ServiceError as _;

use crate::error::RegistrationError;

pub fn parse_application_name(name: &str) -> Result<String, RegistrationError> {
    let id = name.strip_prefix("applications/").unwrap_or_default();
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(RegistrationError::field(
            "name",
            "NAME_INVALID",
            "expected applications/{application_id} with a UUID id",
        ));
    }
    Ok(id.to_string())
}

pub fn parse_seller_name(name: &str) -> Result<String, RegistrationError> {
    let id = name.strip_prefix("sellers/").unwrap_or_default();
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(RegistrationError::field(
            "name",
            "NAME_INVALID",
            "expected sellers/{seller_id} with a UUID id",
        ));
    }
    Ok(id.to_string())
}

pub fn modification_name(seller_id: &str, id: &str) -> String {
    format!("sellers/{seller_id}/modificationRequests/{id}")
}

/// `sellers/{seller_id}/modificationRequests/{id}` → (seller id, request id).
pub fn parse_modification_name(name: &str) -> Result<(String, String), RegistrationError> {
    let invalid = || {
        RegistrationError::field(
            "name",
            "NAME_INVALID",
            "expected sellers/{seller_id}/modificationRequests/{modification_request_id} with UUID ids",
        )
    };
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        ["sellers", seller, "modificationRequests", id]
            if uuid::Uuid::parse_str(seller).is_ok() && uuid::Uuid::parse_str(id).is_ok() =>
        {
            Ok((seller.to_string(), id.to_string()))
        }
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_both_ways() {
        let (s, m) = (
            uuid::Uuid::now_v7().to_string(),
            uuid::Uuid::now_v7().to_string(),
        );
        assert_eq!(
            parse_modification_name(&modification_name(&s, &m)).unwrap(),
            (s.clone(), m)
        );
        assert!(parse_modification_name(&format!("sellers/{s}")).is_err());
        assert!(parse_modification_name("sellers/x/modificationRequests/y").is_err());
    }
}
