//! Scan results: what a vulnerability scanner found in an image, per
//! manifest digest, layer by layer.
//!
//! A result is keyed by the manifest digest alone, so one scan serves every
//! repository holding that image. The summary (counts per severity) is
//! computed here from the components, never taken from the scanner, so it
//! cannot disagree with the detail it summarises.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::invalid::{self, BodyError, Invalid, present};

/// Longest scanner name, component name or version, or vulnerability id.
const MAX_NAME: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Unknown,
    Negligible,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "unknown",
            Severity::Negligible => "negligible",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// How many distinct vulnerabilities an image has, per severity. A
/// vulnerability found in several components or layers counts once, at the
/// highest severity reported for it; `unknown` ones are not counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Summary {
    pub critical: i32,
    pub high: i32,
    pub medium: i32,
    pub low: i32,
    pub negligible: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Component {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub vulnerabilities: Vec<Finding>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    pub id: String,
    pub severity: Severity,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub digest: String,
    pub components: Vec<Component>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Upload {
    scanner: String,
    #[serde(default, deserialize_with = "present")]
    scanned_at: Option<String>,
    layers: Vec<Layer>,
}

/// A stored scan result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanResult {
    pub digest: String,
    pub scanner: String,
    #[serde(serialize_with = "super::time::rfc3339")]
    pub scanned_at: DateTime<Utc>,
    pub summary: Summary,
    pub layers: Vec<Layer>,
}

/// A checked upload, ready to store.
#[derive(Debug)]
struct Checked {
    scanner: String,
    scanned_at: DateTime<Utc>,
    layers: Vec<Layer>,
    summary: Summary,
}

