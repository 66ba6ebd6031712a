//! `koogallery contacts …`: whether mail reaches an account's contact email addresses — list
//! them with their state and failures, verify one with the mailed code, mail a new code.

use std::process::ExitCode;

use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_proto::registration::*;
use kg_runtime::auth::Role;

use crate::apply::authed;
use crate::mesh::{Global, Output, Service, enum_name, json_time, print_json, table_time};
use crate::table::Table;

#[derive(clap::Args)]
pub struct ContactsArgs {
    #[command(subcommand)]
    command: ContactsCommand,
    /// The account, acting as applicant (the token subject on the local mesh): its own
    /// addresses only. Without it the command acts as an operator.
    #[arg(long, env = "KG_ACCOUNT", global = true)]
    account: Option<String>,
}

#[derive(clap::Subcommand)]
enum ContactsCommand {
    /// An account's addresses: state, permanent failures, code expiry; and whether the account
    /// is marked unreachable.
    List {
        /// The account to list (operators: required unless --account is given; applicants:
        /// their own account, the default).
        #[arg(long)]
        account_id: Option<String>,
    },
    /// Confirm an address with the 8-character code mailed to it.
    Verify {
        /// The contact: "accounts/{account}/contacts/{id}", or its id together with --account.
        name: String,
        /// The code from the verification mail (case-insensitive).
        #[arg(long)]
        code: String,
    },
    /// Mail a new code to an address not verified yet (the previous code stops working; at
    /// most one a minute).
    Resend {
        /// The contact: "accounts/{account}/contacts/{id}", or its id together with --account.
        name: String,
    },
}

/// The full resource name: given as it is when it has a slash, else the id under --account.
fn contact_name(given: &str, account: Option<&str>) -> anyhow::Result<String> {
    if given.contains('/') {
        return Ok(given.to_string());
    }
    match account {
        Some(account) => Ok(format!("accounts/{account}/contacts/{given}")),
        None => anyhow::bail!(
            "name the contact in full (accounts/{{account}}/contacts/{given}) or give --account \
             with its id"
        ),
    }
}

fn contact_state(c: &Contact) -> String {
    enum_name(
        ContactState::try_from(c.state)
            .ok()
            .map(|v| v.as_str_name()),
        "CONTACT_STATE_",
        c.state,
    )
}

fn failure_source(c: &Contact) -> String {
    enum_name(
        DeliveryFailureSource::try_from(c.last_failure_source)
            .ok()
            .map(|v| v.as_str_name()),
        "DELIVERY_FAILURE_SOURCE_",
        c.last_failure_source,
    )
}

fn contact_json(c: &Contact) -> serde_json::Value {
    serde_json::json!({
        "name": c.name,
        "account_id": c.account_id,
        "email": c.email,
        "state": contact_state(c),
        "verify_time": json_time(&c.verify_time),
        "code_expire_time": json_time(&c.code_expire_time),
        "failure_count": c.failure_count,
        "last_failure": c.last_failure,
        "last_failure_source": failure_source(c),
        "last_failure_time": json_time(&c.last_failure_time),
        "create_time": json_time(&c.create_time),
        "update_time": json_time(&c.update_time),
    })
}

/// The last permanent failure in one cell: when, where it was learnt, what the server said.
fn last_failure(c: &Contact) -> String {
    if c.failure_count == 0 && c.last_failure_time.is_none() {
        return "-".into();
    }
    let mut text = format!("{} {}", table_time(&c.last_failure_time), failure_source(c));
    if !c.last_failure.is_empty() {
        text.push_str(": ");
        text.push_str(&c.last_failure);
    }
    text
}

/// When it was verified (VERIFIED), else until when its code is valid.
fn verified_or_expires(c: &Contact) -> String {
    if c.verify_time.is_some() {
        table_time(&c.verify_time)
    } else {
        table_time(&c.code_expire_time)
    }
}

fn print_list(r: &ListContactsResponse, account: &str, output: Output) {
    match output {
        Output::Json => {
            return print_json(&serde_json::json!({
                "contacts": r.contacts.iter().map(contact_json).collect::<Vec<_>>(),
                "unreachable": r.unreachable,
                "unreachable_time": json_time(&r.unreachable_time),
            }));
        }
        Output::Name => return r.contacts.iter().for_each(|c| println!("{}", c.name)),
        Output::Table => {}
    }
    let mut t = Table::new(&[
        "EMAIL",
        "STATE",
        "FAILURES",
        "LAST FAILURE",
        "VERIFIED/CODE EXPIRES",
        "NAME",
    ]);
    for c in &r.contacts {
        t.row(vec![
            c.email.clone(),
            contact_state(c),
            c.failure_count.to_string(),
            last_failure(c),
            verified_or_expires(c),
            c.name.clone(),
        ]);
    }
    t.print();
    let account = r
        .contacts
        .first()
        .map(|c| c.account_id.as_str())
        .filter(|a| !a.is_empty())
        .unwrap_or(account);
    println!("{} contact(s)", r.contacts.len());
    if r.unreachable {
        println!(
            "account {account} is marked unreachable since {} (verifying an address clears it)",
            table_time(&r.unreachable_time)
        );
    } else {
        println!("account {account} is not marked unreachable");
    }
}

