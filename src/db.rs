//! The PostgreSQL pool and the embedded migrations.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Migrations are compiled into the binary so a replica never runs against a
/// schema it does not know.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Requests fail fast instead of queueing behind a dead database; `/health`
/// reports the outage and the pool reconnects on its own once it is back.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

pub fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // A connection cut while PostgreSQL restarted is found out here,
        // not by the request that happens to draw it.
        .test_before_acquire(true)
}

/// Connects, retrying for up to `patience`: at start-up the database may
/// still be coming up next to us (compose, Kubernetes).
pub async fn connect(
    url: &SecretString,
    max_connections: u32,
    patience: Duration,
) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url
        .expose_secret()
        .parse()
        .context("DATABASE_URL is not a valid PostgreSQL URL")?;
    let started = Instant::now();
    let mut wait = Duration::from_millis(200);
    loop {
        match pool_options(max_connections)
            .connect_with(options.clone())
            .await
        {
            Ok(pool) => return Ok(pool),
            Err(err) if started.elapsed() + wait < patience => {
                tracing::warn!(error = %err, retry_in = ?wait, "database not reachable yet");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(err) => {
                return Err(err).context(format!(
                    "could not connect to the database within {patience:?}"
                ));
            }
        }
    }
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("applying database migrations")
}
