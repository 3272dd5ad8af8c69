//! `msr dev seed`: a large, realistic, deterministic data set, for trying
//! the API, backups and restores at scale.
//!
//! Everything is generated inside PostgreSQL with set-based statements
//! (`INSERT … SELECT … FROM generate_series`), in one transaction: nothing
//! row by row crosses the wire, so the defaults (a million blob rows, 900 000
//! manifest references, 700 000 scan layers) load in well under a minute.
//! The usual bulk-load recipe applies ([`BulkLoad`]): the big tables' keys
//! and indexes, and every foreign key, are dropped first and rebuilt once at
//! the end.
//!
//! Determinism: every id, digest, name and time is a hash of the seed and a
//! counter (`hashint8extended`, `md5`, `sha256`), never `random()` or
//! `now()`, so one seed and one set of counts always give the same data.
//! Times are spread over the two years before 2026-01-01.
//!
//! Only metadata is written: blob rows carry sizes, but no content is put in
//! storage.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use secrecy::ExposeSecret as _;
use sqlx::{Connection as _, PgConnection};

use crate::config::{GlobalArgs, SeedArgs};
use crate::db::BulkLoad;
use crate::registry::accounts;
use crate::server;

/// Tables whose keys and indexes are rebuilt after loading: the big ones.
const BULK_TABLES: &[&str] = &[
    "blobs",
    "repository_blobs",
    "manifests",
    "manifest_references",
    "tags",
    "scan_results",
    "scan_layers",
];

/// The tables a summary reports, in the order they are filled.
const SUMMARY_TABLES: &[&str] = &[
    "accounts",
    "org_members",
    "teams",
    "team_members",
    "repositories",
    "team_repository_access",
    "blobs",
    "repository_blobs",
    "manifests",
    "manifest_references",
    "tags",
    "scan_results",
    "scan_layers",
    "notary_tuf_files",
];

/// What a run wrote, and how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Rows added per table, in [`SUMMARY_TABLES`] order.
    pub rows: Vec<(&'static str, u64)>,
    pub elapsed: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "seeded in {:.1}s:", self.elapsed.as_secs_f64())?;
        for (table, rows) in &self.rows {
            writeln!(f, "  {table:<24}{rows:>10}")?;
        }
        let total: u64 = self.rows.iter().map(|(_, rows)| rows).sum();
        write!(f, "  {:<24}{total:>10}", "total")
    }
}

pub async fn run(global: &GlobalArgs, args: &SeedArgs) -> anyhow::Result<()> {
    let summary = seed(global, args).await?;
    println!("{summary}");
    println!(
        "users log in with the --password given (default \"seed-password\"); no blob content was written"
    );
    Ok(())
}

/// The numbers a run works with, checked and derived from the arguments.
#[derive(Debug, Clone)]
struct Plan {
    seed: u32,
    users: u32,
    orgs: u32,
    teams_per_org: u32,
    repositories: u32,
    tags: u32,
    scan_results: u32,
    notary_repositories: u32,
    /// Members of each organization.
    members: u32,
}

/// Team ids are derived from `org * TEAM_STRIDE + team`.
const TEAM_STRIDE: u32 = 100_000;

impl Plan {
    fn new(args: &SeedArgs) -> anyhow::Result<Self> {
        if args.users == 0 {
            bail!(
                "--users must be at least 1: user namespaces, org members and pushers are drawn from them"
            );
        }
        if args.tags > 0 && args.repositories == 0 {
            bail!("--tags needs at least one repository to put them in");
        }
        if args.scan_results > args.tags {
            bail!(
                "--scan-results ({}) cannot exceed --tags ({}): each tag has its own manifest, and a scan result is per manifest",
                args.scan_results,
                args.tags
            );
        }
        if args.notary_repositories > args.repositories {
            bail!(
                "--notary-repositories ({}) cannot exceed --repositories ({})",
                args.notary_repositories,
                args.repositories
            );
        }
        if args.teams_per_org >= TEAM_STRIDE {
            bail!("--teams-per-org must be below {TEAM_STRIDE}");
        }
        let members = if args.orgs == 0 {
            0
        } else {
            (3 * u64::from(args.users))
                .div_ceil(u64::from(args.orgs))
                .clamp(2, u64::from(args.users)) as u32
        };
        Ok(Self {
            seed: args.seed,
            users: args.users,
            orgs: args.orgs,
            teams_per_org: args.teams_per_org,
            repositories: args.repositories,
            tags: args.tags,
            scan_results: args.scan_results,
            notary_repositories: args.notary_repositories,
            members,
        })
    }

