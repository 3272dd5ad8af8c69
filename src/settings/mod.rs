//! Backup and SMTP settings: types, validation, persistence.
//!
//! Each resource is one JSON document in the `settings` table. Updates are
//! partial (fields left out keep their stored value), validated as a whole
//! after merging, and written in one transaction that holds
//! [`SETTINGS_LOCK`], because the two resources constrain each other
//! (automatic backups need SMTP). A rejected update writes nothing.
//! A successful one sends `NOTIFY msr_settings, '<name>'`, delivered on
//! commit, so every replica's scheduler can react without polling.

pub mod backup;
pub mod smtp;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};

/// The channel every replica listens on for settings changes.
pub const NOTIFY_CHANNEL: &str = "msr_settings";

/// Serialises settings writers across replicas; the key is arbitrary but fixed.
const SETTINGS_LOCK: i64 = 0x6d73_725f_7365_7474; // "msr_sett"

/// Why an update was refused: the field (a JSON path such as
/// `purge.duration`) and a reason a user can act on. The same type the
/// registry's resources use; the API answers it here as `INVALID_SETTINGS`.
pub use crate::registry::Invalid as InvalidSettings;

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(transparent)]
    Invalid(#[from] InvalidSettings),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

async fn load<T: DeserializeOwned + Default>(
    executor: impl PgExecutor<'_>,
    name: &str,
) -> sqlx::Result<T> {
    let stored: Option<Value> = sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
        .bind(name)
        .fetch_optional(executor)
        .await?;
    match stored {
        Some(value) => serde_json::from_value(value).map_err(|err| sqlx::Error::Decode(err.into())),
        None => Ok(T::default()),
    }
}

async fn lock(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SETTINGS_LOCK)
        .execute(conn)
        .await?;
    Ok(())
}

async fn store<T: Serialize + Sync>(
    conn: &mut PgConnection,
    name: &str,
    value: &T,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, now())
         ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
    )
    .bind(name)
    .bind(sqlx::types::Json(value))
    .execute(&mut *conn)
    .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(NOTIFY_CHANNEL)
        .bind(name)
        .execute(conn)
        .await?;
    Ok(())
}
