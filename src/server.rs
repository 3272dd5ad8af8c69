//! `msr serve` and `msr migrate`: start-up, serving, and a bounded shutdown.

use std::future::Future;

use anyhow::Context as _;
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::backup::catalog;
use crate::config::{GlobalArgs, ServeArgs};
use crate::db;
use crate::jobs::scheduler;
use crate::jobs::worker::{self, Timing};
use crate::notify::{self, Notifier};
use crate::registry::accounts::{self, Bootstrap};
use crate::registry::blobs;
use crate::storage::Storage;

pub async fn connect(global: &GlobalArgs) -> anyhow::Result<PgPool> {
    let url = global
        .database_url
        .as_ref()
        .context("no database configured: set DATABASE_URL or pass --database-url")?;
    let patience = global
        .db_startup_timeout
        .to_std()
        .context("MSR_DB_STARTUP_TIMEOUT must not be negative")?;
    db::connect(url, global.db_max_connections, patience).await
}

pub async fn migrate(global: &GlobalArgs) -> anyhow::Result<()> {
    let pool = connect(global).await?;
    db::migrate(&pool).await?;
    tracing::info!("database migrations applied");
    pool.close().await;
    Ok(())
}

/// Binds `MSR_LISTEN` and serves until SIGTERM or SIGINT.
pub async fn serve(global: &GlobalArgs, args: &ServeArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    run(global, args, listener, shutdown_signal()).await
}

/// Serves on `listener` until `shutdown` resolves, then gives in-flight
/// requests `shutdown_grace` to finish before dropping them: axum alone would
/// wait forever on a client that keeps a stream open. Tests pass their own
/// listener (port 0) and shutdown trigger.
pub async fn run(
    global: &GlobalArgs,
    args: &ServeArgs,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let grace = args
        .shutdown_grace
        .to_std()
        .context("MSR_SHUTDOWN_GRACE must not be negative")?;
    let upload_expiry = args
        .upload_expiry
        .to_std()
        .filter(|expiry| !expiry.is_zero())
        .context("MSR_UPLOAD_EXPIRY must be positive")?;
    let timing = Timing {
        heartbeat: args
            .heartbeat_interval
            .to_std()
            .filter(|interval| !interval.is_zero())
            .context("MSR_HEARTBEAT_INTERVAL must be positive")?,
    };
    let storage = Storage::open(&args.storage.location)?;
    tracing::info!(storage = storage.location(), "registry storage");
    let backups = Storage::open(&args.backup_storage.location)?;
    ensure_apart(&storage, &backups)?;
    tracing::info!(storage = backups.location(), "backup storage");
    let pool = connect(global).await?;
    db::migrate(&pool).await?;
    bootstrap_admin(&pool, &args.admin_username, args.admin_password.as_ref()).await?;
    match catalog::recover(&pool, &backups).await {
        Ok(0) => {}
        Ok(recovered) => tracing::info!(
            recovered,
            "listed backups found in the backup storage that the catalog did not know"
        ),
        Err(err) => {
            tracing::warn!(error = %format!("{err:#}"), "reading the backup storage's catalog entries failed")
        }
    }
    let worker_id = worker::new_worker_id();
    worker::register(&pool, &worker_id, timing).await?;
    tracing::info!(worker = %worker_id, "job worker registered");
    let notifier = Notifier {
        pool: pool.clone(),
        instance: args.instance_name.clone().unwrap_or_else(|| {
            hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "msr".to_owned())
        }),
        timeout: args
            .smtp_timeout
            .to_std()
            .filter(|timeout| !timeout.is_zero())
            .context("MSR_SMTP_TIMEOUT must be positive")?,
        roots: match &args.smtp_ca_file {
            Some(path) => notify::read_roots(path).context("MSR_SMTP_CA_FILE")?,
            None => Vec::new(),
        },
        sending: notify::Sending::default(),
    };
    let sending = notifier.sending.clone();
    let jobs = worker::Context {
        pool: pool.clone(),
        registry: storage.clone(),
        backups: backups.clone(),
        worker_id: worker_id.clone(),
        notifier: notifier.clone(),
    };

    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let stopping_tx = std::sync::Arc::new(stopping_tx);
    let janitor = tokio::spawn(expire_uploads(
        pool.clone(),
        storage.clone(),
        upload_expiry,
        stopping.clone(),
    ));
    let heartbeat = tokio::spawn(worker::heartbeat(jobs.clone(), timing));
    let runner = tokio::spawn(worker::run(jobs, timing, stopping.clone()));
    let scheduler = tokio::spawn(scheduler::run(pool.clone(), stopping.clone()));
    let app = api::router(
        AppState {
            pool: pool.clone(),
            storage,
            backups,
            notifier,
        },
        args.max_body_bytes,
    );
    let stop_all = stopping_tx.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!(grace = ?grace, "shutting down: no new connections, finishing requests");
        let _ = stop_all.send(true);
    });
    tracing::info!(address = %server_address(&server), "msr serving");

    let served = tokio::select! {
        served = server => served.context("serving HTTP"),
        _ = async {
            let _ = stopping.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!("grace period over: dropping the connections still open");
            Ok(())
        }
    };
    let _ = stopping_tx.send(true);
    // A running job is stopped, and what it half wrote discarded, within
    // the grace period; the heartbeat lasts until then, so that no other
    // replica fails the job meanwhile. The notices being sent, that job's
    // among them, share the same period.
    let deadline = tokio::time::Instant::now() + grace;
    if tokio::time::timeout_at(deadline, runner).await.is_err() {
        tracing::warn!("the running job did not stop within the grace period");
    }
    sending.finish(&pool, deadline).await;
    heartbeat.abort();
    scheduler.abort();
    janitor.abort();
    if let Err(err) = worker::unregister(&pool, &worker_id).await {
        tracing::warn!(error = %err, "leaving the worker list failed");
    }
    pool.close().await;
    tracing::info!("msr stopped");
    served
}

