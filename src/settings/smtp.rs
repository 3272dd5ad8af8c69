//! `GET/PUT /api/v0/meta/settings/smtp`: the mail server that backup
//! notifications go through (MSR's System › General › SMTP Settings).
//!
//! The password is write-only: it is stored so mail can be sent, but it is
//! never serialised into a response or a log line. A PUT without `password`
//! keeps the stored one; `"password": ""` clears it.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;

use super::{InvalidSettings, UpdateError, backup, load, lock, store};
use crate::registry::{parse_body, present};

pub const NAME: &str = "smtp";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS; refused if the server cannot.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No encryption, for a relay on the local host or network.
    None,
}

/// The stored document, password included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SmtpSettings {
    pub enabled: bool,
    pub user: String,
    pub password: Password,
    pub server_address: String,
    pub server_port: u16,
    pub sender_address: String,
    pub security: Security,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            user: String::new(),
            password: Password::default(),
            server_address: String::new(),
            server_port: 587,
            sender_address: String::new(),
            security: Security::Starttls,
        }
    }
}

/// Serialises (for storage only) but never shows itself in `Debug`.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_set(&self) -> bool {
        !self.0.is_empty()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_set() {
            "Password(***)"
        } else {
            "Password(unset)"
        })
    }
}

/// What GET returns: everything but the password, and whether one is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SmtpView {
    pub enabled: bool,
    pub user: String,
    pub password_set: bool,
    pub server_address: String,
    pub server_port: u16,
    pub sender_address: String,
    pub security: Security,
}

