//! A stored contact as the wire `Contact`.

use kg_proto::registration::{Contact, ContactState, DeliveryFailureSource};

use super::{Source, State, contact_name};
use crate::store::contact;
use crate::view::timestamp;

pub fn contact(row: &contact::Model) -> Contact {
    let state = State::parse(&row.state).map_or(ContactState::Unspecified, State::wire);
    let open_code = row.code_sha256.is_some() && state != ContactState::Verified;
    Contact {
        name: contact_name(&row.account_id, &row.contact_id),
        account_id: row.account_id.clone(),
        email: row.email.clone(),
        state: state as i32,
        verify_time: row.verify_time.map(timestamp),
        code_expire_time: row.code_expire_time.filter(|_| open_code).map(timestamp),
        failure_count: row.failure_count,
        last_failure: row.last_failure.clone().unwrap_or_default(),
        last_failure_source: row
            .last_failure_source
            .as_deref()
            .and_then(Source::parse)
            .map_or(DeliveryFailureSource::Unspecified, Source::wire)
            as i32,
        last_failure_time: row.last_failure_time.map(timestamp),
        create_time: Some(timestamp(row.create_time)),
        update_time: Some(timestamp(row.update_time)),
    }
}
