//! `GET/PUT /api/v0/meta/settings/backup`: MSR's automatic backup settings.
//!
//! The stored document and the API body are the same shape, MSR's:
//! `{"enabled","fullBackup","distributionList","schedule","deadline","purge":{"enabled","duration"}}`.
//! `distributionList` is always written as one comma-separated string (MSR's
//! own example sends a string), whatever form the client sent.

use std::fmt;
use std::str::FromStr as _;

use chrono::{DateTime, Utc};
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use sqlx::PgPool;

use super::{InvalidSettings, UpdateError, load, lock, smtp, store};
use crate::duration::GoDuration;
use crate::registry::{parse_body, present};
use crate::schedule::Schedule;

pub const NAME: &str = "backup";

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BackupSettings {
    pub enabled: bool,
    pub full_backup: bool,
    pub distribution_list: AddressList,
    /// Empty while no schedule was ever set; required once `enabled`.
    pub schedule: String,
    /// How long one backup may run before it is stopped; `None` (`""` on the
    /// wire) means no limit.
    #[serde(with = "optional_duration")]
    pub deadline: Option<GoDuration>,
    pub purge: Purge,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Purge {
    pub enabled: bool,
    /// Backups older than this are purged; required once `enabled`.
    #[serde(with = "optional_duration")]
    pub duration: Option<GoDuration>,
}

/// A PUT body: every field optional, unknown fields refused.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BackupUpdate {
    #[serde(default, deserialize_with = "present")]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    full_backup: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    distribution_list: Option<AddressList>,
    #[serde(default, deserialize_with = "present")]
    schedule: Option<String>,
    #[serde(default, deserialize_with = "present")]
    deadline: Option<String>,
    #[serde(default, deserialize_with = "present")]
    purge: Option<PurgeUpdate>,
    /// Read-only: type-checked, then ignored, so that a GET body can be PUT back.
    #[serde(default, deserialize_with = "present")]
    #[serde(rename = "nextRuns")]
    _next_runs: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PurgeUpdate {
    #[serde(default, deserialize_with = "present")]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    duration: Option<String>,
}

impl BackupSettings {
    /// The schedule's next `n` matching times after `now`. Reported even
    /// while backups are disabled, so a user can check an expression first.
    pub fn next_runs(&self, now: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        match self.parsed_schedule() {
            Some(Ok(schedule)) => schedule.upcoming(now, n),
            _ => Vec::new(),
        }
    }

    pub fn parsed_schedule(&self) -> Option<Result<Schedule, crate::schedule::ScheduleError>> {
        (!self.schedule.is_empty()).then(|| Schedule::from_str(&self.schedule))
    }

    fn merged(mut self, update: BackupUpdate) -> Result<Self, InvalidSettings> {
        if let Some(enabled) = update.enabled {
            self.enabled = enabled;
        }
        if let Some(full) = update.full_backup {
            self.full_backup = full;
        }
        if let Some(list) = update.distribution_list {
            self.distribution_list = list;
        }
        if let Some(schedule) = update.schedule {
            self.schedule = schedule.trim().to_owned();
        }
        if let Some(deadline) = update.deadline {
            self.deadline = parse_positive_duration("deadline", &deadline)?;
        }
        if let Some(purge) = update.purge {
            if let Some(enabled) = purge.enabled {
                self.purge.enabled = enabled;
            }
            if let Some(duration) = purge.duration {
                self.purge.duration = parse_positive_duration("purge.duration", &duration)?;
            }
        }
        Ok(self)
    }

    fn validate(&self, smtp_enabled: bool) -> Result<(), InvalidSettings> {
        match self.parsed_schedule() {
            Some(Err(err)) => return Err(InvalidSettings::new("schedule", err.to_string())),
            None if self.enabled => {
                return Err(InvalidSettings::new(
                    "schedule",
                    "required when backups are enabled (cron syntax, e.g. \"0 0 * * *\")",
                ));
            }
            _ => {}
        }
        if self.enabled && !smtp_enabled {
            return Err(InvalidSettings::new(
                "enabled",
                "automatic backups need SMTP to be enabled first \
                 (PUT /api/v0/meta/settings/smtp with \"enabled\": true)",
            ));
        }
        if self.purge.enabled && self.purge.duration.is_none() {
            return Err(InvalidSettings::new(
                "purge.duration",
                "required when purge is enabled (a duration such as \"720h0m0s\")",
            ));
        }
        Ok(())
    }
}

/// `""` clears an optional duration; anything else must be a positive Go duration.
fn parse_positive_duration(field: &str, text: &str) -> Result<Option<GoDuration>, InvalidSettings> {
    if text.is_empty() {
        return Ok(None);
    }
    let duration: GoDuration =
        text.parse()
            .map_err(|err: crate::duration::ParseDurationError| {
                InvalidSettings::new(field, err.to_string())
            })?;
    if !duration.is_positive() {
        return Err(InvalidSettings::new(
            field,
            format!("must be positive, got {duration}"),
        ));
    }
    Ok(Some(duration))
}

pub async fn get(pool: &PgPool) -> sqlx::Result<BackupSettings> {
    load(pool, NAME).await
}

/// The settings and when they were last written (`None` if never): the
/// scheduler catches up on no occurrence from before that time.
pub async fn get_with_time(pool: &PgPool) -> sqlx::Result<(BackupSettings, Option<DateTime<Utc>>)> {
    let updated_at: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT updated_at FROM settings WHERE name = $1")
            .bind(NAME)
            .fetch_optional(pool)
            .await?;
    Ok((get(pool).await?, updated_at))
}

pub async fn update(pool: &PgPool, body: Value) -> Result<BackupSettings, UpdateError> {
    let update: BackupUpdate = parse_body(body)?;
    let mut tx = pool.begin().await?;
    lock(&mut tx).await?;
    let current: BackupSettings = load(&mut *tx, NAME).await?;
    let smtp: smtp::SmtpSettings = load(&mut *tx, smtp::NAME).await?;
    let next = current.merged(update)?;
    next.validate(smtp.enabled)?;
    store(&mut tx, NAME, &next).await?;
    tx.commit().await?;
    Ok(next)
}

/// E-mail addresses, validated one by one, in the order given, without
/// duplicates. Reads a comma-separated string or a JSON array of strings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressList(Vec<lettre::Address>);

impl AddressList {
    pub fn addresses(&self) -> &[lettre::Address] {
        &self.0
    }

    fn from_items<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut addresses: Vec<lettre::Address> = Vec::new();
        for item in items
            .into_iter()
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let address: lettre::Address = item
                .parse()
                .map_err(|err| format!("{item:?} is not a valid e-mail address ({err})"))?;
            let seen = addresses.iter().any(|known: &lettre::Address| {
                AsRef::<str>::as_ref(known).eq_ignore_ascii_case(address.as_ref())
            });
            if !seen {
                addresses.push(address);
            }
        }
        Ok(Self(addresses))
    }
}

