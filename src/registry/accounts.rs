//! Accounts (users and organizations), password checks, and eNZi's accounts
//! API (`/enzi/v0/accounts`) over them.
//!
//! Passwords are stored as argon2id PHC strings. Hashing and verifying are
//! deliberately slow, so they run on the blocking pool, never on a runtime
//! worker thread. No type here that is ever serialised holds a password or
//! its hash.
//!
//! The registry must never be left without an active admin: every change
//! that could remove the last one (delete, demote, deactivate) holds
//! [`ADMINS_LOCK`] while it counts the others, so two admins removing each
//! other at once cannot both succeed.
//!
//! Nobody can lock themselves out with one request: an account's own
//! `isAdmin` and `isActive` are changed, and an admin is deleted, only by
//! another admin, and changing one's own password needs the current one
//! (`oldPassword`), as in eNZi.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use super::{
    Error, Invalid, Page, PageRequest, Result, Thing, check_name, check_text, on_unique,
    parse_body, present,
};

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
    // PostgreSQL text cannot hold NUL; no account has one in its name.
    let name = if name.contains('\0') { "" } else { name };
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

/// Creates a user directly, without the API's checks; for tests and fixtures.
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

/// Serialises changes that could leave the registry without an active admin;
/// the key is arbitrary but fixed.
const ADMINS_LOCK: i64 = 0x6d73_725f_6164_6d6e; // "msr_admn"

pub const MIN_PASSWORD_CHARS: usize = 8;
/// Long enough for any passphrase, short enough that hashing stays cheap.
pub const MAX_PASSWORD_CHARS: usize = 256;
pub const MAX_FULL_NAME_CHARS: usize = 200;

/// An account as eNZi's API shows it (without any password material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct AccountInfo {
    pub id: Uuid,
    pub name: String,
    pub full_name: String,
    pub is_org: bool,
    pub is_admin: bool,
    pub is_active: bool,
    /// eNZi's flag for accounts synced from LDAP; msr has no directory sync,
    /// so it is always false.
    #[sqlx(skip)]
    is_imported: bool,
    #[serde(serialize_with = "super::rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// The columns of [`AccountInfo`], for queries over `accounts a`.
macro_rules! account_columns {
    () => {
        "a.id, a.name, a.full_name, a.is_org, a.is_admin, a.is_active, a.created_at"
    };
}
pub(crate) use account_columns;

/// `GET /enzi/v0/accounts?filter=`: which accounts a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    #[default]
    All,
    Users,
    Orgs,
    Admins,
    NonAdmins,
    ActiveUsers,
    InactiveUsers,
}

impl Filter {
    pub const NAMES: [&str; 7] = [
        "all",
        "users",
        "orgs",
        "admins",
        "non-admins",
        "active-users",
        "inactive-users",
    ];

    pub fn parse(text: &str) -> Result<Self, Invalid> {
        Ok(match text {
            "all" => Self::All,
            "users" => Self::Users,
            "orgs" => Self::Orgs,
            "admins" => Self::Admins,
            "non-admins" => Self::NonAdmins,
            "active-users" => Self::ActiveUsers,
            "inactive-users" => Self::InactiveUsers,
            _ => {
                return Err(Invalid::new(
                    "filter",
                    format!("{text:?} is not one of {}", Self::NAMES.join(", ")),
                ));
            }
        })
    }

    fn condition(self) -> &'static str {
        match self {
            Self::All => "true",
            Self::Users => "NOT a.is_org",
            Self::Orgs => "a.is_org",
            Self::Admins => "NOT a.is_org AND a.is_admin",
            Self::NonAdmins => "NOT a.is_org AND NOT a.is_admin",
            Self::ActiveUsers => "NOT a.is_org AND a.is_active",
            Self::InactiveUsers => "NOT a.is_org AND NOT a.is_active",
        }
    }
}

/// The body of `POST /enzi/v0/accounts`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewAccount {
    name: String,
    #[serde(default, deserialize_with = "present")]
    password: Option<String>,
    #[serde(default, deserialize_with = "present")]
    full_name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    is_org: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    is_admin: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    is_active: Option<bool>,
}

/// The body of `PATCH /enzi/v0/accounts/{account}`: fields left out keep
/// their value.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AccountUpdate {
    #[serde(default, deserialize_with = "present")]
    full_name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    is_active: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    is_admin: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    password: Option<String>,
    /// The account's current password: needed to change one's own.
    #[serde(default, deserialize_with = "present")]
    old_password: Option<String>,
}

