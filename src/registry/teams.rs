//! Teams of an organization (`teams`, `team_members`).
//!
//! Teams are what repository permissions are granted to (see
//! [`super::access`]). The org's admins and system admins manage them; the
//! org's members may see them. Every team member is an org member: adding a
//! user to a team makes them one, and removing them from the org takes them
//! off its teams.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use super::accounts::{self, Account, AccountInfo, account_columns};
use super::{
    Error, Page, PageRequest, Result, Thing, check_name, check_text, on_foreign_key, on_unique,
    orgs, parse_body, present,
};

pub const MAX_DESCRIPTION_CHARS: usize = 1000;

/// A team as eNZi shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    pub id: Uuid,
    #[serde(rename = "orgID")]
    pub org_id: Uuid,
    pub name: String,
    pub description: String,
    pub members_count: i64,
}

/// The columns of [`Team`], for queries over `teams t`.
macro_rules! team_columns {
    () => {
        "t.id, t.org_id, t.name, t.description,
         (SELECT count(*) FROM team_members c WHERE c.team_id = t.id) AS members_count"
    };
}
pub(crate) use team_columns;

/// A team member as eNZi lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct TeamMember {
    #[sqlx(flatten)]
    pub member: AccountInfo,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewTeam {
    name: String,
    #[serde(default, deserialize_with = "present")]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TeamUpdate {
    #[serde(default, deserialize_with = "present")]
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    description: Option<String>,
}

/// The body of `PUT …/teams/{team}/members/{member}`: nothing to set yet,
/// but an object, so that fields can be added later.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamMembership {}

fn no_such_team(org: &str, team: &str) -> Error {
    Error::not_found(
        Thing::Team,
        format!("organization {org:?} has no team named {team:?}"),
    )
}

fn team_exists(org: &str, team: &str) -> Error {
    Error::exists(
        Thing::Team,
        format!("organization {org:?} already has a team named {team:?}"),
    )
}

/// The team `name` of the organization `org_id`, if any.
pub async fn find(
    executor: impl PgExecutor<'_>,
    org_id: Uuid,
    name: &str,
) -> sqlx::Result<Option<Team>> {
    // No such name can exist, and PostgreSQL would refuse some (NUL).
    if !super::is_valid_name(name) {
        return Ok(None);
    }
    sqlx::query_as(concat!(
        "SELECT ",
        team_columns!(),
        " FROM teams t WHERE t.org_id = $1 AND t.name = $2"
    ))
    .bind(org_id)
    .bind(name)
    .fetch_optional(executor)
    .await
}

/// The team `name` of `org`, or `NO_SUCH_TEAM`.
pub async fn get(executor: impl PgExecutor<'_>, org: &AccountInfo, name: &str) -> Result<Team> {
    find(executor, org.id, name)
        .await?
        .ok_or_else(|| no_such_team(&org.name, name))
}

/// `GET /enzi/v0/accounts/{org}/teams`: one page, in name order.
pub async fn list(
    pool: &PgPool,
    actor: &Account,
    org: &str,
    page: &PageRequest,
) -> Result<Page<Team>> {
    let org = orgs::viewable(pool, actor, org).await?;
    let rows: Vec<Team> = sqlx::query_as(concat!(
        "SELECT ",
        team_columns!(),
        " FROM teams t WHERE t.org_id = $1 AND t.name > $2 ORDER BY t.name LIMIT $3"
    ))
    .bind(org.id)
    .bind(&page.start)
    .bind(page.fetch())
    .fetch_all(pool)
    .await?;
    Ok(Page::from_rows(rows, page, |team| &team.name))
}

/// `GET /enzi/v0/accounts/{org}/teams/{team}`.
pub async fn show(pool: &PgPool, actor: &Account, org: &str, team: &str) -> Result<Team> {
    let org = orgs::viewable(pool, actor, org).await?;
    get(pool, &org, team).await
}

/// `POST /enzi/v0/accounts/{org}/teams`.
pub async fn create(pool: &PgPool, actor: &Account, org: &str, body: Value) -> Result<Team> {
    let org = orgs::manageable(pool, actor, org).await?;
    let new: NewTeam = parse_body(body)?;
    check_name("name", &new.name)?;
    let description = new.description.unwrap_or_default();
    check_text("description", &description, MAX_DESCRIPTION_CHARS)?;
    sqlx::query_as(concat!(
        "INSERT INTO teams AS t (org_id, name, description) VALUES ($1, $2, $3) RETURNING ",
        team_columns!()
    ))
    .bind(org.id)
    .bind(&new.name)
    .bind(description)
    .fetch_one(pool)
    .await
    .map_err(|err| {
        let err = on_unique(err, || team_exists(&org.name, &new.name));
        match err {
            // The org was deleted since we looked it up.
            Error::Database(err) => on_foreign_key(err, || {
                Error::not_found(
                    Thing::Account,
                    format!("no organization named {:?}", org.name),
                )
            }),
            other => other,
        }
    })
}

