//! review's gauges, refreshed periodically from the database: open tasks past their deadline
//! decisions not yet acknowledged by registration, and those it refused for good.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use kg_runtime::outbox::OutboxGauges;
use kg_runtime::shutdown::Shutdown;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter};

use crate::migrations::OUTBOX;
use crate::store::{state, task};
use crate::view;

#[derive(Clone)]
pub struct Gauges {
    pub overdue: Gauge<i64, AtomicI64>,
    pub outbox: OutboxGauges,
}

impl Gauges {
    pub fn register(registry: &mut Registry) -> Self {
        let overdue = Gauge::default();
        registry.register(
            "review_overdue_tasks",
            "Review tasks QUEUED or CLAIMED past their deadline",
            overdue.clone(),
        );
        let outbox = OutboxGauges::register(registry, OUTBOX, "Review decisions");
        Self { overdue, outbox }
    }

    pub async fn refresh(&self, db: &DatabaseConnection) -> Result<(), DbErr> {
        let overdue = task::Entity::find()
            .filter(task::Column::State.is_in(state::RUNNING))
            .filter(task::Column::Deadline.lt(view::now()))
            .count(db)
            .await?;
        self.overdue.set(i64::try_from(overdue).unwrap_or(i64::MAX));
        self.outbox.refresh(db, OUTBOX).await
    }

    /// Refreshes every `interval` until shutdown.
    pub async fn run(self, db: DatabaseConnection, interval: Duration, shutdown: Shutdown) {
        loop {
            if let Err(e) = self.refresh(&db).await {
                tracing::warn!(error = %e, "refreshing the review gauges failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {},
                _ = shutdown.clone().wait() => return,
            }
        }
    }
}