fn check_password(password: &str) -> Result<(), Invalid> {
    let length = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&length) {
        return Err(Invalid::new(
            "password",
            format!(
                "must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters long, got {length}"
            ),
        ));
    }
    Ok(())
}

fn no_such_account(name: &str) -> Error {
    Error::not_found(Thing::Account, format!("no account named {name:?}"))
}

/// The account named `name`, if any.
pub async fn find(executor: impl PgExecutor<'_>, name: &str) -> sqlx::Result<Option<AccountInfo>> {
    // No such name can exist, and PostgreSQL would refuse some (NUL).
    if !super::is_valid_name(name) {
        return Ok(None);
    }
    sqlx::query_as(concat!(
        "SELECT ",
        account_columns!(),
        " FROM accounts a WHERE a.name = $1"
    ))
    .bind(name)
    .fetch_optional(executor)
    .await
}

/// The account named `name`, or `NO_SUCH_ACCOUNT`.
pub async fn get(executor: impl PgExecutor<'_>, name: &str) -> Result<AccountInfo> {
    find(executor, name)
        .await?
        .ok_or_else(|| no_such_account(name))
}

/// The user (not organization) named `name`, for the member of an org or team.
pub(crate) async fn get_user(executor: impl PgExecutor<'_>, name: &str) -> Result<AccountInfo> {
    let account = get(executor, name).await?;
    if account.is_org {
        return Err(Invalid::new(
            "member",
            format!("{name:?} is an organization; only users can be members"),
        )
        .into());
    }
    Ok(account)
}

/// `GET /enzi/v0/accounts`: one page, in name order.
pub async fn list(
    executor: impl PgExecutor<'_>,
    filter: Filter,
    page: &PageRequest,
) -> Result<Page<AccountInfo>> {
    let sql = format!(
        concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts a WHERE a.name > $1 AND ({}) ORDER BY a.name LIMIT $2"
        ),
        filter.condition()
    );
    let rows: Vec<AccountInfo> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&page.start)
        .bind(page.fetch())
        .fetch_all(executor)
        .await?;
    Ok(Page::from_rows(rows, page, |account| &account.name))
}

/// `POST /enzi/v0/accounts` (the caller is an admin): a user, who needs a
/// password, or an organization, which must not have one and is never an admin.
pub async fn create(pool: &PgPool, body: Value) -> Result<AccountInfo> {
    let new: NewAccount = parse_body(body)?;
    check_name("name", &new.name)?;
    let is_org = new.is_org.unwrap_or(false);
    let is_admin = new.is_admin.unwrap_or(false);
    if is_org {
        if new.password.is_some() {
            return Err(Invalid::new("password", "organizations do not have a password").into());
        }
        if is_admin {
            return Err(Invalid::new("isAdmin", "organizations cannot be admins").into());
        }
    }
    let password_hash = match new.password {
        Some(password) => {
            check_password(&password)?;
            Some(hash_password(password).await?)
        }
        None if is_org => None,
        None => return Err(Invalid::new("password", "users need a password").into()),
    };
    let full_name = new.full_name.unwrap_or_default();
    check_text("fullName", &full_name, MAX_FULL_NAME_CHARS)?;

    let name = new.name;
    sqlx::query_as(concat!(
        "INSERT INTO accounts AS a (name, full_name, is_org, is_admin, is_active, password_hash)
         VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING ",
        account_columns!()
    ))
    .bind(&name)
    .bind(full_name)
    .bind(is_org)
    .bind(is_admin)
    .bind(new.is_active.unwrap_or(true))
    .bind(password_hash)
    .fetch_one(pool)
    .await
    .map_err(|err| {
        on_unique(err, || {
            Error::exists(
                Thing::Account,
                format!("an account named {name:?} already exists"),
            )
        })
    })
}

