//! The vulnerability database that scan results are read against: a feed
//! version and its vulnerabilities. It is never backed up (see
//! [`super::DATASETS`]); after a restore the feed is simply loaded again.
//!
//! An upload replaces the whole database in one transaction, so readers see
//! either the old feed or the new one, never a mix. The rows go in as a few
//! arrays through `UNNEST`, one statement however many there are: a feed has
//! a few hundred thousand entries.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgExecutor, PgPool};

use super::invalid::{self, BodyError, Invalid, present};
use super::scans::Severity;

/// Serialises uploads across replicas; the key is arbitrary but fixed.
const FEED_LOCK: i64 = 0x6d73_725f_7675_6c6e; // "msr_vuln"

const MAX_ID: usize = 1024;
const MAX_SUMMARY: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Upload {
    version: String,
    vulnerabilities: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Entry {
    id: String,
    severity: Severity,
    #[serde(default, deserialize_with = "present")]
    summary: Option<String>,
    #[serde(default, deserialize_with = "present")]
    cvss_score: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Feed {
    pub version: String,
    #[serde(serialize_with = "super::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Vulnerability {
    pub id: String,
    pub severity: String,
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cvss_score: Option<f32>,
    pub feed_version: String,
}

/// The upload as columns, ready for `UNNEST`.
#[derive(Debug, Default)]
struct Columns {
    ids: Vec<String>,
    severities: Vec<&'static str>,
    summaries: Vec<String>,
    scores: Vec<Option<f32>>,
}

fn check(body: &[u8]) -> Result<(String, Columns), BodyError> {
    let upload: Upload = invalid::parse_body(body)?;
    invalid::name(|| "version".into(), &upload.version, MAX_ID)?;
    let count = upload.vulnerabilities.len();
    let mut columns = Columns {
        ids: Vec::with_capacity(count),
        severities: Vec::with_capacity(count),
        summaries: Vec::with_capacity(count),
        scores: Vec::with_capacity(count),
    };
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(count);
    for (i, entry) in upload.vulnerabilities.into_iter().enumerate() {
        let at = |field: &str| format!("vulnerabilities[{i}].{field}");
        invalid::name(|| at("id"), &entry.id, MAX_ID)?;
        if let Some(first) = seen.insert(entry.id.clone(), i) {
            return Err(Invalid::new(
                at("id"),
                format!("{:?} is also vulnerabilities[{first}]", entry.id),
            )
            .into());
        }
        let summary = entry.summary.unwrap_or_default();
        invalid::text(|| at("summary"), &summary)?;
        invalid::limit(|| at("summary"), &summary, MAX_SUMMARY)?;
        let score = match entry.cvss_score {
            None => None,
            Some(score) if (0.0..=10.0).contains(&score) => Some(score as f32),
            Some(score) => {
                return Err(Invalid::new(
                    at("cvssScore"),
                    format!("must be between 0 and 10, got {score}"),
                )
                .into());
            }
        };
        columns.ids.push(entry.id);
        columns.severities.push(entry.severity.as_str());
        columns.summaries.push(summary);
        columns.scores.push(score);
    }
    Ok((upload.version, columns))
}

/// Replaces the whole database with the uploaded feed.
pub async fn replace(pool: &PgPool, body: &[u8]) -> Result<Feed, ReplaceError> {
    let (version, columns) = check(body)?;
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(FEED_LOCK)
        .execute(&mut *tx)
        .await?;
    // DELETE rather than TRUNCATE: TRUNCATE would block every reader until
    // commit; DELETE lets them go on reading the old feed meanwhile.
    sqlx::query("DELETE FROM vulnerabilities")
        .execute(&mut *tx)
        .await?;
    let count = sqlx::query(
        "INSERT INTO vulnerabilities (id, severity, summary, cvss_score, feed_version)
         SELECT id, severity, summary, cvss_score, $5
           FROM UNNEST($1::text[], $2::text[], $3::text[], $4::real[])
                AS v (id, severity, summary, cvss_score)",
    )
    .bind(&columns.ids)
    .bind(&columns.severities)
    .bind(&columns.summaries)
    .bind(&columns.scores)
    .bind(&version)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let updated_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO vulnerability_feed (singleton, version, updated_at) VALUES (true, $1, now())
         ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version, updated_at = now()
         RETURNING updated_at",
    )
    .bind(&version)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Feed {
        version,
        updated_at,
        count: i64::try_from(count).unwrap_or(i64::MAX),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The loaded feed, or `None` before the first upload.
pub async fn feed(executor: impl PgExecutor<'_>) -> sqlx::Result<Option<Feed>> {
    let row: Option<(String, DateTime<Utc>, i64)> = sqlx::query_as(
        "SELECT version, updated_at, (SELECT count(*) FROM vulnerabilities)
           FROM vulnerability_feed",
    )
    .fetch_optional(executor)
    .await?;
    Ok(row.map(|(version, updated_at, count)| Feed {
        version,
        updated_at,
        count,
    }))
}

pub async fn get(executor: impl PgExecutor<'_>, id: &str) -> sqlx::Result<Option<Vulnerability>> {
    if id.contains('\0') {
        return Ok(None);
    }
    sqlx::query_as(
        "SELECT id, severity, summary, cvss_score, feed_version FROM vulnerabilities WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(executor)
    .await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field(body: serde_json::Value) -> String {
        match check(body.to_string().as_bytes()) {
            Err(BodyError::Invalid(invalid)) => invalid.field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refusals_name_the_entry() {
        let ok = json!({"id": "CVE-1", "severity": "high"});
        assert_eq!(
            field(json!({"version": "", "vulnerabilities": []})),
            "version"
        );
        assert_eq!(
            field(
                json!({"version": "1", "vulnerabilities": [ok, {"id": "CVE-1", "severity": "low"}]})
            ),
            "vulnerabilities[1].id"
        );
        assert_eq!(
            field(
                json!({"version": "1", "vulnerabilities": [{"id": "CVE-2", "severity": "low", "cvssScore": 11}]})
            ),
            "vulnerabilities[0].cvssScore"
        );
        assert_eq!(
            field(
                json!({"version": "1", "vulnerabilities": [{"id": "CVE-2", "severity": "low", "summary": null}]})
            ),
            "vulnerabilities[0].summary"
        );
        let (version, columns) = check(
            json!({"version": "2026.1", "vulnerabilities": [ok, {"id": "CVE-2", "severity": "unknown", "summary": "s", "cvssScore": 9.8}]})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(version, "2026.1");
        assert_eq!(columns.severities, ["high", "unknown"]);
        assert_eq!(columns.scores, [None, Some(9.8)]);
    }
}