impl fmt::Display for AddressList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, address) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(address.as_ref())?;
        }
        Ok(())
    }
}

impl Serialize for AddressList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AddressList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;

        impl<'de> Visitor<'de> for ListVisitor {
            type Value = AddressList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a comma-separated string of e-mail addresses or an array of them")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<AddressList, E> {
                AddressList::from_items(text.split([',', ';'])).map_err(E::custom)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AddressList, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                AddressList::from_items(items.iter().map(String::as_str)).map_err(de::Error::custom)
            }
        }

        deserializer.deserialize_any(ListVisitor)
    }
}

/// `Option<GoDuration>` on the wire: `""` for none, as MSR's Job fields do.
pub(crate) mod optional_duration {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::duration::GoDuration;

    pub fn serialize<S: Serializer>(
        value: &Option<GoDuration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => serializer.collect_str(duration),
            None => serializer.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<GoDuration>, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(body: Value) -> Result<BackupSettings, InvalidSettings> {
        BackupSettings::default().merged(parse_body(body)?)
    }

    #[test]
    fn msr_documented_body_round_trips() {
        let settings = merged(json!({
            "enabled": true, "fullBackup": true, "distributionList": "ops@example.com",
            "schedule": "* * * * *", "deadline": "1h0m0s",
            "purge": {"enabled": true, "duration": "1h0m0s"}
        }))
        .unwrap();
        settings.validate(true).unwrap();
        assert_eq!(
            serde_json::to_value(&settings).unwrap(),
            json!({
                "enabled": true, "fullBackup": true, "distributionList": "ops@example.com",
                "schedule": "* * * * *", "deadline": "1h0m0s",
                "purge": {"enabled": true, "duration": "1h0m0s"}
            })
        );
    }

    #[test]
    fn distribution_list_forms_share_one_canonical_string() {
        let from_string =
            merged(json!({"distributionList": " a@example.com, b@example.org ;A@example.com"}))
                .unwrap();
        let from_array =
            merged(json!({"distributionList": ["a@example.com", "b@example.org"]})).unwrap();
        assert_eq!(from_string.distribution_list, from_array.distribution_list);
        assert_eq!(
            from_string.distribution_list.to_string(),
            "a@example.com,b@example.org"
        );
        assert_eq!(
            merged(json!({"distributionList": ""}))
                .unwrap()
                .distribution_list
                .to_string(),
            ""
        );
    }

    #[test]
    fn bad_input_names_the_field() {
        let cases = [
            (
                json!({"distributionList": "ops@example.com, not-an-address"}),
                "distributionList",
            ),
            (json!({"distributionList": [1]}), "distributionList[0]"),
            (json!({"enabled": "yes"}), "enabled"),
            (json!({"deadline": "0s"}), "deadline"),
            (json!({"deadline": "-1h"}), "deadline"),
            (json!({"deadline": "soon"}), "deadline"),
            (json!({"purge": {"duration": "7d"}}), "purge.duration"),
            (json!({"purge": {"keep": 3}}), "purge.keep"),
            (json!({"colour": "blue"}), "colour"),
            (json!(["enabled"]), "body"),
        ];
        for (body, field) in cases {
            let err = merged(body.clone()).unwrap_err();
            assert_eq!(err.field, field, "{body}: {err}");
        }
    }

    #[test]
    fn durations_come_back_normalised() {
        let settings = merged(json!({"deadline": "90m", "purge": {"duration": "1.5h"}})).unwrap();
        let value = serde_json::to_value(&settings).unwrap();
        assert_eq!(value["deadline"], "1h30m0s");
        assert_eq!(value["purge"]["duration"], "1h30m0s");
    }

    #[test]
    fn enabling_needs_a_schedule_and_smtp() {
        let no_schedule = merged(json!({"enabled": true})).unwrap();
        assert_eq!(no_schedule.validate(true).unwrap_err().field, "schedule");
        let scheduled = merged(json!({"enabled": true, "schedule": "@daily"})).unwrap();
        let err = scheduled.validate(false).unwrap_err();
        assert_eq!(err.field, "enabled");
        assert!(err.reason.contains("SMTP"), "{err}");
        scheduled.validate(true).unwrap();
    }

    #[test]
    fn purge_needs_a_duration() {
        let settings = merged(json!({"purge": {"enabled": true}})).unwrap();
        assert_eq!(settings.validate(true).unwrap_err().field, "purge.duration");
    }
}
