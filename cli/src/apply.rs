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
    Account, CheckMaterialsRequest, CheckMaterialsResponse, ImportAccountsRequest, Material,
    VerificationType,
};
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_proto::registration::{Application, ResubmitApplicationRequest, SubmitApplicationRequest};
use kg_runtime::auth::Role;
use serde::Deserialize;

use crate::mesh::{Global, Output, Service, json_time, print_json, resource, with_progress};
use crate::table::Table;

#[derive(clap::Args)]
pub struct ApplyArgs {
    /// The application, as YAML (see examples/application.yaml).
    #[arg(long)]
    file: PathBuf,
    /// Only run the preflight checks (eligibility is checked on submission).
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
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// Accounts, as YAML (see examples/accounts.yaml).
    #[arg(long)]
    file: PathBuf,
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

pub async fn import(args: ImportArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let file: AccountsFile = read_yaml(&args.file)?;
    let mut accounts = Vec::new();
    for a in file.accounts {
        let verification_type = match a.verification.as_str() {
            "enterprise" => VerificationType::Enterprise,
            "individual" => VerificationType::Individual,
            "none" => VerificationType::None,
            other => anyhow::bail!(
                "{}: account {}: verification {other:?} is not one of enterprise, individual, none",
                args.file.display(),
                a.account_id
            ),
        };
        accounts.push(Account {
            account_id: a.account_id,
            verification_type: verification_type as i32,
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
        });
    }
    let client = g.client(Service::IdentityCheck).await?;
    let bearer = g.bearer("koogallery-cli", Role::Operator);
    let reply = IdentityCheckServiceClient::new(client.channel.clone())
        .import_accounts(authed(
            ImportAccountsRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                accounts,
            },
            &bearer,
        ))
        .await;
    let reply = match reply {
        Ok(reply) => reply.into_inner(),
        Err(status) => {
            g.refused(&client, &status, bearer.is_some());
            return Ok(ExitCode::FAILURE);
        }
    };
    match g.output {
        Output::Json => print_json(&serde_json::json!({
            "created_count": reply.created_count,
            "updated_count": reply.updated_count,
            "failed_count": reply.failed_count,
            "errors": reply.errors.iter().map(|e| serde_json::json!({
                "index": e.index,
                "account_id": e.account_id,
                "reason": e.reason,
                "message": e.message,
            })).collect::<Vec<_>>(),
        })),
        Output::Name | Output::Table => {
            println!(
                "created {}  updated {}  failed {}",
                reply.created_count, reply.updated_count, reply.failed_count
            );
            if !reply.errors.is_empty() {
                let mut table = Table::new(&["#", "ACCOUNT", "REASON", "MESSAGE"]);
                for e in &reply.errors {
                    table.row(vec![
                        e.index.to_string(),
                        e.account_id.clone(),
                        e.reason.clone(),
                        e.message.clone(),
                    ]);
                }
                table.print();
            }
        }
    }
    Ok(if reply.failed_count == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A check's material or outcome name without its prefix.
fn material_name(value: i32) -> String {
    Material::try_from(value)
        .map(|m| {
            m.as_str_name()
                .trim_start_matches("MATERIAL_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| value.to_string())
}

fn outcome_name(value: i32) -> String {
    CheckOutcome::try_from(value)
        .map(|o| {
            o.as_str_name()
                .trim_start_matches("CHECK_OUTCOME_")
                .to_string()
        })
        .unwrap_or_else(|_| value.to_string())
}

fn preflight_json(reply: &CheckMaterialsResponse) -> serde_json::Value {
    serde_json::json!({
        "outcome": outcome_name(reply.outcome),
        "results": reply.results.iter().map(|r| serde_json::json!({
            "material": material_name(r.material),
            "outcome": outcome_name(r.outcome),
            "findings": r.findings.iter().map(|f| serde_json::json!({
                "code": f.code,
                "message": f.message,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

pub async fn apply(args: ApplyArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let file: ApplicationFile = read_yaml(&args.file)?;
    let bearer = g.bearer(&file.account_id, Role::Applicant);
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
    let agreement = kg_registration::agreement();
    if args.resubmit.is_none() && file.agreement_version != agreement.version {
        anyhow::bail!(
            "{}: agreement_version is {:?}, but the current seller agreement is version {}; \
             accept that one",
            args.file.display(),
            file.agreement_version,
            agreement.version
        );
    }

    // The preflight fetches the website, which can take seconds: say so while it runs.
    let identity = g.client(Service::IdentityCheck).await?;
    let preflight = with_progress(
        &format!(
            "Preflight: checking the materials and the website at {}",
            identity.target.addr
        ),
        IdentityCheckServiceClient::new(identity.channel.clone()).check_materials(authed(
            CheckMaterialsRequest {
                entity: Some(entity.clone()),
                profile: Some(profile.clone()),
                logo_file_name: logo_file_name.clone(),
                require_complete: true,
                account_id: file.account_id.clone(),
            },
            &bearer,
        )),
    )
    .await;
    let preflight = match preflight {
        Ok(reply) => reply.into_inner(),
        Err(status) => {
            g.refused(&identity, &status, bearer.is_some());
            return Ok(ExitCode::FAILURE);
        }
    };
    let failed = preflight.outcome == CheckOutcome::Failed as i32;
    // With --preflight-only the results are the record; otherwise they are progress (stderr
    // unless printing a table).
    if args.preflight_only && g.output == Output::Json {
        print_json(&preflight_json(&preflight));
    } else if !(args.preflight_only && g.output == Output::Name) {
        let mut table = Table::new(&["MATERIAL", "OUTCOME", "FINDING", "MESSAGE"]);
        for result in &preflight.results {
            table.row(vec![
                material_name(result.material),
                outcome_name(result.outcome),
            ]);
            for f in &result.findings {
                table.row(vec![
                    String::new(),
                    String::new(),
                    f.code.clone(),
                    f.message.clone(),
                ]);
            }
        }
        if g.output == Output::Table {
            table.print();
        } else {
            eprint!("{}", table.render());
        }
    }
    if failed {
        eprintln!("Preflight failed: fix the findings above and run again.");
        return Ok(ExitCode::FAILURE);
    }
    if args.preflight_only {
        return Ok(ExitCode::SUCCESS);
    }

    let request_id = args
        .request_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let registration = g.client(Service::Registration).await?;
    let mut client = RegistrationServiceClient::new(registration.channel.clone());
    let reply = if let Some(target) = &args.resubmit {
        let name = resource("applications", target);
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
        with_progress(
            &format!(
                "Resubmitting {name} (request_id {request_id}) to registration at {}",
                registration.target.addr
            ),
            client.resubmit_application(authed(request, &bearer)),
        )
        .await
        .map(|r| r.into_inner().application)
    } else {
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
        with_progress(
            &format!(
                "Submitting (request_id {request_id}) to registration at {}",
                registration.target.addr
            ),
            client.submit_application(authed(request, &bearer)),
        )
        .await
        .map(|r| r.into_inner().application)
    };
    match reply {
        Ok(app) => {
            print_application(&app.unwrap_or_default(), g.output);
            Ok(ExitCode::SUCCESS)
        }
        Err(status) => {
            g.refused(&registration, &status, bearer.is_some());
            Ok(ExitCode::FAILURE)
        }
    }
}

pub fn application_json(app: &Application) -> serde_json::Value {
    serde_json::json!({
        "name": app.name,
        "account_id": app.account_id,
        "state": crate::status::application_state(app.state),
        "company_name": app.company_name,
        "entity": app.entity.as_ref().map(|e| serde_json::json!({
            "country": e.country,
            "registration_number": e.registration_number,
        })),
        "website_url": app.profile.as_ref().map(|p| p.website_url.clone()),
        "create_time": json_time(&app.create_time),
        "update_time": json_time(&app.update_time),
    })
}

fn print_application(app: &Application, output: Output) {
    match output {
        Output::Json => print_json(&application_json(app)),
        Output::Name => println!("{}", app.name),
        Output::Table => {
            let mut table = Table::new(&["APPLICATION", "STATE", "COMPANY"]);
            table.row(vec![
                app.name.clone(),
                crate::status::application_state(app.state),
                app.company_name.clone(),
            ]);
            table.print();
        }
    }
}