    /// `sql` with `{name}` replaced by the plan's numbers. Only integers are
    /// spliced in; strings go in as bind parameters.
    fn sql(&self, sql: &str) -> String {
        sql.replace("{seed}", &self.seed.to_string())
            .replace("{users}", &self.users.to_string())
            .replace("{orgs}", &self.orgs.to_string())
            .replace("{tpo}", &self.teams_per_org.to_string())
            .replace("{repos}", &self.repositories.to_string())
            .replace("{tags}", &self.tags.to_string())
            .replace("{scans}", &self.scan_results.to_string())
            .replace("{notary}", &self.notary_repositories.to_string())
            .replace("{members}", &self.members.to_string())
            .replace("{stride}", &TEAM_STRIDE.to_string())
    }
}

/// Seeds the database `global` points at; returns what it wrote.
pub async fn seed(global: &GlobalArgs, args: &SeedArgs) -> anyhow::Result<Summary> {
    let plan = Plan::new(args)?;
    let started = Instant::now();
    let pool = server::connect(global).await?;
    crate::db::migrate(&pool).await?;
    pool.close().await;
    // A connection of its own: temp_buffers can only be set before the
    // session first touches a temporary table.
    let url = global
        .database_url
        .as_ref()
        .context("no database configured: set DATABASE_URL or pass --database-url")?;
    let mut conn = PgConnection::connect(url.expose_secret())
        .await
        .context("connecting to the database")?;
    let hash = accounts::hash_password(args.password.expose_secret().to_owned()).await?;
    let suffix = if args.force {
        format!("-s{}", plan.seed)
    } else {
        String::new()
    };

    let mut tx = conn.begin().await?;
    let populated: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM repositories)")
        .fetch_one(&mut *tx)
        .await?;
    if populated && !args.force {
        bail!("the database already has repositories; pass --force to add the seeded data to them");
    }
    for setting in [
        "SET LOCAL temp_buffers = '512MB'",
        "SET LOCAL work_mem = '128MB'",
        "SET LOCAL maintenance_work_mem = '512MB'",
        // Generated times are written and compared in UTC.
        "SET LOCAL TimeZone = 'UTC'",
    ] {
        sqlx::query(setting).execute(&mut *tx).await?;
    }
    for function in FUNCTIONS {
        sqlx::query(sqlx::AssertSqlSafe(plan.sql(function)))
            .execute(&mut *tx)
            .await?;
    }

    let bulk = BulkLoad::begin(&mut tx, BULK_TABLES).await?;
    let mut rows: Vec<(&'static str, u64)> = SUMMARY_TABLES.iter().map(|t| (*t, 0)).collect();
    for step in STEPS {
        let step_started = Instant::now();
        let mut query = sqlx::query(sqlx::AssertSqlSafe(plan.sql(step.sql)));
        for param in step.params {
            query = match param {
                Param::Hash => query.bind(&hash),
                Param::Suffix => query.bind(&suffix),
            };
        }
        let affected = query
            .execute(&mut *tx)
            .await
            .with_context(|| format!("seeding {}", step.label))?
            .rows_affected();
        if let Some(table) = step.table
            && let Some(entry) = rows.iter_mut().find(|(name, _)| *name == table)
        {
            entry.1 += affected;
        }
        tracing::debug!(step = step.label, rows = affected, took = ?step_started.elapsed(), "seed step");
    }
    bulk.finish(&mut tx).await.context(
        "rebuilding keys and foreign keys (with --force, a --seed used before gives duplicates)",
    )?;
    tx.commit().await?;
    conn.close().await?;
    Ok(Summary {
        rows,
        elapsed: started.elapsed(),
    })
}

