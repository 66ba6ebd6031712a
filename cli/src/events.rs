//! `koogallery events watch`: follow registration's event stream (WatchEvents) from a running
//! mesh — one line per event on stdout, heartbeats on stderr, and the resume token of each so
//! that a script can carry on where it stopped.

use std::process::ExitCode;

use kg_proto::registration::registration_event::Payload;
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_proto::registration::watch_events_response::Item;
use kg_proto::registration::{
    Heartbeat, RegistrationEvent, RegistrationEventType, WatchEventsRequest,
};
use kg_runtime::auth::Role;

use crate::apply::authed;
use crate::mesh::{Global, Output, Service};

const TYPE_PREFIX: &str = "REGISTRATION_EVENT_TYPE_";

#[derive(clap::Args)]
pub struct EventsArgs {
    #[command(subcommand)]
    command: EventsCommand,
}

#[derive(clap::Subcommand)]
enum EventsCommand {
    /// Follow the event stream: history from the chosen position, then live events. Prints
    /// TIME TYPE SUBJECT ACTOR RESUME_TOKEN per event (-o json: one JSON object per line;
    /// -o name: the subject); heartbeats go to stderr.
    Watch(WatchArgs),
}

#[derive(clap::Args)]
struct WatchArgs {
    /// Only events of this account.
    #[arg(long)]
    account: Option<String>,
    /// Only these event types, comma-separated (e.g. SELLER_EXITED,MODIFICATION_REQUESTED).
    #[arg(long, value_delimiter = ',', value_parser = parse_type)]
    types: Vec<RegistrationEventType>,
    /// Continue after the event (or heartbeat) that printed this token.
    #[arg(long, conflicts_with = "from")]
    resume: Option<String>,
    /// Start at the first event committed at or after this time (RFC 3339); the default is
    /// the oldest retained event.
    #[arg(long, value_parser = parse_time)]
    from: Option<prost_types::Timestamp>,
    /// Stop after this many events (otherwise follow until interrupted).
    #[arg(long)]
    limit: Option<u64>,
}

/// `SELLER_EXITED`, `seller_exited` or `REGISTRATION_EVENT_TYPE_SELLER_EXITED`.
fn parse_type(s: &str) -> Result<RegistrationEventType, String> {
    let upper = s.trim().to_ascii_uppercase();
    let short = upper.trim_start_matches(TYPE_PREFIX);
    RegistrationEventType::from_str_name(&format!("{TYPE_PREFIX}{short}"))
        .filter(|t| *t != RegistrationEventType::Unspecified)
        .ok_or_else(|| {
            let known: Vec<_> = (1..)
                .map_while(|v| RegistrationEventType::try_from(v).ok())
                .map(type_name)
                .collect();
            format!("unknown event type {s:?}; one of: {}", known.join(", "))
        })
}

fn parse_time(s: &str) -> Result<prost_types::Timestamp, String> {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time (2026-01-31T08:00:00Z): {e}"))?;
    Ok(prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    })
}

fn type_name(t: RegistrationEventType) -> String {
    t.as_str_name().trim_start_matches(TYPE_PREFIX).to_string()
}

fn time(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| "-".into())
}

/// What the event is about: the modification request for MODIFICATION_* events and the seller
/// changes it applied, the seller for SELLER_EXITED, the application otherwise.
fn subject(e: &RegistrationEvent) -> &str {
    if !e.modification_request.is_empty() {
        &e.modification_request
    } else if matches!(e.payload, Some(Payload::SellerSnapshot(_)))
        || (e.application.is_empty() && !e.seller.is_empty())
    {
        &e.seller
    } else {
        &e.application
    }
}

/// One event as one line: time, type, subject, actor ("-" when not shown), resume token.
fn event_line(e: &RegistrationEvent) -> String {
    let kind = RegistrationEventType::try_from(e.event_type)
        .map(type_name)
        .unwrap_or_else(|_| e.event_type.to_string());
    let actor = if e.actor.is_empty() { "-" } else { &e.actor };
    format!(
        "{:<24} {:<29} {} {} {}",
        time(&e.event_time),
        kind,
        subject(e),
        actor,
        e.resume_token
    )
}

fn heartbeat_line(h: &Heartbeat) -> String {
    format!(
        "{:<24} heartbeat {}",
        time(&h.heartbeat_time),
        h.resume_token
    )
}

/// One event as one JSON object (stable field names; the payload snapshot is left out).
fn event_json(e: &RegistrationEvent) -> serde_json::Value {
    serde_json::json!({
        "event_time": time(&e.event_time),
        "type": RegistrationEventType::try_from(e.event_type)
            .map(type_name)
            .unwrap_or_else(|_| e.event_type.to_string()),
        "subject": subject(e),
        "application": e.application,
        "seller": e.seller,
        "modification_request": e.modification_request,
        "account_id": e.account_id,
        "actor": e.actor,
        "resume_token": e.resume_token,
    })
}

