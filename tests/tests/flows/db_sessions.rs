//! Database sessions on the tests' own PostgreSQL server: every pooled connection carries the
//! statement, lock and idle-in-transaction timeouts (kg_runtime::db), and each one bites: a
//! runaway statement is cancelled, a writer waits a held row lock out for at most the lock
//! timeout, and a stalled transaction (a paused replica) has its session ended and its locks
//! released.

use std::time::{Duration, Instant};

use kg_runtime::db::DbTimeouts;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};

async fn show(db: &DatabaseConnection, setting: &str) -> String {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SHOW {setting}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<String>(0).unwrap()
}

/// A fresh database on the tests' own PostgreSQL server, with these timeouts.
async fn postgres(url: &str, timeouts: &DbTimeouts) -> DatabaseConnection {
    kg_runtime::db::connect_with(url, timeouts).await.unwrap()
}

#[tokio::test]
async fn postgres_connections_carry_the_timeouts() {
    let url = kg_tests::shared_postgres()
        .await
        .unwrap()
        .fresh_database()
        .await
        .unwrap();
    let db = postgres(&url, &DbTimeouts::default()).await;
    // every connection of the pool, not only the first: hold several at once
    let mut held = Vec::new();
    for _ in 0..3 {
        let txn = db.begin().await.unwrap();
        assert_eq!(show_txn(&txn, "statement_timeout").await, "10s");
        assert_eq!(show_txn(&txn, "lock_timeout").await, "5s");
        assert_eq!(
            show_txn(&txn, "idle_in_transaction_session_timeout").await,
            "5s"
        );
        held.push(txn);
    }
    drop(held);

    let custom = DbTimeouts {
        statement: Duration::from_millis(300),
        lock: Duration::from_millis(200),
        idle_in_transaction: Duration::from_millis(400),
    };
    let db = postgres(&url, &custom).await;
    assert_eq!(show(&db, "statement_timeout").await, "300ms");

    // a runaway statement is cancelled
    let started = Instant::now();
    let slow = db.execute_unprepared("SELECT pg_sleep(5)").await;
    assert!(slow.is_err(), "pg_sleep(5) ran to the end");
    assert!(started.elapsed() < Duration::from_secs(2));

    // a lock held by another transaction is waited for at most lock_timeout
    let table = format!("kg_bounds_{}", std::process::id());
    db.execute_unprepared(&format!(
        "CREATE TABLE IF NOT EXISTS {table} (id INT PRIMARY KEY, n INT)"
    ))
    .await
    .unwrap();
    db.execute_unprepared(&format!(
        "INSERT INTO {table} VALUES (1, 0) ON CONFLICT DO NOTHING"
    ))
    .await
    .unwrap();
    let holder = db.begin().await.unwrap();
    holder
        .execute_unprepared(&format!("UPDATE {table} SET n = n + 1 WHERE id = 1"))
        .await
        .unwrap();
    let started = Instant::now();
    let waiter = db
        .execute_unprepared(&format!("UPDATE {table} SET n = n + 1 WHERE id = 1"))
        .await;
    assert!(waiter.is_err(), "the second writer waited the lock out");
    assert!(started.elapsed() < Duration::from_secs(2));

    // the holder stalls (a paused replica): the server ends its session, the lock is free
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        holder.execute_unprepared("SELECT 1").await.is_err(),
        "an idle transaction survived idle_in_transaction_session_timeout"
    );
    drop(holder);
    db.execute_unprepared(&format!("UPDATE {table} SET n = n + 1 WHERE id = 1"))
        .await
        .expect("the stalled transaction's lock was not released");
    db.execute_unprepared(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}

async fn show_txn(txn: &sea_orm::DatabaseTransaction, setting: &str) -> String {
    let row = txn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("SHOW {setting}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<String>(0).unwrap()
}
