//! `koogallery accounts import` and `koogallery apply`: demo and operator entry points that read
//! YAML files, preflight the materials with identity-check and submit to registration (or, with
//! `--resubmit`, resubmit an application a reviewer sent back for changes).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use kg_proto::common::{
    AgreementAcceptance, CheckOutcome, CompanyEntity, Contact, PostalAddress, SellerProfile,
};
use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_proto::identity::{
    Account, CheckMaterialsRequest, ImportAccountsRequest, Material, VerificationType,
};
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_proto::registration::{Application, ResubmitApplicationRequest, SubmitApplicationRequest};
use kg_runtime::auth::Role;
use kg_runtime::error::DecodedError;
use serde::Deserialize;

use crate::status::channel;

#[derive(clap::Args)]
pub struct ApplyArgs {
    /// The application, as YAML (see examples/application.yaml).
    #[arg(long)]
    file: PathBuf,
    #[arg(
        long,
        env = "KG_IDENTITY_CHECK_ADDR",
        default_value = "127.0.0.1:50051"
    )]
    identity_addr: String,
    #[arg(long, env = "KG_REGISTRATION_ADDR", default_value = "127.0.0.1:50052")]
    registration_addr: String,
    /// Only run the preflight checks.
    #[arg(long)]
    preflight_only: bool,
    /// Idempotency key; a retry with the same key returns the first result. Default: new UUID.
    #[arg(long)]
    request_id: Option<String>,
    /// Resubmit this application (its id or "applications/{id}"), which must be in
    /// CHANGES_REQUESTED, with the file's profile instead of submitting a new one.
    #[arg(long, value_name = "APPLICATION")]
    resubmit: Option<String>,
    /// With --resubmit: the profile fields to replace, comma-separated update_mask paths (for
    /// example introduction,website_url). Default: the whole profile.
    #[arg(long, value_delimiter = ',', requires = "resubmit")]
    fields: Vec<String>,
    #[command(flatten)]
    secret: crate::token::SecretArgs,
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// Accounts, as YAML (see examples/accounts.yaml).
    #[arg(long)]
    file: PathBuf,
    #[arg(
        long,
        env = "KG_IDENTITY_CHECK_ADDR",
        default_value = "127.0.0.1:50051"
    )]
    identity_addr: String,
    #[command(flatten)]
    secret: crate::token::SecretArgs,
}

