//! `koogallery review …` and `koogallery notifications list`: the reviewer's verbs against a
//! running mesh, as aligned tables, JSON or bare names.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use kg_proto::notification::notification_service_client::NotificationServiceClient;
use kg_proto::notification::{
    Channel as NotifyChannel, DeliveryStatus, ListNotificationsRequest, Notification,
    NotificationEventType,
};
use kg_proto::review::review_service_client::ReviewServiceClient;
use kg_proto::review::*;
use kg_runtime::auth::Role;

use crate::apply::authed;
use crate::mesh::{
    Global, Output, Service, enum_name, json_time, print_json, resource, table_time,
};
use crate::table::Table;

#[derive(clap::Args)]
pub struct ReviewArgs {
    #[command(subcommand)]
    command: ReviewCommand,
    /// Who is reviewing (the token subject on the local mesh).
    #[arg(long, env = "KG_REVIEWER", default_value = "reviewer-1", global = true)]
    reviewer: String,
}

/// A task state, as `review list --state` takes it.
#[derive(Clone, Copy, clap::ValueEnum)]
enum StateArg {
    Queued,
    Claimed,
    WaitingOnApplicant,
    Approved,
    Rejected,
    Cancelled,
}

impl From<StateArg> for ReviewTaskState {
    fn from(s: StateArg) -> Self {
        match s {
            StateArg::Queued => ReviewTaskState::Queued,
            StateArg::Claimed => ReviewTaskState::Claimed,
            StateArg::WaitingOnApplicant => ReviewTaskState::WaitingOnApplicant,
            StateArg::Approved => ReviewTaskState::Approved,
            StateArg::Rejected => ReviewTaskState::Rejected,
            StateArg::Cancelled => ReviewTaskState::Cancelled,
        }
    }
}

/// What a task reviews.
#[derive(Clone, Copy, clap::ValueEnum)]
enum KindArg {
    /// A seller application.
    Application,
    /// A seller's modification request (information change or rename).
    Modification,
}

