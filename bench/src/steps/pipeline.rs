//! (e) the asynchronous pipeline: submissions followed until review lists their task and
//! notification their APPLICATION_RECEIVED delivery, polled as a reviewer would.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kg_proto::notification::notification_service_client::NotificationServiceClient;
use kg_proto::notification::{ListNotificationsRequest, NotificationEventType};
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_proto::review::ListReviewTasksRequest;
use kg_proto::review::review_service_client::ReviewServiceClient;
use kg_tests::fixtures;

use super::context::Ctx;
use super::outbox;
use crate::clients::Clients;
use crate::console::say;
use crate::load::{self, Budget, drive};
use crate::mesh::Mesh;
use crate::report::{Latency, Pipeline};

/// Measured first, while the relay is idle: the pipeline's own latency, not a queue's.
pub async fn measure(ctx: &mut Ctx<'_>, mesh: &Mesh) -> anyhow::Result<Pipeline> {
    say("(e) asynchronous pipeline (idle relay)");
    let idle = outbox::drain(
        &mesh.registration_db,
        "first submissions",
        Duration::from_secs(30),
    )
    .await?;
    let timeout = Duration::from_secs(if ctx.plan.quick { 15 } else { 30 });
    let samples = ctx.plan.pipeline_samples;
    let pipe = pipeline(ctx, samples, timeout).await?;
    if idle.remaining > 0 {
        ctx.notes.push(format!(
            "(e) started with {} undelivered outbox events (the relay had not delivered the \
             first submissions within 30 s).",
            idle.remaining
        ));
    }
    match (&pipe.review_task, &pipe.notification, &pipe.reason) {
        (_, _, Some(reason)) => say(format!("  not available: {reason}")),
        (r, n, None) => say(format!(
            "  review task p50 {:?} ms, notification p50 {:?} ms",
            r.as_ref().map(|l| l.p50_ms),
            n.as_ref().map(|l| l.p50_ms)
        )),
    }
    Ok(pipe)
}

async fn pipeline(ctx: &mut Ctx<'_>, samples: u64, timeout: Duration) -> anyhow::Result<Pipeline> {
    let concurrency = 8usize.min(samples.max(1) as usize);
    let mut out = Pipeline {
        samples,
        concurrency,
        timeout_s: timeout.as_secs_f64(),
        ..Default::default()
    };
    if let Some(missing) = unanswered(&ctx.clients).await {
        out.reason = Some(missing);
        return Ok(out);
    }
    // One probe submission first: when nothing arrives, say so instead of waiting per sample.
    let (review_ms, notification_ms) = follow(ctx, 1, 1, timeout).await?;
    if review_ms.is_empty() && notification_ms.is_empty() {
        out.reason = Some(format!(
            "neither a review task nor a notification appeared within {:.0} s of a submission \
             (the outbox relay could not deliver; see target/bench-logs)",
            timeout.as_secs_f64()
        ));
        return Ok(out);
    }
    let (review_ms, notification_ms) = follow(ctx, samples, concurrency, timeout).await?;
    out.available = true;
    out.review_timeouts = samples - review_ms.len() as u64;
    out.notification_timeouts = samples - notification_ms.len() as u64;
    out.review_task = summary(review_ms);
    out.notification = summary(notification_ms);
    Ok(out)
}

/// Why the pipeline cannot be followed, when review or notification refuse the list calls.
async fn unanswered(clients: &Clients) -> Option<String> {
    let probe = "applications/00000000-0000-0000-0000-000000000000".to_string();
    let mut review =
        ReviewServiceClient::with_interceptor(clients.review.clone(), clients.reviewer.clone());
    let mut notification = NotificationServiceClient::with_interceptor(
        clients.notification.clone(),
        clients.reviewer.clone(),
    );
    let mut missing = Vec::new();
    if let Err(s) = review
        .list_review_tasks(ListReviewTasksRequest {
            subject: probe.clone(),
            page_size: 1,
            ..Default::default()
        })
        .await
    {
        missing.push(format!(
            "review answers ListReviewTasks with {:?} ({})",
            s.code(),
            s.message()
        ));
    }
    if let Err(s) = notification
        .list_notifications(ListNotificationsRequest {
            subject: probe,
            page_size: 1,
            ..Default::default()
        })
        .await
    {
        missing.push(format!(
            "notification answers ListNotifications with {:?} ({})",
            s.code(),
            s.message()
        ));
    }
    (!missing.is_empty()).then(|| missing.join("; "))
}

