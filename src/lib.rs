//! `msr`: the backup side of Mirantis Secure Registry, speaking MSR's own API.
//!
//! The crate is one library behind one binary (`src/main.rs` only parses the
//! command line). Modules follow the layering in `DESIGN.md`:
//!
//! - [`config`]: typed configuration from flags and environment.
//! - [`server`]: `msr serve` start-up and shutdown: database, migrations,
//!   bootstrap admin, HTTP listener.
//! - [`api`]: HTTP only. Translates requests into calls on the domain modules
//!   and their results back into MSR's JSON shapes and error bodies.
//! - [`error`]: the API error type and MSR's `{"errors":[…]}` body.
//! - [`settings`]: backup and SMTP settings: types, validation, persistence.
//! - [`registry`]: the registry's own data: accounts, access, repository
//!   content metadata, Notary trust data, scan results, the vulnerability
//!   database.
//! - [`backup`]: the backup archive: `msr backup`, `msr verify`,
//!   `msr restore`, and the download behind `GET /api/v0/meta/backups/new`.
//! - [`jobs`]: MSR's job runner: the job table and log, workers with
//!   heartbeats, and the scheduler that enqueues backups.
//! - [`notify`]: e-mail through the SMTP settings: job notices, test mail.
//! - [`storage`]: the object store (local directory or S3) for image content.
//! - [`db`]: the connection pool and migrations.
//! - [`seed`]: `msr dev seed`, a large synthetic data set for development
//!   and benchmarks.
//! - [`schedule`] and [`duration`]: the cron dialect and Go durations that
//!   MSR's settings are written in.

pub mod api;
pub mod backup;
pub mod config;
pub mod db;
pub mod duration;
pub mod error;
pub mod jobs;
pub mod notify;
pub mod registry;
pub mod schedule;
pub mod seed;
pub mod server;
pub mod settings;
pub mod storage;