/// Attaches `authorization` when a signing secret is at hand (local mesh).
pub fn authed<T>(message: T, bearer: &Option<String>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = bearer.as_ref().and_then(|b| b.parse().ok()) {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplicationFile {
    account_id: String,
    entity: EntityFile,
    profile: ProfileFile,
    agreement_version: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntityFile {
    country: String,
    registration_number: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    website_url: String,
    /// Path of the logo, relative to the YAML file.
    logo_file: PathBuf,
    introduction: String,
    contact: ContactFile,
    customer_service_email: String,
    customer_service_phone: String,
    #[serde(default)]
    registered_address: Option<AddressFile>,
    #[serde(default)]
    industry: String,
    #[serde(default)]
    product_categories: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactFile {
    name: String,
    email: String,
    mobile: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AddressFile {
    region_code: String,
    #[serde(default)]
    postal_code: String,
    #[serde(default)]
    administrative_area: String,
    #[serde(default)]
    locality: String,
    #[serde(default)]
    address_lines: Vec<String>,
}

impl From<AddressFile> for PostalAddress {
    fn from(a: AddressFile) -> Self {
        PostalAddress {
            region_code: a.region_code,
            postal_code: a.postal_code,
            administrative_area: a.administrative_area,
            locality: a.locality,
            address_lines: a.address_lines,
            ..Default::default()
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountsFile {
    accounts: Vec<AccountFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountFile {
    account_id: String,
    verification: String,
    #[serde(default)]
    verified_enterprise_name: String,
    #[serde(default = "yes")]
    cloud_services_enabled: bool,
    #[serde(default)]
    csp_program_member: bool,
    #[serde(default)]
    distribution_partner: bool,
    #[serde(default)]
    iam_sub_user: bool,
    #[serde(default)]
    partner_administrator: bool,
    email: String,
    #[serde(default)]
    mobile: String,
    #[serde(default)]
    locale: String,
    #[serde(default)]
    registered_address: Option<AddressFile>,
}

fn yes() -> bool {
    true
}

fn read_yaml<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml::from_str(&text)
        .with_context(|| format!("{} is not a valid file of this kind", path.display()))
}

pub async fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let file: AccountsFile = read_yaml(&args.file)?;
    let accounts = file
        .accounts
        .into_iter()
        .map(|a| Account {
            account_id: a.account_id,
            verification_type: match a.verification.as_str() {
                "enterprise" => VerificationType::Enterprise,
                "individual" => VerificationType::Individual,
                _ => VerificationType::None,
            } as i32,
            verified_enterprise_name: a.verified_enterprise_name,
            cloud_services_enabled: a.cloud_services_enabled,
            csp_program_member: a.csp_program_member,
            distribution_partner: a.distribution_partner,
            iam_sub_user: a.iam_sub_user,
            partner_administrator: a.partner_administrator,
            email: a.email,
            mobile: a.mobile,
            locale: a.locale,
            registered_address: a.registered_address.map(Into::into),
            ..Default::default()
        })
        .collect();
    let reply = IdentityCheckServiceClient::new(channel(&args.identity_addr).await?)
        .import_accounts(authed(
            ImportAccountsRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                accounts,
            },
            &args.secret.bearer("koogallery-cli", Role::Operator),
        ))
        .await?
        .into_inner();
    println!(
        "created {}  updated {}  failed {}",
        reply.created_count, reply.updated_count, reply.failed_count
    );
    for e in &reply.errors {
        println!(
            "  #{:<4} {:<20} {:<28} {}",
            e.index, e.account_id, e.reason, e.message
        );
    }
    Ok(if reply.failed_count == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn apply(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let file: ApplicationFile = read_yaml(&args.file)?;
    let bearer = args.secret.bearer(&file.account_id, Role::Applicant);
    let base = args.file.parent().unwrap_or(Path::new("."));
    let logo_path = base.join(&file.profile.logo_file);
    let logo = std::fs::read(&logo_path)
        .with_context(|| format!("reading the logo {}", logo_path.display()))?;
    let logo_file_name = logo_path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let p = file.profile;
    let profile = SellerProfile {
        logo,
        website_url: p.website_url,
        introduction: p.introduction,
        contact: Some(Contact {
            name: p.contact.name,
            email: p.contact.email,
            mobile: p.contact.mobile,
        }),
        customer_service_email: p.customer_service_email,
        customer_service_phone: p.customer_service_phone,
        registered_address: p.registered_address.map(Into::into),
        industry: p.industry,
        product_categories: p.product_categories,
        ..Default::default()
    };
    let entity = CompanyEntity {
        country: file.entity.country,
        registration_number: file.entity.registration_number,
    };

    println!("Preflight ({}):", args.identity_addr);
    let preflight = IdentityCheckServiceClient::new(channel(&args.identity_addr).await?)
        .check_materials(authed(
            CheckMaterialsRequest {
                entity: Some(entity.clone()),
                profile: Some(profile.clone()),
                logo_file_name: logo_file_name.clone(),
                require_complete: true,
                account_id: file.account_id.clone(),
            },
            &bearer,
        ))
        .await?
        .into_inner();
    for result in &preflight.results {
        let material = Material::try_from(result.material)
            .map(|m| {
                m.as_str_name()
                    .trim_start_matches("MATERIAL_")
                    .to_lowercase()
            })
            .unwrap_or_default();
        let outcome = CheckOutcome::try_from(result.outcome)
            .map(|o| {
                o.as_str_name()
                    .trim_start_matches("CHECK_OUTCOME_")
                    .to_string()
            })
            .unwrap_or_default();
        println!("  {material:<26} {outcome}");
        for f in &result.findings {
            println!("  {:<26}   {:<34} {}", "", f.code, f.message);
        }
    }
    if preflight.outcome == CheckOutcome::Failed as i32 {
        println!("Preflight failed: fix the findings above and run again.");
        return Ok(ExitCode::FAILURE);
    }
    if args.preflight_only {
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(target) = &args.resubmit {
        let name = if target.starts_with("applications/") {
            target.clone()
        } else {
            format!("applications/{target}")
        };
        let request_id = args
            .request_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let request = ResubmitApplicationRequest {
            request_id: request_id.clone(),
            name: name.clone(),
            profile: Some(profile),
            update_mask: (!args.fields.is_empty()).then(|| prost_types::FieldMask {
                paths: args.fields.clone(),
            }),
            etag: String::new(),
            logo_file_name,
        };
        println!(
            "Resubmitting {name} (request_id {request_id}) to {}:",
            args.registration_addr
        );
        return match RegistrationServiceClient::new(channel(&args.registration_addr).await?)
            .resubmit_application(authed(request, &bearer))
            .await
        {
            Ok(reply) => {
                print_application(&reply.into_inner().application.unwrap_or_default());
                Ok(ExitCode::SUCCESS)
            }
            Err(status) => {
                print_error(&status);
                Ok(ExitCode::FAILURE)
            }
        };
    }

    let agreement = kg_registration::agreement();
    if file.agreement_version != agreement.version {
        anyhow::bail!(
            "the current seller agreement is version {}; accept that one",
            agreement.version
        );
    }
    let request_id = args
        .request_id
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let request = SubmitApplicationRequest {
        request_id: request_id.clone(),
        account_id: file.account_id.clone(),
        application: Some(Application {
            entity: Some(entity),
            profile: Some(profile),
            agreement: Some(AgreementAcceptance {
                agreement_version: agreement.version,
                text_sha256: agreement.text_sha256,
                ..Default::default()
            }),
            ..Default::default()
        }),
        logo_file_name,
    };
    println!(
        "Submitting (request_id {request_id}) to {}:",
        args.registration_addr
    );
    match RegistrationServiceClient::new(channel(&args.registration_addr).await?)
        .submit_application(authed(request, &bearer))
        .await
    {
        Ok(reply) => {
            print_application(&reply.into_inner().application.unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        Err(status) => {
            print_error(&status);
            Ok(ExitCode::FAILURE)
        }
    }
}

fn print_application(app: &Application) {
    println!("  {:<14} {}", "application", app.name);
    println!(
        "  {:<14} {}",
        "state",
        crate::status::application_state(app.state)
    );
    println!("  {:<14} {}", "company", app.company_name);
}

pub fn print_error(status: &tonic::Status) {
    let d = DecodedError::from_status(status);
    println!(
        "  refused: {:?} {}",
        status.code(),
        d.reason.unwrap_or_default()
    );
    println!("  {}", status.message());
    for (kind, _, description) in &d.preconditions {
        println!("    {kind:<28} {description}");
    }
    for (field, description) in &d.field_violations {
        println!("    {field:<36} {description}");
    }
}