/// `PATCH /enzi/v0/accounts/{account}`. Admins may change every field of
/// other accounts; everyone may change their own `fullName` and, given
/// `oldPassword`, `password`.
pub async fn update(
    pool: &PgPool,
    actor: &Account,
    name: &str,
    body: Value,
) -> Result<AccountInfo> {
    let target = get(pool, name).await?;
    let is_self = target.id == actor.id;
    if !actor.is_admin && !is_self {
        return Err(Error::not_authorized(
            "only an admin can change another account",
        ));
    }
    let update: AccountUpdate = parse_body(body)?;
    if update.is_admin.is_some() || update.is_active.is_some() {
        if !actor.is_admin {
            return Err(Error::not_authorized(
                "only an admin can change isAdmin or isActive",
            ));
        }
        if is_self {
            return Err(Error::not_authorized(
                "you cannot change your own isAdmin or isActive; another admin can",
            ));
        }
    }
    if target.is_org {
        if update.password.is_some() {
            return Err(Invalid::new("password", "organizations do not have a password").into());
        }
        if update.is_admin == Some(true) {
            return Err(Invalid::new("isAdmin", "organizations cannot be admins").into());
        }
    }
    if let Some(full_name) = &update.full_name {
        check_text("fullName", full_name, MAX_FULL_NAME_CHARS)?;
    }
    match (&update.old_password, &update.password) {
        (Some(_), None) => {
            return Err(Invalid::new("oldPassword", "only goes with a new password").into());
        }
        (None, Some(_)) if is_self => {
            return Err(Invalid::new(
                "oldPassword",
                "your current password is needed to change it",
            )
            .into());
        }
        _ => {}
    }
    let password_hash = match update.password {
        Some(password) => {
            check_password(&password)?;
            if let Some(old) = update.old_password
                && !has_password(pool, target.id, old).await?
            {
                return Err(Invalid::new("oldPassword", "is not the current password").into());
            }
            Some(hash_password(password).await?)
        }
        None => None,
    };

    let mut tx = pool.begin().await?;
    if update.is_admin == Some(false) || update.is_active == Some(false) {
        lock_admins(&mut tx).await?;
        let (is_admin, is_active): (bool, bool) =
            sqlx::query_as("SELECT is_admin, is_active FROM accounts WHERE id = $1 FOR UPDATE")
                .bind(target.id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| no_such_account(name))?;
        if is_admin && is_active && other_active_admins(&mut tx, target.id).await? == 0 {
            let field = if update.is_admin == Some(false) {
                "isAdmin"
            } else {
                "isActive"
            };
            return Err(Invalid::new(
                field,
                format!("{name:?} is the last active admin; make another account an admin first"),
            )
            .into());
        }
    }
    let updated: AccountInfo = sqlx::query_as(concat!(
        "UPDATE accounts AS a
            SET full_name = COALESCE($2, a.full_name),
                is_active = COALESCE($3, a.is_active),
                is_admin = COALESCE($4, a.is_admin),
                password_hash = COALESCE($5, a.password_hash)
          WHERE a.id = $1
      RETURNING ",
        account_columns!()
    ))
    .bind(target.id)
    .bind(update.full_name)
    .bind(update.is_active)
    .bind(update.is_admin)
    .bind(password_hash)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| no_such_account(name))?;
    tx.commit().await?;
    Ok(updated)
}

/// Whether `password` is the current password of the account `id`.
async fn has_password(pool: &PgPool, id: Uuid, password: String) -> anyhow::Result<bool> {
    let phc: Option<String> =
        sqlx::query_scalar("SELECT password_hash FROM accounts WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?
            .flatten();
    let phc = phc.unwrap_or_else(|| DUMMY_HASH.clone());
    Ok(tokio::task::spawn_blocking(move || verify_password_blocking(&password, &phc)).await?)
}

/// `DELETE /enzi/v0/accounts/{account}` (the caller is an admin, and not
/// the account). The account's memberships, teams and repositories go with it.
pub async fn delete(pool: &PgPool, actor: &Account, name: &str) -> Result<()> {
    if !super::is_valid_name(name) {
        return Err(no_such_account(name));
    }
    let mut tx = pool.begin().await?;
    lock_admins(&mut tx).await?;
    let (id, is_admin, is_active, is_org): (Uuid, bool, bool, bool) = sqlx::query_as(
        "SELECT id, is_admin, is_active, is_org FROM accounts WHERE name = $1 FOR UPDATE",
    )
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| no_such_account(name))?;
    if is_admin && is_active && !is_org && other_active_admins(&mut tx, id).await? == 0 {
        return Err(Error::Refused(format!(
            "{name:?} is the last active admin and cannot be deleted; make another account an admin first"
        )));
    }
    if id == actor.id {
        return Err(Error::not_authorized(
            "you cannot delete your own account; another admin can",
        ));
    }
    sqlx::query("DELETE FROM accounts WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

async fn lock_admins(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(ADMINS_LOCK)
        .execute(conn)
        .await?;
    Ok(())
}

async fn other_active_admins(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM accounts WHERE is_admin AND is_active AND NOT is_org AND id <> $1",
    )
    .bind(id)
    .fetch_one(conn)
    .await
}
