//! E-mail notifications against a real SMTP server (aiosmtpd): one mail per
//! recipient per finished backup or purge job, with AUTH, with the server
//! down, and with a server that stalls; the notices of a replica that stops;
//! and the SMTP test message.

mod common;

use std::time::{Duration, Instant};

use common::jobs::{Api, eventually};
use common::smtp::{SmtpServer, TestCertificates};
use common::{TestApp, TestDb, assert_error};
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "s3cret-smtp-pass";

async fn configure(api: &Api, port: u16, credentials: Option<(&str, &str)>, recipients: &str) {
    let mut smtp = json!({
        "enabled": true,
        "serverAddress": "127.0.0.1",
        "serverPort": port,
        "senderAddress": "msr@example.com",
        "security": "none",
    });
    if let Some((user, password)) = credentials {
        smtp["user"] = json!(user);
        smtp["password"] = json!(password);
    }
    let (status, body) = api
        .call(Method::PUT, "/api/v0/meta/settings/smtp", Some(&smtp))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api
        .call(
            Method::PUT,
            "/api/v0/meta/settings/backup",
            Some(&json!({ "enabled": true, "schedule": "0 0 1 1 *", "distributionList": recipients })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn run_backup(api: &Api, body: Value, status: &str) -> String {
    let job = api.start_job(body).await;
    let id = job["id"].as_str().unwrap().to_owned();
    api.wait_for_status(&id, status, Duration::from_secs(30))
        .await;
    id
}

/// Waits for the job's log to have a line starting with `prefix`, for each of `prefixes`.
async fn wait_for_lines(api: &Api, id: &str, prefixes: &[String], limit: Duration) -> Vec<String> {
    eventually("the notification lines", limit, || async {
        let log = api.log(id).await;
        prefixes
            .iter()
            .all(|p| log.iter().any(|l| l.starts_with(p.as_str())))
    })
    .await;
    api.log(id).await
}

/// A job's log straight from the database, for when no app is left to ask.
async fn job_log(db: &TestDb, id: &str) -> Vec<String> {
    let mut conn = db.connect().await;
    sqlx::query_scalar("SELECT data FROM job_logs WHERE job_id = $1::uuid ORDER BY line_num")
        .bind(id)
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

fn subject(message: &Value) -> &str {
    message["subject"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_recipient_gets_one_mail_per_finished_job() {
    let smtp = SmtpServer::start(None);
    let app = TestApp::spawn().await;
    let api = Api::new(&app.base);
    configure(&api, smtp.port, None, "ops@example.com, dev@example.com").await;

    let done = run_backup(&api, json!({ "action": "backup" }), "done").await;
    let messages = smtp.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(messages.len(), 2);
    let mut recipients: Vec<_> = messages.iter().map(|m| m["rcpt_tos"].clone()).collect();
    recipients.sort_by_key(|r| r.to_string());
    assert_eq!(
        recipients,
        [json!(["dev@example.com"]), json!(["ops@example.com"])]
    );
    let backup = &api.backups().await[0];
    for message in &messages {
        assert_eq!(message["mail_from"], "msr@example.com");
        assert_eq!(subject(message), "[msr test-registry] Backup done");
        let body = message["body"].as_str().unwrap();
        for expected in [
            format!("Job:       {done}"),
            "Action:    backup".to_owned(),
            "Type:      metadata".to_owned(),
            format!("Backup:    {}", backup["id"].as_str().unwrap()),
            format!("({} bytes)", backup["size"]),
            format!(
                "Location:  {}/{}",
                backup["location"].as_str().unwrap(),
                backup["key"].as_str().unwrap()
            ),
            "Kept:      1 backup(s) in the catalog".to_owned(),
            "Started:   ".to_owned(),
            "Duration:  ".to_owned(),
        ] {
            assert!(body.contains(&expected), "{expected:?} not in {body}");
        }
    }
    let log = wait_for_lines(
        &api,
        &done,
        &[
            "notified ops@example.com: 250 2.0.0 Ok".to_owned(),
            "notified dev@example.com: 250".to_owned(),
        ],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(log.iter().filter(|l| l.starts_with("notified ")).count(), 2);

    // An errored backup: the reason is in the mail.
    sqlx::query("INSERT INTO blobs (digest, size) VALUES ($1, 1)")
        .bind(format!("sha256:{}", "0".repeat(64)))
        .execute(&mut app.db.connect().await)
        .await
        .unwrap();
    let errored = run_backup(
        &api,
        json!({ "action": "backup", "parameters": { "fullBackup": "true" } }),
        "errored",
    )
    .await;
    let messages = smtp.wait_for(4, Duration::from_secs(15)).await;
    for message in &messages[2..] {
        assert_eq!(subject(message), "[msr test-registry] Backup errored");
        let body = message["body"].as_str().unwrap();
        assert!(body.contains(&format!("Job:       {errored}")), "{body}");
        assert!(body.contains("Type:      full"), "{body}");
        assert!(
            body.contains("Last log lines:") && body.contains(&"0".repeat(64)),
            "{body}"
        );
    }

    // A purge job notifies alike.
    let purge = run_backup(
        &api,
        json!({ "action": "backup_purge", "parameters": { "duration": "1h" } }),
        "done",
    )
    .await;
    let messages = smtp.wait_for(6, Duration::from_secs(15)).await;
    for message in &messages[4..] {
        assert_eq!(subject(message), "[msr test-registry] Backup purge done");
        let body = message["body"].as_str().unwrap();
        assert!(body.contains(&format!("Job:       {purge}")), "{body}");
        assert!(body.contains("deleted 0 backup(s)"), "{body}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(smtp.messages().len(), 6, "one mail per recipient per job");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_auth_and_the_test_message() {
    let smtp = SmtpServer::start(Some(&format!("mailer:{PASSWORD}")));
    let app = TestApp::spawn().await;
    let api = Api::new(&app.base);
    configure(
        &api,
        smtp.port,
        Some(("mailer", PASSWORD)),
        "ops@example.com",
    )
    .await;

    let (status, body) = api
        .call(
            Method::POST,
            "/api/v0/meta/settings/smtp/test",
            Some(&json!({ "to": "ops@example.com" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["to"], "ops@example.com");
    assert!(
        body["serverResponse"]
            .as_str()
            .unwrap()
            .starts_with("250 2.0.0 Ok"),
        "{body}"
    );
    let messages = smtp.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(messages[0]["auth_user"], "mailer");
    assert_eq!(subject(&messages[0]), "[msr test-registry] SMTP test");

    let done = run_backup(&api, json!({ "action": "backup" }), "done").await;
    let messages = smtp.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(messages[1]["auth_user"], "mailer");
    for message in &messages {
        assert!(!message["raw"].as_str().unwrap().contains(PASSWORD));
    }

    // Refused credentials: the test says so; a job stays done and logs it.
    let (status, body) = api
        .call(
            Method::PUT,
            "/api/v0/meta/settings/smtp",
            Some(&json!({ "password": "wrong" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let refused = api
        .call(
            Method::POST,
            "/api/v0/meta/settings/smtp/test",
            Some(&json!({ "to": "ops@example.com" })),
        )
        .await;
    let error = assert_error(&refused, 502, "SMTP_FAILED");
    assert!(
        error["message"].as_str().unwrap().contains("535"),
        "{error}"
    );
    let second = run_backup(&api, json!({ "action": "backup" }), "done").await;
    let log = wait_for_lines(
        &api,
        &second,
        &["notifying ops@example.com failed after 3 attempts: ".to_owned()],
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(api.job(&second).await["status"], "done");
    for line in api.log(&done).await.iter().chain(&log) {
        assert!(
            !line.contains(PASSWORD) && !line.contains("wrong"),
            "{line}"
        );
    }
    assert_eq!(smtp.messages().len(), 2);

    // STARTTLS and implicit TLS are required when configured: this server
    // offers neither, and is refused rather than spoken to in the clear.
    for security in ["starttls", "tls"] {
        let (status, body) = api
            .call(
                Method::PUT,
                "/api/v0/meta/settings/smtp",
                Some(&json!({ "security": security, "password": PASSWORD })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let answer = api
            .call(
                Method::POST,
                "/api/v0/meta/settings/smtp/test",
                Some(&json!({ "to": "ops@example.com" })),
            )
            .await;
        let error = assert_error(&answer, 502, "SMTP_FAILED");
        if security == "starttls" {
            assert!(
                error["message"]
                    .as_str()
                    .unwrap()
                    .contains("STARTTLS is not supported"),
                "{error}"
            );
        }
    }
    assert_eq!(smtp.messages().len(), 2);

    for bad in [
        json!({ "to": "not an address" }),
        json!({}),
        json!({ "to": "a@b.c", "cc": "x@y.z" }),
    ] {
        let answer = api
            .call(Method::POST, "/api/v0/meta/settings/smtp/test", Some(&bad))
            .await;
        assert_eq!(answer.0, 400, "{bad}: {}", answer.1);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_server_that_is_down_or_stalls_never_holds_up_the_jobs() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app.base);

    // Nothing listens on the port.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    configure(&api, down, None, "ops@example.com").await;
    let refused = api
        .call(
            Method::POST,
            "/api/v0/meta/settings/smtp/test",
            Some(&json!({ "to": "ops@example.com" })),
        )
        .await;
    assert_error(&refused, 502, "SMTP_FAILED");
    let job = run_backup(&api, json!({ "action": "backup" }), "done").await;
    wait_for_lines(
        &api,
        &job,
        &["notifying ops@example.com failed after 3 attempts: ".to_owned()],
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(api.job(&job).await["status"], "done");

    // A server that accepts the connection and never answers: each attempt
    // times out (MSR_SMTP_TIMEOUT is 3s here), and meanwhile jobs go on.
    let stalling = SmtpServer::stalling();
    configure(&api, stalling.port, None, "ops@example.com").await;
    let started = Instant::now();
    let test = api
        .call(
            Method::POST,
            "/api/v0/meta/settings/smtp/test",
            Some(&json!({ "to": "ops@example.com" })),
        )
        .await;
    let error = assert_error(&test, 502, "SMTP_FAILED");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("no answer within 3s"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    let first = run_backup(&api, json!({ "action": "backup" }), "done").await;
    let second = run_backup(&api, json!({ "action": "backup" }), "done").await;
    // The second backup was done while the first's notice was still trying.
    assert!(
        !api.log(&first)
            .await
            .iter()
            .any(|l| l.starts_with("notifying "))
    );
    let log = wait_for_lines(
        &api,
        &first,
        &["notifying ops@example.com failed after 3 attempts: no answer within 3s".to_owned()],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(api.job(&first).await["status"], "done");
    assert_eq!(api.job(&second).await["status"], "done");
    assert!(log.iter().any(|l| l.starts_with("done in ")));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_implicit_tls_with_a_private_ca() {
    let certificates = TestCertificates::new();
    let ca = certificates.ca.clone();
    let app = TestApp::spawn_configured(|args| args.smtp_ca_file = Some(ca)).await;
    let api = Api::new(&app.base);
    for (security, implicit) in [("starttls", false), ("tls", true)] {
        let smtp = SmtpServer::start_tls(&certificates, implicit);
        configure(&api, smtp.port, None, "ops@example.com").await;
        let (status, body) = api
            .call(
                Method::PUT,
                "/api/v0/meta/settings/smtp",
                Some(&json!({ "security": security })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = api
            .call(
                Method::POST,
                "/api/v0/meta/settings/smtp/test",
                Some(&json!({ "to": "ops@example.com" })),
            )
            .await;
        assert_eq!(status, 200, "{security}: {body}");
        let job = run_backup(&api, json!({ "action": "backup" }), "done").await;
        let messages = smtp.wait_for(2, Duration::from_secs(15)).await;
        assert_eq!(subject(&messages[1]), "[msr test-registry] Backup done");
        wait_for_lines(
            &api,
            &job,
            &["notified ops@example.com: 250".to_owned()],
            Duration::from_secs(10),
        )
        .await;
    }
    // Without the CA, the same server's certificate is refused.
    let stranger = TestApp::spawn().await;
    let api = Api::new(&stranger.base);
    let smtp = SmtpServer::start_tls(&certificates, false);
    configure(&api, smtp.port, None, "ops@example.com").await;
    let (status, _) = api
        .call(
            Method::PUT,
            "/api/v0/meta/settings/smtp",
            Some(&json!({ "security": "starttls" })),
        )
        .await;
    assert_eq!(status, 200);
    let refused = api
        .call(
            Method::POST,
            "/api/v0/meta/settings/smtp/test",
            Some(&json!({ "to": "ops@example.com" })),
        )
        .await;
    let error = assert_error(&refused, 502, "SMTP_FAILED");
    assert!(
        error["message"].as_str().unwrap().contains("certificate"),
        "{error}"
    );
    assert!(smtp.messages().is_empty());
    stranger.stop().await;
    app.stop().await;
}

/// A replica told to stop while it sends a notice gives it what is left of
/// its shutdown grace (2s here) to go out; one that cannot go out in time
/// is given up, and its job's log says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_replica_sends_its_notices_or_says_it_did_not() {
    // DATA is answered after 1.5s, so the notice is still on its way when
    // the stop comes, and within the grace.
    let slow = SmtpServer::slow(Duration::from_millis(1500));
    let app = TestApp::spawn().await;
    let api = Api::new(&app.base);
    configure(&api, slow.port, None, "ops@example.com").await;
    let job = run_backup(&api, json!({ "action": "backup" }), "done").await;
    assert!(
        slow.messages().is_empty(),
        "the notice was sent before the stop"
    );
    let db = app.stop().await;
    assert_eq!(
        slow.messages().len(),
        1,
        "the notice did not go out before the stop ended"
    );
    let log = job_log(&db, &job).await;
    assert!(
        log.iter()
            .any(|l| l.starts_with("notified ops@example.com: 250")),
        "{log:#?}"
    );

    // A server that never answers: the stop waits out the grace and no
    // longer (three attempts would take over 9s), and says what was lost.
    let stalling = SmtpServer::stalling();
    let app = TestApp::spawn().await;
    let api = Api::new(&app.base);
    configure(&api, stalling.port, None, "ops@example.com").await;
    let job = run_backup(&api, json!({ "action": "backup" }), "done").await;
    let stopping = Instant::now();
    let db = app.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(8),
        "{:?}",
        stopping.elapsed()
    );
    let log = job_log(&db, &job).await;
    assert!(
        log.iter().any(
            |l| l == "notification unfinished: msr stopped before every recipient was notified"
        ),
        "{log:#?}"
    );
    assert!(
        !log.iter()
            .any(|l| l.starts_with("notif") && l.contains("ops@example.com")),
        "{log:#?}"
    );
}
