//! Finding a repository by its `{namespace}/{reponame}`.
//!
//! A stop-gap: once `registry::repositories` lands (the repositories API),
//! callers can use `registry::repositories::find` and this module can go.

use sqlx::PgExecutor;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RepositoryRef {
    pub id: Uuid,
    pub namespace: String,
    pub name: String,
}

pub async fn find(
    executor: impl PgExecutor<'_>,
    namespace: &str,
    name: &str,
) -> sqlx::Result<Option<RepositoryRef>> {
    // PostgreSQL refuses NUL in text; no stored name can contain one.
    if namespace.contains('\0') || name.contains('\0') {
        return Ok(None);
    }
    sqlx::query_as(
        "SELECT r.id, a.name AS namespace, r.name
           FROM repositories r
           JOIN accounts a ON a.id = r.namespace_id
          WHERE a.name = $1 AND r.name = $2",
    )
    .bind(namespace)
    .bind(name)
    .fetch_optional(executor)
    .await
}
