//! Self-tests of the harness: the servers it starts are real, and kill/stop/restart/pause do
//! what they say.

use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use kg_tests::{PostgresServer, RedisServer, SmsProvider, SmtpServer, shared_postgres};
use sea_orm::{ConnectionTrait as _, DbBackend, Statement};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

/// Whether a pid is gone (or a zombie nobody reaped yet).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

async fn wait_gone(pid: u32, what: &str) {
    for _ in 0..250 {
        if process_gone(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} (pid {pid}) still runs");
}

async fn assert_refused(port: u16, what: &str) {
    match TcpStream::connect(("127.0.0.1", port)).await {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{what}: {e}"),
        Ok(_) => panic!("{what}: port {port} still accepts connections"),
    }
}

// ---------------------------------------------------------------- ports

#[test]
fn free_ports_are_distinct_and_bindable() {
    let ports: Vec<u16> = (0..20).map(|_| kg_tests::free_port()).collect();
    let mut unique = ports.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ports.len(), "{ports:?}");
    let listener = std::net::TcpListener::bind(("127.0.0.1", ports[0])).expect("bind");
    assert_eq!(listener.local_addr().unwrap().port(), ports[0]);
}

// ---------------------------------------------------------------- redis

async fn redis_ping(url: &str) -> redis::RedisResult<String> {
    let client = redis::Client::open(url)?;
    let mut con = client.get_multiplexed_async_connection().await?;
    redis::cmd("PING").query_async(&mut con).await
}

#[tokio::test]
async fn redis_set_get_kill_restart_pause() {
    let mut server = RedisServer::start().await.expect("redis starts");
    let port = server.port();
    assert_eq!(server.url(), format!("redis://127.0.0.1:{port}/"));

    let client = redis::Client::open(server.url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("SET")
        .arg("kg:key")
        .arg("value-1")
        .query_async(&mut con)
        .await
        .unwrap();
    let got: String = redis::cmd("GET")
        .arg("kg:key")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(got, "value-1");

    // kill: the port refuses connections, the process is gone
    let pid = server.pid().unwrap();
    server.kill().await.unwrap();
    assert!(!server.is_running());
    wait_gone(pid, "killed redis-server").await;
    assert_refused(port, "killed redis").await;
    assert!(redis_ping(&server.url()).await.is_err());

    // restart on the same port: answers again, data is gone (no persistence)
    server.restart().await.expect("redis restarts");
    assert_eq!(server.port(), port);
    assert_eq!(redis_ping(&server.url()).await.unwrap(), "PONG");
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let got: Option<String> = redis::cmd("GET")
        .arg("kg:key")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(got, None);

    // pause: nothing answers; resume: answers again
    server.pause().unwrap();
    let frozen = tokio::time::timeout(
        Duration::from_millis(500),
        redis::cmd("PING").query_async::<String>(&mut con),
    )
    .await;
    assert!(frozen.is_err(), "a paused redis answered: {frozen:?}");
    server.resume().unwrap();
    let pong: String = tokio::time::timeout(
        Duration::from_secs(5),
        redis::cmd("PING").query_async(&mut con),
    )
    .await
    .expect("answers after resume")
    .unwrap();
    assert_eq!(pong, "PONG");

    // clean stop, then restart again
    server.stop().await.unwrap();
    assert_refused(port, "stopped redis").await;
    server.restart().await.unwrap();
    assert_eq!(redis_ping(&server.url()).await.unwrap(), "PONG");

    // drop: process killed, folder removed
    let pid = server.pid().unwrap();
    let dir = server.dir().to_path_buf();
    drop(server);
    wait_gone(pid, "dropped redis-server").await;
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[tokio::test]
async fn redis_restart_while_running_and_stop_of_paused_server() {
    let mut server = RedisServer::start().await.unwrap();
    let old = server.pid().unwrap();
    server.restart().await.unwrap();
    assert_ne!(server.pid().unwrap(), old);
    wait_gone(old, "the redis-server replaced by restart").await;
    server.pause().unwrap();
    server.stop().await.expect("stop works on a paused server");
    assert!(!server.is_running());
    assert!(server.pause().is_err());
}

// ---------------------------------------------------------------- postgres

async fn count_rows(url: &str) -> anyhow::Result<i64> {
    let db = sea_orm::Database::connect(url).await?;
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) AS n FROM items",
        ))
        .await?
        .expect("one row");
    let n: i64 = row.try_get("", "n")?;
    db.close().await?;
    Ok(n)
}

