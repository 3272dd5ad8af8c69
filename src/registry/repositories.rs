//! Repositories (`repositories`) and DTR's repositories API over them
//! (`/api/v0/repositories`).
//!
//! A repository lives in a namespace, a user's or an organization's
//! account. Who may read or change it is decided by
//! [`super::access::repository_access`]; a repository the caller cannot read
//! is reported exactly like one that does not exist.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::access::{self, AccessLevel};
use super::accounts::{self, Account, AccountInfo};
use super::{
    Error, Invalid, Result, Thing, check_text, on_foreign_key, on_unique, orgs, parse_body, present,
};

pub const MIN_NAME_LEN: usize = 2;
pub const MAX_NAME_LEN: usize = 255;
/// DTR's limit, so that the web UI's one-line summary fits.
pub const MAX_SHORT_DESCRIPTION_CHARS: usize = 140;
pub const MAX_LONG_DESCRIPTION_CHARS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Readable by every authenticated user.
    Public,
    /// Readable only by those granted access.
    #[default]
    Private,
}

impl Visibility {
    /// The stored form (`repositories.visibility`).
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
        }
    }
}

impl TryFrom<String> for Visibility {
    type Error = Invalid;

    fn try_from(stored: String) -> Result<Self, Invalid> {
        match stored.as_str() {
            "public" => Ok(Visibility::Public),
            "private" => Ok(Visibility::Private),
            _ => Err(Invalid::new("visibility", format!("unknown {stored:?}"))),
        }
    }
}

/// Whether the namespace is a user's or an organization's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceType {
    User,
    Organization,
}

