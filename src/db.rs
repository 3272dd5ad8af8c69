//! The PostgreSQL pool and the embedded migrations.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};

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

/// A connection that receives `NOTIFY` on `channel`.
pub async fn listen(pool: &PgPool, channel: &str) -> sqlx::Result<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("applying database migrations")
}

/// The newest migration this binary knows: the schema version an archive
/// records and a restore compares against.
pub fn schema_version() -> i64 {
    MIGRATOR
        .iter()
        .map(|migration| migration.version)
        .max()
        .unwrap_or(0)
}

/// The newest migration applied to the database (0 for an empty one).
pub async fn applied_schema_version(conn: &mut PgConnection) -> anyhow::Result<i64> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(0);
    }
    let version: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut *conn)
            .await?;
    Ok(version.unwrap_or(0))
}

/// A table's columns in order, with their types (`text`, `jsonb`, …).
pub(crate) async fn columns(
    conn: &mut PgConnection,
    table: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT attname::text, format_type(atttypid, NULL) FROM pg_attribute
          WHERE attrelid = ('public.' || quote_ident($1))::regclass
            AND attnum > 0 AND NOT attisdropped
          ORDER BY attnum",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?)
}

/// The usual bulk-load recipe (`msr dev seed`, `msr restore`): drop the
/// loaded tables' keys and indexes, and every foreign key, load, then
/// rebuild them once (a sort and one join per constraint instead of a
/// million index insertions and trigger-run lookups). Their definitions are
/// read back from the catalogue before dropping, so they are recreated
/// exactly as the migrations made them; run inside a transaction, a failure
/// anywhere puts everything back. Rebuilding also checks every key and
/// foreign key over the loaded rows.
pub(crate) struct BulkLoad {
    /// (table, constraint, definition): primary keys and unique constraints.
    keys: Vec<(String, String, String)>,
    /// `CREATE INDEX` statements.
    indexes: Vec<String>,
    /// (table, constraint, definition).
    foreign_keys: Vec<(String, String, String)>,
}

impl BulkLoad {
    /// Drops the keys and indexes of `tables`, and every foreign key from or
    /// to them (one from elsewhere depends on a key of theirs). Other tables
    /// are not touched, nor locked: a running server keeps using them.
    pub(crate) async fn begin(conn: &mut PgConnection, tables: &[&str]) -> anyhow::Result<Self> {
        let tables: Vec<String> = tables.iter().map(|t| (*t).to_owned()).collect();
        let foreign_keys: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT t.relname::text, c.conname::text, pg_get_constraintdef(c.oid)
               FROM pg_constraint c
               JOIN pg_class t ON t.oid = c.conrelid
               JOIN pg_class r ON r.oid = c.confrelid
              WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
                AND (t.relname = ANY ($1) OR r.relname = ANY ($1))
              ORDER BY 1, 2",
        )
        .bind(&tables)
        .fetch_all(&mut *conn)
        .await?;
        let keys: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT t.relname::text, c.conname::text, pg_get_constraintdef(c.oid)
               FROM pg_constraint c
               JOIN pg_class t ON t.oid = c.conrelid
              WHERE c.contype IN ('p', 'u') AND c.connamespace = 'public'::regnamespace
                AND t.relname = ANY ($1)
              ORDER BY 1, 2",
        )
        .bind(&tables)
        .fetch_all(&mut *conn)
        .await?;
        let indexes: Vec<(String, String)> = sqlx::query_as(
            "SELECT x.relname::text, pg_get_indexdef(i.indexrelid)
               FROM pg_index i
               JOIN pg_class x ON x.oid = i.indexrelid
               JOIN pg_class t ON t.oid = i.indrelid
              WHERE t.relnamespace = 'public'::regnamespace AND t.relname = ANY ($1)
                AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
              ORDER BY 1",
        )
        .bind(&tables)
        .fetch_all(&mut *conn)
        .await?;
        // Foreign keys first: a key cannot go while one depends on it.
        for (table, name, _) in foreign_keys.iter().chain(&keys) {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER TABLE {} DROP CONSTRAINT {}",
                ident(table),
                ident(name)
            )))
            .execute(&mut *conn)
            .await?;
        }
        for (name, _) in &indexes {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX {}", ident(name))))
                .execute(&mut *conn)
                .await?;
        }
        Ok(Self {
            keys,
            indexes: indexes.into_iter().map(|(_, def)| def).collect(),
            foreign_keys,
        })
    }

    /// Recreates everything [`BulkLoad::begin`] dropped; fails naming the
    /// constraint that the loaded rows break.
    pub(crate) async fn finish(self, conn: &mut PgConnection) -> anyhow::Result<()> {
        for (table, name, definition) in self.keys.iter() {
            add_constraint(conn, table, name, definition).await?;
        }
        for definition in &self.indexes {
            let started = Instant::now();
            sqlx::query(sqlx::AssertSqlSafe(definition.clone()))
                .execute(&mut *conn)
                .await
                .with_context(|| format!("recreating {definition}"))?;
            tracing::debug!(index = %definition, took = ?started.elapsed(), "index rebuilt");
        }
        for (table, name, definition) in self.foreign_keys.iter() {
            add_constraint(conn, table, name, definition).await?;
        }
        Ok(())
    }
}

async fn add_constraint(
    conn: &mut PgConnection,
    table: &str,
    name: &str,
    definition: &str,
) -> anyhow::Result<()> {
    let started = Instant::now();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER TABLE {} ADD CONSTRAINT {} {definition}",
        ident(table),
        ident(name)
    )))
    .execute(&mut *conn)
    .await
    .with_context(|| format!("recreating {name} on {table}"))?;
    tracing::debug!(constraint = name, took = ?started.elapsed(), "constraint rebuilt");
    Ok(())
}

/// A catalogue name as an SQL identifier. The names come from our own
/// schema, but quoting keeps that from mattering.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(super::ident("tags"), "\"tags\"");
        assert_eq!(super::ident("a\"b"), "\"a\"\"b\"");
    }
}
