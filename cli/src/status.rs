//! `koogallery status` and `koogallery health`: ask running services over gRPC health and
//! reflection, like any other client would.

use std::process::ExitCode;
use std::time::Duration;

use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::mesh::{Global, Output, Service, connect, print_json, root_cause};
use crate::table::Table;

/// Takes the mesh from the global options (--data-dir, --base-port, the per-service addresses).
#[derive(clap::Args)]
pub struct StatusArgs {}

#[derive(clap::Args)]
pub struct HealthArgs {
    /// The service's address: `host:port` or a full `http://host:port` URL.
    #[arg(long)]
    addr: String,
    /// The health service name to check; empty for the whole server.
    #[arg(long, default_value = "")]
    service: String,
}

pub async fn status(_args: StatusArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let mut all_serving = true;
    let mut rows = Vec::new();
    for service in Service::ALL {
        let target = g.target(service)?;
        let (health, services) = match channel(&target.addr).await {
            Ok(ch) => (check(ch.clone(), "").await, list_services(ch).await),
            Err(e) => (Err(e), Err(anyhow::anyhow!("unreachable"))),
        };
        let health = health.unwrap_or_else(|e| format!("DOWN ({})", root_cause(e.as_ref())));
        all_serving &= health == "SERVING";
        let services: Vec<String> = services
            .map(|s| {
                s.into_iter()
                    .filter(|s| s.starts_with("koogallery."))
                    .collect()
            })
            .unwrap_or_default();
        rows.push((service, target, health, services));
    }
    match g.output {
        Output::Json => print_json(&serde_json::Value::Array(
            rows.iter()
                .map(|(service, target, health, services)| {
                    serde_json::json!({
                        "service": service.name(),
                        "address": target.addr,
                        "health": health,
                        "services": services,
                    })
                })
                .collect(),
        )),
        Output::Name => {
            for (service, ..) in &rows {
                println!("{service}");
            }
        }
        Output::Table => {
            let mut table = Table::new(&["SERVICE", "ADDRESS", "HEALTH", "SERVICES (reflection)"]);
            for (service, target, health, services) in &rows {
                let services = if services.is_empty() {
                    "-".to_string()
                } else {
                    services.join(", ")
                };
                table.row(vec![
                    service.name().into(),
                    target.addr.clone(),
                    health.clone(),
                    services,
                ]);
            }
            table.print();
            if rows
                .iter()
                .any(|(_, t, ..)| t.source.starts_with("the default"))
            {
                eprintln!("addresses: {}", rows[0].1.source);
            }
        }
    }
    Ok(if all_serving {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn health(args: HealthArgs) -> anyhow::Result<ExitCode> {
    let ch = channel(&args.addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach {}: UNAVAILABLE: {}",
            args.addr,
            root_cause(e.as_ref())
        )
    })?;
    let status = check(ch, &args.service).await?;
    println!("{status}");
    Ok(if status == "SERVING" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A channel to `addr` for unary calls (60 s each).
pub async fn channel(addr: &str) -> anyhow::Result<Channel> {
    connect(addr, Some(Duration::from_secs(60))).await
}

async fn check(channel: Channel, service: &str) -> anyhow::Result<String> {
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await?
        .into_inner();
    let status = tonic_health::pb::health_check_response::ServingStatus::try_from(reply.status)
        .map(|s| s.as_str_name().to_string())
        .unwrap_or_else(|_| "UNKNOWN".into());
    Ok(status)
}

/// The service names the server lists through reflection (v1).
pub async fn list_services(channel: Channel) -> anyhow::Result<Vec<String>> {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::once(request))
        .await?
        .into_inner();
    let Some(reply) = stream.message().await? else {
        anyhow::bail!("no reflection reply");
    };
    match reply.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            let mut names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
            names.sort();
            Ok(names)
        }
        _ => anyhow::bail!("unexpected reflection reply"),
    }
}

/// An application state's proto name without its prefix (`SUBMITTED`), or the raw number.
pub fn application_state(value: i32) -> String {
    kg_proto::registration::ApplicationState::try_from(value)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("APPLICATION_STATE_")
                .to_string()
        })
        .unwrap_or_else(|_| value.to_string())
}
