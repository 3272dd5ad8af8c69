//! Accounts (users and organizations) and password checks.
//!
//! Passwords are stored as argon2id PHC strings. Hashing and verifying are
//! deliberately slow, so they run on the blocking pool, never on a runtime
//! worker thread.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: Uuid,
    pub name: String,
    pub is_admin: bool,
    pub is_active: bool,
}

/// Checked against when the user does not exist, so that a wrong name costs
/// as much time as a wrong password and names cannot be probed by timing.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password_blocking("not a real password"));

fn hash_password_blocking(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters accepts any password")
        .to_string()
}

fn verify_password_blocking(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

pub async fn hash_password(password: String) -> anyhow::Result<String> {
    Ok(tokio::task::spawn_blocking(move || hash_password_blocking(&password)).await?)
}

/// The active or inactive user with this name and password, or `None` when
/// the name is unknown, names an organization, or the password is wrong.
/// The caller decides what an inactive account may do.
pub async fn authenticate(
    pool: &PgPool,
    name: &str,
    password: String,
) -> anyhow::Result<Option<Account>> {
    let row: Option<(Uuid, String, bool, bool, Option<String>)> = sqlx::query_as(
        "SELECT id, name, is_admin, is_active, password_hash
           FROM accounts
          WHERE name = $1 AND NOT is_org",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;

    let (account, phc) = match row {
        Some((id, name, is_admin, is_active, Some(phc))) => (
            Some(Account {
                id,
                name,
                is_admin,
                is_active,
            }),
            phc,
        ),
        _ => (None, DUMMY_HASH.clone()),
    };
    let matches =
        tokio::task::spawn_blocking(move || verify_password_blocking(&password, &phc)).await?;
    Ok(account.filter(|_| matches))
}

/// What [`ensure_admin`] did, so start-up can log it.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    Created,
    AdminExists,
    /// The configured name is taken by an account that is not an admin; it
    /// is left alone rather than silently promoted.
    NameTaken,
}

/// Creates the first admin, unless an admin already exists. Safe to run from
/// several replicas starting at once: the unique name decides the race.
pub async fn ensure_admin(
    pool: &PgPool,
    name: &str,
    password: String,
) -> anyhow::Result<Bootstrap> {
    if admin_exists(pool).await? {
        return Ok(Bootstrap::AdminExists);
    }
    let hash = hash_password(password).await?;
    let inserted = sqlx::query(
        "INSERT INTO accounts (name, is_admin, password_hash)
         VALUES ($1, true, $2)
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(hash)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(match inserted {
        1 => Bootstrap::Created,
        _ if admin_exists(pool).await? => Bootstrap::AdminExists,
        _ => Bootstrap::NameTaken,
    })
}

async fn admin_exists(executor: impl PgExecutor<'_>) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM accounts WHERE is_admin AND NOT is_org)")
        .fetch_one(executor)
        .await
}

/// Creates a user; used by tests and, later, by the accounts API.
pub async fn create_user(
    pool: &PgPool,
    name: &str,
    password: String,
    is_admin: bool,
) -> anyhow::Result<Account> {
    let hash = hash_password(password).await?;
    let (id,): (Uuid,) = sqlx::query_as(
        "INSERT INTO accounts (name, is_admin, password_hash) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(name)
    .bind(is_admin)
    .bind(hash)
    .fetch_one(pool)
    .await?;
    Ok(Account {
        id,
        name: name.to_owned(),
        is_admin,
        is_active: true,
    })
}
