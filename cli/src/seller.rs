//! `koogallery seller …`: a seller's own verbs against a running mesh — show, change the
//! profile or the company name (both reviewed), exit, and the modification requests.

use std::path::PathBuf;
use std::process::ExitCode;

use kg_proto::common::{Contact, SellerProfile};
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_proto::registration::*;
use kg_runtime::auth::Role;

use crate::apply::{authed, print_error};
use crate::status::channel;
use crate::token::SecretArgs;

#[derive(clap::Args)]
pub struct SellerArgs {
    #[command(subcommand)]
    command: SellerCommand,
    #[arg(
        long,
        env = "KG_REGISTRATION_ADDR",
        default_value = "127.0.0.1:50052",
        global = true
    )]
    registration_addr: String,
    /// The seller's account, acting as applicant (the token subject on the local mesh).
    /// Without it the command acts as an operator (show, list, exit only).
    #[arg(long, env = "KG_ACCOUNT", global = true)]
    account: Option<String>,
    #[command(flatten)]
    secret: SecretArgs,
}

#[derive(clap::Subcommand)]
enum SellerCommand {
    /// A seller: profile, state, name history, pending modification request.
    Show { seller: String },
    /// Sellers (of --account when given).
    List,
    /// Request a reviewed change of the profile; only the fields given change.
    Update {
        seller: String,
        #[command(flatten)]
        fields: Box<ProfileFields>,
        /// Idempotency key; a retry with the same key returns the first result.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Request a reviewed change of the company name (first verified on My Account).
    Rename {
        seller: String,
        /// The new company name, exactly as verified.
        #[arg(long)]
        name: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Exit KooGallery for good: the account and the company entity never register again.
    Exit {
        seller: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Modification requests: list, withdraw.
    #[command(subcommand)]
    Modifications(ModificationsCommand),
}

#[derive(clap::Subcommand)]
enum ModificationsCommand {
    /// A seller's modification requests, newest first ("-" for all visible).
    List { seller: String },
    /// Withdraw a pending modification request.
    Withdraw {
        /// sellers/{seller}/modificationRequests/{id}
        name: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(clap::Args)]
struct ProfileFields {
    #[arg(long)]
    website_url: Option<String>,
    #[arg(long)]
    introduction: Option<String>,
    #[arg(long)]
    contact_name: Option<String>,
    #[arg(long)]
    contact_email: Option<String>,
    #[arg(long)]
    contact_mobile: Option<String>,
    #[arg(long)]
    customer_service_email: Option<String>,
    #[arg(long)]
    customer_service_phone: Option<String>,
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
    if s.starts_with("sellers/") {
        s.to_string()
    } else {
        format!("sellers/{s}")
    }
}

fn ts(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

fn enum_name(name: Option<&str>, prefix: &str) -> String {
    name.map(|n| n.trim_start_matches(prefix).to_string())
        .unwrap_or_default()
}

fn print_seller(s: &Seller) {
    let state = SellerState::try_from(s.state).ok().map(|v| v.as_str_name());
    let p = s.profile.clone().unwrap_or_default();
    println!("  {:<22} {}", "seller", s.name);
    println!("  {:<22} {}", "account", s.account_id);
    println!("  {:<22} {}", "company", s.company_name);
    if let Some(e) = &s.entity {
        println!("  {:<22} {}:{}", "entity", e.country, e.registration_number);
    }
    println!("  {:<22} {}", "state", enum_name(state, "SELLER_STATE_"));
    println!("  {:<22} {}", "website", p.website_url);
    println!("  {:<22} {}", "introduction", p.introduction);
    let contact = p.contact.unwrap_or_default();
    println!(
        "  {:<22} {} <{}> {}",
        "contact", contact.name, contact.email, contact.mobile
    );
    println!("  {:<22} {}", "customer service", p.customer_service_email);
    println!("  {:<22} {}", "industry", p.industry);
    println!("  {:<22} {}", "logo sha256", p.logo_sha256);
    for h in &s.name_history {
        println!(
            "  {:<22} {}  {}",
            "name since",
            ts(&h.change_time),
            h.company_name
        );
    }
    if !s.open_modification_request.is_empty() {
        println!("  {:<22} {}", "pending change", s.open_modification_request);
    }
    if s.exit_time.is_some() {
        println!("  {:<22} {}  {}", "exited", ts(&s.exit_time), s.exit_reason);
    }
}

fn print_modification(m: &ModificationRequest) {
    let state = ModificationState::try_from(m.state)
        .ok()
        .map(|v| v.as_str_name());
    let kind = ModificationKind::try_from(m.kind)
        .ok()
        .map(|v| v.as_str_name());
    println!("  {:<10} {}", "request", m.name);
    println!("  {:<10} {}", "kind", enum_name(kind, "MODIFICATION_KIND_"));
    println!(
        "  {:<10} {}",
        "state",
        enum_name(state, "MODIFICATION_STATE_")
    );
    for c in &m.changes {
        println!(
            "  {:<10} {}: {:?} -> {:?}",
            "change", c.field_path, c.old_value, c.new_value
        );
    }
    if let Some(r) = &m.rejection {
        println!(
            "  {:<10} {} {}",
            "rejected",
            r.reason_codes.join(","),
            r.comment
        );
    }
}

pub async fn seller(args: SellerArgs) -> anyhow::Result<ExitCode> {
    let bearer = match &args.account {
        Some(account) => args.secret.bearer(account, Role::Applicant),
        None => args.secret.bearer("koogallery-cli", Role::Operator),
    };
    let mut client = RegistrationServiceClient::new(channel(&args.registration_addr).await?);
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
            .map(|r| print_seller(&r.into_inner().seller.unwrap_or_default())),
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
                println!("{:<46} {:<8} {:<24} COMPANY", "SELLER", "STATE", "ACCOUNT");
                for s in &sellers {
                    let state = SellerState::try_from(s.state).ok().map(|v| v.as_str_name());
                    println!(
                        "{:<46} {:<8} {:<24} {}",
                        s.name,
                        enum_name(state, "SELLER_STATE_"),
                        s.account_id,
                        s.company_name
                    );
                }
                println!("{} seller(s)", sellers.len());
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
                    println!("change requested; it applies once approved:");
                    print_modification(&r.into_inner().modification_request.unwrap_or_default())
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
                println!("company name change requested; it applies once approved:");
                print_modification(&r.into_inner().modification_request.unwrap_or_default())
            }),
        SellerCommand::Exit {
            seller,
            reason,
            request_id,
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
            .map(|r| print_seller(&r.into_inner().seller.unwrap_or_default())),
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
            .map(|r| {
                let list = r.into_inner().modification_requests;
                for m in &list {
                    print_modification(m);
                    println!();
                }
                println!("{} modification request(s)", list.len());
            }),
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
            .map(|r| print_modification(&r.into_inner().modification_request.unwrap_or_default())),
    };
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(status) => {
            print_error(&status);
            Ok(ExitCode::FAILURE)
        }
    }
}
