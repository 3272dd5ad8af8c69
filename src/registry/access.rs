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
