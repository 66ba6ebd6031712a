//! `koogallery seller …`: a seller's own verbs against a running mesh — show, change the
//! profile or the company name (both reviewed), exit, and the modification requests.

use std::path::PathBuf;
use std::process::ExitCode;

use kg_proto::common::{Contact, SellerProfile};
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_proto::registration::*;
use kg_runtime::auth::Role;

use crate::apply::authed;
use crate::mesh::{
    Global, Output, Service, confirm, enum_name, json_time, print_json, resource, table_time,
};
use crate::table::Table;

#[derive(clap::Args)]
pub struct SellerArgs {
    #[command(subcommand)]
    command: SellerCommand,
    /// The seller's account, acting as applicant (the token subject on the local mesh).
    /// Without it the command acts as an operator (show, list, exit only).
    #[arg(long, env = "KG_ACCOUNT", global = true)]
    account: Option<String>,
}

#[derive(clap::Subcommand)]
enum SellerCommand {
    /// A seller: profile, state, name history, pending modification request.
    Show {
        /// The seller: its id or "sellers/{id}".
        seller: String,
    },
    /// Sellers (of --account when given).
    List,
    /// Request a reviewed change of the profile; only the fields given change.
    Update {
        /// The seller: its id or "sellers/{id}".
        seller: String,
        #[command(flatten)]
        fields: Box<ProfileFields>,
        /// Idempotency key; a retry with the same key returns the first result.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Request a reviewed change of the company name (first verified on My Account).
    Rename {
        /// The seller: its id or "sellers/{id}".
        seller: String,
        /// The new company name, exactly as verified.
        #[arg(long)]
        name: String,
        /// Idempotency key; a retry with the same key returns the first result.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Exit KooGallery for good: the account and the company entity never register again.
    Exit {
        /// The seller: its id or "sellers/{id}".
        seller: String,
        /// Why the seller leaves (kept on the seller record).
        #[arg(long)]
        reason: String,
        /// Idempotency key; a retry with the same key returns the first result.
        #[arg(long)]
        request_id: Option<String>,
        /// Do not ask for confirmation (an exit cannot be undone).
        #[arg(long)]
        yes: bool,
    },
    /// Modification requests: list, withdraw.
    #[command(subcommand)]
    Modifications(ModificationsCommand),
}

#[derive(clap::Subcommand)]
enum ModificationsCommand {
    /// A seller's modification requests, newest first ("-" for all visible).
    List {
        /// The seller: its id or "sellers/{id}" ("-" for every seller visible to the caller).
        seller: String,
    },
    /// Withdraw a pending modification request.
    Withdraw {
        /// The request: sellers/{seller}/modificationRequests/{id}.
        name: String,
        /// Why it is withdrawn.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(clap::Args)]
struct ProfileFields {
    /// New website (checked again: reachable, in English).
    #[arg(long)]
    website_url: Option<String>,
    /// New company introduction.
    #[arg(long)]
    introduction: Option<String>,
    /// New contact person's name.
    #[arg(long)]
    contact_name: Option<String>,
    /// New contact email address.
    #[arg(long)]
    contact_email: Option<String>,
    /// New contact mobile number (international format, e.g. +8613800138000).
    #[arg(long)]
    contact_mobile: Option<String>,
    /// New customer-service email address.
    #[arg(long)]
    customer_service_email: Option<String>,
    /// New customer-service phone number.
    #[arg(long)]
    customer_service_phone: Option<String>,
    /// New industry.
    #[arg(long)]
    industry: Option<String>,
    /// Replaces the product categories (repeat the flag).
    #[arg(long = "category")]
    categories: Vec<String>,
    /// A new logo (PNG or JPEG file).
    #[arg(long)]
    logo: Option<PathBuf>,
}

impl ProfileFields {
    /// The profile to send and the mask naming exactly the given fields.
    fn into_request(self) -> anyhow::Result<(SellerProfile, Vec<String>, String)> {
        let mut profile = SellerProfile::default();
        let mut paths = Vec::new();
        let mut logo_file_name = String::new();
        let mut set = |path: &str, value: Option<String>, target: &mut String| {
            if let Some(v) = value {
                *target = v;
                paths.push(path.to_string());
            }
        };
        set("website_url", self.website_url, &mut profile.website_url);
        set("introduction", self.introduction, &mut profile.introduction);
        let mut contact = Contact::default();
        set("contact.name", self.contact_name, &mut contact.name);
        set("contact.email", self.contact_email, &mut contact.email);
        set("contact.mobile", self.contact_mobile, &mut contact.mobile);
        profile.contact = Some(contact);
        set(
            "customer_service_email",
            self.customer_service_email,
            &mut profile.customer_service_email,
        );
        set(
            "customer_service_phone",
            self.customer_service_phone,
            &mut profile.customer_service_phone,
        );
        set("industry", self.industry, &mut profile.industry);
        if !self.categories.is_empty() {
            profile.product_categories = self.categories;
            paths.push("product_categories".into());
        }
        if let Some(path) = self.logo {
            profile.logo = std::fs::read(&path)?;
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or_default()
                .to_ascii_lowercase();
            profile.logo_content_type = match ext.as_str() {
                "jpg" | "jpeg" => "image/jpeg",
                _ => "image/png",
            }
            .into();
            logo_file_name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            paths.push("logo".into());
        }
        if paths.is_empty() {
            anyhow::bail!("name at least one field to change (see --help)");
        }
        Ok((profile, paths, logo_file_name))
    }
}

fn seller_name(s: &str) -> String {
    resource("sellers", s)
}

fn seller_state(s: &Seller) -> String {
    enum_name(
        SellerState::try_from(s.state).ok().map(|v| v.as_str_name()),
        "SELLER_STATE_",
        s.state,
    )
}

fn seller_json(s: &Seller) -> serde_json::Value {
    let p = s.profile.clone().unwrap_or_default();
    let contact = p.contact.clone().unwrap_or_default();
    serde_json::json!({
        "name": s.name,
        "account_id": s.account_id,
        "company_name": s.company_name,
        "entity": s.entity.as_ref().map(|e| serde_json::json!({
            "country": e.country,
            "registration_number": e.registration_number,
        })),
        "state": seller_state(s),
        "profile": {
            "website_url": p.website_url,
            "introduction": p.introduction,
            "contact": {"name": contact.name, "email": contact.email, "mobile": contact.mobile},
            "customer_service_email": p.customer_service_email,
            "customer_service_phone": p.customer_service_phone,
            "industry": p.industry,
            "product_categories": p.product_categories,
            "logo_sha256": p.logo_sha256,
        },
        "name_history": s.name_history.iter().map(|h| serde_json::json!({
            "company_name": h.company_name,
            "change_time": json_time(&h.change_time),
        })).collect::<Vec<_>>(),
        "open_modification_request": s.open_modification_request,
        "exit_time": json_time(&s.exit_time),
        "exit_reason": s.exit_reason,
    })
}

fn print_seller(s: &Seller, output: Output) {
    match output {
        Output::Json => return print_json(&seller_json(s)),
        Output::Name => return println!("{}", s.name),
        Output::Table => {}
    }
    let p = s.profile.clone().unwrap_or_default();
    let contact = p.contact.unwrap_or_default();
    let mut t = Table::new(&["FIELD", "VALUE"]);
    let mut row = |k: &str, v: String| t.row(vec![k.to_string(), v]);
    row("seller", s.name.clone());
    row("account", s.account_id.clone());
    row("company", s.company_name.clone());
    if let Some(e) = &s.entity {
        row("entity", format!("{}:{}", e.country, e.registration_number));
    }
    row("state", seller_state(s));
    row("website", p.website_url);
    row("introduction", p.introduction);
    row(
        "contact",
        format!("{} <{}> {}", contact.name, contact.email, contact.mobile),
    );
    row(
        "customer service",
        format!("{} {}", p.customer_service_email, p.customer_service_phone),
    );
    row("industry", p.industry);
    row("logo sha256", p.logo_sha256);
    for h in &s.name_history {
        row(
            "name since",
            format!("{}  {}", table_time(&h.change_time), h.company_name),
        );
    }
    if !s.open_modification_request.is_empty() {
        row("pending change", s.open_modification_request.clone());
    }
    if s.exit_time.is_some() {
        row(
            "exited",
            format!("{}  {}", table_time(&s.exit_time), s.exit_reason),
        );
    }
    t.print();
}

fn modification_json(m: &ModificationRequest) -> serde_json::Value {
    serde_json::json!({
        "name": m.name,
        "kind": enum_name(ModificationKind::try_from(m.kind).ok().map(|v| v.as_str_name()), "MODIFICATION_KIND_", m.kind),
        "state": enum_name(ModificationState::try_from(m.state).ok().map(|v| v.as_str_name()), "MODIFICATION_STATE_", m.state),
        "changes": m.changes.iter().map(|c| serde_json::json!({
            "field_path": c.field_path,
            "old_value": c.old_value,
            "new_value": c.new_value,
        })).collect::<Vec<_>>(),
        "rejection": m.rejection.as_ref().map(|r| serde_json::json!({
            "reason_codes": r.reason_codes,
            "comment": r.comment,
        })),
    })
}

fn print_modifications(list: &[ModificationRequest], output: Output) {
    match output {
        Output::Json => print_json(&list.iter().map(modification_json).collect()),
        Output::Name => list.iter().for_each(|m| println!("{}", m.name)),
        Output::Table => {
            let mut t = Table::new(&["REQUEST", "KIND", "STATE", "FIELD", "OLD", "NEW"]);
            for m in list {
                let j = modification_json(m);
                let text = |k: &str| j[k].as_str().unwrap_or_default().to_string();
                t.row(vec![m.name.clone(), text("kind"), text("state")]);
                for c in &m.changes {
                    t.row(vec![
                        String::new(),
                        String::new(),
                        String::new(),
                        c.field_path.clone(),
                        c.old_value.clone(),
                        c.new_value.clone(),
                    ]);
                }
                if let Some(r) = &m.rejection {
                    t.row(vec![
                        String::new(),
                        "rejected".into(),
                        r.reason_codes.join(","),
                        r.comment.clone(),
                    ]);
                }
            }
            t.print();
        }
    }
}

pub async fn seller(args: SellerArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let bearer = match &args.account {
        Some(account) => g.bearer(account, Role::Applicant),
        None => g.bearer("koogallery-cli", Role::Operator),
    };
    let output = g.output;
    // Ask before connecting: a refusal must change nothing.
    if let SellerCommand::Exit { seller, yes, .. } = &args.command {
        confirm(
            &format!(
                "Exit {} for good? The account and its company entity can never register again.",
                seller_name(seller)
            ),
            *yes,
        )?;
    }
    let registration = g.client(Service::Registration).await?;
    let mut client = RegistrationServiceClient::new(registration.channel.clone());
    let new_id = |given: Option<String>| given.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let result = match args.command {
        SellerCommand::Show { seller } => client
            .get_seller(authed(
                GetSellerRequest {
                    name: seller_name(&seller),
                },
                &bearer,
            ))
            .await
            .map(|r| print_seller(&r.into_inner().seller.unwrap_or_default(), output)),
        SellerCommand::List => client
            .list_sellers(authed(
                ListSellersRequest {
                    account_id: args.account.clone().unwrap_or_default(),
                    page_size: 500,
                    ..Default::default()
                },
                &bearer,
            ))
            .await
            .map(|r| {
                let sellers = r.into_inner().sellers;
                match output {
                    Output::Json => print_json(&sellers.iter().map(seller_json).collect()),
                    Output::Name => sellers.iter().for_each(|s| println!("{}", s.name)),
                    Output::Table => {
                        let mut t = Table::new(&["SELLER", "STATE", "ACCOUNT", "COMPANY"]);
                        for s in &sellers {
                            t.row(vec![
                                s.name.clone(),
                                seller_state(s),
                                s.account_id.clone(),
                                s.company_name.clone(),
                            ]);
                        }
                        t.print();
                        println!("{} seller(s)", sellers.len());
                    }
                }
            }),
        SellerCommand::Update {
            seller,
            fields,
            request_id,
        } => {
            let (profile, paths, logo_file_name) = fields.into_request()?;
            client
                .update_seller_info(authed(
                    UpdateSellerInfoRequest {
                        request_id: new_id(request_id),
                        name: seller_name(&seller),
                        profile: Some(profile),
                        update_mask: Some(prost_types::FieldMask { paths }),
                        etag: String::new(),
                        logo_file_name,
                    },
                    &bearer,
                ))
                .await
                .map(|r| {
                    if output == Output::Table {
                        println!("change requested; it applies once a reviewer approves it:");
                    }
                    print_modifications(
                        &[r.into_inner().modification_request.unwrap_or_default()],
                        output,
                    )
                })
        }
        SellerCommand::Rename {
            seller,
            name,
            request_id,
        } => client
            .change_company_name(authed(
                ChangeCompanyNameRequest {
                    request_id: new_id(request_id),
                    name: seller_name(&seller),
                    new_company_name: name,
                    entity: None,
                    etag: String::new(),
                },
                &bearer,
            ))
            .await
            .map(|r| {
                if output == Output::Table {
                    println!(
                        "company name change requested; it applies once a reviewer approves it:"
                    );
                }
                print_modifications(
                    &[r.into_inner().modification_request.unwrap_or_default()],
                    output,
                )
            }),
        SellerCommand::Exit {
            seller,
            reason,
            request_id,
            yes: _,
        } => client
            .exit_seller(authed(
                ExitSellerRequest {
                    request_id: new_id(request_id),
                    name: seller_name(&seller),
                    reason,
                    etag: String::new(),
                },
                &bearer,
            ))
            .await
            .map(|r| print_seller(&r.into_inner().seller.unwrap_or_default(), output)),
        SellerCommand::Modifications(ModificationsCommand::List { seller }) => client
            .list_modification_requests(authed(
                ListModificationRequestsRequest {
                    parent: seller_name(&seller),
                    page_size: 100,
                    ..Default::default()
                },
                &bearer,
            ))
            .await
            .map(|r| print_modifications(&r.into_inner().modification_requests, output)),
        SellerCommand::Modifications(ModificationsCommand::Withdraw { name, reason }) => client
            .withdraw_modification_request(authed(
                WithdrawModificationRequestRequest {
                    request_id: uuid::Uuid::new_v4().to_string(),
                    name,
                    reason,
                    etag: String::new(),
                },
                &bearer,
            ))
            .await
            .map(|r| {
                print_modifications(
                    &[r.into_inner().modification_request.unwrap_or_default()],
                    output,
                )
            }),
    };
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(status) => {
            g.refused(&registration, &status, bearer.is_some());
            Ok(ExitCode::FAILURE)
        }
    }
}
