//! E-mail through the SMTP settings, with lettre: the notices that tell the
//! backup settings' distribution list how a backup or purge job ended, and
//! the test message of `POST /api/v0/meta/settings/smtp/test`.
//!
//! A mail never changes a job's outcome and never holds up the next job:
//! notices are sent from a task of their own, each send is bounded by a
//! timeout around the whole SMTP conversation (lettre's own timeout covers
//! each read and write, not the whole), and a failed send is retried a few
//! times, then written to the job's log and the server log. No secret is
//! ever written into a mail or a log line: the SMTP password only reaches
//! lettre's credentials. A replica that stops waits for the notices it is
//! sending, within its shutdown grace, and writes into the job log of each
//! one it had to give up that it was not sent.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use sqlx::PgPool;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::backup::catalog;
use crate::jobs::backup::human_bytes;
use crate::jobs::{self, Action, Job, Status};
use crate::registry::time;
use crate::settings::smtp::{Security, SmtpSettings};
use crate::settings::{backup, smtp};

/// Attempts per recipient, and the pause before each retry.
const ATTEMPTS: u32 = 3;
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Log lines quoted in the notice of a job that did not finish.
const LAST_LINES: usize = 10;

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the SMTP settings are incomplete: {0}")]
    Settings(String),
    #[error("{0}")]
    Smtp(String),
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

/// The server's answer to an accepted message, as `250 2.0.0 Ok: queued`.
pub type Accepted = String;

/// Sends one plain-text message to `to`, within `timeout` in all; `roots`
/// are CA certificates (PEM) trusted besides the public ones.
async fn send(
    settings: &SmtpSettings,
    to: &Address,
    subject: &str,
    body: String,
    timeout: Duration,
    roots: &[Certificate],
) -> Result<Accepted, SendError> {
    let sender: Address = settings
        .sender_address
        .parse()
        .map_err(|err| SendError::Settings(format!("senderAddress: {err}")))?;
    if settings.server_address.is_empty() {
        return Err(SendError::Settings("serverAddress is empty".to_owned()));
    }
    let message = Message::builder()
        .from(Mailbox::new(Some("msr".to_owned()), sender))
        .to(Mailbox::new(None, to.clone()))
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|err| SendError::Smtp(format!("building the message: {err}")))?;
    let transport = transport(settings, timeout, roots)?;
    match tokio::time::timeout(timeout, transport.send(message)).await {
        Err(_) => Err(SendError::TimedOut(timeout)),
        Ok(Err(err)) => Err(SendError::Smtp(describe(&err))),
        Ok(Ok(response)) => Ok(format!(
            "{} {}",
            response.code(),
            response.message().collect::<Vec<_>>().join(" ")
        )),
    }
}

