//! Running the `msr` binary's archive commands, and looking inside archives
//! without msr's own reader (so a test does not trust the code it checks).

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `msr <args>` with `DATABASE_URL` and `MSR_STORAGE` set, `stdin` fed in.
pub fn msr(args: &[&str], database_url: &str, storage: &Path, stdin: Option<&[u8]>) -> Output {
    let storage = storage.display().to_string();
    msr_with(args, database_url, &[("MSR_STORAGE", &storage)], stdin)
}

/// [`msr`] with any environment (S3 storage, say).
pub fn msr_with(
    args: &[&str],
    database_url: &str,
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_msr"));
    command
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("MSR_LOG", "warn")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("running msr");
    let feeder = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().unwrap();
        let bytes = bytes.to_vec();
        // A reader that gives up early closes the pipe: not our failure.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })
    });
    let output = child.wait_with_output().expect("waiting for msr");
    if let Some(feeder) = feeder {
        feeder.join().unwrap();
    }
    output
}

/// Like [`msr`], and fails the test unless it succeeded.
pub fn msr_ok(args: &[&str], database_url: &str, storage: &Path, stdin: Option<&[u8]>) -> Output {
    let output = msr(args, database_url, storage, stdin);
    assert!(
        output.status.success(),
        "msr {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A member's place in an archive.
#[derive(Debug, Clone)]
pub struct MemberAt {
    pub path: String,
    /// Where its 512-byte header starts.
    pub header: usize,
    /// Where its content starts.
    pub data: usize,
    pub size: usize,
}

/// The members of a tar, read the plain way (ustar name and prefix, octal
/// sizes); stops at the end marker.
pub fn members(archive: &[u8]) -> Vec<MemberAt> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= archive.len() {
        let header = &archive[at..at + 512];
        if header.iter().all(|&b| b == 0) {
            break;
        }
        let text = |range: std::ops::Range<usize>| {
            let field = &header[range];
            let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
            String::from_utf8(field[..end].to_vec()).unwrap()
        };
        let (name, prefix) = (text(0..100), text(345..500));
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let size = usize::from_str_radix(text(124..136).trim(), 8).unwrap();
        out.push(MemberAt {
            path,
            header: at,
            data: at + 512,
            size,
        });
        at += 512 + size.div_ceil(512) * 512;
    }
    out
}

/// What an archive holds, in a form two archives can be compared in: each
/// table's rows (JSON lines, sorted) and each blob's size and sha256.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Contents {
    pub tables: BTreeMap<String, Vec<String>>,
    pub blobs: BTreeMap<String, (usize, String)>,
}

pub fn contents(archive: &[u8]) -> Contents {
    let mut contents = Contents::default();
    for member in members(archive) {
        let bytes = &archive[member.data..member.data + member.size];
        if let Some(rest) = member.path.strip_prefix("metadata/") {
            let table = rest.split('/').nth(1).unwrap().to_owned();
            let mut text = String::new();
            flate2::read::GzDecoder::new(bytes)
                .read_to_string(&mut text)
                .unwrap();
            contents
                .tables
                .entry(table)
                .or_default()
                .extend(text.lines().map(str::to_owned));
        } else if let Some(hex) = member.path.strip_prefix("blobs/sha256/") {
            use sha2::Digest as _;
            let actual = hex::encode(sha2::Sha256::digest(bytes));
            contents.blobs.insert(hex.to_owned(), (bytes.len(), actual));
        }
    }
    for rows in contents.tables.values_mut() {
        rows.sort();
    }
    contents
}

/// The archive's `backup.json`.
pub fn description(archive: &[u8]) -> serde_json::Value {
    let first = &members(archive)[0];
    assert_eq!(first.path, "backup.json");
    serde_json::from_slice(&archive[first.data..first.data + first.size]).unwrap()
}

/// Rebuilds an archive with `change` applied to `backup.json`, and the
/// checksums member made to match, so only the change itself is wrong.
pub async fn with_description(
    archive: &[u8],
    change: impl FnOnce(&mut serde_json::Value),
) -> Vec<u8> {
    use sha2::Digest as _;
    let mut json = description(archive);
    change(&mut json);
    let json = serde_json::to_vec_pretty(&json).unwrap();
    let old = members(archive);
    let mut writer = msr::backup::tar::TarWriter::new(Vec::new());
    for member in &old {
        let content = &archive[member.data..member.data + member.size];
        match member.path.as_str() {
            "backup.json" => writer.append("backup.json", &json, 0).await.unwrap(),
            "checksums.sha256" => {
                let text = String::from_utf8(content.to_vec()).unwrap();
                let fixed: String = text
                    .lines()
                    .map(|line| {
                        if line.ends_with("  backup.json") {
                            format!(
                                "{}  backup.json\n",
                                hex::encode(sha2::Sha256::digest(&json))
                            )
                        } else {
                            format!("{line}\n")
                        }
                    })
                    .collect();
                writer
                    .append("checksums.sha256", fixed.as_bytes(), 0)
                    .await
                    .unwrap();
            }
            path => writer.append(path, content, 0).await.unwrap(),
        }
    }
    writer.finish().await.unwrap().0
}

/// Rows in every table of the registry's data, for "nothing changed": all
/// but the job runner's own, which a live server writes to at any time.
pub async fn row_counts(database_url: &str) -> BTreeMap<String, i64> {
    let job_runner = msr::registry::DATASETS
        .iter()
        .find(|dataset| dataset.name == "job_runner")
        .unwrap()
        .tables;
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(database_url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' AND tablename <> '_sqlx_migrations'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut counts = BTreeMap::new();
    for table in tables
        .into_iter()
        .filter(|table| !job_runner.contains(&table.as_str()))
    {
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM \"{table}\""
        )))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        counts.insert(table, count);
    }
    counts
}

/// Every file under `dir`, relative to it.
pub fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