fn check(body: &[u8]) -> Result<Checked, BodyError> {
    let upload: Upload = invalid::parse_body(body)?;
    invalid::name(|| "scanner".into(), &upload.scanner, MAX_NAME)?;
    let scanned_at = match &upload.scanned_at {
        None => Utc::now(),
        Some(value) => super::time::parse(value).ok_or_else(|| {
            Invalid::new("scannedAt", format!("{value:?} is not an RFC 3339 time"))
        })?,
    };
    let mut worst: HashMap<&str, Severity> = HashMap::new();
    for (l, layer) in upload.layers.iter().enumerate() {
        invalid::digest(|| format!("layers[{l}].digest"), &layer.digest)?;
        for (c, component) in layer.components.iter().enumerate() {
            let at = |field: &str| format!("layers[{l}].components[{c}].{field}");
            invalid::name(|| at("name"), &component.name, MAX_NAME)?;
            invalid::text(|| at("version"), &component.version)?;
            invalid::limit(|| at("version"), &component.version, MAX_NAME)?;
            for (v, finding) in component.vulnerabilities.iter().enumerate() {
                invalid::name(
                    || at(&format!("vulnerabilities[{v}].id")),
                    &finding.id,
                    MAX_NAME,
                )?;
                let entry = worst.entry(finding.id.as_str()).or_insert(finding.severity);
                *entry = (*entry).max(finding.severity);
            }
        }
    }
    let mut summary = Summary::default();
    for severity in worst.values() {
        match severity {
            Severity::Critical => summary.critical += 1,
            Severity::High => summary.high += 1,
            Severity::Medium => summary.medium += 1,
            Severity::Low => summary.low += 1,
            Severity::Negligible => summary.negligible += 1,
            Severity::Unknown => {}
        }
    }
    Ok(Checked {
        scanner: upload.scanner,
        scanned_at,
        layers: upload.layers,
        summary,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error(transparent)]
    Body(#[from] BodyError),
    /// No repository holds a manifest with this digest.
    #[error("no manifest has this digest")]
    NoSuchManifest,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<Invalid> for PutError {
    fn from(invalid: Invalid) -> Self {
        PutError::Body(BodyError::Invalid(invalid))
    }
}

/// Whether this was the digest's first result or replaced an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Created,
    Replaced,
}

/// Stores the result of scanning the manifest `digest`, replacing any
/// earlier one for that digest as a whole (layers included).
pub async fn put(
    pool: &PgPool,
    digest: &str,
    body: &[u8],
) -> Result<(Stored, ScanResult), PutError> {
    invalid::digest(|| "digest".into(), digest)?;
    let checked = check(body)?;
    let mut tx = pool.begin().await?;
    let known: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM manifests WHERE digest = $1)")
            .bind(digest)
            .fetch_one(&mut *tx)
            .await?;
    if !known {
        return Err(PutError::NoSuchManifest);
    }
    let summary = checked.summary;
    // An upsert rather than delete-and-insert: it locks the digest's row, so
    // two scanners reporting the same image at once take turns instead of
    // one failing on the primary key.
    let created: bool = sqlx::query_scalar(
        "INSERT INTO scan_results
                (manifest_digest, scanner, scanned_at, critical, high, medium, low, negligible)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (manifest_digest) DO UPDATE
            SET scanner = EXCLUDED.scanner, scanned_at = EXCLUDED.scanned_at,
                critical = EXCLUDED.critical, high = EXCLUDED.high, medium = EXCLUDED.medium,
                low = EXCLUDED.low, negligible = EXCLUDED.negligible
         RETURNING xmax = 0",
    )
    .bind(digest)
    .bind(&checked.scanner)
    .bind(checked.scanned_at)
    .bind(summary.critical)
    .bind(summary.high)
    .bind(summary.medium)
    .bind(summary.low)
    .bind(summary.negligible)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM scan_layers WHERE manifest_digest = $1")
        .bind(digest)
        .execute(&mut *tx)
        .await?;
    let layers =
        serde_json::to_value(&checked.layers).map_err(|err| sqlx::Error::Encode(err.into()))?;
    sqlx::query(
        "INSERT INTO scan_layers (manifest_digest, position, layer_digest, components)
         SELECT $1, ordinality - 1, layer ->> 'digest', layer -> 'components'
           FROM jsonb_array_elements($2) WITH ORDINALITY AS l (layer, ordinality)",
    )
    .bind(digest)
    .bind(layers)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let stored = if created {
        Stored::Created
    } else {
        Stored::Replaced
    };
    // Read back so that the answer shows what was stored (e.g. the time at
    // PostgreSQL's microsecond precision).
    let result = get(pool, digest).await?.ok_or_else(|| {
        sqlx::Error::Protocol("a scan result vanished right after it was stored".into())
    })?;
    Ok((stored, result))
}

#[derive(sqlx::FromRow)]
struct ResultRow {
    scanner: String,
    scanned_at: DateTime<Utc>,
    #[sqlx(flatten)]
    summary: Summary,
    layers: sqlx::types::Json<Vec<Layer>>,
}

pub async fn get(executor: impl PgExecutor<'_>, digest: &str) -> sqlx::Result<Option<ScanResult>> {
    if !invalid::is_digest(digest) {
        return Ok(None);
    }
    let row: Option<ResultRow> = sqlx::query_as(
        "SELECT r.scanner, r.scanned_at, r.critical, r.high, r.medium, r.low, r.negligible,
                coalesce((SELECT jsonb_agg(jsonb_build_object('digest', l.layer_digest,
                                                              'components', l.components)
                                           ORDER BY l.position)
                            FROM scan_layers l WHERE l.manifest_digest = r.manifest_digest),
                         '[]') AS layers
           FROM scan_results r
          WHERE r.manifest_digest = $1",
    )
    .bind(digest)
    .fetch_optional(executor)
    .await?;
    Ok(row.map(|row| ScanResult {
        digest: digest.to_owned(),
        scanner: row.scanner,
        scanned_at: row.scanned_at,
        summary: row.summary,
        layers: row.layers.0,
    }))
}

/// The repositories holding a manifest with this digest, so a caller can
/// decide who may see its scan result.
pub async fn repositories_with_manifest(
    executor: impl PgExecutor<'_>,
    digest: &str,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT repository_id FROM manifests WHERE digest = $1")
        .bind(digest)
        .fetch_all(executor)
        .await
}

/// The scan summary of the manifest a tag points at.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagSummary {
    pub digest: String,
    pub scanner: String,
    #[serde(serialize_with = "super::time::rfc3339")]
    pub scanned_at: DateTime<Utc>,
    pub summary: Summary,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TagScan {
    NoSuchTag,
    /// The tag exists but its manifest has not been scanned.
    NotScanned {
        digest: String,
    },
    Scanned(TagSummary),
}

pub async fn for_tag(
    executor: impl PgExecutor<'_>,
    repository_id: Uuid,
    tag: &str,
) -> sqlx::Result<TagScan> {
    if tag.contains('\0') {
        return Ok(TagScan::NoSuchTag);
    }
    #[derive(sqlx::FromRow)]
    struct Row {
        digest: String,
        scanner: Option<String>,
        scanned_at: Option<DateTime<Utc>>,
        critical: Option<i32>,
        high: Option<i32>,
        medium: Option<i32>,
        low: Option<i32>,
        negligible: Option<i32>,
    }
    let row: Option<Row> = sqlx::query_as(
        "SELECT t.digest, r.scanner, r.scanned_at,
                r.critical, r.high, r.medium, r.low, r.negligible
           FROM tags t
           LEFT JOIN scan_results r ON r.manifest_digest = t.digest
          WHERE t.repository_id = $1 AND t.name = $2",
    )
    .bind(repository_id)
    .bind(tag)
    .fetch_optional(executor)
    .await?;
    Ok(match row {
        None => TagScan::NoSuchTag,
        Some(Row {
            digest,
            scanner: Some(scanner),
            scanned_at: Some(scanned_at),
            critical: Some(critical),
            high: Some(high),
            medium: Some(medium),
            low: Some(low),
            negligible: Some(negligible),
        }) => TagScan::Scanned(TagSummary {
            digest,
            scanner,
            scanned_at,
            summary: Summary {
                critical,
                high,
                medium,
                low,
                negligible,
            },
        }),
        Some(Row { digest, .. }) => TagScan::NotScanned { digest },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_each_vulnerability_once_at_its_worst() {
        let layer = "sha256:".to_owned() + &"a".repeat(64);
        let body = serde_json::json!({
            "scanner": "trivy",
            "scannedAt": "2026-01-02T03:04:05+01:00",
            "layers": [
                {"digest": layer, "components": [
                    {"name": "openssl", "version": "3.0.1", "vulnerabilities": [
                        {"id": "CVE-1", "severity": "medium"},
                        {"id": "CVE-2", "severity": "low"},
                        {"id": "CVE-3", "severity": "unknown"}]},
                    {"name": "zlib", "version": "1.2"}]},
                {"digest": layer, "components": [
                    {"name": "libssl", "version": "3.0.1", "vulnerabilities": [
                        {"id": "CVE-1", "severity": "critical"},
                        {"id": "CVE-4", "severity": "negligible"}]}]}
            ]
        });
        let checked = check(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            checked.summary,
            Summary {
                critical: 1,
                high: 0,
                medium: 0,
                low: 1,
                negligible: 1
            }
        );
        assert_eq!(checked.scanned_at.to_rfc3339(), "2026-01-02T02:04:05+00:00");
    }

    #[test]
    fn refusals_name_the_field() {
        let field = |body: serde_json::Value| match check(body.to_string().as_bytes()) {
            Err(BodyError::Invalid(invalid)) => invalid.field,
            other => panic!("{other:?}"),
        };
        let layer = "sha256:".to_owned() + &"b".repeat(64);
        assert_eq!(
            field(serde_json::json!({"scanner": " ", "layers": []})),
            "scanner"
        );
        assert_eq!(
            field(serde_json::json!({"scanner": "s", "scannedAt": "today", "layers": []})),
            "scannedAt"
        );
        assert_eq!(
            field(serde_json::json!({"scanner": "s", "scannedAt": null, "layers": []})),
            "scannedAt"
        );
        assert_eq!(
            field(
                serde_json::json!({"scanner": "s", "layers": [{"digest": "sha256:x", "components": []}]})
            ),
            "layers[0].digest"
        );
        assert_eq!(
            field(
                serde_json::json!({"scanner": "s", "layers": [{"digest": layer, "components": [
                {"name": "a", "version": "1", "vulnerabilities": [{"id": "CVE-1", "severity": "severe"}]}]}]})
            ),
            "layers[0].components[0].vulnerabilities[0].severity"
        );
        assert_eq!(
            field(
                serde_json::json!({"scanner": "s", "layers": [{"digest": layer, "components": [
                {"name": "a\u{0}", "version": "1"}]}]})
            ),
            "layers[0].components[0].name"
        );
    }
}