impl From<bool> for NamespaceType {
    fn from(is_org: bool) -> Self {
        if is_org {
            NamespaceType::Organization
        } else {
            NamespaceType::User
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Repository {
    pub id: Uuid,
    /// The account the repository lives under.
    pub namespace_id: Uuid,
    pub namespace: String,
    #[sqlx(rename = "namespace_is_org", try_from = "bool")]
    pub namespace_type: NamespaceType,
    pub name: String,
    pub short_description: String,
    pub long_description: String,
    #[sqlx(try_from = "String")]
    pub visibility: Visibility,
    pub immutable_tags: bool,
    pub scan_on_push: bool,
    pub created_at: DateTime<Utc>,
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// DTR's repository JSON.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RepositoryJson<'a> {
    id: Uuid,
    namespace: &'a str,
    namespace_type: NamespaceType,
    name: &'a str,
    short_description: &'a str,
    long_description: &'a str,
    visibility: Visibility,
    scan_on_push: bool,
    immutable_tags: bool,
    /// Always on: every push may be an image index (multi-arch images).
    enable_manifest_lists: bool,
}

impl Serialize for Repository {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RepositoryJson {
            id: self.id,
            namespace: &self.namespace,
            namespace_type: self.namespace_type,
            name: &self.name,
            short_description: &self.short_description,
            long_description: &self.long_description,
            visibility: self.visibility,
            scan_on_push: self.scan_on_push,
            immutable_tags: self.immutable_tags,
            enable_manifest_lists: true,
        }
        .serialize(serializer)
    }
}

/// The columns of [`Repository`], for queries over
/// `repositories r JOIN accounts n ON n.id = r.namespace_id`.
macro_rules! repository_columns {
    () => {
        "r.id, r.namespace_id, n.name AS namespace, n.is_org AS namespace_is_org, r.name,
         r.short_description, r.long_description, r.visibility, r.immutable_tags,
         r.scan_on_push, r.created_at"
    };
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewRepository {
    name: String,
    #[serde(default, deserialize_with = "present")]
    short_description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    long_description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    visibility: Option<Visibility>,
    #[serde(default, deserialize_with = "present")]
    scan_on_push: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    immutable_tags: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    enable_manifest_lists: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RepositoryUpdate {
    #[serde(default, deserialize_with = "present")]
    short_description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    long_description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    visibility: Option<Visibility>,
    #[serde(default, deserialize_with = "present")]
    scan_on_push: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    immutable_tags: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    enable_manifest_lists: Option<bool>,
}

/// Is `name` a repository name: one path component of the OCI distribution
/// spec (`[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`), 2 to 255 characters.
pub fn is_valid_name(name: &str) -> bool {
    if !(MIN_NAME_LEN..=MAX_NAME_LEN).contains(&name.len()) {
        return false;
    }
    let alphanumeric = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut rest = name.as_bytes();
    loop {
        let word = rest.iter().take_while(|b| alphanumeric(b)).count();
        if word == 0 {
            return false;
        }
        rest = &rest[word..];
        if rest.is_empty() {
            return true;
        }
        let separator = rest.iter().take_while(|b| !alphanumeric(b)).count();
        match &rest[..separator] {
            b"." | b"_" | b"__" => {}
            dashes if dashes.iter().all(|b| *b == b'-') => {}
            _ => return false,
        }
        rest = &rest[separator..];
    }
}

fn check_descriptions(short: Option<&str>, long: Option<&str>) -> Result<(), Invalid> {
    if let Some(short) = short {
        check_text("shortDescription", short, MAX_SHORT_DESCRIPTION_CHARS)?;
    }
    if let Some(long) = long {
        check_text("longDescription", long, MAX_LONG_DESCRIPTION_CHARS)?;
    }
    Ok(())
}

fn check_manifest_lists(enable: Option<bool>) -> Result<(), Invalid> {
    if enable == Some(false) {
        return Err(Invalid::new(
            "enableManifestLists",
            "manifest lists are always enabled and cannot be turned off",
        ));
    }
    Ok(())
}

fn no_such_repository(namespace: &str, name: &str) -> Error {
    Error::not_found(
        Thing::Repository,
        format!("no repository {namespace}/{name}"),
    )
}

/// The repository `namespace/name`, if it exists (whoever asks). The
/// caller decides who may see it, with [`access::repository_access`].
pub async fn find(
    executor: impl PgExecutor<'_>,
    namespace: &str,
    name: &str,
) -> sqlx::Result<Option<Repository>> {
    // No such names can exist, and PostgreSQL would refuse some (NUL).
    if !super::is_valid_name(namespace) || !is_valid_name(name) {
        return Ok(None);
    }
    sqlx::query_as(concat!(
        "SELECT ",
        repository_columns!(),
        " FROM repositories r JOIN accounts n ON n.id = r.namespace_id
          WHERE n.name = $1 AND r.name = $2"
    ))
    .bind(namespace)
    .bind(name)
    .fetch_optional(executor)
    .await
}

/// The repository `namespace/name` and `actor`'s access to it, provided
/// `actor` has at least `needed`: `NO_SUCH_REPOSITORY` when it is missing or
/// `actor` cannot read it, `NOT_AUTHORIZED` when `actor` can read it but
/// needs more.
pub async fn authorize(
    pool: &PgPool,
    actor: &Account,
    namespace: &str,
    name: &str,
    needed: AccessLevel,
) -> Result<(Repository, AccessLevel)> {
    let repository = find(pool, namespace, name)
        .await?
        .ok_or_else(|| no_such_repository(namespace, name))?;
    let level = access::repository_access(pool, actor, repository.id).await?;
    if !level.can_read() {
        return Err(no_such_repository(namespace, name));
    }
    if level < needed {
        return Err(Error::not_authorized(format!(
            "this needs {} access to {repository}; you have {}",
            needed.as_str(),
            level.as_str()
        )));
    }
    Ok((repository, level))
}

/// May `actor` create repositories in `namespace`: admins, the namespace's
/// own user, and the admins of an organization namespace.
async fn can_create_in(pool: &PgPool, actor: &Account, namespace: &AccountInfo) -> Result<bool> {
    Ok(actor.is_admin
        || namespace.id == actor.id
        || (namespace.is_org && orgs::can_manage(pool, actor, namespace.id).await?))
}

/// `POST /api/v0/repositories/{namespace}`.
pub async fn create(
    pool: &PgPool,
    actor: &Account,
    namespace: &str,
    body: Value,
) -> Result<Repository> {
    let owner = accounts::get(pool, namespace).await?;
    if !can_create_in(pool, actor, &owner).await? {
        return Err(Error::not_authorized(format!(
            "you cannot create repositories in the namespace {namespace:?}"
        )));
    }
    let new: NewRepository = parse_body(body)?;
    if !is_valid_name(&new.name) {
        return Err(Invalid::new(
            "name",
            format!(
                "{:?} is not a valid repository name: use {MIN_NAME_LEN} to {MAX_NAME_LEN} \
                 lowercase letters and digits, separated by '.', '_', '__' or dashes",
                new.name
            ),
        )
        .into());
    }
    check_descriptions(
        new.short_description.as_deref(),
        new.long_description.as_deref(),
    )?;
    check_manifest_lists(new.enable_manifest_lists)?;

    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO repositories
             (namespace_id, name, short_description, long_description, visibility,
              immutable_tags, scan_on_push)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING id",
    )
    .bind(owner.id)
    .bind(&new.name)
    .bind(new.short_description.unwrap_or_default())
    .bind(new.long_description.unwrap_or_default())
    .bind(new.visibility.unwrap_or_default().as_str())
    .bind(new.immutable_tags.unwrap_or(false))
    .bind(new.scan_on_push.unwrap_or(false))
    .fetch_one(pool)
    .await
    .map_err(|err| {
        match on_unique(err, || {
            Error::exists(
                Thing::Repository,
                format!("the repository {namespace}/{} already exists", new.name),
            )
        }) {
            Error::Database(err) => on_foreign_key(err, || {
                Error::not_found(Thing::Account, format!("no account named {namespace:?}"))
            }),
            other => other,
        }
    })?;
    by_id(pool, id)
        .await?
        .ok_or_else(|| no_such_repository(namespace, &new.name))
}

async fn by_id(executor: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Repository>> {
    sqlx::query_as(concat!(
        "SELECT ",
        repository_columns!(),
        " FROM repositories r JOIN accounts n ON n.id = r.namespace_id WHERE r.id = $1"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await
}

/// `GET /api/v0/repositories/{namespace}`: the repositories of the namespace
/// that `actor` can read, in name order.
pub async fn list(pool: &PgPool, actor: &Account, namespace: &str) -> Result<Vec<Repository>> {
    let owner = accounts::get(pool, namespace).await?;
    let repositories: Vec<Repository> = sqlx::query_as(concat!(
        "SELECT ",
        repository_columns!(),
        " FROM repositories r JOIN accounts n ON n.id = r.namespace_id
          WHERE r.namespace_id = $1
          ORDER BY r.name"
    ))
    .bind(owner.id)
    .fetch_all(pool)
    .await?;
    let levels = access::levels_in_namespace(pool, actor, owner.id).await?;
    Ok(repositories
        .into_iter()
        .filter(|repository| {
            levels
                .get(&repository.id)
                .is_some_and(|level| level.can_read())
        })
        .collect())
}

/// `GET /api/v0/repositories/{namespace}/{reponame}`.
pub async fn show(
    pool: &PgPool,
    actor: &Account,
    namespace: &str,
    name: &str,
) -> Result<Repository> {
    Ok(
        authorize(pool, actor, namespace, name, AccessLevel::ReadOnly)
            .await?
            .0,
    )
}

/// `PATCH /api/v0/repositories/{namespace}/{reponame}`: fields left out keep
/// their value. Needs admin access to the repository.
pub async fn update(
    pool: &PgPool,
    actor: &Account,
    namespace: &str,
    name: &str,
    body: Value,
) -> Result<Repository> {
    let (repository, _) = authorize(pool, actor, namespace, name, AccessLevel::Admin).await?;
    let update: RepositoryUpdate = parse_body(body)?;
    check_descriptions(
        update.short_description.as_deref(),
        update.long_description.as_deref(),
    )?;
    check_manifest_lists(update.enable_manifest_lists)?;
    let updated = sqlx::query(
        "UPDATE repositories
            SET short_description = COALESCE($2, short_description),
                long_description = COALESCE($3, long_description),
                visibility = COALESCE($4, visibility),
                scan_on_push = COALESCE($5, scan_on_push),
                immutable_tags = COALESCE($6, immutable_tags)
          WHERE id = $1",
    )
    .bind(repository.id)
    .bind(update.short_description)
    .bind(update.long_description)
    .bind(update.visibility.map(Visibility::as_str))
    .bind(update.scan_on_push)
    .bind(update.immutable_tags)
    .execute(pool)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(no_such_repository(namespace, name));
    }
    by_id(pool, repository.id)
        .await?
        .ok_or_else(|| no_such_repository(namespace, name))
}

/// `DELETE /api/v0/repositories/{namespace}/{reponame}`: its tags,
/// manifests, permissions and trust data go with it. Needs admin access.
pub async fn delete(pool: &PgPool, actor: &Account, namespace: &str, name: &str) -> Result<()> {
    let (repository, _) = authorize(pool, actor, namespace, name, AccessLevel::Admin).await?;
    sqlx::query("DELETE FROM repositories WHERE id = $1")
        .bind(repository.id)
        .execute(pool)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_valid_name;

    #[test]
    fn repository_names_follow_the_distribution_spec() {
        for good in [
            "ab",
            "my-app",
            "my--app",
            "my.app",
            "my_app",
            "my__app",
            "a1.b2-c3_d4",
            "00",
            &"a".repeat(255),
        ] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in [
            "",
            "a",
            "My-app",
            "-app",
            "app-",
            "app.",
            "my..app",
            "my___app",
            "my._app",
            "my-.app",
            "my app",
            "my/app",
            "äpp",
            &"a".repeat(256),
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}