fn summary(mut micros: Vec<u32>) -> Option<Latency> {
    if micros.is_empty() {
        return None;
    }
    micros.sort_unstable();
    Some(Latency {
        n: micros.len(),
        p50_ms: load::percentile_ms(&micros, 50.0),
        p95_ms: load::percentile_ms(&micros, 95.0),
        max_ms: f64::from(*micros.last().expect("non-empty")) / 1000.0,
    })
}

/// Submits `samples` applications, `concurrency` at a time, and polls review and notification
/// every 10 ms until each lists it; returns the delays (µs) that were seen within `timeout`.
async fn follow(
    ctx: &mut Ctx<'_>,
    samples: u64,
    concurrency: usize,
    timeout: Duration,
) -> anyhow::Result<(Vec<u32>, Vec<u32>)> {
    let (prefix, seed0) = ctx.ids.take(samples);
    let clients = &ctx.clients;
    clients.import_accounts(&prefix, samples).await?;
    let applicants = Arc::new(clients.applicants(&prefix, samples));
    let review_ms = Arc::new(Mutex::new(Vec::new()));
    let notification_ms = Arc::new(Mutex::new(Vec::new()));
    let (r_out, n_out) = (review_ms.clone(), notification_ms.clone());
    let registration = clients.registration[0].clone();
    let (review, notification) = (clients.review.clone(), clients.notification.clone());
    let reviewer = clients.reviewer.clone();
    let template = Arc::new(ctx.template.clone());
    let budget = Budget {
        duration: Duration::from_secs(3600),
        max_requests: samples,
    };
    let step =
        drive(concurrency, budget, move |i, _| {
            let mut reg = RegistrationServiceClient::with_interceptor(
                registration.clone(),
                applicants[i as usize].clone(),
            );
            let mut rev = ReviewServiceClient::with_interceptor(review.clone(), reviewer.clone());
            let mut not =
                NotificationServiceClient::with_interceptor(notification.clone(), reviewer.clone());
            let mut req = (*template).clone();
            req.request_id = uuid::Uuid::new_v4().to_string();
            req.account_id = format!("{prefix}-{i}");
            if let Some(app) = req.application.as_mut() {
                app.entity = Some(fixtures::entity(seed0 + i));
            }
            let (r_out, n_out) = (r_out.clone(), n_out.clone());
            async move {
                let app = reg
                    .submit_application(req)
                    .await?
                    .into_inner()
                    .application
                    .unwrap_or_default();
                let t0 = Instant::now();
                let (mut task_at, mut note_at) = (None, None);
                while (task_at.is_none() || note_at.is_none()) && t0.elapsed() < timeout {
                    if task_at.is_none() {
                        let tasks = rev
                            .list_review_tasks(ListReviewTasksRequest {
                                subject: app.name.clone(),
                                page_size: 10,
                                ..Default::default()
                            })
                            .await?
                            .into_inner();
                        if !tasks.review_tasks.is_empty() {
                            task_at = Some(t0.elapsed());
                        }
                    }
                    if note_at.is_none() {
                        let notes = not
                            .list_notifications(ListNotificationsRequest {
                                subject: app.name.clone(),
                                page_size: 10,
                                ..Default::default()
                            })
                            .await?
                            .into_inner();
                        if notes.notifications.iter().any(|n| {
                            n.event_type == NotificationEventType::ApplicationReceived as i32
                        }) {
                            note_at = Some(t0.elapsed());
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
                if let Some(d) = task_at {
                    r_out.lock().expect("lock").push(us(d));
                }
                if let Some(d) = note_at {
                    n_out.lock().expect("lock").push(us(d));
                }
                Ok(())
            }
        })
        .await;
    if step.error_count() > 0 {
        say(format!("  pipeline: {:?}", step.errors));
    }
    let r = std::mem::take(&mut *review_ms.lock().expect("lock"));
    let n = std::mem::take(&mut *notification_ms.lock().expect("lock"));
    Ok((r, n))
}