fn transport(
    settings: &SmtpSettings,
    timeout: Duration,
    roots: &[Certificate],
) -> Result<AsyncSmtpTransport<Tokio1Executor>, SendError> {
    let host = settings.server_address.as_str();
    let tls = || {
        roots
            .iter()
            .fold(TlsParameters::builder(host.to_owned()), |builder, root| {
                builder.add_root_certificate(root.clone())
            })
            .build_rustls()
            .map_err(|err| SendError::Settings(format!("TLS for {host}: {err}")))
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(settings.server_port)
        .timeout(Some(timeout))
        .tls(match settings.security {
            Security::Starttls => Tls::Required(tls()?),
            Security::Tls => Tls::Wrapper(tls()?),
            Security::None => Tls::None,
        });
    if !settings.user.is_empty() {
        builder = builder.credentials(Credentials::new(
            settings.user.clone(),
            settings.password.expose().to_owned(),
        ));
    }
    Ok(builder.build())
}

/// lettre's error with its causes, which carry the server's answer; a
/// cause its parent already quotes is not repeated.
fn describe(err: &lettre::transport::smtp::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            let _ = write!(text, ": {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// How mail is sent.
#[derive(Clone)]
pub struct Notifier {
    pub pool: PgPool,
    /// Named in every subject, so a mail says which registry it is about.
    pub instance: String,
    /// Bound on one whole SMTP conversation.
    pub timeout: Duration,
    /// CA certificates trusted for the SMTP server besides the public roots.
    pub roots: Vec<Certificate>,
    pub sending: Sending,
}

/// The notices this replica is sending: no other replica would send them.
#[derive(Clone, Default)]
pub struct Sending {
    tasks: TaskTracker,
    jobs: Arc<Mutex<BTreeSet<Uuid>>>,
}

impl Sending {
    /// Waits until `deadline` for the notices being sent, then writes into
    /// the log of each job whose notice is still unfinished that it was not
    /// (or not to every recipient) sent.
    pub async fn finish(&self, pool: &PgPool, deadline: tokio::time::Instant) {
        self.tasks.close();
        if tokio::time::timeout_at(deadline, self.tasks.wait())
            .await
            .is_ok()
        {
            return;
        }
        let unfinished: Vec<Uuid> = self.jobs().iter().copied().collect();
        tracing::warn!(
            jobs = unfinished.len(),
            "stopping with job notifications still being sent"
        );
        for job in unfinished {
            let line = "notification unfinished: msr stopped before every recipient was notified";
            if let Err(err) = jobs::append_log(pool, job, line).await {
                tracing::warn!(%job, error = %err, "could not log the unfinished notification");
            }
        }
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, BTreeSet<Uuid>> {
        // The set stays consistent whatever panicked while holding it.
        self.jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Reads the CA certificates of `MSR_SMTP_CA_FILE`.
pub fn read_roots(path: &std::path::Path) -> anyhow::Result<Vec<Certificate>> {
    use anyhow::Context as _;
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let root = Certificate::from_pem(&pem)
        .map_err(|err| anyhow::anyhow!("{}: not a PEM certificate: {err}", path.display()))?;
    Ok(vec![root])
}

impl Notifier {
    /// Sends one plain-text message through `settings`: one attempt.
    pub async fn send(
        &self,
        settings: &SmtpSettings,
        to: &Address,
        subject: &str,
        body: String,
    ) -> Result<Accepted, SendError> {
        send(settings, to, subject, body, self.timeout, &self.roots).await
    }

    /// Tells the distribution list how `job` ended, in a task of its own.
    pub fn job_ended(&self, job: Uuid) {
        let notifier = self.clone();
        self.sending.jobs().insert(job);
        self.sending.tasks.spawn(async move {
            if let Err(err) = notifier.notify(job).await {
                tracing::warn!(%job, error = %format!("{err:#}"), "job notification not sent");
            }
            notifier.sending.jobs().remove(&job);
        });
    }

    async fn notify(&self, id: Uuid) -> anyhow::Result<()> {
        let Some(job) = jobs::get(&self.pool, id).await? else {
            return Ok(());
        };
        let backup_settings = backup::get(&self.pool).await?;
        let recipients = backup_settings.distribution_list.addresses();
        if recipients.is_empty() {
            return Ok(());
        }
        let smtp_settings = smtp::get(&self.pool).await?;
        if !smtp_settings.enabled {
            jobs::append_log(&self.pool, id, "no notification sent: SMTP is not enabled").await?;
            return Ok(());
        }
        let (subject, body) = self.compose(&job).await?;
        for to in recipients {
            let mut attempt = 1;
            let line = loop {
                match self.send(&smtp_settings, to, &subject, body.clone()).await {
                    Ok(answer) => break format!("notified {to}: {answer}"),
                    Err(err) if attempt < ATTEMPTS => {
                        tracing::warn!(job = %id, %to, attempt, error = %err, "notification failed; retrying");
                        tokio::time::sleep(RETRY_PAUSE * attempt).await;
                        attempt += 1;
                    }
                    Err(err) => {
                        tracing::warn!(job = %id, %to, error = %err, "notification failed");
                        break format!("notifying {to} failed after {ATTEMPTS} attempts: {err}");
                    }
                }
            };
            jobs::append_log(&self.pool, id, &line).await?;
        }
        Ok(())
    }

    async fn compose(&self, job: &Job) -> anyhow::Result<(String, String)> {
        let outcome = match job.status {
            Status::Done => "done",
            Status::Errored => "errored",
            Status::Canceled => "canceled",
            Status::Waiting | Status::Running => "not ended",
        };
        let what = match job.action.as_str() {
            action if action == Action::BackupPurge.as_str() => "Backup purge",
            _ => "Backup",
        };
        let subject = format!("[msr {}] {what} {outcome}", self.instance);
        let mut body = String::new();
        let _ = writeln!(
            body,
            "{what} job {} on {}: {outcome}.",
            job.id, self.instance
        );
        let _ = writeln!(body);
        let _ = writeln!(body, "Job:       {}", job.id);
        let _ = writeln!(body, "Action:    {}", job.action);
        if let Some(started) = job.started_at {
            let _ = writeln!(body, "Started:   {}", time::format(&started));
            let ended = job.ended_at.unwrap_or_else(Utc::now);
            let seconds = (ended - started).num_milliseconds() as f64 / 1000.0;
            let _ = writeln!(body, "Duration:  {seconds:.1}s");
        }
        if job.action == Action::Backup.as_str()
            && let Ok(options) = jobs::backup::options(job.parameters.as_ref())
        {
            let _ = writeln!(body, "Type:      {}", options.kind);
        }
        let backups = catalog::list(&self.pool).await?;
        if let Some(backup) = backups.iter().find(|b| b.job_id == Some(job.id)) {
            let _ = writeln!(body, "Backup:    {}", backup.id);
            let _ = writeln!(
                body,
                "Size:      {} ({} bytes)",
                human_bytes(backup.size),
                backup.size
            );
            let _ = writeln!(body, "SHA-256:   {}", backup.sha256);
            let _ = writeln!(body, "Location:  {}/{}", backup.location, backup.key);
        }
        let _ = writeln!(
            body,
            "Kept:      {} backup(s) in the catalog",
            backups.len()
        );
        let lines = jobs::logs(&self.pool, job.id, 0, i64::from(i32::MAX)).await?;
        if job.status != Status::Done || job.action == Action::BackupPurge.as_str() {
            let _ = writeln!(body);
            let _ = writeln!(body, "Last log lines:");
            for line in lines.iter().rev().take(LAST_LINES).rev() {
                let _ = writeln!(body, "  {}", line.data);
            }
        }
        let _ = writeln!(body);
        let _ = writeln!(body, "The whole log: GET /api/v0/jobs/{}/logs", job.id);
        Ok((subject, body))
    }
}