#[tokio::test]
async fn postgres_database_roundtrip_stop_kill_restart() {
    let mut server = PostgresServer::start().await.expect("postgres starts");
    let port = server.port();
    let url = server.create_database("selftest").await.unwrap();
    assert_eq!(
        url,
        format!("postgres://postgres@127.0.0.1:{port}/selftest")
    );
    assert_eq!(url, server.url("selftest"));
    assert!(server.create_database("bad\"name").await.is_err());
    assert!(
        server.create_database("selftest").await.is_err(),
        "a second CREATE DATABASE of one name must fail"
    );

    let db = server.connect("selftest").await.unwrap();
    db.execute_unprepared("CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL)")
        .await
        .unwrap();
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO items (id, name) VALUES ($1, $2)",
        [1i64.into(), "Ünïcode name".into()],
    ))
    .await
    .unwrap();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT name FROM items WHERE id = $1",
            [1i64.into()],
        ))
        .await
        .unwrap()
        .expect("the inserted row");
    let name: String = row.try_get("", "name").unwrap();
    assert_eq!(name, "Ünïcode name");
    db.close().await.unwrap();

    // clean stop: connecting fails
    server.stop().await.unwrap();
    assert!(!server.is_running());
    assert_refused(port, "stopped postgres").await;
    let failed = tokio::time::timeout(Duration::from_secs(15), server.connect("selftest")).await;
    assert!(
        matches!(failed, Ok(Err(_))),
        "connect to a stopped postgres must fail fast"
    );

    // restart: same port, same data
    server.restart().await.expect("postgres restarts");
    assert_eq!(server.port(), port);
    assert_eq!(count_rows(&url).await.unwrap(), 1);

    // an acknowledged commit survives a SIGKILL of the server and all its backends
    let db = server.connect("selftest").await.unwrap();
    db.execute_unprepared("INSERT INTO items (id, name) VALUES (2, 'two')")
        .await
        .unwrap();
    let pid = server.pid().unwrap();
    server.kill().await.unwrap();
    wait_gone(pid, "killed postmaster").await;
    assert_refused(port, "killed postgres").await;
    assert!(
        db.execute_unprepared("SELECT 1").await.is_err(),
        "a pooled connection to a killed postgres must fail"
    );
    server
        .restart()
        .await
        .expect("postgres restarts after a crash");
    assert_eq!(count_rows(&url).await.unwrap(), 2);

    // drop: stopped, folder removed
    let pid = server.pid().unwrap();
    let dir = server.dir().to_path_buf();
    drop(server);
    wait_gone(pid, "dropped postmaster").await;
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[tokio::test]
async fn postgres_pause_and_resume() {
    let server = PostgresServer::start().await.unwrap();
    let db = server.connect("postgres").await.unwrap();
    db.execute_unprepared("SELECT 1").await.unwrap();
    server.pause().unwrap();
    let frozen = tokio::time::timeout(
        Duration::from_millis(500),
        db.execute_unprepared("SELECT 1"),
    )
    .await;
    assert!(frozen.is_err(), "a paused postgres answered");
    server.resume().unwrap();
    tokio::time::timeout(Duration::from_secs(10), db.execute_unprepared("SELECT 1"))
        .await
        .expect("answers after resume")
        .unwrap();
}

#[tokio::test]
async fn shared_postgres_gives_fresh_databases() {
    let a = shared_postgres().await.expect("shared postgres starts");
    let b = shared_postgres().await.unwrap();
    assert!(std::ptr::eq(a, b), "one instance per process");
    assert!(
        a.dir()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("kg-test-pg-")
    );
    let url1 = a.fresh_database().await.unwrap();
    let url2 = a.fresh_database().await.unwrap();
    assert_ne!(url1, url2);
    for url in [&url1, &url2] {
        let db = sea_orm::Database::connect(url.as_str()).await.unwrap();
        db.execute_unprepared("CREATE TABLE items (id BIGINT PRIMARY KEY)")
            .await
            .expect("each fresh database is empty");
        db.close().await.unwrap();
    }
}

// ---------------------------------------------------------------- smtp

