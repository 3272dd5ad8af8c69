//! Organization membership (`org_members`) and who may see or manage an
//! organization.
//!
//! - System admins and the org's admins manage it: members, teams, and the
//!   repositories in its namespace.
//! - Its members (and system admins) may see its members and teams.
//!
//! Membership changes of one org hold a lock on the org's `accounts` row,
//! so adding someone to a team (which makes them a member) and removing them
//! from the org (which takes them off its teams) cannot interleave into a
//! team member who is not an org member.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use super::accounts::{self, Account, AccountInfo, account_columns};
use super::{Error, Page, PageRequest, Result, Thing, on_foreign_key, parse_body, present, teams};

/// An org member as eNZi lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    #[sqlx(flatten)]
    pub member: AccountInfo,
    /// An admin (owner) of the organization.
    #[sqlx(rename = "membership_is_admin")]
    pub is_admin: bool,
}

/// The body of `PUT /enzi/v0/accounts/{org}/members/{member}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MembershipUpdate {
    #[serde(default, deserialize_with = "present")]
    is_admin: Option<bool>,
}

/// The organization named `name`, or `NO_SUCH_ACCOUNT` (a user is not one).
pub async fn get_org(executor: impl PgExecutor<'_>, name: &str) -> Result<AccountInfo> {
    match accounts::find(executor, name).await? {
        Some(account) if account.is_org => Ok(account),
        _ => Err(Error::not_found(
            Thing::Account,
            format!("no organization named {name:?}"),
        )),
    }
}

/// `Some(is_admin)` when `user_id` is a member of `org_id`.
pub async fn membership(
    executor: impl PgExecutor<'_>,
    org_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar("SELECT is_admin FROM org_members WHERE org_id = $1 AND user_id = $2")
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(executor)
        .await
}

/// May `actor` manage the organization (members, teams, repositories)?
pub async fn can_manage(
    executor: impl PgExecutor<'_>,
    actor: &Account,
    org_id: Uuid,
) -> sqlx::Result<bool> {
    Ok(actor.is_admin || membership(executor, org_id, actor.id).await? == Some(true))
}

/// May `actor` see the organization's members and teams?
pub async fn can_view(
    executor: impl PgExecutor<'_>,
    actor: &Account,
    org_id: Uuid,
) -> sqlx::Result<bool> {
    Ok(actor.is_admin || membership(executor, org_id, actor.id).await?.is_some())
}

/// The organization named `name`, if `actor` may see its members and teams.
pub(crate) async fn viewable(pool: &PgPool, actor: &Account, name: &str) -> Result<AccountInfo> {
    let org = get_org(pool, name).await?;
    if !can_view(pool, actor, org.id).await? {
        return Err(Error::not_authorized(format!(
            "only members of {name:?} and admins can see its members and teams"
        )));
    }
    Ok(org)
}

/// The organization named `name`, if `actor` may manage it.
pub(crate) async fn manageable(pool: &PgPool, actor: &Account, name: &str) -> Result<AccountInfo> {
    let org = get_org(pool, name).await?;
    if !can_manage(pool, actor, org.id).await? {
        return Err(Error::not_authorized(format!(
            "only admins of {name:?} and system admins can manage it"
        )));
    }
    Ok(org)
}

/// Locks the org's row for a membership change; `NO_SUCH_ACCOUNT` if it was
/// deleted meanwhile. `FOR NO KEY UPDATE` leaves foreign key checks alone.
pub(crate) async fn lock_org(conn: &mut PgConnection, org: &AccountInfo) -> Result<()> {
    sqlx::query("SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE")
        .bind(org.id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| {
            Error::not_found(
                Thing::Account,
                format!("no organization named {:?}", org.name),
            )
        })?;
    Ok(())
}

/// Makes `user_id` a member of `org_id` unless they are one; part of adding
/// a team member. Runs under [`lock_org`].
pub(crate) async fn ensure_member(
    conn: &mut PgConnection,
    org_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO org_members (org_id, user_id) VALUES ($1, $2)
         ON CONFLICT (org_id, user_id) DO NOTHING",
    )
    .bind(org_id)
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// `GET /enzi/v0/accounts/{org}/members`: one page, in member name order.
pub async fn members(
    pool: &PgPool,
    actor: &Account,
    org: &str,
    page: &PageRequest,
) -> Result<Page<Member>> {
    let org = viewable(pool, actor, org).await?;
    let rows: Vec<Member> = sqlx::query_as(concat!(
        "SELECT ",
        account_columns!(),
        ", m.is_admin AS membership_is_admin
           FROM org_members m JOIN accounts a ON a.id = m.user_id
          WHERE m.org_id = $1 AND a.name > $2
          ORDER BY a.name
          LIMIT $3"
    ))
    .bind(org.id)
    .bind(&page.start)
    .bind(page.fetch())
    .fetch_all(pool)
    .await?;
    Ok(Page::from_rows(rows, page, |member| &member.member.name))
}

/// `PUT /enzi/v0/accounts/{org}/members/{member}`: adds the user, or changes
/// whether they are an org admin. `isAdmin` left out keeps it (false for a
/// new member).
pub async fn put_member(
    pool: &PgPool,
    actor: &Account,
    org: &str,
    member: &str,
    body: Option<Value>,
) -> Result<Member> {
    let org = manageable(pool, actor, org).await?;
    let update: MembershipUpdate = match body {
        Some(body) => parse_body(body)?,
        None => MembershipUpdate::default(),
    };
    let user = accounts::get_user(pool, member).await?;
    let mut tx = pool.begin().await?;
    lock_org(&mut tx, &org).await?;
    let is_admin: bool = sqlx::query_scalar(
        "INSERT INTO org_members (org_id, user_id, is_admin) VALUES ($1, $2, COALESCE($3, false))
         ON CONFLICT (org_id, user_id) DO UPDATE SET is_admin = COALESCE($3, org_members.is_admin)
         RETURNING is_admin",
    )
    .bind(org.id)
    .bind(user.id)
    .bind(update.is_admin)
    .fetch_one(&mut *tx)
    .await
    .map_err(|err| {
        on_foreign_key(err, || {
            Error::not_found(Thing::Account, format!("no account named {member:?}"))
        })
    })?;
    tx.commit().await?;
    Ok(Member {
        member: user,
        is_admin,
    })
}

/// `DELETE /enzi/v0/accounts/{org}/members/{member}`: removes the user from
/// the org and from all of its teams. Removing a non-member does nothing.
pub async fn remove_member(pool: &PgPool, actor: &Account, org: &str, member: &str) -> Result<()> {
    let org = manageable(pool, actor, org).await?;
    let user = accounts::get(pool, member).await?;
    let mut tx = pool.begin().await?;
    lock_org(&mut tx, &org).await?;
    teams::remove_from_org_teams(&mut tx, org.id, user.id).await?;
    sqlx::query("DELETE FROM org_members WHERE org_id = $1 AND user_id = $2")
        .bind(org.id)
        .bind(user.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