fn print_contact(c: &Contact, output: Output) {
    match output {
        Output::Json => return print_json(&contact_json(c)),
        Output::Name => return println!("{}", c.name),
        Output::Table => {}
    }
    let mut t = Table::new(&["FIELD", "VALUE"]);
    let mut row = |k: &str, v: String| t.row(vec![k.to_string(), v]);
    row("contact", c.name.clone());
    row("account", c.account_id.clone());
    row("email", c.email.clone());
    row("state", contact_state(c));
    row("verified", table_time(&c.verify_time));
    row("code expires", table_time(&c.code_expire_time));
    row("failures", c.failure_count.to_string());
    row("last failure", last_failure(c));
    row("created", table_time(&c.create_time));
    row("updated", table_time(&c.update_time));
    t.print();
}

pub async fn contacts(args: ContactsArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let bearer = match &args.account {
        Some(account) => g.bearer(account, Role::Applicant),
        None => g.bearer("koogallery-cli", Role::Operator),
    };
    let output = g.output;
    let account = args.account.as_deref();
    // Check what can be checked before connecting.
    let name = match &args.command {
        ContactsCommand::List { account_id } => {
            if account_id.is_none() && account.is_none() {
                anyhow::bail!("name the account: --account-id (as operator) or --account");
            }
            String::new()
        }
        ContactsCommand::Verify { name, .. } | ContactsCommand::Resend { name } => {
            contact_name(name, account)?
        }
    };
    let registration = g.client(Service::Registration).await?;
    let mut client = RegistrationServiceClient::new(registration.channel.clone());
    let result = match args.command {
        ContactsCommand::List { account_id } => {
            let account_id = account_id.or(args.account.clone()).unwrap_or_default();
            client
                .list_contacts(authed(
                    ListContactsRequest {
                        account_id: account_id.clone(),
                    },
                    &bearer,
                ))
                .await
                .map(|r| print_list(&r.into_inner(), &account_id, output))
        }
        ContactsCommand::Verify { code, .. } => client
            .verify_contact(authed(VerifyContactRequest { name, code }, &bearer))
            .await
            .map(|r| {
                let contact = r.into_inner().contact.unwrap_or_default();
                if output == Output::Table {
                    println!("{} is verified:", contact.email);
                }
                print_contact(&contact, output)
            }),
        ContactsCommand::Resend { .. } => client
            .resend_contact_verification(authed(ResendContactVerificationRequest { name }, &bearer))
            .await
            .map(|r| {
                let contact = r.into_inner().contact.unwrap_or_default();
                if output == Output::Table {
                    if contact.verify_time.is_some() {
                        println!("{} is already verified; no code was sent:", contact.email);
                    } else {
                        println!(
                            "a new code was mailed to {}; it works until {}:",
                            contact.email,
                            table_time(&contact.code_expire_time)
                        );
                    }
                }
                print_contact(&contact, output)
            }),
    };
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(status) => {
            g.refused(&registration, &status, bearer.is_some());
            // The refusals of these calls carry a number worth acting on in their metadata.
            let d = kg_runtime::error::DecodedError::from_status(&status);
            for (key, say) in [
                ("attempts_left", "attempts left"),
                ("retry_after_seconds", "retry after (seconds)"),
            ] {
                if let Some(v) = d.metadata.get(key) {
                    eprintln!("  {say}: {v}");
                }
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_contact_id_needs_the_account() {
        assert_eq!(
            contact_name("c1", Some("acct-demo")).unwrap(),
            "accounts/acct-demo/contacts/c1"
        );
        assert_eq!(
            contact_name("accounts/a/contacts/c1", None).unwrap(),
            "accounts/a/contacts/c1"
        );
        assert!(
            contact_name("c1", None)
                .unwrap_err()
                .to_string()
                .contains("--account")
        );
    }

    #[test]
    fn a_contact_without_failures_says_so() {
        let c = Contact {
            state: ContactState::Pending as i32,
            ..Default::default()
        };
        assert_eq!(contact_state(&c), "PENDING");
        assert_eq!(last_failure(&c), "-");
        let c = Contact {
            failure_count: 1,
            last_failure: "550 5.1.1 mailbox unavailable".into(),
            last_failure_source: DeliveryFailureSource::SmtpRefusal as i32,
            last_failure_time: Some(prost_types::Timestamp {
                seconds: 1_769_846_400,
                nanos: 0,
            }),
            ..Default::default()
        };
        assert_eq!(
            last_failure(&c),
            "2026-01-31 08:00 UTC SMTP_REFUSAL: 550 5.1.1 mailbox unavailable"
        );
    }
}