/// Deterministic generators, as session-local functions. They are declared
/// STABLE, not IMMUTABLE, so that PostgreSQL inlines them (their bodies use
/// STABLE operators such as text concatenation), which makes them ten times
/// cheaper per row.
const FUNCTIONS: &[&str] = &[
    // A number in [0, n) from a key and a salt: the one source of variety.
    "CREATE FUNCTION pg_temp.pick(k bigint, salt int, n int) RETURNS int LANGUAGE sql STABLE
       AS $$ SELECT ((hashint8extended(k * 7919 + salt, {seed}) & 9223372036854775807) % n)::int $$",
    "CREATE FUNCTION pg_temp.uid(kind text, k bigint) RETURNS uuid LANGUAGE sql STABLE
       AS $$ SELECT md5('{seed}:' || kind || ':' || k)::uuid $$",
    // sha256 of a counter: a digest that looks like any other.
    "CREATE FUNCTION pg_temp.dig(kind text, k bigint) RETURNS text LANGUAGE sql STABLE
       AS $$ SELECT 'sha256:' || encode(sha256(convert_to('{seed}:' || kind || ':' || k, 'UTF8')), 'hex') $$",
    "CREATE FUNCTION pg_temp.hex(kind text, k bigint) RETURNS text LANGUAGE sql STABLE
       AS $$ SELECT encode(sha256(convert_to('{seed}:' || kind || ':' || k, 'UTF8')), 'hex') $$",
    // 64 bytes in base64, without the line breaks encode() puts in.
    "CREATE FUNCTION pg_temp.b64(kind text, k bigint) RETURNS text LANGUAGE sql STABLE
       AS $$ SELECT translate(encode(sha256(convert_to('{seed}:' || kind || ':a:' || k, 'UTF8'))
                                     || sha256(convert_to('{seed}:' || kind || ':b:' || k, 'UTF8')), 'base64'), E'\\n', '') $$",
    // Up to `days` before 2026-01-01.
    "CREATE FUNCTION pg_temp.ago(k bigint, salt int, days int) RETURNS timestamptz LANGUAGE sql STABLE
       AS $$ SELECT timestamptz '2026-01-01 00:00:00+00' - make_interval(secs => pg_temp.pick(k, salt, days * 86400)) $$",
    "CREATE FUNCTION pg_temp.user_name(i bigint, suffix text) RETURNS text LANGUAGE sql STABLE
       AS $$ SELECT (ARRAY['alice','bob','carol','dave','erin','frank','grace','heidi','ivan','judy',
                           'mallory','niaj','olivia','peggy','rupert','sybil','trent','victor','walter','yara'])
                      [1 + pg_temp.pick(i, 2, 20)] || i || suffix $$",
    // A repository's id from its number.
    "CREATE FUNCTION pg_temp.repo(i bigint) RETURNS uuid LANGUAGE sql STABLE
       AS $$ SELECT pg_temp.uid('repo', i) $$",
    // The team `t` (1-based) of organization `o`.
    "CREATE FUNCTION pg_temp.team(o bigint, t bigint) RETURNS uuid LANGUAGE sql STABLE
       AS $$ SELECT pg_temp.uid('team', o * {stride} + t) $$",
    "CREATE FUNCTION pg_temp.tuf_key(kind text, n bigint) RETURNS jsonb LANGUAGE sql STABLE
       AS $$ SELECT jsonb_build_object('keytype', CASE WHEN kind = 'root' THEN 'ecdsa-x509' ELSE 'ecdsa' END,
                                      'keyval', jsonb_build_object('private', NULL, 'public', pg_temp.b64('pub:' || kind, n))) $$",
    "CREATE FUNCTION pg_temp.tuf_meta(data bytea) RETURNS jsonb LANGUAGE sql STABLE
       AS $$ SELECT jsonb_build_object('hashes', jsonb_build_object('sha256', encode(sha256(data), 'base64')),
                                      'length', octet_length(data)) $$",
    "CREATE FUNCTION pg_temp.tuf_file(signed jsonb, keyid text, sig text) RETURNS bytea LANGUAGE sql STABLE
       AS $$ SELECT convert_to(jsonb_build_object('signed', signed, 'signatures',
                    jsonb_build_array(jsonb_build_object('keyid', keyid, 'method', 'ecdsa', 'sig', sig)))::text, 'UTF8') $$",
];

struct Step {
    label: &'static str,
    /// The table whose rows it adds, for the summary.
    table: Option<&'static str>,
    sql: &'static str,
    /// What `$1`, `$2`, … stand for.
    params: &'static [Param],
}

#[derive(Clone, Copy)]
enum Param {
    /// The users' password hash.
    Hash,
    /// What account names end with (empty unless --force).
    Suffix,
}

