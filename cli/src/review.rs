//! `koogallery review …` and `koogallery notifications list`: the reviewer's verbs against a
//! running mesh, with aligned, readable output.

use std::process::ExitCode;

use kg_proto::notification::notification_service_client::NotificationServiceClient;
use kg_proto::notification::{Channel as NotifyChannel, DeliveryStatus, ListNotificationsRequest};
use kg_proto::review::review_service_client::ReviewServiceClient;
use kg_proto::review::*;
use kg_runtime::auth::Role;

use crate::apply::{authed, print_error};
use crate::status::channel;
use crate::token::SecretArgs;

#[derive(clap::Args)]
pub struct ReviewArgs {
    #[command(subcommand)]
    command: ReviewCommand,
    #[arg(
        long,
        env = "KG_REVIEW_ADDR",
        default_value = "127.0.0.1:50053",
        global = true
    )]
    review_addr: String,
    /// Who is reviewing (the token subject on the local mesh).
    #[arg(long, env = "KG_REVIEWER", default_value = "reviewer-1", global = true)]
    reviewer: String,
    #[command(flatten)]
    secret: SecretArgs,
}

#[derive(clap::Subcommand)]
enum ReviewCommand {
    /// Open tasks, earliest deadline first.
    List {
        #[arg(long)]
        overdue: bool,
        #[arg(long)]
        mine: bool,
    },
    /// Claim a task (one reviewer at a time).
    Claim { task: String },
    /// Approve a claimed task.
    Approve {
        task: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Reject a claimed task with reason codes from the catalogue (`review reasons`).
    Reject {
        task: String,
        #[arg(long = "reason", required = true)]
        reasons: Vec<String>,
        #[arg(long)]
        comment: String,
    },
    /// Ask the applicant for changes; the clock stops until they resubmit.
    RequestChanges {
        task: String,
        #[arg(long = "reason", required = true)]
        reasons: Vec<String>,
        #[arg(long)]
        comment: String,
    },
    /// The rejection reason catalogue.
    Reasons,
    /// A task's audit trail.
    Audit { task: String },
}

#[derive(clap::Args)]
pub struct NotificationsArgs {
    #[arg(long, env = "KG_NOTIFICATION_ADDR", default_value = "127.0.0.1:50054")]
    notification_addr: String,
    #[arg(long)]
    account: Option<String>,
    #[command(flatten)]
    secret: SecretArgs,
}

fn task_name(task: &str) -> String {
    if task.starts_with("reviewTasks/") {
        task.to_string()
    } else {
        format!("reviewTasks/{task}")
    }
}

fn ts(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

fn state_name(state: i32) -> String {
    ReviewTaskState::try_from(state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("REVIEW_TASK_STATE_")
                .to_string()
        })
        .unwrap_or_else(|_| state.to_string())
}

/// The duplicate signals of a task, one line each, at most `limit` lines and a count of the
/// rest: warnings for the reviewer.
fn signal_lines(task: &ReviewTask, limit: usize) -> Vec<String> {
    let mut lines: Vec<String> = task
        .duplicate_signals
        .iter()
        .take(limit)
        .map(|signal| {
            let kind = DuplicateSignalKind::try_from(signal.kind)
                .map(|k| {
                    k.as_str_name()
                        .trim_start_matches("DUPLICATE_SIGNAL_KIND_")
                        .to_string()
                })
                .unwrap_or_else(|_| signal.kind.to_string());
            let similarity = if signal.similarity < 1.0 {
                format!(" ({:.2})", signal.similarity)
            } else {
                String::new()
            };
            format!(
                "possible duplicate: {kind} {}{similarity} - {} ({})",
                signal.detail, signal.other_subject, signal.other_task
            )
        })
        .collect();
    if task.duplicate_signals.len() > limit {
        lines.push(format!(
            "… and {} more possible duplicate(s)",
            task.duplicate_signals.len() - limit
        ));
    }
    lines
}

/// The duplicate signals of a task, indented under it.
fn print_signals(task: &ReviewTask, indent: &str, limit: usize) {
    for line in signal_lines(task, limit) {
        println!("{indent}{line}");
    }
}

fn print_task(task: &ReviewTask) {
    println!("  {:<10} {}", "task", task.name);
    println!("  {:<10} {}", "subject", task.subject);
    println!("  {:<10} {}", "state", state_name(task.state));
    println!(
        "  {:<10} {}",
        "assignee",
        if task.assignee.is_empty() {
            "-"
        } else {
            &task.assignee
        }
    );
    println!(
        "  {:<10} {}{}",
        "deadline",
        ts(&task.deadline),
        if task.overdue { "  OVERDUE" } else { "" }
    );
    print_signals(task, "  ", 20);
}

pub async fn review(args: ReviewArgs) -> anyhow::Result<ExitCode> {
    let bearer = args.secret.bearer(&args.reviewer, Role::Reviewer);
    let mut client = ReviewServiceClient::new(channel(&args.review_addr).await?);
    let request_id = || uuid::Uuid::new_v4().to_string();
    let result = match args.command {
        ReviewCommand::List { overdue, mine } => {
            let reply = client
                .list_review_tasks(authed(
                    ListReviewTasksRequest {
                        overdue_only: overdue,
                        assignee: if mine {
                            args.reviewer.clone()
                        } else {
                            String::new()
                        },
                        page_size: 100,
                        ..Default::default()
                    },
                    &bearer,
                ))
                .await;
            reply.map(|r| {
                let tasks = r.into_inner().review_tasks;
                println!(
                    "{:<48} {:<22} {:<14} {:<24} {:<16} COMPANY",
                    "TASK", "DEADLINE", "STATE", "ACCOUNT", "ASSIGNEE"
                );
                for t in &tasks {
                    println!(
                        "{:<48} {:<22} {:<14} {:<24} {:<16} {}",
                        t.name,
                        format!("{}{}", ts(&t.deadline), if t.overdue { " !" } else { "" }),
                        state_name(t.state),
                        t.account_id,
                        if t.assignee.is_empty() {
                            "-"
                        } else {
                            &t.assignee
                        },
                        t.company_name
                    );
                    print_signals(t, "    ", 3);
                }
                println!("{} task(s)", tasks.len());
            })
        }
        ReviewCommand::Claim { task } => client
            .claim_review_task(authed(
                ClaimReviewTaskRequest {
                    request_id: request_id(),
                    name: task_name(&task),
                    etag: String::new(),
                },
                &bearer,
            ))
            .await
            .map(|r| print_task(&r.into_inner().review_task.unwrap_or_default())),
        ReviewCommand::Approve { task, comment } => client
            .approve_review_task(authed(
                ApproveReviewTaskRequest {
                    request_id: request_id(),
                    name: task_name(&task),
                    comment,
                    etag: String::new(),
                },
                &bearer,
            ))
            .await
            .map(|r| print_task(&r.into_inner().review_task.unwrap_or_default())),
        ReviewCommand::Reject {
            task,
            reasons,
            comment,
        } => client
            .reject_review_task(authed(
                RejectReviewTaskRequest {
                    request_id: request_id(),
                    name: task_name(&task),
                    reason_codes: reasons,
                    comment,
                    etag: String::new(),
                },
                &bearer,
            ))
            .await
            .map(|r| print_task(&r.into_inner().review_task.unwrap_or_default())),
        ReviewCommand::RequestChanges {
            task,
            reasons,
            comment,
        } => client
            .request_changes(authed(
                RequestChangesRequest {
                    request_id: request_id(),
                    name: task_name(&task),
                    reason_codes: reasons,
                    comment,
                    etag: String::new(),
                },
                &bearer,
            ))
            .await
            .map(|r| print_task(&r.into_inner().review_task.unwrap_or_default())),
        ReviewCommand::Reasons => client
            .list_rejection_reasons(authed(ListRejectionReasonsRequest::default(), &bearer))
            .await
            .map(|r| {
                for reason in r.into_inner().reasons {
                    println!(
                        "{:<28} {:<40} {}",
                        reason.code, reason.title_en, reason.title_zh
                    );
                }
            }),
        ReviewCommand::Audit { task } => client
            .list_audit_entries(authed(
                ListAuditEntriesRequest {
                    parent: task_name(&task),
                    page_size: 500,
                    ..Default::default()
                },
                &bearer,
            ))
            .await
            .map(|r| {
                println!(
                    "{:<22} {:<16} {:<20} {:<14} {:<14} COMMENT",
                    "TIME", "ACTOR", "ACTION", "BEFORE", "AFTER"
                );
                for e in r.into_inner().audit_entries {
                    let action = AuditAction::try_from(e.action)
                        .map(|a| {
                            a.as_str_name()
                                .trim_start_matches("AUDIT_ACTION_")
                                .to_string()
                        })
                        .unwrap_or_default();
                    println!(
                        "{:<22} {:<16} {:<20} {:<14} {:<14} {}",
                        ts(&e.action_time),
                        e.actor,
                        action,
                        state_name(e.before_state),
                        state_name(e.after_state),
                        e.comment
                    );
                }
            }),
    };
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(status) => {
            print_error(&status);
            Ok(ExitCode::FAILURE)
        }
    }
}

