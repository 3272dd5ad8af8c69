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

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::accounts::Account;
use super::repositories::{self, NamespaceType, Repository};
use super::teams::{self, Team, team_columns};
use super::{Error, Invalid, Result, Thing, on_foreign_key, parse_body};

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

impl TryFrom<String> for AccessLevel {
    type Error = Invalid;

    fn try_from(stored: String) -> Result<Self, Invalid> {
        match stored.as_str() {
            "none" => Ok(AccessLevel::None),
            "read-only" => Ok(AccessLevel::ReadOnly),
            "read-write" => Ok(AccessLevel::ReadWrite),
            "admin" => Ok(AccessLevel::Admin),
            _ => Err(Invalid::new(
                "accessLevel",
                format!("unknown access level {stored:?}"),
            )),
        }
    }
}

/// The facts every access decision is made from, per repository `r`, for
/// the account `$1`: does it own the repository (its namespace, or an org it
/// administers), is the repository public, and the highest level any of its
/// teams was granted (3 admin, 2 read-write, 1 read-only).
const ACCESS_FACTS: &str = "
    SELECT r.id,
           r.namespace_id = $1
             OR EXISTS (SELECT 1 FROM org_members m
                         WHERE m.org_id = r.namespace_id AND m.user_id = $1 AND m.is_admin),
           r.visibility = 'public',
           (SELECT max(CASE a.access_level WHEN 'admin' THEN 3 WHEN 'read-write' THEN 2 ELSE 1 END)
              FROM team_repository_access a
              JOIN team_members tm ON tm.team_id = a.team_id
             WHERE a.repository_id = r.id AND tm.user_id = $1)
      FROM repositories r";

type Facts = (Uuid, bool, bool, Option<i32>);

fn level((_, owns, public, team_level): Facts) -> AccessLevel {
    if owns {
        return AccessLevel::Admin;
    }
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
    team.max(public)
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
    let facts: Option<Facts> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{ACCESS_FACTS} WHERE r.id = $2"
    )))
    .bind(account.id)
    .bind(repository_id)
    .fetch_optional(executor)
    .await?;
    Ok(facts.map_or(AccessLevel::None, level))
}

/// `account`'s access to each repository of the namespace `namespace_id`,
/// in one query, for listing what it can read.
pub async fn levels_in_namespace(
    executor: impl PgExecutor<'_>,
    account: &Account,
    namespace_id: Uuid,
) -> sqlx::Result<HashMap<Uuid, AccessLevel>> {
    let facts: Vec<Facts> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{ACCESS_FACTS} WHERE r.namespace_id = $2"
    )))
    .bind(account.id)
    .bind(namespace_id)
    .fetch_all(executor)
    .await?;
    Ok(facts
        .into_iter()
        .map(|facts| {
            let id = facts.0;
            let level = if account.is_admin {
                AccessLevel::Admin
            } else {
                level(facts)
            };
            (id, level)
        })
        .collect())
}

/// A team's permission on a repository, as DTR shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct TeamAccess {
    #[sqlx(try_from = "String")]
    pub access_level: AccessLevel,
    #[sqlx(flatten)]
    pub team: Team,
}

/// What a team may be granted: `none` is not a grant, it is its absence.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Grant {
    ReadOnly,
    ReadWrite,
    Admin,
}

impl From<Grant> for AccessLevel {
    fn from(grant: Grant) -> Self {
        match grant {
            Grant::ReadOnly => AccessLevel::ReadOnly,
            Grant::ReadWrite => AccessLevel::ReadWrite,
            Grant::Admin => AccessLevel::Admin,
        }
    }
}

/// The body of `PUT …/teamAccess/{teamname}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TeamAccessUpdate {
    access_level: Grant,
}

/// `GET /api/v0/repositories/{namespace}/{reponame}/teamAccess`: the teams
/// granted access, in team name order (none for a user's repository).
/// Needs admin access to the repository.
pub async fn list_team_access(
    pool: &PgPool,
    actor: &Account,
    namespace: &str,
    name: &str,
) -> Result<(Vec<TeamAccess>, Repository)> {
    let (repository, _) =
        repositories::authorize(pool, actor, namespace, name, AccessLevel::Admin).await?;
    let grants = sqlx::query_as(concat!(
        "SELECT a.access_level, ",
        team_columns!(),
        " FROM team_repository_access a JOIN teams t ON t.id = a.team_id
          WHERE a.repository_id = $1
          ORDER BY t.name"
    ))
    .bind(repository.id)
    .fetch_all(pool)
    .await?;
    Ok((grants, repository))
}

/// The team `team` of the organization a repository lives in. A user's
/// namespace has no teams, so for its repositories every team is unknown.
async fn repository_team(pool: &PgPool, repository: &Repository, team: &str) -> Result<Team> {
    if repository.namespace_type != NamespaceType::Organization {
        return Err(Error::not_found(
            Thing::Team,
            format!(
                "{repository} belongs to the user {:?}, and only organizations have teams",
                repository.namespace
            ),
        ));
    }
    teams::find(pool, repository.namespace_id, team)
        .await?
        .ok_or_else(|| no_such_team(repository, team))
}

fn no_such_team(repository: &Repository, team: &str) -> Error {
    Error::not_found(
        Thing::Team,
        format!(
            "organization {:?} has no team named {team:?}",
            repository.namespace
        ),
    )
}

/// `PUT /api/v0/repositories/{namespace}/{reponame}/teamAccess/{teamname}`:
/// grants the team of the repository's organization `accessLevel`, replacing
/// any earlier grant. Needs admin access to the repository.
pub async fn set_team_access(
    pool: &PgPool,
    actor: &Account,
    namespace: &str,
    name: &str,
    team: &str,
    body: Value,
) -> Result<(TeamAccess, Repository)> {
    let (repository, _) =
        repositories::authorize(pool, actor, namespace, name, AccessLevel::Admin).await?;
    let team = repository_team(pool, &repository, team).await?;
    let update: TeamAccessUpdate = parse_body(body)?;
    let access_level = AccessLevel::from(update.access_level);
    sqlx::query(
        "INSERT INTO team_repository_access (team_id, repository_id, access_level)
         VALUES ($1, $2, $3)
         ON CONFLICT (team_id, repository_id) DO UPDATE SET access_level = EXCLUDED.access_level",
    )
    .bind(team.id)
    .bind(repository.id)
    .bind(access_level.as_str())
    .execute(pool)
    .await
    .map_err(|err| {
        // The team or the repository was deleted since we looked it up.
        on_foreign_key(err, || no_such_team(&repository, &team.name))
    })?;
    Ok((TeamAccess { access_level, team }, repository))
}

/// `DELETE /api/v0/repositories/{namespace}/{reponame}/teamAccess/{teamname}`:
/// revokes the team's grant; revoking a team without one does nothing.
/// Needs admin access to the repository.
pub async fn remove_team_access(
    pool: &PgPool,
    actor: &Account,
    namespace: &str,
    name: &str,
    team: &str,
) -> Result<()> {
    let (repository, _) =
        repositories::authorize(pool, actor, namespace, name, AccessLevel::Admin).await?;
    let team = repository_team(pool, &repository, team).await?;
    sqlx::query("DELETE FROM team_repository_access WHERE team_id = $1 AND repository_id = $2")
        .bind(team.id)
        .bind(repository.id)
        .execute(pool)
        .await?;
    Ok(())
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