/// `PATCH /enzi/v0/accounts/{org}/teams/{team}`: `name` and `description`;
/// fields left out keep their value.
pub async fn update(
    pool: &PgPool,
    actor: &Account,
    org: &str,
    team: &str,
    body: Value,
) -> Result<Team> {
    let org = orgs::manageable(pool, actor, org).await?;
    let current = get(pool, &org, team).await?;
    let update: TeamUpdate = parse_body(body)?;
    if let Some(name) = &update.name {
        check_name("name", name)?;
    }
    if let Some(description) = &update.description {
        check_text("description", description, MAX_DESCRIPTION_CHARS)?;
    }
    let new_name = update.name.clone().unwrap_or_else(|| current.name.clone());
    sqlx::query_as(concat!(
        "UPDATE teams AS t
            SET name = COALESCE($2, t.name), description = COALESCE($3, t.description)
          WHERE t.id = $1
      RETURNING ",
        team_columns!()
    ))
    .bind(current.id)
    .bind(update.name)
    .bind(update.description)
    .fetch_optional(pool)
    .await
    .map_err(|err| on_unique(err, || team_exists(&org.name, &new_name)))?
    .ok_or_else(|| no_such_team(&org.name, team))
}

/// `DELETE /enzi/v0/accounts/{org}/teams/{team}`: its memberships and
/// repository permissions go with it.
pub async fn delete(pool: &PgPool, actor: &Account, org: &str, team: &str) -> Result<()> {
    let org = orgs::manageable(pool, actor, org).await?;
    let team = get(pool, &org, team).await?;
    let deleted = sqlx::query("DELETE FROM teams WHERE id = $1")
        .bind(team.id)
        .execute(pool)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(no_such_team(&org.name, &team.name));
    }
    Ok(())
}

/// `GET /enzi/v0/accounts/{org}/teams/{team}/members`: one page, in name order.
pub async fn members(
    pool: &PgPool,
    actor: &Account,
    org: &str,
    team: &str,
    page: &PageRequest,
) -> Result<Page<TeamMember>> {
    let org = orgs::viewable(pool, actor, org).await?;
    let team = get(pool, &org, team).await?;
    let rows: Vec<TeamMember> = sqlx::query_as(concat!(
        "SELECT ",
        account_columns!(),
        " FROM team_members m JOIN accounts a ON a.id = m.user_id
          WHERE m.team_id = $1 AND a.name > $2
          ORDER BY a.name
          LIMIT $3"
    ))
    .bind(team.id)
    .bind(&page.start)
    .bind(page.fetch())
    .fetch_all(pool)
    .await?;
    Ok(Page::from_rows(rows, page, |member| &member.member.name))
}

/// `PUT /enzi/v0/accounts/{org}/teams/{team}/members/{member}`: adds the
/// user to the team, and to the org if they were not a member yet.
pub async fn put_member(
    pool: &PgPool,
    actor: &Account,
    org: &str,
    team: &str,
    member: &str,
    body: Option<Value>,
) -> Result<TeamMember> {
    let org = orgs::manageable(pool, actor, org).await?;
    let team = get(pool, &org, team).await?;
    if let Some(body) = body {
        parse_body::<TeamMembership>(body)?;
    }
    let user = accounts::get_user(pool, member).await?;
    let mut tx = pool.begin().await?;
    orgs::lock_org(&mut tx, &org).await?;
    orgs::ensure_member(&mut tx, org.id, user.id)
        .await
        .map_err(|err| {
            on_foreign_key(err, || {
                Error::not_found(Thing::Account, format!("no account named {member:?}"))
            })
        })?;
    sqlx::query(
        "INSERT INTO team_members (team_id, user_id) VALUES ($1, $2)
         ON CONFLICT (team_id, user_id) DO NOTHING",
    )
    .bind(team.id)
    .bind(user.id)
    .execute(&mut *tx)
    .await
    .map_err(|err| on_foreign_key(err, || no_such_team(&org.name, &team.name)))?;
    tx.commit().await?;
    Ok(TeamMember { member: user })
}

/// `DELETE /enzi/v0/accounts/{org}/teams/{team}/members/{member}`: takes
/// the user off the team (they stay an org member). Removing a non-member
/// does nothing.
pub async fn remove_member(
    pool: &PgPool,
    actor: &Account,
    org: &str,
    team: &str,
    member: &str,
) -> Result<()> {
    let org = orgs::manageable(pool, actor, org).await?;
    let team = get(pool, &org, team).await?;
    let user = accounts::get(pool, member).await?;
    sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
        .bind(team.id)
        .bind(user.id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Takes `user_id` off every team of `org_id`, as leaving the org does.
pub(crate) async fn remove_from_org_teams(
    conn: &mut PgConnection,
    org_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM team_members
          WHERE user_id = $2 AND team_id IN (SELECT id FROM teams WHERE org_id = $1)",
    )
    .bind(org_id)
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(())
}
