//! Who may do what to a repository, as MSR decides it.
//!
//! - A system admin has `admin` on every repository.
//! - A user has `admin` on the repositories in their own namespace.
//! - An organization admin has `admin` on the organization's repositories.
//! - A team member has the highest level any of their teams was granted on
//!   the repository (`read-only`, `read-write`, `admin`).
//! - Any authenticated user may read a public repository.
//! - Everyone else has no access; a private repository they cannot read is
//!   reported as unknown, so its existence does not leak.

use serde::{Deserialize, Serialize};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::accounts::Account;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessLevel {
    None,
    ReadOnly,
    ReadWrite,
    Admin,
}

impl AccessLevel {
    pub fn can_read(self) -> bool {
        self >= AccessLevel::ReadOnly
    }

    pub fn can_write(self) -> bool {
        self >= AccessLevel::ReadWrite
    }

    /// The stored form of a team grant (`team_repository_access.access_level`).
    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::None => "none",
            AccessLevel::ReadOnly => "read-only",
            AccessLevel::ReadWrite => "read-write",
            AccessLevel::Admin => "admin",
        }
    }
}

/// `account`'s access to the repository `repository_id` (None when the
/// repository does not exist).
pub async fn repository_access(
    executor: impl PgExecutor<'_>,
    account: &Account,
    repository_id: Uuid,
) -> sqlx::Result<AccessLevel> {
    if account.is_admin {
        return Ok(AccessLevel::Admin);
    }
    let row: Option<(bool, bool, Option<i32>)> = sqlx::query_as(
        "SELECT r.namespace_id = $2
                OR EXISTS (SELECT 1 FROM org_members m
                            WHERE m.org_id = r.namespace_id AND m.user_id = $2 AND m.is_admin),
                r.visibility = 'public',
                (SELECT max(CASE a.access_level WHEN 'admin' THEN 3 WHEN 'read-write' THEN 2 ELSE 1 END)
                   FROM team_repository_access a
                   JOIN team_members tm ON tm.team_id = a.team_id
                  WHERE a.repository_id = r.id AND tm.user_id = $2)
           FROM repositories r
          WHERE r.id = $1",
    )
    .bind(repository_id)
    .bind(account.id)
    .fetch_optional(executor)
    .await?;
    let Some((owns, public, team_level)) = row else {
        return Ok(AccessLevel::None);
    };
    let team = match team_level {
        Some(3) => AccessLevel::Admin,
        Some(2) => AccessLevel::ReadWrite,
        Some(_) => AccessLevel::ReadOnly,
        None => AccessLevel::None,
    };
    let public = if public {
        AccessLevel::ReadOnly
    } else {
        AccessLevel::None
    };
    Ok(if owns {
        AccessLevel::Admin
    } else {
        team.max(public)
    })
}

/// `namespace/name` of the repositories `account` may read, in lexical
/// order after `last`: the `/v2/_catalog` listing. The condition is
/// [`repository_access`]'s rule written as SQL, so listing needs one query.
pub async fn readable_repository_names(
    executor: impl PgExecutor<'_>,
    account: &Account,
    last: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT a.name || '/' || r.name AS full_name
           FROM repositories r JOIN accounts a ON a.id = r.namespace_id
          WHERE ($2
                 OR r.visibility = 'public'
                 OR r.namespace_id = $1
                 OR EXISTS (SELECT 1 FROM org_members m
                             WHERE m.org_id = r.namespace_id AND m.user_id = $1 AND m.is_admin)
                 OR EXISTS (SELECT 1 FROM team_repository_access ta
                              JOIN team_members tm ON tm.team_id = ta.team_id
                             WHERE ta.repository_id = r.id AND tm.user_id = $1))
            AND ($3::text IS NULL OR a.name || '/' || r.name > $3)
          ORDER BY full_name
          LIMIT $4",
    )
    .bind(account.id)
    .bind(account.is_admin)
    .bind(last)
    .bind(limit)
    .fetch_all(executor)
    .await
}
