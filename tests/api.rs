//! The HTTP API, served in-process on a fresh database per test.

mod common;

use chrono::{
    DateTime, Datelike as _, Duration, NaiveTime, TimeZone as _, Timelike as _, Utc, Weekday,
};
use common::{ADMIN, ADMIN_PASSWORD, TestApp, assert_error, send};
use reqwest::StatusCode;
use serde_json::{Value, json};

const BACKUP: &str = "/api/v0/meta/settings/backup";
const SMTP: &str = "/api/v0/meta/settings/smtp";
const SMTP_PASSWORD: &str = "smtp-pa55word-that-must-never-leak";

fn msr_documented_body() -> Value {
    json!({
        "enabled": true,
        "fullBackup": true,
        "distributionList": "ops@example.com",
        "schedule": "* * * * *",
        "deadline": "1h0m0s",
        "purge": {"enabled": true, "duration": "1h0m0s"}
    })
}

async fn enable_smtp(app: &TestApp) {
    let (status, body) = send(app.put_json(
        SMTP,
        &json!({"enabled": true, "user": "mailer", "password": SMTP_PASSWORD,
                "serverAddress": "smtp.example.com", "serverPort": 587,
                "senderAddress": "msr@example.com"}),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn backup_settings(app: &TestApp) -> Value {
    let (status, body) = send(app.get(BACKUP)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn without_next_runs(mut settings: Value) -> Value {
    settings.as_object_mut().unwrap().remove("nextRuns");
    settings
}

fn parse_time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap())
        .unwrap()
        .to_utc()
}

#[tokio::test]
async fn defaults_before_anything_is_set() {
    let app = TestApp::spawn().await;
    assert_eq!(
        backup_settings(&app).await,
        json!({"enabled": false, "fullBackup": false, "distributionList": "", "schedule": "",
               "deadline": "", "purge": {"enabled": false, "duration": ""}, "nextRuns": []})
    );
    let (status, smtp) = send(app.get(SMTP)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        smtp,
        json!({"enabled": false, "user": "", "passwordSet": false, "serverAddress": "",
               "serverPort": 587, "senderAddress": "", "security": "starttls"})
    );
    app.stop().await;
}

#[tokio::test]
async fn msr_documented_example_round_trips() {
    let app = TestApp::spawn().await;
    enable_smtp(&app).await;
    let before = Utc::now();
    let (status, put) = send(app.put_json(BACKUP, &msr_documented_body())).await;
    assert_eq!(status, StatusCode::OK, "{put}");
    let got = backup_settings(&app).await;
    assert_eq!(without_next_runs(got.clone()), msr_documented_body());
    assert_eq!(without_next_runs(put), msr_documented_body());

    let runs: Vec<DateTime<Utc>> = got["nextRuns"]
        .as_array()
        .unwrap()
        .iter()
        .map(parse_time)
        .collect();
    assert_eq!(runs.len(), 5);
    assert!(runs[0] > before && runs[0] <= Utc::now() + Duration::minutes(1));
    for pair in runs.windows(2) {
        assert_eq!(pair[1] - pair[0], Duration::minutes(1));
    }
    assert!(runs.iter().all(|run| run.second() == 0));
    app.stop().await;
}

#[tokio::test]
async fn a_get_body_can_be_put_back() {
    let app = TestApp::spawn().await;
    enable_smtp(&app).await;
    send(app.put_json(BACKUP, &msr_documented_body())).await;
    let got = backup_settings(&app).await;
    let (status, body) = send(app.put_json(BACKUP, &got)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, smtp) = send(app.get(SMTP)).await;
    let (status, body) = send(app.put_json(SMTP, &smtp)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["passwordSet"], true, "a PUT without password keeps it");
    app.stop().await;
}

#[tokio::test]
async fn partial_update_keeps_the_other_fields() {
    let app = TestApp::spawn().await;
    enable_smtp(&app).await;
    send(app.put_json(BACKUP, &msr_documented_body())).await;
    let (status, body) = send(app.put_json(BACKUP, &json!({"enabled": false}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut expected = msr_documented_body();
    expected["enabled"] = json!(false);
    assert_eq!(without_next_runs(backup_settings(&app).await), expected);
    app.stop().await;
}

#[tokio::test]
async fn distribution_list_accepts_a_string_or_an_array() {
    let app = TestApp::spawn().await;
    for list in [
        json!("ops@example.com, dba@example.org"),
        json!(["ops@example.com", "dba@example.org"]),
        json!("ops@example.com;dba@example.org,OPS@example.com"),
    ] {
        let (status, body) = send(app.put_json(BACKUP, &json!({"distributionList": list}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            backup_settings(&app).await["distributionList"],
            "ops@example.com,dba@example.org"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn durations_are_normalised_the_go_way() {
    let app = TestApp::spawn().await;
    for (given, normalised) in [
        ("1h0m0s", "1h0m0s"),
        ("90m", "1h30m0s"),
        ("1.5h", "1h30m0s"),
        ("45s", "45s"),
        ("2h45m30.5s", "2h45m30.5s"),
    ] {
        let (status, body) = send(app.put_json(
            BACKUP,
            &json!({"deadline": given, "purge": {"duration": given}}),
        ))
        .await;
        assert_eq!(status, StatusCode::OK, "{given}: {body}");
        let got = backup_settings(&app).await;
        assert_eq!(got["deadline"], normalised, "{given}");
        assert_eq!(got["purge"]["duration"], normalised, "{given}");
    }
    app.stop().await;
}

/// The first time strictly after `t` at which `time` (UTC) falls on a day
/// accepted by `day`.
fn next_matching(
    t: DateTime<Utc>,
    time: NaiveTime,
    day: impl Fn(DateTime<Utc>) -> bool,
) -> DateTime<Utc> {
    let mut date = t.date_naive();
    loop {
        let candidate = Utc.from_utc_datetime(&date.and_time(time));
        if candidate > t && day(candidate) {
            return candidate;
        }
        date = date.succ_opt().unwrap();
    }
}

fn hms(h: u32, m: u32, s: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, s).unwrap()
}

/// Each accepted form, with an independent computation of its next
/// occurrence. The oracle runs for the instants just before and just after
/// the request, so a minute boundary crossed during the call cannot fail it.
#[tokio::test]
async fn every_accepted_schedule_form_reports_its_next_run() {
    type Oracle = fn(DateTime<Utc>) -> DateTime<Utc>;
    let cases: Vec<(&str, Oracle)> = vec![
        ("* * * * *", |t| {
            let minute = t.with_second(0).unwrap().with_nanosecond(0).unwrap();
            minute + Duration::minutes(1)
        }),
        ("0 0 * * * *", |t| {
            let hour = t
                .with_minute(0)
                .unwrap()
                .with_second(0)
                .unwrap()
                .with_nanosecond(0)
                .unwrap();
            hour + Duration::hours(1)
        }),
        ("0 30 17 6 OCT *", |t| {
            next_matching(t, hms(17, 30, 0), |d| d.month() == 10 && d.day() == 6)
        }),
        ("0 30 17 6 oct *", |t| {
            next_matching(t, hms(17, 30, 0), |d| d.month() == 10 && d.day() == 6)
        }),
        ("15 4 * * Sat", |t| {
            next_matching(t, hms(4, 15, 0), |d| d.weekday() == Weekday::Sat)
        }),
        ("0 12 * JAN-mar MON-fri", |t| {
            next_matching(t, hms(12, 0, 0), |d| {
                d.month() <= 3 && d.weekday().number_from_monday() <= 5
            })
        }),
        ("@yearly", |t| {
            next_matching(t, hms(0, 0, 0), |d| d.ordinal() == 1)
        }),
        ("@ANNUALLY", |t| {
            next_matching(t, hms(0, 0, 0), |d| d.ordinal() == 1)
        }),
        ("@monthly", |t| {
            next_matching(t, hms(0, 0, 0), |d| d.day() == 1)
        }),
        ("@weekly", |t| {
            next_matching(t, hms(0, 0, 0), |d| d.weekday() == Weekday::Sun)
        }),
        ("@daily", |t| next_matching(t, hms(0, 0, 0), |_| true)),
        ("@Hourly", |t| {
            let hour = t
                .with_minute(0)
                .unwrap()
                .with_second(0)
                .unwrap()
                .with_nanosecond(0)
                .unwrap();
            hour + Duration::hours(1)
        }),
        ("CRON_TZ=Asia/Kolkata 0 9 * * *", |t| {
            next_matching(t, hms(3, 30, 0), |_| true)
        }),
        ("CRON_TZ=Europe/Berlin 0 9 * * *", |t| {
            let berlin = chrono_tz::Europe::Berlin;
            let mut date = t.with_timezone(&berlin).date_naive();
            loop {
                let candidate = berlin
                    .from_local_datetime(&date.and_time(hms(9, 0, 0)))
                    .unwrap()
                    .to_utc();
                if candidate > t {
                    return candidate;
                }
                date = date.succ_opt().unwrap();
            }
        }),
    ];
    let app = TestApp::spawn().await;
    for (schedule, oracle) in cases {
        let before = Utc::now();
        let (status, body) = send(app.put_json(BACKUP, &json!({"schedule": schedule}))).await;
        let after = Utc::now();
        assert_eq!(status, StatusCode::OK, "{schedule}: {body}");
        assert_eq!(body["schedule"], schedule);
        let first = parse_time(&body["nextRuns"][0]);
        assert!(
            first == oracle(before) || first == oracle(after),
            "{schedule}: got {first}, expected {}",
            oracle(before)
        );
        assert_eq!(body["nextRuns"].as_array().unwrap().len(), 5, "{schedule}");
    }
    app.stop().await;
}

#[tokio::test]
async fn rejected_settings_change_nothing() {
    let app = TestApp::spawn().await;
    enable_smtp(&app).await;
    let stored = json!({"enabled": true, "fullBackup": false, "distributionList": "ops@example.com",
                        "schedule": "@daily", "deadline": "2h0m0s", "purge": {"enabled": true, "duration": "720h0m0s"}});
    let (status, body) = send(app.put_json(BACKUP, &stored)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let cases = [
        (json!({"schedule": "0 0 30 FEB *"}), "schedule"),
        (json!({"schedule": "61 * * * *"}), "schedule"),
        (json!({"schedule": "* * * *"}), "schedule"),
        (json!({"schedule": "0 0 0 * * * 2030"}), "schedule"),
        (json!({"schedule": "every day"}), "schedule"),
        (json!({"schedule": "@reboot"}), "schedule"),
        (
            json!({"schedule": "CRON_TZ=Mars/Olympus * * * * *"}),
            "schedule",
        ),
        (json!({"schedule": ""}), "schedule"),
        (json!({"deadline": "0s"}), "deadline"),
        (json!({"deadline": "-1h"}), "deadline"),
        (json!({"deadline": "1d"}), "deadline"),
        (json!({"deadline": "soon"}), "deadline"),
        (json!({"deadline": 3600}), "deadline"),
        (
            json!({"purge": {"enabled": true, "duration": "0"}}),
            "purge.duration",
        ),
        (json!({"purge": {"duration": "-5m"}}), "purge.duration"),
        (json!({"purge": {"duration": "1w"}}), "purge.duration"),
        (
            json!({"distributionList": "ops@example.com, nobody"}),
            "distributionList",
        ),
        (
            json!({"distributionList": ["ops@example.com", "@example.com"]}),
            "distributionList",
        ),
        (json!({"enabled": "yes"}), "enabled"),
        (json!({"fullBackup": 1}), "fullBackup"),
        (json!({"enabled": null}), "enabled"),
        (json!({"nextRuns": [1]}), "nextRuns[0]"),
        (json!({"purge": true}), "purge"),
        (json!({"keepForever": true}), "keepForever"),
        (json!(["enabled"]), "body"),
    ];
    for (body, field) in cases {
        let response = send(app.put_json(BACKUP, &body)).await;
        let error = assert_error(&response, 400, "INVALID_SETTINGS");
        assert_eq!(error["detail"]["field"], field, "{body}: {error}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.starts_with(field),
            "{body}: the message names the field: {message}"
        );
        assert_eq!(
            without_next_runs(backup_settings(&app).await),
            stored,
            "{body} changed the settings"
        );
    }

    for raw in ["{\"enabled\": true", "not json", ""] {
        let request = app
            .http
            .put(app.url(BACKUP))
            .basic_auth(ADMIN, Some(ADMIN_PASSWORD))
            .header("content-type", "application/json")
            .body(raw);
        assert_error(&send(request).await, 400, "INVALID_JSON");
        assert_eq!(without_next_runs(backup_settings(&app).await), stored);
    }
    app.stop().await;
}

#[tokio::test]
async fn enabling_backups_needs_smtp_first() {
    let app = TestApp::spawn().await;
    let response = send(app.put_json(BACKUP, &msr_documented_body())).await;
    let error = assert_error(&response, 400, "INVALID_SETTINGS");
    assert_eq!(error["detail"]["field"], "enabled");
    assert!(
        error["message"].as_str().unwrap().contains("SMTP"),
        "{error}"
    );
    assert_eq!(backup_settings(&app).await["enabled"], false);

    enable_smtp(&app).await;
    let (status, _) = send(app.put_json(BACKUP, &msr_documented_body())).await;
    assert_eq!(status, StatusCode::OK);
    // ...and SMTP cannot be switched off under enabled backups.
    let response = send(app.put_json(SMTP, &json!({"enabled": false}))).await;
    assert_error(&response, 400, "INVALID_SETTINGS");
    assert_eq!(send(app.get(SMTP)).await.1["enabled"], true);
    app.stop().await;
}

#[tokio::test]
async fn smtp_settings_validate_and_never_return_the_password() {
    let app = TestApp::spawn().await;
    enable_smtp(&app).await;
    let (_, stored) = send(app.get(SMTP)).await;
    assert_eq!(
        stored,
        json!({"enabled": true, "user": "mailer", "passwordSet": true, "serverAddress": "smtp.example.com",
               "serverPort": 587, "senderAddress": "msr@example.com", "security": "starttls"})
    );
    let cases = [
        (json!({"serverPort": 0}), "serverPort"),
        (json!({"serverPort": 65536}), "serverPort"),
        (json!({"serverPort": -25}), "serverPort"),
        (json!({"serverPort": "25"}), "serverPort"),
        (json!({"serverAddress": "mail server"}), "serverAddress"),
        (json!({"serverAddress": ""}), "serverAddress"),
        (
            json!({"senderAddress": "msr at example.com"}),
            "senderAddress",
        ),
        (json!({"security": "ssl"}), "security"),
        (json!({"password": null}), "password"),
        (json!({"passwordSet": "yes"}), "passwordSet"),
        (json!({"password": ""}), "password"),
        (json!({"passwordHint": "x"}), "passwordHint"),
    ];
    for (body, field) in cases {
        let response = send(app.put_json(SMTP, &body)).await;
        let error = assert_error(&response, 400, "INVALID_SETTINGS");
        assert_eq!(error["detail"]["field"], field, "{body}: {error}");
        assert_eq!(
            send(app.get(SMTP)).await.1,
            stored,
            "{body} changed the settings"
        );
    }
    for security in ["tls", "none", "starttls"] {
        let (status, body) =
            send(app.put_json(SMTP, &json!({"security": security, "serverPort": 465}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["security"], security);
        assert_eq!(body["passwordSet"], true);
    }

    // The password shows up nowhere: not in settings, errors or other resources.
    let mut bodies = Vec::new();
    for request in [
        app.get(SMTP),
        app.get(BACKUP),
        app.put_json(SMTP, &json!({"user": "mailer2"})),
        app.put_json(SMTP, &json!({"serverPort": 0, "password": SMTP_PASSWORD})),
        app.put_json(SMTP, &json!({"password": SMTP_PASSWORD, "bogus": 1})),
    ] {
        bodies.push(request.send().await.unwrap().text().await.unwrap());
    }
    for body in bodies {
        assert!(!body.contains(SMTP_PASSWORD), "password leaked: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn settings_writes_notify_every_replica() {
    let app = TestApp::spawn().await;
    let mut listener = sqlx::postgres::PgListener::connect(&app.db.url)
        .await
        .unwrap();
    listener
        .listen(msr::settings::NOTIFY_CHANNEL)
        .await
        .unwrap();
    let (status, _) = send(app.put_json(BACKUP, &json!({"schedule": "@daily"}))).await;
    assert_eq!(status, StatusCode::OK);
    let notification = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
        .await
        .expect("a NOTIFY within 5s")
        .unwrap();
    assert_eq!(notification.payload(), "backup");

    // A rejected write notifies nobody.
    send(app.put_json(BACKUP, &json!({"schedule": "nonsense"}))).await;
    send(app.put_json(SMTP, &json!({"serverPort": 1}))).await;
    let notification = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        notification.payload(),
        "smtp",
        "the rejected backup PUT sent nothing"
    );
    app.stop().await;
}

#[tokio::test]
async fn settings_need_an_authenticated_admin() {
    let app = TestApp::spawn().await;
    app.create_user("alice", "alice-password", false).await;
    app.create_user("root2", "root2-password", true).await;
    sqlx::query("UPDATE accounts SET is_active = false WHERE name = 'root2'")
        .execute(&mut app.db.connect().await)
        .await
        .unwrap();

    for path in [BACKUP, SMTP] {
        let anonymous = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
        let challenge = anonymous.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.starts_with("Basic "), "{challenge}");
        let body: Value = anonymous.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "NOT_AUTHENTICATED");

        let attempts = [
            (ADMIN, "wrong password", 401, "NOT_AUTHENTICATED"),
            ("nobody", "whatever", 401, "NOT_AUTHENTICATED"),
            ("root2", "root2-password", 401, "NOT_AUTHENTICATED"),
            ("alice", "alice-password", 403, "NOT_AUTHORIZED"),
        ];
        for (user, password, status, code) in attempts {
            let get = app.http.get(app.url(path)).basic_auth(user, Some(password));
            assert_error(&send(get).await, status, code);
            let put = app
                .http
                .put(app.url(path))
                .basic_auth(user, Some(password))
                .json(&json!({}));
            assert_error(&send(put).await, status, code);
        }
        let garbled = app
            .http
            .get(app.url(path))
            .header("authorization", "Basic %%%");
        assert_error(&send(garbled).await, 401, "NOT_AUTHENTICATED");
    }
    // Unauthorized attempts change nothing.
    assert_eq!(backup_settings(&app).await["schedule"], "");
    app.stop().await;
}

#[tokio::test]
async fn every_rejection_is_an_msr_error() {
    let app = TestApp::spawn().await;
    assert_error(
        &send(app.get("/api/v0/no/such/thing")).await,
        404,
        "NO_SUCH_ROUTE",
    );
    assert_error(
        &send(app.http.get(app.url("/"))).await,
        404,
        "NO_SUCH_ROUTE",
    );

    let response = app
        .http
        .delete(app.url(BACKUP))
        .basic_auth(ADMIN, Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = response
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "METHOD_NOT_ALLOWED");
    assert!(
        allow
            .as_deref()
            .is_some_and(|a| a.contains("GET") && a.contains("PUT")),
        "{allow:?}"
    );

    let form = app
        .http
        .put(app.url(BACKUP))
        .basic_auth(ADMIN, Some(ADMIN_PASSWORD))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("enabled=true");
    assert_error(&send(form).await, 415, "UNSUPPORTED_MEDIA_TYPE");

    let huge = json!({"distributionList": "a@example.com,".repeat(10_000)});
    assert_error(
        &send(app.put_json(BACKUP, &huge)).await,
        413,
        "REQUEST_TOO_LARGE",
    );
    app.stop().await;
}

#[tokio::test]
async fn server_failures_are_internal_errors_with_a_request_id_only() {
    let app = TestApp::spawn().await;
    sqlx::query("DROP TABLE settings")
        .execute(&mut app.db.connect().await)
        .await
        .unwrap();
    let response = app.get(BACKUP).send().await.unwrap();
    let header_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let text = response.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    let error = assert_error(
        &(StatusCode::INTERNAL_SERVER_ERROR, body),
        500,
        "INTERNAL_ERROR",
    );
    assert_eq!(error["detail"]["requestID"], header_id.as_str());
    for internal in ["settings", "relation", "SELECT", "sqlx"] {
        assert!(!text.contains(internal), "internals leaked: {text}");
    }
    app.stop().await;
}

#[tokio::test]
async fn ping_and_health() {
    let app = TestApp::spawn().await;
    let ping = app.http.get(app.url("/_ping")).send().await.unwrap();
    assert_eq!(ping.status(), StatusCode::OK);
    let (status, health) = send(app.http.get(app.url("/health"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health, json!({"healthy": true, "database": "up"}));
    app.stop().await;
}

#[tokio::test]
async fn health_follows_the_database_down_and_back_up() {
    let db = common::TestDb::new().await;
    let upstream: url::Url = db.url.parse().unwrap();
    let upstream = format!(
        "{}:{}",
        upstream.host_str().unwrap(),
        upstream.port().unwrap_or(5432)
    );
    let proxy = common::DbProxy::start(
        tokio::net::lookup_host(upstream)
            .await
            .unwrap()
            .next()
            .unwrap(),
    )
    .await;
    let via_proxy = proxy.url_for(&db.url);
    let app = TestApp::spawn_on(db, &via_proxy).await;
    assert_eq!(
        send(app.http.get(app.url("/health"))).await.0,
        StatusCode::OK
    );

    proxy.down();
    let (status, health) = send(app.http.get(app.url("/health"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health, json!({"healthy": false, "database": "down"}));
    // The API says so in MSR's shape, too, and the process stays up.
    let (status, _) = send(app.get(BACKUP)).await;
    assert!(status.is_server_error(), "{status}");
    assert_eq!(
        app.http
            .get(app.url("/_ping"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    proxy.up();
    let mut recovered = false;
    for _ in 0..50 {
        if send(app.http.get(app.url("/health"))).await.0 == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(recovered, "health did not come back after the database did");
    assert_eq!(send(app.get(BACKUP)).await.0, StatusCode::OK);
    app.stop().await;
}

#[test]
fn openapi_and_router_agree() {
    let spec: Value =
        serde_norway::from_str(include_str!("../openapi.yaml")).expect("openapi.yaml parses");
    const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys() {
            if METHODS.contains(&method.as_str()) {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    let mut served: Vec<(String, String)> = msr::api::routes()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(documented, served, "openapi.yaml and the router disagree");

    // Every authenticated operation documents its error responses with the
    // MSR schema; the unauthenticated health checks document none.
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let responses = operation["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path}: no responses"));
            if path.starts_with("/v2/") {
                // The distribution API documents its errors once, as the spec does.
                assert!(
                    responses.contains_key("default"),
                    "{method} {path}: no default response"
                );
            } else {
                let authenticated = path.starts_with("/api/") || path.starts_with("/enzi/");
                for status in ["401", "403", "500"] {
                    assert_eq!(
                        responses.contains_key(status),
                        authenticated,
                        "{method} {path}: response {status}"
                    );
                }
            }
            // Path parameters are declared, once each, for every `{name}`.
            let declared: Vec<String> = item["parameters"]
                .as_array()
                .into_iter()
                .chain(operation["parameters"].as_array())
                .flatten()
                .map(|parameter| resolve(&spec, parameter))
                .filter(|parameter| parameter["in"] == "path")
                .map(|parameter| parameter["name"].as_str().unwrap().to_owned())
                .collect();
            let mut in_path: Vec<String> = path
                .split('/')
                .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
                .map(str::to_owned)
                .collect();
            let mut declared_sorted = declared.clone();
            declared_sorted.sort();
            in_path.sort();
            assert_eq!(declared_sorted, in_path, "{method} {path}: path parameters");
        }
    }
}

/// A parameter object, following a `$ref` into `components`.
fn resolve<'a>(spec: &'a Value, parameter: &'a Value) -> &'a Value {
    match parameter["$ref"].as_str() {
        Some(reference) => reference
            .strip_prefix("#/")
            .expect("local reference")
            .split('/')
            .fold(spec, |node, key| &node[key]),
        None => parameter,
    }
}
