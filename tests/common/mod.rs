//! Test harness: a fresh PostgreSQL database per test, the real router served
//! on port 0, and a TCP proxy that can cut the database off.
//!
//! PostgreSQL must be reachable at `MSR_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); when it is not, tests fail
//! with a message saying so, they never skip.

#![allow(dead_code)] // each test binary uses its own part of the harness

pub mod archive;
pub mod jobs;
pub mod moto;
pub mod oci;
pub mod smtp;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use msr::config::{GlobalArgs, LogFormat, ServeArgs};
use sqlx::{Connection as _, PgConnection};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

pub fn server_url() -> String {
    std::env::var("MSR_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database of its own, dropped when the test ends.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn new() -> Self {
        let server = server_url();
        let mut conn = PgConnection::connect(&server).await.unwrap_or_else(|err| {
            panic!("PostgreSQL is required for the tests and is not reachable at {server}: {err}")
        });
        let name = format!("msr_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("creating the test database");
        let url = database_url_for(&server, &name);
        Self { name, url }
    }

    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url)
            .await
            .expect("connecting to the test database")
    }
}

/// The same server URL pointing at another database (and optionally port).
fn database_url_for(server: &str, database: &str) -> String {
    let mut url: url::Url = server.parse().expect("MSR_TEST_DATABASE_URL is a URL");
    url.set_path(database);
    url.to_string()
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let server = server_url();
        // Drop runs outside any async context we could borrow, so use a
        // private runtime on a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for dropping the test database");
            runtime.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&server).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

pub fn global_args(database_url: &str) -> GlobalArgs {
    GlobalArgs {
        database_url: Some(database_url.to_owned().into()),
        log_format: LogFormat::Text,
        log: "warn".to_owned(),
        db_max_connections: 5,
        db_startup_timeout: "10s".parse().unwrap(),
    }
}

pub fn serve_args(storage: &std::path::Path, backups: &std::path::Path) -> ServeArgs {
    ServeArgs {
        storage: msr::config::RegistryStorage {
            location: storage.display().to_string(),
        },
        backup_storage: msr::config::BackupStorage {
            location: backups.display().to_string(),
        },
        heartbeat_interval: "1s".parse().unwrap(),
        instance_name: Some("test-registry".to_owned()),
        smtp_timeout: "3s".parse().unwrap(),
        smtp_ca_file: None,
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_username: ADMIN.to_owned(),
        admin_password: Some(ADMIN_PASSWORD.to_owned().into()),
        shutdown_grace: "2s".parse().unwrap(),
        upload_expiry: "24h".parse().unwrap(),
        max_body_bytes: 64 * 1024,
    }
}

/// `msr serve`'s own code path, in-process, on an ephemeral port.
pub struct TestApp {
    pub db: TestDb,
    /// Registry content of this app alone.
    pub storage: tempfile::TempDir,
    /// Where its backup jobs write.
    pub backups: tempfile::TempDir,
    pub base: String,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        let db = TestDb::new().await;
        let url = db.url.clone();
        Self::spawn_on(db, &url).await
    }

    /// Serves `db`, but connects through `database_url` (e.g. a proxy).
    pub async fn spawn_on(db: TestDb, database_url: &str) -> Self {
        let storage = tempfile::tempdir().expect("a temporary storage directory");
        Self::spawn_with(db, database_url, storage).await
    }

    /// Serves `db` with `storage` as its registry content (a restored
    /// instance, say).
    pub async fn spawn_with(db: TestDb, database_url: &str, storage: tempfile::TempDir) -> Self {
        Self::start(db, database_url, storage, |_| {}).await
    }

    /// A fresh instance whose configuration `configure` adjusts.
    pub async fn spawn_configured(configure: impl FnOnce(&mut ServeArgs)) -> Self {
        let db = TestDb::new().await;
        let url = db.url.clone();
        let storage = tempfile::tempdir().expect("a temporary storage directory");
        Self::start(db, &url, storage, configure).await
    }

    async fn start(
        db: TestDb,
        database_url: &str,
        storage: tempfile::TempDir,
        configure: impl FnOnce(&mut ServeArgs),
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let global = global_args(database_url);
        let backups = tempfile::tempdir().expect("a temporary backup directory");
        let mut args = serve_args(storage.path(), backups.path());
        configure(&mut args);
        let task = tokio::spawn(async move {
            msr::server::run(&global, &args, listener, async {
                let _ = stopped.await;
            })
            .await
        });
        let app = Self {
            db,
            storage,
            backups,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        };
        app.wait_ready().await;
        app
    }

    async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Some(task) = &self.task
                && task.is_finished()
            {
                panic!("msr stopped during start-up");
            }
            if self.http.get(self.url("/_ping")).send().await.is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("msr did not start listening");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(self.url(path))
            .basic_auth(ADMIN, Some(ADMIN_PASSWORD))
    }

    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::RequestBuilder {
        self.http
            .post(self.url(path))
            .basic_auth(ADMIN, Some(ADMIN_PASSWORD))
            .json(body)
    }

    pub fn put_json(&self, path: &str, body: &serde_json::Value) -> reqwest::RequestBuilder {
        self.http
            .put(self.url(path))
            .basic_auth(ADMIN, Some(ADMIN_PASSWORD))
            .json(body)
    }

    /// Creates a user straight in the database.
    pub async fn create_user(&self, name: &str, password: &str, is_admin: bool) {
        let pool = sqlx::PgPool::connect(&self.db.url).await.unwrap();
        msr::registry::accounts::create_user(&pool, name, password.to_owned(), is_admin)
            .await
            .unwrap();
        pool.close().await;
    }

    /// Requests sent as the bootstrap admin.
    pub fn admin(&self) -> Caller<'_> {
        self.caller(ADMIN, ADMIN_PASSWORD)
    }

    /// Requests sent as `name` with `password`.
    pub fn caller(&self, name: &str, password: &str) -> Caller<'_> {
        Caller {
            app: self,
            name: name.to_owned(),
            password: password.to_owned(),
        }
    }

    /// Shuts the app down as SIGTERM would, and hands back its database,
    /// which outlives it.
    pub async fn stop(mut self) -> TestDb {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        self.db
    }
}