impl From<&SmtpSettings> for SmtpView {
    fn from(settings: &SmtpSettings) -> Self {
        Self {
            enabled: settings.enabled,
            user: settings.user.clone(),
            password_set: settings.password.is_set(),
            server_address: settings.server_address.clone(),
            server_port: settings.server_port,
            sender_address: settings.sender_address.clone(),
            security: settings.security,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SmtpUpdate {
    #[serde(default, deserialize_with = "present")]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    user: Option<String>,
    #[serde(default, deserialize_with = "present")]
    password: Option<String>,
    #[serde(default, deserialize_with = "present")]
    server_address: Option<String>,
    /// Wider than `u16` so an out-of-range port gets a range message, not a type error.
    #[serde(default, deserialize_with = "present")]
    server_port: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    sender_address: Option<String>,
    #[serde(default, deserialize_with = "present")]
    security: Option<Security>,
    /// Read-only: type-checked, then ignored, so that a GET body can be PUT back.
    #[serde(default, deserialize_with = "present")]
    #[serde(rename = "passwordSet")]
    _password_set: Option<bool>,
}

impl SmtpSettings {
    fn merged(mut self, update: SmtpUpdate) -> Result<Self, InvalidSettings> {
        if let Some(enabled) = update.enabled {
            self.enabled = enabled;
        }
        if let Some(user) = update.user {
            self.user = user.trim().to_owned();
        }
        if let Some(password) = update.password {
            self.password = Password(password);
        }
        if let Some(address) = update.server_address {
            self.server_address = address.trim().to_owned();
        }
        if let Some(port) = update.server_port {
            self.server_port = u16::try_from(port)
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| {
                    InvalidSettings::new(
                        "serverPort",
                        format!("must be between 1 and 65535, got {port}"),
                    )
                })?;
        }
        if let Some(sender) = update.sender_address {
            self.sender_address = sender.trim().to_owned();
        }
        if let Some(security) = update.security {
            self.security = security;
        }
        Ok(self)
    }

    fn validate(&self, backups_enabled: bool) -> Result<(), InvalidSettings> {
        if !self.server_address.is_empty() && !is_host(&self.server_address) {
            return Err(InvalidSettings::new(
                "serverAddress",
                format!(
                    "{:?} is neither a host name nor an IP address",
                    self.server_address
                ),
            ));
        }
        if !self.sender_address.is_empty() {
            self.sender_address
                .parse::<lettre::Address>()
                .map_err(|err| {
                    InvalidSettings::new(
                        "senderAddress",
                        format!(
                            "{:?} is not a valid e-mail address ({err})",
                            self.sender_address
                        ),
                    )
                })?;
        }
        if self.user.chars().any(char::is_control) {
            return Err(InvalidSettings::new(
                "user",
                "must not contain control characters",
            ));
        }
        // AUTH PLAIN separates the user and password with NUL, and
        // PostgreSQL's jsonb, where settings are stored, cannot hold one.
        if self.password.expose().contains('\0') {
            return Err(InvalidSettings::new(
                "password",
                "must not contain NUL characters",
            ));
        }
        if self.enabled {
            if self.server_address.is_empty() {
                return Err(InvalidSettings::new(
                    "serverAddress",
                    "required when SMTP is enabled",
                ));
            }
            if self.sender_address.is_empty() {
                return Err(InvalidSettings::new(
                    "senderAddress",
                    "required when SMTP is enabled",
                ));
            }
            if !self.user.is_empty() && !self.password.is_set() {
                return Err(InvalidSettings::new(
                    "password",
                    "required when a user is set",
                ));
            }
            if self.user.is_empty() && self.password.is_set() {
                return Err(InvalidSettings::new(
                    "user",
                    "required when a password is set",
                ));
            }
        } else if backups_enabled {
            return Err(InvalidSettings::new(
                "enabled",
                "automatic backups are enabled and send their notifications through SMTP; \
                 disable them first (PUT /api/v0/meta/settings/backup with \"enabled\": false)",
            ));
        }
        Ok(())
    }
}

/// A DNS host name (RFC 1123 labels) or an IP address literal.
fn is_host(text: &str) -> bool {
    let unbracketed = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    if unbracketed.parse::<IpAddr>().is_ok() {
        return true;
    }
    let name = text.strip_suffix('.').unwrap_or(text);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

pub async fn get(pool: &PgPool) -> sqlx::Result<SmtpSettings> {
    load(pool, NAME).await
}

pub async fn update(pool: &PgPool, body: Value) -> Result<SmtpSettings, UpdateError> {
    let update: SmtpUpdate = parse_body(body)?;
    let mut tx = pool.begin().await?;
    lock(&mut tx).await?;
    let current: SmtpSettings = load(&mut *tx, NAME).await?;
    let backup: backup::BackupSettings = load(&mut *tx, backup::NAME).await?;
    let next = current.merged(update)?;
    next.validate(backup.enabled)?;
    store(&mut tx, NAME, &next).await?;
    tx.commit().await?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(body: Value) -> Result<SmtpSettings, InvalidSettings> {
        SmtpSettings::default().merged(parse_body(body)?)
    }

    #[test]
    fn view_never_carries_the_password() {
        let settings = merged(
            json!({"enabled": true, "user": "mailer", "password": "hunter2",
            "serverAddress": "smtp.example.com", "senderAddress": "msr@example.com"}),
        )
        .unwrap();
        settings.validate(false).unwrap();
        let view = serde_json::to_string(&SmtpView::from(&settings)).unwrap();
        assert!(!view.contains("hunter2"), "{view}");
        assert!(view.contains("\"passwordSet\":true"), "{view}");
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn password_is_kept_unless_given() {
        let first = merged(json!({"password": "hunter2"})).unwrap();
        let second = first
            .clone()
            .merged(parse_body(json!({"user": "x"})).unwrap())
            .unwrap();
        assert_eq!(second.password.expose(), "hunter2");
        let cleared = second
            .merged(parse_body(json!({"password": ""})).unwrap())
            .unwrap();
        assert!(!cleared.password.is_set());
    }

    #[test]
    fn bad_input_names_the_field() {
        let cases = [
            (json!({"serverPort": 0}), "serverPort"),
            (json!({"serverPort": 70000}), "serverPort"),
            (json!({"serverPort": "25"}), "serverPort"),
            (
                json!({"serverAddress": "smtp example.com"}),
                "serverAddress",
            ),
            (
                json!({"serverAddress": "-bad-.example.com"}),
                "serverAddress",
            ),
            (json!({"senderAddress": "msr"}), "senderAddress"),
            (json!({"security": "ssl"}), "security"),
            (json!({"password": "pass\u{0}word"}), "password"),
            (json!({"enabled": true}), "serverAddress"),
            (
                json!({"enabled": true, "serverAddress": "10.0.0.1"}),
                "senderAddress",
            ),
            (
                json!({"enabled": true, "serverAddress": "[::1]", "senderAddress": "a@example.com", "user": "u"}),
                "password",
            ),
        ];
        for (body, field) in cases {
            let err = merged(body.clone())
                .and_then(|s| s.validate(false).map(|_| s))
                .unwrap_err();
            assert_eq!(err.field, field, "{body}: {err}");
        }
    }

    #[test]
    fn smtp_stays_on_while_backups_need_it() {
        let settings = merged(json!({"enabled": false})).unwrap();
        assert_eq!(settings.validate(true).unwrap_err().field, "enabled");
    }
}