pub async fn events(args: EventsArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let EventsCommand::Watch(watch) = args.command;
    let bearer = g.bearer("koogallery-cli", Role::Operator);
    // No request deadline: the stream lasts as long as the caller wants.
    let registration = g.connect(Service::Registration, None).await?;
    let mut client = RegistrationServiceClient::new(registration.channel.clone());
    let request = WatchEventsRequest {
        resume_token: watch.resume.clone().unwrap_or_default(),
        start_time: watch.from,
        event_types: watch.types.iter().map(|t| *t as i32).collect(),
        account_id: watch.account.clone().unwrap_or_default(),
    };
    let mut stream = match client.watch_events(authed(request, &bearer)).await {
        Ok(reply) => reply.into_inner(),
        Err(status) => {
            g.refused(&registration, &status, bearer.is_some());
            return Ok(ExitCode::FAILURE);
        }
    };
    if watch.limit == Some(0) {
        return Ok(ExitCode::SUCCESS);
    }
    let mut printed = 0u64;
    let mut last = watch.resume.unwrap_or_default();
    loop {
        match stream.message().await {
            Ok(Some(message)) => match message.item {
                Some(Item::Event(event)) => {
                    match g.output {
                        Output::Table => println!("{}", event_line(&event)),
                        Output::Json => println!("{}", event_json(&event)),
                        Output::Name => println!("{}", subject(&event)),
                    }
                    last = event.resume_token;
                    printed += 1;
                    if watch.limit.is_some_and(|limit| printed >= limit) {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                Some(Item::Heartbeat(beat)) => {
                    eprintln!("{}", heartbeat_line(&beat));
                    last = beat.resume_token;
                }
                None => {}
            },
            Ok(None) => {
                eprintln!("the stream ended; resume with --resume {last}");
                return Ok(ExitCode::SUCCESS);
            }
            Err(status) => {
                g.refused(&registration, &status, bearer.is_some());
                if !last.is_empty() {
                    eprintln!("resume with --resume {last}");
                }
                return Ok(ExitCode::FAILURE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kg_proto::registration::{Application, Seller};

    fn at(rfc3339: &str) -> Option<prost_types::Timestamp> {
        Some(parse_time(rfc3339).unwrap())
    }

    #[test]
    fn an_event_is_one_line_of_time_type_subject_actor_and_token() {
        let submitted = RegistrationEvent {
            event_type: RegistrationEventType::ApplicationSubmitted as i32,
            application: "applications/app-1".into(),
            event_time: at("2026-11-25T12:30:05.25+01:00"),
            actor: "acct-demo".into(),
            resume_token: "tok-1".into(),
            payload: Some(Payload::ApplicationSnapshot(Application::default())),
            ..Default::default()
        };
        assert_eq!(
            event_line(&submitted),
            "2026-11-25T11:30:05.250Z APPLICATION_SUBMITTED         applications/app-1 acct-demo tok-1"
        );

        // A seller change names its modification request; an exit names the seller; an
        // actor hidden from an applicant prints as "-".
        let renamed = RegistrationEvent {
            event_type: RegistrationEventType::SellerRenamed as i32,
            application: "applications/app-1".into(),
            seller: "sellers/s-1".into(),
            modification_request: "sellers/s-1/modificationRequests/m-1".into(),
            event_time: at("2026-11-25T12:31:00Z"),
            resume_token: "tok-2".into(),
            payload: Some(Payload::SellerSnapshot(Seller::default())),
            ..Default::default()
        };
        let line = event_line(&renamed);
        let words: Vec<_> = line.split_whitespace().collect();
        assert_eq!(
            words,
            [
                "2026-11-25T12:31:00.000Z",
                "SELLER_RENAMED",
                "sellers/s-1/modificationRequests/m-1",
                "-",
                "tok-2"
            ]
        );
        let exited = RegistrationEvent {
            event_type: RegistrationEventType::SellerExited as i32,
            modification_request: String::new(),
            ..renamed.clone()
        };
        assert_eq!(
            event_line(&exited).split_whitespace().nth(2),
            Some("sellers/s-1")
        );
        // Without a snapshot (none stored) the seller is still found for a seller event.
        let bare = RegistrationEvent {
            application: String::new(),
            payload: None,
            ..exited
        };
        assert_eq!(subject(&bare), "sellers/s-1");

        let unknown = RegistrationEvent {
            event_type: 99,
            ..Default::default()
        };
        assert_eq!(
            event_line(&unknown).split_whitespace().collect::<Vec<_>>(),
            ["-", "99", "-"]
        );
    }

    #[test]
    fn heartbeats_carry_their_token() {
        let beat = Heartbeat {
            resume_token: "tok-9".into(),
            heartbeat_time: at("2026-11-25T12:00:00Z"),
        };
        assert_eq!(
            heartbeat_line(&beat),
            "2026-11-25T12:00:00.000Z heartbeat tok-9"
        );
    }

    #[test]
    fn types_and_times_are_parsed_or_explained() {
        for s in [
            "SELLER_EXITED",
            "seller_exited",
            " REGISTRATION_EVENT_TYPE_SELLER_EXITED",
        ] {
            assert_eq!(
                parse_type(s),
                Ok(RegistrationEventType::SellerExited),
                "{s}"
            );
        }
        for bad in ["UNSPECIFIED", "SELLER_GONE", ""] {
            let err = parse_type(bad).unwrap_err();
            assert!(err.contains("MODIFICATION_WITHDRAWN"), "{err}");
        }
        let t = parse_time("2026-11-25T12:30:00.5Z").unwrap();
        assert_eq!((t.seconds, t.nanos), (1_795_609_800, 500_000_000));
        assert!(parse_time("yesterday").unwrap_err().contains("RFC 3339"));
    }
}