const STEPS: &[Step] = &[
    Step {
        label: "users",
        table: Some("accounts"),
        // One in 200 is an admin, one in 50 deactivated.
        sql: "INSERT INTO accounts (id, name, full_name, is_admin, is_active, password_hash, created_at)
              SELECT pg_temp.uid('user', i), pg_temp.user_name(i, $2),
                     initcap((ARRAY['alice','bob','carol','dave','erin','frank','grace','heidi','ivan','judy',
                                    'mallory','niaj','olivia','peggy','rupert','sybil','trent','victor','walter','yara'])
                               [1 + pg_temp.pick(i, 2, 20)]) || ' '
                       || (ARRAY['Smith','Jones','Garcia','Miller','Davis','Wilson','Anderson','Taylor','Thomas','Moore',
                                 'Martin','Lee','Perez','White','Harris','Clark','Lewis','Young','King','Scott'])
                            [1 + pg_temp.pick(i, 3, 20)],
                     i % 200 = 1, i % 50 <> 7, $1, pg_temp.ago(i, 1, 730)
                FROM generate_series(1, {users}) i",
        params: &[Param::Hash, Param::Suffix],
    },
    Step {
        label: "organizations",
        table: Some("accounts"),
        sql: "INSERT INTO accounts (id, name, full_name, is_org, created_at)
              SELECT pg_temp.uid('org', i), w || i || $1, initcap(w) || ' ' || i, true, pg_temp.ago(i, 4, 730)
                FROM generate_series(1, {orgs}) i,
                     LATERAL (SELECT (ARRAY['platform','payments','data','ml','web','mobile','infra','security',
                                            'devops','qa','search','billing','identity','analytics','media','edge'])
                                       [1 + pg_temp.pick(i, 5, 16)] AS w) words",
        params: &[Param::Suffix],
    },
    Step {
        // A block of consecutive users per organization, from a hashed
        // start; the first is its admin.
        label: "organization members",
        table: Some("org_members"),
        sql: "INSERT INTO org_members (org_id, user_id, is_admin, created_at)
              SELECT pg_temp.uid('org', o), pg_temp.uid('user', 1 + (pg_temp.pick(o, 6, {users}) + k) % {users}),
                     k = 0, pg_temp.ago(o * 100000 + k, 7, 700)
                FROM generate_series(1, {orgs}) o, generate_series(0, {members} - 1) k",
        params: &[],
    },
    Step {
        label: "teams",
        table: Some("teams"),
        sql: "INSERT INTO teams (id, org_id, name, description, created_at)
              SELECT pg_temp.team(o, t), pg_temp.uid('org', o),
                     (ARRAY['developers','ops','qa','security','release','data','frontend','backend','sre','docs'])
                       [1 + (t - 1) % 10] || CASE WHEN t > 10 THEN '-' || t ELSE '' END,
                     'Seeded team', pg_temp.ago(o * 100000 + t, 8, 700)
                FROM generate_series(1, {orgs}) o, generate_series(1, {tpo}) t",
        params: &[],
    },
    Step {
        // Members in turn across the teams; every fourth also in the next one.
        label: "team members",
        table: Some("team_members"),
        sql: "INSERT INTO team_members (team_id, user_id, created_at)
              SELECT pg_temp.team(o, 1 + (k + s) % {tpo}),
                     pg_temp.uid('user', 1 + (pg_temp.pick(o, 6, {users}) + k) % {users}),
                     pg_temp.ago(o * 100000 + k, 9, 600)
                FROM generate_series(1, {orgs}) o, generate_series(0, {members} - 1) k, generate_series(0, 1) s
               WHERE {tpo} > 0 AND (s = 0 OR ({tpo} > 1 AND k % 4 = 0))",
        params: &[],
    },
    Step {
        // Four in five in an organization's namespace, the rest in a user's.
        label: "repositories",
        table: Some("repositories"),
        sql: "INSERT INTO repositories (id, namespace_id, name, short_description, visibility,
                                        immutable_tags, scan_on_push, created_at)
              SELECT pg_temp.repo(i),
                     CASE WHEN i % 5 <> 0 AND {orgs} > 0 THEN pg_temp.uid('org', 1 + pg_temp.pick(i, 10, greatest({orgs}, 1)))
                          ELSE pg_temp.uid('user', 1 + pg_temp.pick(i, 11, {users})) END,
                     (ARRAY['api','web','worker','gateway','auth','billing-service','frontend','backend','scheduler',
                            'notifier','search','cache','db-migrator','ingest','exporter','proxy','ui','cli','agent',
                            'operator'])[1 + pg_temp.pick(i, 12, 20)] || '-' || i,
                     'Seeded repository ' || i,
                     CASE WHEN pg_temp.pick(i, 13, 10) < 3 THEN 'public' ELSE 'private' END,
                     pg_temp.pick(i, 14, 10) = 0, pg_temp.pick(i, 15, 2) = 0, pg_temp.ago(i, 16, 700)
                FROM generate_series(1, {repos}) i",
        params: &[],
    },
    Step {
        // One or two of the owning organization's teams per repository.
        label: "team access",
        table: Some("team_repository_access"),
        sql: "INSERT INTO team_repository_access (team_id, repository_id, access_level)
              SELECT pg_temp.team(1 + pg_temp.pick(i, 10, greatest({orgs}, 1)), 1 + (pg_temp.pick(i, 17, greatest({tpo}, 1)) + s) % greatest({tpo}, 1)),
                     pg_temp.repo(i),
                     (ARRAY['read-only','read-only','read-only','read-write','read-write','admin'])[1 + pg_temp.pick(i * 2 + s, 18, 6)]
                FROM generate_series(1, {repos}) i, generate_series(0, 1) s
               WHERE i % 5 <> 0 AND {orgs} > 0 AND {tpo} > 0 AND (s = 0 OR ({tpo} > 1 AND pg_temp.pick(i, 19, 2) = 0))",
        params: &[],
    },
    Step {
        // Manifest j lives in repository j + 1 for the first of each
        // repository (its `latest`), then in a repository drawn with a
        // square law, so a few repositories hold many tags and most a few.
        label: "manifest plan",
        table: None,
        sql: "CREATE TEMP TABLE seed_manifests ON COMMIT DROP AS
              SELECT j, pg_temp.repo(r.repo) AS repo_id, pg_temp.dig('manifest', j) AS digest,
                     2 + pg_temp.pick(j, 21, 4) AS layers, pg_temp.pick(j, 22, 40) AS platform,
                     pg_temp.pick(j, 23, 10) < 3 AS docker, pg_temp.ago(j, 24, 600) AS pushed_at
                FROM generate_series(0, {tags} - 1) j,
                     LATERAL (SELECT 1 + CASE WHEN j < {repos} THEN j
                                              ELSE floor({repos} * power(pg_temp.pick(j, 20, 1000000) / 1000000.0, 2))::int
                                         END AS repo) r",
        params: &[],
    },
    Step {
        // Position 0 is the config, 1 a base layer shared by many images
        // (64 of them), the rest the image's own layers, 1 KiB to 16 MiB.
        label: "reference plan",
        table: None,
        sql: "CREATE TEMP TABLE seed_refs ON COMMIT DROP AS
              SELECT m.j, m.repo_id, m.digest AS manifest_digest, p AS position, m.pushed_at,
                     CASE WHEN p = 0 THEN pg_temp.dig('config', m.j)
                          WHEN p = 1 THEN pg_temp.dig('base', pg_temp.pick(m.j, 25, 64))
                          ELSE pg_temp.dig('layer', m.j * 8 + p) END AS digest,
                     CASE WHEN p = 0 THEN 1000 + pg_temp.pick(m.j, 26, 20000)
                          WHEN p = 1 THEN 2000000 + pg_temp.pick(pg_temp.pick(m.j, 25, 64), 27, 80000000)
                          ELSE (1024 * power(2, pg_temp.pick(m.j * 8 + p, 28, 15)))::bigint + pg_temp.pick(m.j * 8 + p, 29, 1024)
                     END::bigint AS size
                FROM seed_manifests m, generate_series(0, m.layers) p",
        params: &[],
    },
    Step {
        label: "blobs",
        table: Some("blobs"),
        sql: "INSERT INTO blobs (digest, size, created_at)
              SELECT pg_temp.dig('base', k), 2000000 + pg_temp.pick(k, 27, 80000000), timestamptz '2024-01-01 00:00:00+00'
                FROM generate_series(0, 63) k
               WHERE {tags} > 0
              UNION ALL
              SELECT digest, size, pushed_at FROM seed_refs WHERE position <> 1
              UNION ALL
              SELECT digest, 400 + 150 * layers, pushed_at FROM seed_manifests",
        params: &[],
    },
    Step {
        label: "repository blobs",
        table: Some("repository_blobs"),
        sql: "INSERT INTO repository_blobs (repository_id, digest)
              SELECT repo_id, digest FROM seed_manifests
              UNION ALL
              SELECT repo_id, digest FROM seed_refs WHERE position <> 1
              UNION ALL
              SELECT DISTINCT repo_id, digest FROM seed_refs WHERE position = 1",
        params: &[],
    },
    Step {
        // Mostly linux/amd64 and linux/arm64, some arm, s390x, ppc64le and
        // windows; three in ten Docker v2 manifests, the rest OCI.
        label: "manifests",
        table: Some("manifests"),
        sql: "INSERT INTO manifests (repository_id, digest, media_type, config_media_type, os, architecture, size, pushed_at)
              SELECT m.repo_id, m.digest,
                     CASE WHEN m.docker THEN 'application/vnd.docker.distribution.manifest.v2+json'
                          ELSE 'application/vnd.oci.image.manifest.v1+json' END,
                     CASE WHEN m.docker THEN 'application/vnd.docker.container.image.v1+json'
                          ELSE 'application/vnd.oci.image.config.v1+json' END,
                     CASE WHEN m.platform < 38 THEN 'linux' ELSE 'windows' END,
                     CASE WHEN m.platform < 24 OR m.platform >= 38 THEN 'amd64' WHEN m.platform < 34 THEN 'arm64'
                          WHEN m.platform < 36 THEN 'arm' WHEN m.platform < 37 THEN 's390x' ELSE 'ppc64le' END,
                     400 + 150 * m.layers + s.size, m.pushed_at
                FROM seed_manifests m
                JOIN (SELECT j, sum(size)::bigint AS size FROM seed_refs GROUP BY j) s USING (j)",
        params: &[],
    },
    Step {
        label: "manifest references",
        table: Some("manifest_references"),
        sql: "INSERT INTO manifest_references (repository_id, manifest_digest, position, kind, digest, size)
              SELECT repo_id, manifest_digest, position, CASE WHEN position = 0 THEN 'config' ELSE 'layer' END, digest, size
                FROM seed_refs",
        params: &[],
    },
    Step {
        label: "tags",
        table: Some("tags"),
        sql: "INSERT INTO tags (repository_id, name, digest, pushed_by, created_at, updated_at)
              SELECT repo_id, CASE WHEN j < {repos} THEN 'latest' ELSE '1.' || (j / 1000) || '.' || (j % 1000) END,
                     digest, pg_temp.user_name(1 + pg_temp.pick(j, 41, {users}), $1), pushed_at, pushed_at
                FROM seed_manifests",
        params: &[Param::Suffix],
    },
    Step {
        // What the scanner finds in a layer comes from 256 templates: the
        // 64 base layers each have their own, the other layers of an image
        // use distinct ones of the remaining 192. Vulnerability ids are
        // unique to a template, so an image's summary (distinct ids per
        // severity, as the API computes it) is the sum over its layers.
        label: "scan findings",
        table: None,
        sql: "CREATE TEMP TABLE seed_findings ON COMMIT DROP AS
              SELECT k, c, v,
                     'CVE-' || (2016 + pg_temp.pick(k * 64 + c * 8 + v, 30, 9)) || '-' || (10000 + k * 40 + c * 8 + v) AS id,
                     (ARRAY['critical','high','high','high','medium','medium','medium','medium','medium','medium',
                            'medium','low','low','low','low','low','low','negligible','negligible','unknown'])
                       [1 + pg_temp.pick(k * 64 + c * 8 + v, 31, 20)] AS severity
                FROM generate_series(0, 255) k, generate_series(0, 4) c, generate_series(0, 3) v
               WHERE c <= pg_temp.pick(k, 32, 4) AND v < pg_temp.pick(k * 8 + c, 33, 4)",
        params: &[],
    },
    Step {
        label: "scan templates",
        table: None,
        sql: "CREATE TEMP TABLE seed_templates ON COMMIT DROP AS
              SELECT t.k,
                     (SELECT jsonb_agg(jsonb_build_object(
                               'name', (ARRAY['openssl','zlib','glibc','busybox','libcurl','ncurses','bash','python3',
                                              'openjdk','nodejs','libxml2','sqlite','expat','perl','gnutls','krb5'])
                                         [1 + pg_temp.pick(t.k * 8 + s.c, 34, 16)],
                               'version', (1 + pg_temp.pick(t.k * 8 + s.c, 35, 3)) || '.' || pg_temp.pick(t.k * 8 + s.c, 36, 20)
                                          || '.' || pg_temp.pick(t.k * 8 + s.c, 37, 10),
                               'vulnerabilities', coalesce((SELECT jsonb_agg(jsonb_build_object('id', f.id, 'severity', f.severity) ORDER BY f.v)
                                                              FROM seed_findings f WHERE f.k = t.k AND f.c = s.c), '[]'))
                             ORDER BY s.c)
                        FROM generate_series(0, pg_temp.pick(t.k, 32, 4)) AS s (c)) AS components,
                     count(f.id) FILTER (WHERE f.severity = 'critical')::int AS critical,
                     count(f.id) FILTER (WHERE f.severity = 'high')::int AS high,
                     count(f.id) FILTER (WHERE f.severity = 'medium')::int AS medium,
                     count(f.id) FILTER (WHERE f.severity = 'low')::int AS low,
                     count(f.id) FILTER (WHERE f.severity = 'negligible')::int AS negligible
                FROM generate_series(0, 255) AS t (k)
                LEFT JOIN seed_findings f ON f.k = t.k
               GROUP BY t.k",
        params: &[],
    },
    Step {
        // The first --scan-results manifests are scanned: every `latest`
        // first, then the rest.
        label: "scan plan",
        table: None,
        sql: "CREATE TEMP TABLE seed_scan_layers ON COMMIT DROP AS
              SELECT r.j, r.manifest_digest, r.position - 1 AS position, r.digest AS layer_digest,
                     CASE WHEN r.position = 1 THEN pg_temp.pick(r.j, 25, 64)
                          ELSE 64 + (pg_temp.pick(r.j, 38, 192) + r.position - 2) % 192 END AS template
                FROM seed_refs r
               WHERE r.j < {scans} AND r.position >= 1",
        params: &[],
    },
    Step {
        label: "scan results",
        table: Some("scan_results"),
        sql: "INSERT INTO scan_results (manifest_digest, scanner, scanned_at, critical, high, medium, low, negligible)
              SELECT m.digest, CASE WHEN pg_temp.pick(m.j, 42, 4) = 0 THEN 'clair 4.8.0' ELSE 'trivy 0.58.1' END,
                     pg_temp.ago(m.j, 39, 30), s.critical, s.high, s.medium, s.low, s.negligible
                FROM (SELECT l.j, sum(t.critical) AS critical, sum(t.high) AS high, sum(t.medium) AS medium,
                             sum(t.low) AS low, sum(t.negligible) AS negligible
                        FROM seed_scan_layers l JOIN seed_templates t ON t.k = l.template
                       GROUP BY l.j) s
                JOIN seed_manifests m USING (j)",
        params: &[],
    },
    Step {
        label: "scan layers",
        table: Some("scan_layers"),
        sql: "INSERT INTO scan_layers (manifest_digest, position, layer_digest, components)
              SELECT l.manifest_digest, l.position, l.layer_digest, t.components
                FROM seed_scan_layers l JOIN seed_templates t ON t.k = l.template",
        params: &[],
    },
    Step {
        // Spread evenly over the repositories; each with a key per role.
        label: "notary plan",
        table: None,
        sql: "CREATE TEMP TABLE seed_notary ON COMMIT DROP AS
              SELECT n, pg_temp.repo(1 + ((n - 1)::bigint * {repos}) / greatest({notary}, 1)) AS repo_id,
                     pg_temp.ago(n, 40, 300) AS created,
                     pg_temp.hex('key:root', n) AS k_root, pg_temp.hex('key:targets', n) AS k_targets,
                     pg_temp.hex('key:snapshot', n) AS k_snapshot, pg_temp.hex('key:timestamp', n) AS k_timestamp
                FROM generate_series(1, {notary}) n",
        params: &[],
    },
    Step {
        // Targets version 1 signed only `latest`; version 2 every tag.
        label: "notary targets plan",
        table: None,
        sql: "CREATE TEMP TABLE seed_targets ON COMMIT DROP AS
              SELECT s.n,
                     coalesce(jsonb_object_agg(t.name, jsonb_build_object(
                                'hashes', jsonb_build_object('sha256', encode(decode(substr(t.digest, 8), 'hex'), 'base64')),
                                'length', m.size)) FILTER (WHERE t.name = 'latest'), '{}') AS first,
                     coalesce(jsonb_object_agg(t.name, jsonb_build_object(
                                'hashes', jsonb_build_object('sha256', encode(decode(substr(t.digest, 8), 'hex'), 'base64')),
                                'length', m.size)) FILTER (WHERE t.name IS NOT NULL), '{}') AS every
                FROM seed_notary s
                LEFT JOIN tags t ON t.repository_id = s.repo_id
                LEFT JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest
               GROUP BY s.n",
        params: &[],
    },
    Step {
        label: "notary root",
        table: Some("notary_tuf_files"),
        sql: "INSERT INTO notary_tuf_files (repository_id, role, version, sha256, data, created_at)
              SELECT repo_id, 'root', 1, encode(sha256(data), 'hex'), data, created
                FROM (SELECT s.repo_id, s.created, pg_temp.tuf_file(jsonb_build_object(
                               '_type', 'Root', 'version', 1, 'consistent_snapshot', false,
                               'expires', to_jsonb(s.created + interval '10 years'),
                               'keys', jsonb_build_object(s.k_root, pg_temp.tuf_key('root', s.n),
                                                          s.k_targets, pg_temp.tuf_key('targets', s.n),
                                                          s.k_snapshot, pg_temp.tuf_key('snapshot', s.n),
                                                          s.k_timestamp, pg_temp.tuf_key('timestamp', s.n)),
                               'roles', jsonb_build_object(
                                 'root', jsonb_build_object('keyids', jsonb_build_array(s.k_root), 'threshold', 1),
                                 'targets', jsonb_build_object('keyids', jsonb_build_array(s.k_targets), 'threshold', 1),
                                 'snapshot', jsonb_build_object('keyids', jsonb_build_array(s.k_snapshot), 'threshold', 1),
                                 'timestamp', jsonb_build_object('keyids', jsonb_build_array(s.k_timestamp), 'threshold', 1))),
                             s.k_root, pg_temp.b64('sig:root:1', s.n)) AS data
                        FROM seed_notary s) f",
        params: &[],
    },
    Step {
        label: "notary targets",
        table: Some("notary_tuf_files"),
        sql: "INSERT INTO notary_tuf_files (repository_id, role, version, sha256, data, created_at)
              SELECT repo_id, 'targets', v, encode(sha256(data), 'hex'), data, created
                FROM (SELECT s.repo_id, v.v, s.created + make_interval(days => v.v) AS created,
                             pg_temp.tuf_file(jsonb_build_object(
                               '_type', 'Targets', 'version', v.v,
                               'expires', to_jsonb(s.created + interval '3 years'),
                               'targets', CASE WHEN v.v = 1 THEN t.first ELSE t.every END,
                               'delegations', jsonb_build_object('keys', '{}'::jsonb, 'roles', '[]'::jsonb)),
                             s.k_targets, pg_temp.b64('sig:targets:' || v.v, s.n)) AS data
                        FROM seed_notary s JOIN seed_targets t USING (n), generate_series(1, 2) AS v (v)) f",
        params: &[],
    },
    Step {
        label: "notary snapshot",
        table: Some("notary_tuf_files"),
        sql: "INSERT INTO notary_tuf_files (repository_id, role, version, sha256, data, created_at)
              SELECT repo_id, 'snapshot', version, encode(sha256(data), 'hex'), data, created
                FROM (SELECT s.repo_id, t.version, t.created_at AS created,
                             pg_temp.tuf_file(jsonb_build_object(
                               '_type', 'Snapshot', 'version', t.version,
                               'expires', to_jsonb(s.created + interval '3 years'),
                               'meta', jsonb_build_object('root', pg_temp.tuf_meta(r.data), 'targets', pg_temp.tuf_meta(t.data))),
                             s.k_snapshot, pg_temp.b64('sig:snapshot:' || t.version, s.n)) AS data
                        FROM seed_notary s
                        JOIN notary_tuf_files r ON r.repository_id = s.repo_id AND r.role = 'root'
                        JOIN notary_tuf_files t ON t.repository_id = s.repo_id AND t.role = 'targets') f",
        params: &[],
    },
    Step {
        // Timestamps are re-signed often: a third one over the same snapshot.
        label: "notary timestamp",
        table: Some("notary_tuf_files"),
        sql: "INSERT INTO notary_tuf_files (repository_id, role, version, sha256, data, created_at)
              SELECT repo_id, 'timestamp', v, encode(sha256(data), 'hex'), data, created
                FROM (SELECT s.repo_id, v.v, sn.created_at + make_interval(days => (v.v - sn.version)::int) AS created,
                             pg_temp.tuf_file(jsonb_build_object(
                               '_type', 'Timestamp', 'version', v.v,
                               'expires', to_jsonb(sn.created_at + make_interval(days => (14 + v.v - sn.version)::int)),
                               'meta', jsonb_build_object('snapshot', pg_temp.tuf_meta(sn.data))),
                             s.k_timestamp, pg_temp.b64('sig:timestamp:' || v.v, s.n)) AS data
                        FROM seed_notary s, generate_series(1, 3) AS v (v)
                        JOIN notary_tuf_files sn ON sn.role = 'snapshot' AND sn.version = least(v.v, 2)
                       WHERE sn.repository_id = s.repo_id) f",
        params: &[],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> SeedArgs {
        SeedArgs {
            users: 20,
            orgs: 5,
            teams_per_org: 3,
            repositories: 50,
            tags: 300,
            scan_results: 100,
            notary_repositories: 10,
            seed: 7,
            password: "pw".to_owned().into(),
            force: false,
        }
    }

    #[test]
    fn plans_refuse_impossible_counts() {
        let plan = Plan::new(&args()).unwrap();
        assert_eq!(plan.members, 12);
        assert!(plan.sql("{users} {orgs} {seed} {tags}").eq("20 5 7 300"));
        for (change, message) in [
            (
                (|a: &mut SeedArgs| a.users = 0) as fn(&mut SeedArgs),
                "--users",
            ),
            (|a| a.scan_results = 301, "--scan-results"),
            (|a| a.notary_repositories = 51, "--notary-repositories"),
            (|a| a.repositories = 0, "--tags"),
        ] {
            let mut args = args();
            change(&mut args);
            let err = Plan::new(&args).unwrap_err().to_string();
            assert!(err.contains(message), "{err}");
        }
    }
}