/// Builds requests authenticated as one account.
pub struct Caller<'a> {
    app: &'a TestApp,
    pub name: String,
    password: String,
}

impl Caller<'_> {
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.app
            .http
            .request(method, self.app.url(path))
            .basic_auth(&self.name, Some(&self.password))
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, path)
    }

    pub fn post(&self, path: &str, body: &serde_json::Value) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST, path).json(body)
    }

    pub fn put(&self, path: &str, body: &serde_json::Value) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::PUT, path).json(body)
    }

    pub fn patch(&self, path: &str, body: &serde_json::Value) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::PATCH, path).json(body)
    }

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::DELETE, path)
    }
}

/// Sends `request`, returning the status and the JSON body (Null when empty
/// or not JSON).
pub async fn send(request: reqwest::RequestBuilder) -> (reqwest::StatusCode, serde_json::Value) {
    let response = request.send().await.expect("request reaches msr");
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// Asserts an MSR error body: one error with this code, and returns it.
#[track_caller]
pub fn assert_error(
    (status, body): &(reqwest::StatusCode, serde_json::Value),
    expected_status: u16,
    code: &str,
) -> serde_json::Value {
    assert_eq!(status.as_u16(), expected_status, "body: {body}");
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("not an MSR error body: {body}"));
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["code"], code, "{body}");
    assert!(
        errors[0]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    errors[0].clone()
}

/// A TCP proxy to PostgreSQL that a test can take down and bring back, to
/// show the server riding out a database outage.
pub struct DbProxy {
    pub port: u16,
    state: Arc<Mutex<ProxyState>>,
}

#[derive(Default)]
struct ProxyState {
    down: bool,
    connections: Vec<JoinHandle<()>>,
}

impl DbProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let accept_state = state.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut state = accept_state.lock().unwrap();
                if state.down {
                    drop(client);
                    continue;
                }
                state.connections.push(tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Self { port, state }
    }

    /// Cuts every open connection and refuses new ones.
    pub fn down(&self) {
        let mut state = self.state.lock().unwrap();
        state.down = true;
        for connection in state.connections.drain(..) {
            connection.abort();
        }
    }

    pub fn up(&self) {
        self.state.lock().unwrap().down = false;
    }

    /// `database_url` rewritten to go through this proxy.
    pub fn url_for(&self, database_url: &str) -> String {
        let mut url: url::Url = database_url.parse().unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.port)).unwrap();
        url.to_string()
    }
}

/// `msr serve`, the binary, on an ephemeral port.
pub struct Server {
    child: Child,
    storage: tempfile::TempDir,
    backups: tempfile::TempDir,
    pub base: String,
    /// The job worker id it registered under.
    pub worker_id: String,
}

impl Server {
    /// Starts `msr serve` on an ephemeral port and waits for its "serving" log line.
    pub fn start(db: &TestDb, extra_env: &[(&str, &str)]) -> Self {
        let storage = tempfile::tempdir().unwrap();
        let backups = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_msr"));
        command
            .arg("serve")
            .env("MSR_STORAGE", storage.path())
            .env("MSR_BACKUP_STORAGE", backups.path())
            .env("DATABASE_URL", &db.url)
            .env("MSR_LISTEN", "127.0.0.1:0")
            .env("MSR_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("MSR_LOG_FORMAT", "json")
            .env("MSR_SHUTDOWN_GRACE", "1s")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in extra_env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("starting msr serve");
        let stderr = child.stderr.take().unwrap();
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        // Keeps draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut address_tx = Some(address_tx);
            let mut worker_id = None;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("msr: {line}");
                let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if entry["fields"]["message"] == "job worker registered" {
                    worker_id = entry["fields"]["worker"].as_str().map(str::to_owned);
                }
                if entry["fields"]["message"] == "msr serving"
                    && let Some(tx) = address_tx.take()
                {
                    let address = entry["fields"]["address"].as_str().unwrap().to_owned();
                    let _ = tx.send((address, worker_id.clone().unwrap_or_default()));
                }
            }
        });
        let (address, worker_id) = address_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("msr serve logs its address within 30s");
        Self {
            child,
            storage,
            backups,
            base: format!("http://{address}"),
            worker_id,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The registry storage directory (unless `MSR_STORAGE` was overridden).
    pub fn storage_path(&self) -> &std::path::Path {
        self.storage.path()
    }

    /// The backup storage directory (unless `MSR_BACKUP_STORAGE` was overridden).
    pub fn backups_path(&self) -> &std::path::Path {
        self.backups.path()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, returning its exit code and how long it took.
    pub fn wait_exit(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), started.elapsed());
            }
            assert!(
                started.elapsed() < limit,
                "msr did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A repository straight in the database (the repositories API is tested
/// on its own).
pub async fn create_repository(db: &TestDb, namespace: &str, name: &str) {
    let done = sqlx::query(
        "INSERT INTO repositories (namespace_id, name) SELECT id, $2 FROM accounts WHERE name = $1",
    )
    .bind(namespace)
    .bind(name)
    .execute(&mut db.connect().await)
    .await
    .unwrap();
    assert_eq!(done.rows_affected(), 1, "no account {namespace}");
}