#[derive(clap::Subcommand)]
enum ReviewCommand {
    /// Tasks, earliest deadline first (open ones unless --state says otherwise).
    List {
        /// Only overdue tasks.
        #[arg(long)]
        overdue: bool,
        /// Only tasks claimed by --reviewer.
        #[arg(long)]
        mine: bool,
        /// Only tasks in these states (repeat or comma-separate). Default: the open states.
        #[arg(long, value_enum, value_delimiter = ',')]
        state: Vec<StateArg>,
        /// Only tasks of this kind.
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
        /// Only tasks of this account.
        #[arg(long)]
        account: Option<String>,
        /// Only the task of this subject (an application or modification request name).
        #[arg(long)]
        subject: Option<String>,
        /// Wait up to this many seconds for at least one matching task, and fail if none comes
        /// (tasks are created by registration's outbox relay a moment after a submission).
        #[arg(long, value_name = "SECONDS")]
        wait: Option<u64>,
    },
    /// Claim a task (one reviewer at a time).
    Claim {
        /// The task: its id or "reviewTasks/{id}".
        task: String,
    },
    /// Approve a claimed task.
    Approve {
        /// The task: its id or "reviewTasks/{id}".
        task: String,
        /// A note kept in the audit trail.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Reject a claimed task with reason codes from the catalogue (`review reasons`).
    Reject {
        /// The task: its id or "reviewTasks/{id}".
        task: String,
        /// A reason code from the catalogue (repeat for several).
        #[arg(long = "reason", required = true)]
        reasons: Vec<String>,
        /// What the applicant reads: why, and what to do.
        #[arg(long)]
        comment: String,
    },
    /// Ask the applicant for changes; the clock stops until they resubmit.
    RequestChanges {
        /// The task: its id or "reviewTasks/{id}".
        task: String,
        /// A reason code from the catalogue (repeat for several).
        #[arg(long = "reason", required = true)]
        reasons: Vec<String>,
        /// What the applicant reads: what to change.
        #[arg(long)]
        comment: String,
    },
    /// The rejection reason catalogue.
    Reasons,
    /// A task's audit trail, oldest first.
    Audit {
        /// The task: its id or "reviewTasks/{id}".
        task: String,
    },
}

#[derive(clap::Subcommand)]
pub enum NotificationsCommand {
    /// Deliveries, newest first: what was sent (kind, subject), on which channel, to whom, and
    /// how it went.
    List {
        /// Only deliveries to this account.
        #[arg(long)]
        account: Option<String>,
    },
}

fn state_name(state: i32) -> String {
    enum_name(
        ReviewTaskState::try_from(state)
            .ok()
            .map(|s| s.as_str_name()),
        "REVIEW_TASK_STATE_",
        state,
    )
}

fn kind_name(kind: i32) -> String {
    match SubjectKind::try_from(kind) {
        Ok(SubjectKind::Application) => "APPLICATION".into(),
        Ok(SubjectKind::ModificationRequest) => "MODIFICATION".into(),
        _ => kind.to_string(),
    }
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

fn task_json(t: &ReviewTask) -> serde_json::Value {
    serde_json::json!({
        "name": t.name,
        "kind": kind_name(t.subject_kind),
        "subject": t.subject,
        "state": state_name(t.state),
        "account_id": t.account_id,
        "company_name": t.company_name,
        "previous_company_name": t.previous_company_name,
        "assignee": t.assignee,
        "submit_time": json_time(&t.submit_time),
        "deadline": json_time(&t.deadline),
        "overdue": t.overdue,
        "duplicate_signals": signal_lines(t, usize::MAX),
        "decision": t.decision.as_ref().map(|d| serde_json::json!({
            "outcome": enum_name(
                kg_proto::common::ReviewDecision::try_from(d.outcome).ok().map(|o| o.as_str_name()),
                "REVIEW_DECISION_",
                d.outcome,
            ),
            "reason_codes": d.reason_codes,
            "comment": d.comment,
            "reviewer": d.reviewer,
            "decide_time": json_time(&d.decide_time),
        })),
    })
}

fn print_tasks(tasks: &[ReviewTask], output: Output) {
    match output {
        Output::Json => print_json(&tasks.iter().map(task_json).collect()),
        Output::Name => tasks.iter().for_each(|t| println!("{}", t.name)),
        Output::Table => {
            let mut table = Table::new(&[
                "TASK", "KIND", "STATE", "DEADLINE", "ACCOUNT", "ASSIGNEE", "COMPANY",
            ]);
            for t in tasks {
                let company = if t.previous_company_name.is_empty() {
                    t.company_name.clone()
                } else {
                    format!("{} (was {})", t.company_name, t.previous_company_name)
                };
                table.row(vec![
                    t.name.clone(),
                    kind_name(t.subject_kind),
                    state_name(t.state),
                    format!(
                        "{}{}",
                        table_time(&t.deadline),
                        if t.overdue { " OVERDUE" } else { "" }
                    ),
                    t.account_id.clone(),
                    if t.assignee.is_empty() {
                        "-".into()
                    } else {
                        t.assignee.clone()
                    },
                    company,
                ]);
            }
            table.print();
            for t in tasks {
                for line in signal_lines(t, 3) {
                    println!("{}: {line}", t.name);
                }
            }
            println!("{} task(s)", tasks.len());
        }
    }
}

pub async fn review(args: ReviewArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let bearer = g.bearer(&args.reviewer, Role::Reviewer);
    let review = g.client(Service::Review).await?;
    let mut client = ReviewServiceClient::new(review.channel.clone());
    let request_id = || uuid::Uuid::new_v4().to_string();
    let output = g.output;
    let one = |task: Option<ReviewTask>| print_tasks(&[task.unwrap_or_default()], output);
    let result = match args.command {
        ReviewCommand::List {
            overdue,
            mine,
            state,
            kind,
            account,
            subject,
            wait,
        } => {
            let request = ListReviewTasksRequest {
                overdue_only: overdue,
                assignee: if mine {
                    args.reviewer.clone()
                } else {
                    String::new()
                },
                page_size: 500,
                states: state
                    .into_iter()
                    .map(|s| ReviewTaskState::from(s) as i32)
                    .collect(),
                subject_kinds: kind
                    .map(|k| match k {
                        KindArg::Application => SubjectKind::Application as i32,
                        KindArg::Modification => SubjectKind::ModificationRequest as i32,
                    })
                    .into_iter()
                    .collect(),
                account_id: account.unwrap_or_default(),
                subject: subject.unwrap_or_default(),
                ..Default::default()
            };
            let deadline = wait.map(|s| Instant::now() + Duration::from_secs(s));
            loop {
                match client
                    .list_review_tasks(authed(request.clone(), &bearer))
                    .await
                {
                    Ok(reply) => {
                        let tasks = reply.into_inner().review_tasks;
                        if let Some(deadline) = deadline
                            && tasks.is_empty()
                        {
                            if Instant::now() < deadline {
                                tokio::time::sleep(Duration::from_millis(250)).await;
                                continue;
                            }
                            anyhow::bail!(
                                "no task matched within {} s (--wait)",
                                wait.unwrap_or_default()
                            );
                        }
                        print_tasks(&tasks, output);
                        break Ok(());
                    }
                    Err(status) => break Err(status),
                }
            }
        }
        ReviewCommand::Claim { task } => client
            .claim_review_task(authed(
                ClaimReviewTaskRequest {
                    request_id: request_id(),
                    name: resource("reviewTasks", &task),
                    etag: String::new(),
                },
                &bearer,
            ))
            .await
            .map(|r| one(r.into_inner().review_task)),
        ReviewCommand::Approve { task, comment } => client
            .approve_review_task(authed(
                ApproveReviewTaskRequest {
                    request_id: request_id(),
                    name: resource("reviewTasks", &task),
                    comment,
                    etag: String::new(),
                },
                &bearer,
            ))
            .await
            .map(|r| one(r.into_inner().review_task)),
        ReviewCommand::Reject {
            task,
            reasons,
            comment,
        } => client
            .reject_review_task(authed(
                RejectReviewTaskRequest {
                    request_id: request_id(),
                    name: resource("reviewTasks", &task),
                    reason_codes: reasons,
                    comment,
                    etag: String::new(),
                },
                &bearer,
            ))
            .await
            .map(|r| one(r.into_inner().review_task)),
        ReviewCommand::RequestChanges {
            task,
            reasons,
            comment,
        } => client
            .request_changes(authed(
                RequestChangesRequest {
                    request_id: request_id(),
                    name: resource("reviewTasks", &task),
                    reason_codes: reasons,
                    comment,
                    etag: String::new(),
                },
                &bearer,
            ))
            .await
            .map(|r| one(r.into_inner().review_task)),
        ReviewCommand::Reasons => client
            .list_rejection_reasons(authed(ListRejectionReasonsRequest::default(), &bearer))
            .await
            .map(|r| {
                let reasons = r.into_inner().reasons;
                match output {
                    Output::Json => print_json(
                        &reasons
                            .iter()
                            .map(|r| {
                                serde_json::json!({
                                    "code": r.code,
                                    "title_en": r.title_en,
                                    "title_zh": r.title_zh,
                                    "description_en": r.description_en,
                                })
                            })
                            .collect(),
                    ),
                    Output::Name => reasons.iter().for_each(|r| println!("{}", r.code)),
                    Output::Table => {
                        let mut table = Table::new(&["CODE", "TITLE", "标题"]);
                        for r in &reasons {
                            table.row(vec![r.code.clone(), r.title_en.clone(), r.title_zh.clone()]);
                        }
                        table.print();
                    }
                }
            }),
        ReviewCommand::Audit { task } => client
            .list_audit_entries(authed(
                ListAuditEntriesRequest {
                    parent: resource("reviewTasks", &task),
                    page_size: 500,
                    ..Default::default()
                },
                &bearer,
            ))
            .await
            .map(|r| {
                let entries = r.into_inner().audit_entries;
                let action = |e: &AuditEntry| {
                    enum_name(
                        AuditAction::try_from(e.action)
                            .ok()
                            .map(|a| a.as_str_name()),
                        "AUDIT_ACTION_",
                        e.action,
                    )
                };
                match output {
                    Output::Json => print_json(
                        &entries
                            .iter()
                            .map(|e| {
                                serde_json::json!({
                                    "name": e.name,
                                    "task": e.task,
                                    "action_time": json_time(&e.action_time),
                                    "actor": e.actor,
                                    "action": action(e),
                                    "before_state": state_name(e.before_state),
                                    "after_state": state_name(e.after_state),
                                    "reason_codes": e.reason_codes,
                                    "comment": e.comment,
                                })
                            })
                            .collect(),
                    ),
                    Output::Name => entries.iter().for_each(|e| println!("{}", e.name)),
                    Output::Table => {
                        let mut table = Table::new(&[
                            "TIME", "ACTOR", "ACTION", "BEFORE", "AFTER", "REASONS", "COMMENT",
                        ]);
                        for e in &entries {
                            table.row(vec![
                                table_time(&e.action_time),
                                e.actor.clone(),
                                action(e),
                                state_name(e.before_state),
                                state_name(e.after_state),
                                if e.reason_codes.is_empty() {
                                    "-".into()
                                } else {
                                    e.reason_codes.join(",")
                                },
                                e.comment.clone(),
                            ]);
                        }
                        table.print();
                    }
                }
            }),
    };
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(status) => {
            g.refused(&review, &status, bearer.is_some());
            Ok(ExitCode::FAILURE)
        }
    }
}

fn notification_kind(n: &Notification) -> String {
    enum_name(
        NotificationEventType::try_from(n.event_type)
            .ok()
            .map(|t| t.as_str_name()),
        "NOTIFICATION_EVENT_TYPE_",
        n.event_type,
    )
}

fn notification_json(n: &Notification) -> serde_json::Value {
    serde_json::json!({
        "name": n.name,
        "event_id": n.event_id,
        "account_id": n.account_id,
        "kind": notification_kind(n),
        "channel": enum_name(NotifyChannel::try_from(n.channel).ok().map(|c| c.as_str_name()), "CHANNEL_", n.channel),
        "recipient": n.recipient,
        "subject": n.subject,
        "template": n.template,
        "locale": n.locale,
        "status": enum_name(DeliveryStatus::try_from(n.status).ok().map(|s| s.as_str_name()), "DELIVERY_STATUS_", n.status),
        "attempts": n.attempts,
        "last_error_code": n.last_error_code,
        "last_error": n.last_error,
        "create_time": json_time(&n.create_time),
        "sent_time": json_time(&n.sent_time),
        "next_attempt_time": json_time(&n.next_attempt_time),
    })
}

pub async fn notifications(command: NotificationsCommand, g: &Global) -> anyhow::Result<ExitCode> {
    let NotificationsCommand::List { account } = command;
    let bearer = g.bearer("koogallery-cli", Role::Operator);
    let notification = g.client(Service::Notification).await?;
    let reply = NotificationServiceClient::new(notification.channel.clone())
        .list_notifications(authed(
            ListNotificationsRequest {
                account_id: account.unwrap_or_default(),
                page_size: 200,
                ..Default::default()
            },
            &bearer,
        ))
        .await;
    let list = match reply {
        Ok(reply) => reply.into_inner().notifications,
        Err(status) => {
            g.refused(&notification, &status, bearer.is_some());
            return Ok(ExitCode::FAILURE);
        }
    };
    match g.output {
        Output::Json => print_json(&list.iter().map(notification_json).collect()),
        Output::Name => list.iter().for_each(|n| println!("{}", n.name)),
        Output::Table => {
            let mut table = Table::new(&[
                "CREATED",
                "KIND",
                "CHANNEL",
                "RECIPIENT",
                "STATUS",
                "TRY",
                "TEMPLATE",
                "ABOUT",
            ]);
            for n in &list {
                let j = notification_json(n);
                let text = |k: &str| j[k].as_str().unwrap_or_default().to_string();
                let status = if n.last_error_code.is_empty() {
                    text("status")
                } else {
                    format!("{} ({})", text("status"), n.last_error_code)
                };
                table.row(vec![
                    table_time(&n.create_time),
                    text("kind"),
                    text("channel"),
                    n.recipient.clone(),
                    status,
                    n.attempts.to_string(),
                    n.template.clone(),
                    n.subject.clone(),
                ]);
            }
            table.print();
            println!("{} notification(s)", list.len());
        }
    }
    Ok(ExitCode::SUCCESS)
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