pub async fn notifications(args: NotificationsArgs) -> anyhow::Result<ExitCode> {
    let bearer = args.secret.bearer("koogallery-cli", Role::Operator);
    let reply = NotificationServiceClient::new(channel(&args.notification_addr).await?)
        .list_notifications(authed(
            ListNotificationsRequest {
                account_id: args.account.unwrap_or_default(),
                page_size: 200,
                ..Default::default()
            },
            &bearer,
        ))
        .await;
    match reply {
        Ok(reply) => {
            println!(
                "{:<22} {:<6} {:<28} {:<10} {:<4} {:<26} EVENT",
                "CREATED", "CHANNEL", "RECIPIENT", "STATUS", "TRY", "ACCOUNT"
            );
            for n in reply.into_inner().notifications {
                let channel = NotifyChannel::try_from(n.channel)
                    .map(|c| c.as_str_name().trim_start_matches("CHANNEL_").to_string())
                    .unwrap_or_default();
                let status = DeliveryStatus::try_from(n.status)
                    .map(|s| {
                        s.as_str_name()
                            .trim_start_matches("DELIVERY_STATUS_")
                            .to_string()
                    })
                    .unwrap_or_default();
                println!(
                    "{:<22} {:<6} {:<28} {:<10} {:<4} {:<26} {}",
                    ts(&n.create_time),
                    channel,
                    n.recipient,
                    status,
                    n.attempts,
                    n.account_id,
                    n.event_id
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(status) => {
            print_error(&status);
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_print_one_line_each_with_the_rest_counted() {
        let signal = |kind: DuplicateSignalKind, detail: &str, similarity: f64| DuplicateSignal {
            kind: kind as i32,
            other_task: "reviewTasks/t-1".into(),
            other_subject: "applications/a-1".into(),
            detail: detail.into(),
            similarity,
        };
        let task = ReviewTask {
            duplicate_signals: vec![
                signal(DuplicateSignalKind::WebsiteDomain, "acme.com", 1.0),
                signal(DuplicateSignalKind::ContactMobile, "+8613800138000", 1.0),
                signal(
                    DuplicateSignalKind::SimilarCompanyName,
                    "ACME Cloud Ltd",
                    0.947,
                ),
            ],
            ..Default::default()
        };
        assert_eq!(
            signal_lines(&task, 3),
            [
                "possible duplicate: WEBSITE_DOMAIN acme.com - applications/a-1 (reviewTasks/t-1)",
                "possible duplicate: CONTACT_MOBILE +8613800138000 - applications/a-1 \
                 (reviewTasks/t-1)",
                "possible duplicate: SIMILAR_COMPANY_NAME ACME Cloud Ltd (0.95) - applications/a-1 \
                 (reviewTasks/t-1)",
            ]
        );
        assert_eq!(signal_lines(&task, 1).len(), 2);
        assert_eq!(
            signal_lines(&task, 1)[1],
            "… and 2 more possible duplicate(s)"
        );
        assert!(signal_lines(&ReviewTask::default(), 3).is_empty());
    }
}