/// Backups must not land in the registry's own storage: losing that one
/// place would lose both the content and its backups.
fn ensure_apart(registry: &Storage, backups: &Storage) -> anyhow::Result<()> {
    let (registry, backups) = (registry.location(), backups.location());
    let nested = |outer: &str, inner: &str| {
        inner == outer || inner.starts_with(&format!("{}/", outer.trim_end_matches('/')))
    };
    anyhow::ensure!(
        !nested(registry, backups) && !nested(backups, registry),
        "MSR_BACKUP_STORAGE ({backups}) must be apart from MSR_STORAGE ({registry}), \
         neither inside the other"
    );
    Ok(())
}

fn server_address<M, S, F>(
    server: &axum::serve::WithGracefulShutdown<TcpListener, M, S, F>,
) -> String {
    server
        .local_addr()
        .map_or_else(|err| format!("unknown ({err})"), |addr| addr.to_string())
}

/// How often each replica looks for abandoned uploads.
const UPLOAD_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

/// Sweeps abandoned blob uploads now and then until shutdown. A failed
/// sweep is logged and retried at the next one; it never stops the server.
async fn expire_uploads(
    pool: PgPool,
    storage: Storage,
    idle: std::time::Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match blobs::expire_uploads(&pool, &storage, idle).await {
            Ok(0) => {}
            Ok(expired) => {
                tracing::info!(expired, idle = ?idle, "discarded abandoned blob uploads")
            }
            Err(err) => tracing::warn!(error = %err, "sweeping abandoned blob uploads failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(UPLOAD_SWEEP_INTERVAL) => {}
            _ = stopping.wait_for(|stopping| *stopping) => return,
        }
    }
}

async fn bootstrap_admin(
    pool: &PgPool,
    name: &str,
    password: Option<&SecretString>,
) -> anyhow::Result<()> {
    let Some(password) = password else {
        return Ok(());
    };
    if password.expose_secret().is_empty() {
        anyhow::bail!("MSR_ADMIN_PASSWORD is set but empty");
    }
    match accounts::ensure_admin(pool, name, password.expose_secret().to_owned()).await? {
        Bootstrap::Created => tracing::info!(admin = name, "created the first admin"),
        Bootstrap::AdminExists => tracing::debug!("an admin exists; MSR_ADMIN_PASSWORD not used"),
        Bootstrap::NameTaken => tracing::warn!(
            admin = name,
            "no admin exists and MSR_ADMIN_USERNAME names an existing non-admin account; \
             no admin was created"
        ),
    }
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
