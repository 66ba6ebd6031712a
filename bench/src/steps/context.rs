//! What the steps share: the plan, the clients, the ids still free, the submission they copy,
//! and what they collect for the report besides their own figures.

use std::sync::{Arc, Mutex};

use kg_proto::registration::SubmitApplicationRequest;

use crate::clients::{Clients, Ids};
use crate::plan::Plan;
use crate::report::Outbox;

pub struct Ctx<'a> {
    pub plan: &'a Plan,
    pub clients: Clients,
    pub ids: Ids,
    /// Every submission is a copy of this one with its own account and company entity.
    pub template: SubmitApplicationRequest,
    /// The applications SubmitApplication stored on registration's first database: what (d)
    /// reads.
    pub submitted: Stored,
    pub outbox: Outbox,
    /// Sentences for the report's notes, in the order the steps ran.
    pub notes: Vec<String>,
}

/// An application a step stored, and the account that owns it: applicants read only their own.
#[derive(Debug, Clone)]
pub struct Owned {
    pub name: String,
    pub account_id: String,
}

/// Applications stored by concurrent requests; clones share the list.
#[derive(Clone, Default)]
pub struct Stored(Arc<Mutex<Vec<Owned>>>);

impl Stored {
    pub fn push(&self, app: Owned) {
        self.0.lock().expect("stored").push(app);
    }

    pub fn snapshot(&self) -> Vec<Owned> {
        self.0.lock().expect("stored").clone()
    }
}