/// Reads one SMTP reply (all its lines) and returns its code.
async fn reply(reader: &mut BufReader<TcpStream>) -> u16 {
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line))
            .await
            .expect("SMTP reply in time")
            .unwrap();
        assert!(n > 0, "SMTP server closed the connection");
        if line.as_bytes().get(3) != Some(&b'-') {
            return line[..3].parse().expect("numeric reply code");
        }
    }
}

async fn send(reader: &mut BufReader<TcpStream>, line: &str) -> u16 {
    reader
        .get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .unwrap();
    reply(reader).await
}

async fn connect_smtp(port: u16) -> BufReader<TcpStream> {
    let mut reader = BufReader::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    assert_eq!(reply(&mut reader).await, 220);
    assert_eq!(send(&mut reader, "HELO selftest.local").await, 250);
    reader
}

async fn send_mail(port: u16, from: &str, to: &[&str], subject: &str) {
    let mut r = connect_smtp(port).await;
    assert_eq!(send(&mut r, &format!("MAIL FROM:<{from}>")).await, 250);
    for rcpt in to {
        assert_eq!(send(&mut r, &format!("RCPT TO:<{rcpt}>")).await, 250);
    }
    assert_eq!(send(&mut r, "DATA").await, 354);
    let message = format!(
        "From: {from}\r\nTo: {}\r\nSubject: {subject}\r\n\r\nHello from the self-test.\r\n.",
        to.join(", ")
    );
    assert_eq!(send(&mut r, &message).await, 250);
    assert_eq!(send(&mut r, "QUIT").await, 221);
}

