//! Typed configuration, read from flags and the environment (flags win).
//!
//! Secrets (the database URL may carry a password, the bootstrap admin
//! password) are `SecretString`s, so `Debug` output and logs never show them.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

use crate::duration::GoDuration;

#[derive(Debug, Parser)]
#[command(
    name = "msr",
    version,
    about = "Backups for a container registry, speaking MSR's API"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API (applies pending migrations first).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Write a backup archive (a plain tar) to FILE or to stdout (`-`).
    ///
    /// Metadata only by default: configurations, accounts, orgs and teams
    /// (with password hashes), repositories, access control, image metadata,
    /// Notary trust data and scan results, from one consistent snapshot
    /// while the registry keeps running. Never the vulnerability database.
    Backup(BackupArgs),
    /// Check an archive's structure, format version and every checksum,
    /// touching no database or storage, and print what it holds.
    Verify(VerifyArgs),
    /// Load an archive into an empty instance (database, and registry
    /// storage for a full archive): everything or, on any damage, nothing.
    Restore(RestoreArgs),
    /// Developer tools: not for production databases.
    #[command(subcommand)]
    Dev(DevCommand),
}

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Fill the database with a large, realistic, deterministic data set.
    ///
    /// Writes metadata only, straight into PostgreSQL: accounts, orgs, teams,
    /// repositories, access grants, blobs, manifests, tags, scan results and
    /// Notary trust data. No blob content is written to storage, so image
    /// pulls and full backups of seeded images find nothing to copy. Runs in
    /// one transaction holding exclusive locks on the registry tables (their
    /// indexes and foreign keys are rebuilt after loading), and refuses a
    /// database that already has repositories unless --force is given.
    /// Applies pending migrations first, as `msr serve` does.
    Seed(SeedArgs),
}

#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// Users; each logs in with --password.
    #[arg(long, default_value_t = 1000)]
    pub users: u32,
    /// Organizations, each with members drawn from the users.
    #[arg(long, default_value_t = 100)]
    pub orgs: u32,
    /// Teams in each organization.
    #[arg(long, default_value_t = 5)]
    pub teams_per_org: u32,
    /// Repositories, four in five in organization namespaces.
    #[arg(long, default_value_t = 10_000)]
    pub repositories: u32,
    /// Tags, each pointing at a manifest of its own; every repository gets
    /// `latest` first, the rest are spread unevenly, as in real registries.
    #[arg(long, default_value_t = 200_000)]
    pub tags: u32,
    /// Manifests with a scan result (at most --tags).
    #[arg(long, default_value_t = 200_000)]
    pub scan_results: u32,
    /// Repositories with Notary trust data: root, targets, snapshot and
    /// timestamp files, in several versions (at most --repositories).
    #[arg(long, default_value_t = 1000)]
    pub notary_repositories: u32,
    /// Seed of the generator: the same seed and counts give the same data.
    #[arg(long, default_value_t = 1)]
    pub seed: u32,
    /// Password of every seeded user (one argon2id hash, computed once).
    #[arg(
        long,
        env = "MSR_SEED_PASSWORD",
        hide_env_values = true,
        default_value = "seed-password"
    )]
    pub password: SecretString,
    /// Add to a database that already has repositories. Account names then
    /// carry a `-s<seed>` suffix; use a --seed not used before.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// Add the content of every blob and manifest the metadata lists, read
    /// from the registry storage.
    #[arg(long)]
    pub full: bool,
    /// Leave scan results out (recorded in backup.json).
    #[arg(long)]
    pub ignore_scan_data: bool,
    /// Where to write: a file (written under a temporary name, renamed once
    /// complete) or `-` for stdout.
    #[arg(value_name = "FILE|-")]
    pub output: String,
    #[command(flatten)]
    pub storage: RegistryStorage,
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// The archive: a file, or `-` for stdin.
    #[arg(value_name = "FILE|-")]
    pub input: String,
}

