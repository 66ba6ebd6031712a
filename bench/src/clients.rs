//! The bench's gRPC clients of the mesh, each with the token of the role it calls as, and the
//! fresh accounts and company entities the submitting steps draw.

use anyhow::{Context as _, bail};
use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_proto::identity::{Account, ImportAccountsRequest};
use kg_runtime::auth::Role;
use kg_tests::fixtures;
use tonic::transport::Channel;

use crate::mesh::Mesh;
use crate::tokens::{Bearer, Tokens};
use crate::{db, procs};

/// The channels, `connections` each to the targets under load, and the tokens of the fixed
/// roles; applicants' tokens are minted per account by the steps, from `tokens`.
pub struct Clients {
    pub echo: Vec<Channel>,
    pub registration: Vec<Channel>,
    pub identity: Channel,
    pub review: Channel,
    pub notification: Channel,
    pub tokens: Tokens,
    /// ImportAccounts is for operators and services.
    pub operator: Bearer,
    /// ListReviewTasks is for staff; ListNotifications lets staff follow any account.
    pub reviewer: Bearer,
    /// The echo lets every role through: an applicant, like the callers of (c) and (d).
    pub echo_caller: Bearer,
}

impl Clients {
    pub async fn new(mesh: &Mesh, tokens: &Tokens, connections: usize) -> anyhow::Result<Clients> {
        let one =
            |url: String| async move { procs::channels(&url, 1).await.map(|mut c| c.remove(0)) };
        Ok(Clients {
            echo: procs::channels(&mesh.echo.url(), connections).await?,
            registration: procs::channels(&mesh.service("registration").url(), connections).await?,
            identity: one(mesh.service("identity-check").url()).await?,
            review: one(mesh.service("review").url()).await?,
            notification: one(mesh.service("notification").url()).await?,
            tokens: tokens.clone(),
            operator: tokens.bearer("bench-operator", Role::Operator),
            reviewer: tokens.bearer("bench-reviewer", Role::Reviewer),
            echo_caller: tokens.applicant("bench-echo"),
        })
    }

    /// Imports `n` eligible accounts `<prefix>-0 … <prefix>-(n-1)` through ImportAccounts.
    pub async fn import_accounts(&self, prefix: &str, n: u64) -> anyhow::Result<()> {
        let mut client = IdentityCheckServiceClient::with_interceptor(
            self.identity.clone(),
            self.operator.clone(),
        );
        let mut i = 0;
        while i < n {
            let end = (i + 1000).min(n);
            let accounts: Vec<Account> = (i..end)
                .map(|k| fixtures::eligible_account(&format!("{prefix}-{k}")))
                .collect();
            let reply = client
                .import_accounts(ImportAccountsRequest {
                    request_id: uuid::Uuid::new_v4().to_string(),
                    accounts,
                })
                .await
                .context("ImportAccounts")?
                .into_inner();
            if reply.failed_count > 0 {
                bail!("ImportAccounts refused accounts: {:?}", reply.errors);
            }
            i = end;
        }
        Ok(())
    }

    /// The tokens of accounts `<prefix>-0 … <prefix>-(n-1)`, minted before a step so that the
    /// load generator does not sign while it is measured.
    pub fn applicants(&self, prefix: &str, n: u64) -> Vec<Bearer> {
        (0..n)
            .map(|k| self.tokens.applicant(&format!("{prefix}-{k}")))
            .collect()
    }
}

/// Hands out account prefixes and entity seeds that no other step uses.
pub struct Ids {
    next_seed: u64,
    next_batch: u64,
}

impl Default for Ids {
    fn default() -> Self {
        Ids {
            next_seed: 1,
            next_batch: 0,
        }
    }
}

impl Ids {
    /// A fresh account prefix and seed range for `n` submissions.
    pub fn take(&mut self, n: u64) -> (String, u64) {
        let prefix = format!("bench-{}", self.next_batch);
        let seed = self.next_seed;
        self.next_batch += 1;
        self.next_seed += n;
        assert!(self.next_seed < db::PRELOAD_SEED, "seed ranges overlap");
        (prefix, seed)
    }
}