#[tokio::test]
async fn smtp_sink_receives_kill_restart_reject() {
    let mut server = SmtpServer::start().await.expect("SMTP sink starts");
    let port = server.port();
    assert!(server.messages().is_empty());

    send_mail(
        port,
        "noreply@koogallery.test",
        &["seller@example.com", "ops@example.com"],
        "Application received",
    )
    .await;
    let messages = server.messages();
    assert_eq!(messages.len(), 1, "the message is recorded before 250");
    let mail = &messages[0];
    assert_eq!(mail.mail_from, "noreply@koogallery.test");
    assert_eq!(mail.rcpt_tos, ["seller@example.com", "ops@example.com"]);
    assert_eq!(mail.subject().as_deref(), Some("Application received"));
    assert!(
        mail.body().contains("Hello from the self-test."),
        "{mail:?}"
    );

    // temporary rejection switch
    server.set_rejecting(true).unwrap();
    let mut r = connect_smtp(port).await;
    assert_eq!(send(&mut r, "MAIL FROM:<a@koogallery.test>").await, 250);
    assert_eq!(send(&mut r, "RCPT TO:<b@example.com>").await, 451);
    drop(r);
    server.set_rejecting(false).unwrap();
    server.set_rejecting(false).unwrap(); // idempotent

    // kill: refused; restart: same port, earlier messages kept
    let pid = server.pid().unwrap();
    server.kill().await.unwrap();
    wait_gone(pid, "killed SMTP sink").await;
    assert_refused(port, "killed SMTP sink").await;
    server.restart().await.expect("SMTP sink restarts");
    assert_eq!(server.port(), port);
    send_mail(
        port,
        "noreply@koogallery.test",
        &["x@example.com"],
        "Second",
    )
    .await;
    let messages = server
        .wait_for_messages(2, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(messages[1].subject().as_deref(), Some("Second"));
    assert!(
        server
            .wait_for_messages(3, Duration::from_millis(100))
            .await
            .is_err()
    );

    server.stop().await.unwrap();
    assert_refused(port, "stopped SMTP sink").await;
    let dir = server.dir().to_path_buf();
    drop(server);
    assert!(!dir.exists());
}

// ---------------------------------------------------------------- sms

async fn http_post(port: u16, path: &str, auth: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {auth}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .expect("HTTP response in time")
        .unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn sms_provider_records_posts_and_can_fail() {
    let sms = SmsProvider::start().await.unwrap();
    assert_eq!(sms.url(), format!("http://127.0.0.1:{}", sms.port()));

    let (status, body) = http_post(
        sms.port(),
        "/v1/messages",
        "Bearer sms-token",
        r#"{"to":"+8613800000000","text":"Your application was received"}"#,
    )
    .await;
    assert_eq!(status, 200);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["message_id"], "sms-1");

    assert_eq!(
        sms.messages(),
        [serde_json::json!({"to": "+8613800000000", "text": "Your application was received"})]
    );
    let requests = sms.requests();
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some("Bearer sms-token")
    );
    assert_eq!(requests[0].path, "/v1/messages");
    assert_eq!(requests[0].method, "POST");

    sms.set_failing(true);
    let (status, _) = http_post(sms.port(), "/v1/messages", "Bearer t", r#"{"to":"x"}"#).await;
    assert_eq!(status, 503);
    assert_eq!(
        sms.messages().len(),
        1,
        "a refused request is not a message"
    );
    assert_eq!(sms.requests().len(), 2);
    assert_eq!(sms.requests()[1].status, 503);

    sms.set_failing(false);
    let (status, _) = http_post(sms.port(), "/", "Bearer t", "not json").await;
    assert_eq!(status, 400);
    let (status, _) = http_post(sms.port(), "/", "Bearer t", r#"{"to":"y"}"#).await;
    assert_eq!(status, 200);
    let messages = sms
        .wait_for_messages(2, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(messages[1]["to"], "y");

    let port = sms.port();
    drop(sms);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_refused(port, "dropped SMS provider").await;
}

#[tokio::test]
async fn keeper_thread_keeps_serving_after_the_starting_runtime_is_gone() {
    // started from another runtime that is then dropped, like a test that ended
    let sms = std::thread::spawn(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(kg_tests::start_on_keeper_thread(
                "kg-selftest-sms",
                SmsProvider::start,
            ))
            .unwrap()
    })
    .join()
    .unwrap();
    let (status, _) = http_post(sms.port(), "/", "Bearer k", r#"{"to":"z"}"#).await;
    assert_eq!(status, 200);
    assert_eq!(sms.messages().len(), 1);

    let failed: anyhow::Result<()> =
        kg_tests::start_on_keeper_thread("kg-selftest-fail", || async { anyhow::bail!("boom") })
            .await;
    assert_eq!(failed.unwrap_err().to_string(), "boom");
}

// ---------------------------------------------------------------- leaks

const HOLD_ENV: &str = "KG_SELFTEST_HOLD";

/// Helper run as a child process by `servers_die_with_a_killed_test_binary`: starts servers,
/// prints their pids and folders, and waits to be killed.
#[tokio::test]
#[ignore = "helper: runs only as the child of servers_die_with_a_killed_test_binary"]
async fn hold_servers_until_killed() {
    if std::env::var_os(HOLD_ENV).is_none() {
        return;
    }
    let redis = RedisServer::start().await.unwrap();
    let pg = PostgresServer::start().await.unwrap();
    let smtp = SmtpServer::start().await.unwrap();
    let shared = shared_postgres().await.unwrap();
    for (pid, dir) in [
        (redis.pid(), redis.dir()),
        (pg.pid(), pg.dir()),
        (smtp.pid(), smtp.dir()),
        (shared.pid(), shared.dir()),
    ] {
        println!("HOLD {} {}", pid.unwrap(), dir.display());
    }
    println!("HOLD-READY");
    tokio::time::sleep(Duration::from_secs(120)).await;
}

#[tokio::test]
async fn servers_die_with_a_killed_test_binary() {
    let exe = std::env::current_exe().unwrap();
    let mut child = tokio::process::Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "harness_selftest::hold_servers_until_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOLD_ENV, "1")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut held = Vec::new();
    tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            // libtest may print "test <name> ... " before the first line of the test
            if line.ends_with("HOLD-READY") {
                return;
            }
            if let Some((_, rest)) = line.split_once("HOLD ") {
                let (pid, dir) = rest.split_once(' ').unwrap();
                held.push((pid.parse::<u32>().unwrap(), dir.to_owned()));
            }
        }
        panic!("the helper ended before HOLD-READY");
    })
    .await
    .expect("the helper started its servers in time");
    assert_eq!(held.len(), 4);

    // SIGKILL: no destructor, no atexit handler runs in the helper
    child.kill().await.unwrap();
    for (pid, dir) in &held {
        wait_gone(*pid, &format!("server in {dir} of a killed test binary")).await;
    }

    // the next harness start (in a fresh process) removes the folders of dead owners
    let probe = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "harness_selftest::redis_restart_while_running_and_stop_of_paused_server",
            "--quiet",
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(probe.success());
    for (_, dir) in &held {
        assert!(
            !Path::new(dir).exists(),
            "{dir} of a killed test binary was not cleaned up"
        );
    }
}