#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// Leave the archive's scan results out.
    #[arg(long)]
    pub ignore_scan_data: bool,
    /// Replace all data of a target that already has some (accounts,
    /// repositories, …) with the archive's. Without it such a target is
    /// refused.
    #[arg(long)]
    pub replace: bool,
    /// The archive: a file, or `-` for stdin.
    #[arg(value_name = "FILE|-", required_unless_present = "backup")]
    pub input: Option<String>,
    /// Restore a backup from the backup storage by its id (as
    /// `GET /api/v0/meta/backups` lists it) instead of from FILE.
    #[arg(long, value_name = "ID", conflicts_with = "input")]
    pub backup: Option<uuid::Uuid>,
    #[command(flatten)]
    pub storage: RegistryStorage,
    #[command(flatten)]
    pub backup_storage: BackupStorage,
}

/// Where backup jobs write their archives.
#[derive(Debug, Clone, Args)]
pub struct BackupStorage {
    /// Where scheduled and API-started backups are written: a directory, or
    /// `s3://bucket/prefix`. Must not be the registry storage.
    #[arg(
        long = "backup-storage",
        id = "backup_storage",
        env = "MSR_BACKUP_STORAGE",
        default_value = "./data/backups"
    )]
    pub location: String,
}

/// Where image and chart content is stored.
#[derive(Debug, Clone, Args)]
pub struct RegistryStorage {
    /// Where image and chart content is stored: a directory, or
    /// `s3://bucket/prefix` (credentials, region and endpoint from the usual
    /// `AWS_*` variables).
    #[arg(
        long = "storage",
        env = "MSR_STORAGE",
        default_value = "./data/registry"
    )]
    pub location: String,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<SecretString>,

    /// Log line format on stderr.
    #[arg(long, env = "MSR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` EnvFilter syntax (`info`, `msr=debug,sqlx=warn`).
    #[arg(long, env = "MSR_LOG", default_value = "info", global = true)]
    pub log: String,

    /// Largest number of pooled database connections.
    #[arg(
        long,
        env = "MSR_DB_MAX_CONNECTIONS",
        default_value_t = 10,
        global = true
    )]
    pub db_max_connections: u32,

    /// How long start-up keeps retrying an unreachable database before giving up.
    #[arg(
        long,
        env = "MSR_DB_STARTUP_TIMEOUT",
        default_value = "30s",
        global = true
    )]
    pub db_startup_timeout: GoDuration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port the HTTP API listens on.
    #[arg(long, env = "MSR_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Name of the admin created on first start when no admin exists.
    #[arg(long, env = "MSR_ADMIN_USERNAME", default_value = "admin")]
    pub admin_username: String,

    /// Password of that admin; without it no admin is created.
    #[arg(long, env = "MSR_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<SecretString>,

    /// How long in-flight requests may run after SIGTERM/SIGINT before the
    /// process exits anyway.
    #[arg(long, env = "MSR_SHUTDOWN_GRACE", default_value = "10s")]
    pub shutdown_grace: GoDuration,

    #[command(flatten)]
    pub storage: RegistryStorage,

    #[command(flatten)]
    pub backup_storage: BackupStorage,

    /// How often this replica renews its heartbeat; one that missed three
    /// in a row is dead, and the others fail its running jobs.
    #[arg(long, env = "MSR_HEARTBEAT_INTERVAL", default_value = "5s")]
    pub heartbeat_interval: GoDuration,

    /// The name notification e-mails give this registry (their subject
    /// says `[msr <name>]`); the host name when unset.
    #[arg(long, env = "MSR_INSTANCE_NAME")]
    pub instance_name: Option<String>,

    /// A PEM file of CA certificates the SMTP server's certificate may chain
    /// to, besides the public roots (a relay with a certificate of a
    /// private CA).
    #[arg(long, env = "MSR_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<std::path::PathBuf>,

    /// Longest one SMTP conversation (connect, TLS, AUTH, send) may take.
    #[arg(long, env = "MSR_SMTP_TIMEOUT", default_value = "30s")]
    pub smtp_timeout: GoDuration,

    /// Blob uploads left untouched this long are discarded, with their parts.
    #[arg(long, env = "MSR_UPLOAD_EXPIRY", default_value = "24h")]
    pub upload_expiry: GoDuration,

    /// Largest accepted request body on the JSON API, in bytes.
    #[arg(long, env = "MSR_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
}
