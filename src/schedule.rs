//! The cron dialect of the backup settings field `"schedule"`.
//!
//! MSR users write backup schedules the way they write crontabs, so the
//! dialect is Vixie cron (5 fields, or 6 with leading seconds, names and
//! `@daily`-style macros) plus the `CRON_TZ=` time zone prefix of
//! robfig/cron. Evaluation is delegated to `croner`; this module owns the
//! dialect. Everything is checked when the text is parsed, so a stored
//! schedule is always one the scheduler can run, and every rejection carries
//! a message that can be shown to the API user as is.

use std::str::FromStr;

use chrono::{DateTime, SubsecRound as _, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};

/// A parsed backup schedule: a cron expression and the time zone it runs in.
///
/// # Dialect
///
/// * `[CRON_TZ=<zone> ]<expression>`; `TZ=` is accepted as a synonym, as in
///   robfig/cron. The zone is an IANA name (`Europe/Berlin`); without a prefix
///   the schedule runs in UTC.
/// * The expression is 5 fields (`minute hour day-of-month month
///   day-of-week`, seconds = 0) or 6 fields with leading seconds. There is no
///   year field. Fields take `*`, numbers, `a-b`, `*/n`, `a-b/n` and lists.
///   `n/m` without a range is rejected, as in Vixie cron.
/// * Month (`JAN`-`DEC`) and weekday (`SUN`-`SAT`) names in any case, each
///   only in its own field. Weekdays are `0`-`7` with both `0` and `7` Sunday.
/// * Macros, in any case: `@yearly`, `@annually`, `@monthly`, `@weekly`
///   (Sunday 00:00), `@daily`, `@midnight`, `@hourly`. `@reboot` and `@every`
///   are rejected: a backup schedule needs wall-clock times.
/// * Day of month and day of week combine as in Vixie cron: when both are
///   restricted a day matching either one fires; when one is `*` (or `?`) only
///   the other counts. Only a bare `*` or `?` counts as unrestricted, so
///   `*/2` in the day-of-month field is a restriction (robfig/cron agrees;
///   Vixie would treat any field starting with `*` as unrestricted).
///
/// # Extensions
///
/// croner's extensions are accepted because they are well defined and tested
/// below: `L` (last day of the month), `LW` (last weekday of the month) and
/// `15W` (weekday nearest the 15th, within the month) in the day-of-month
/// field; `FRI#2` (second Friday, `#1`-`#5`), `5L`, `5#L` and `FRI#L` (last
/// Friday) in the day-of-week field; `?` as a synonym for `*` in both day
/// fields. croner's `+` prefix (day-of-month AND day-of-week) is rejected, so
/// the day rule above is the only one, and so is a bare `L` in the
/// day-of-week field, whose meaning differs between cron implementations.
///
/// Schedules that can never fire (`0 0 30 FEB *`) are rejected.
///
/// # Daylight saving time
///
/// Occurrences are wall-clock times in the zone, strictly increasing in real
/// time, each at most once:
///
/// * Spring forward: a fixed time (single second, minute and hour, e.g.
///   `30 2 * * *`) that falls in the gap runs at the first instant after the
///   gap (03:00 in New York, not 03:30), as Vixie cron does. Times of
///   interval schedules (`*/20 2 * * *`) inside the gap are skipped.
/// * Fall back: a fixed time in the repeated hour (`30 1 * * *`) runs once,
///   on its first pass. Interval schedules run on both passes, because each
///   pass is a distinct instant.
#[derive(Clone, Debug)]
pub struct Schedule {
    source: String,
    timezone: Tz,
    cron: Cron,
}

/// Why a schedule was rejected, worded for the API user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(String);

impl Schedule {
    /// The text as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The zone the schedule's wall-clock times are in; UTC unless `CRON_TZ=` says otherwise.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The first occurrence strictly after `after`.
    ///
    /// `None` only when there is none left before croner's search limit
    /// (the year 5000).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // croner searches whole seconds. From the truncated start an exclusive
        // search returns a whole second past it, which is then also past any
        // sub-second part of `after`.
        let from = after.trunc_subsecs(0).with_timezone(&self.timezone);
        let next = self
            .cron
            .find_next_occurrence(&from, false)
            .ok()?
            .with_timezone(&Utc);
        // Never happens by the above; the check makes "strictly after" hold by
        // construction, as a repeated instant would enqueue a second backup.
        (next > after).then_some(next)
    }

    /// The next `n` occurrences strictly after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        // Each search starts from the exact instant the last one returned: in a
        // repeated hour that instant tells croner which pass it is on.
        let mut times = Vec::new();
        let mut last = after;
        while times.len() < n {
            let Some(next) = self.next_after(last) else {
                break;
            };
            times.push(next);
            last = next;
        }
        times
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let source = text.trim();
        if source.is_empty() {
            return Err(error(
                "schedule is empty; expected a cron expression such as \"0 2 * * *\"",
            ));
        }
        let (timezone, expression) = split_timezone(source)?;
        let fields = expand(expression)?;
        let normalized = normalize(&fields)?;
        let cron = parse_with_croner(&normalized, &fields)?;
        ensure_fires(source, &normalized)?;
        Ok(Schedule {
            source: source.to_owned(),
            timezone,
            cron,
        })
    }
}

fn error(message: impl Into<String>) -> ScheduleError {
    ScheduleError(message.into())
}

/// Splits off a `CRON_TZ=`/`TZ=` prefix and resolves its zone.
fn split_timezone(source: &str) -> Result<(Tz, &str), ScheduleError> {
    let Some(rest) = source
        .strip_prefix("CRON_TZ=")
        .or_else(|| source.strip_prefix("TZ="))
    else {
        // An `=` can only come from a misspelt prefix; saying so beats a
        // complaint about an illegal character in the minute field.
        let first = source.split_whitespace().next().unwrap_or_default();
        if first.contains('=') {
            return Err(error(format!(
                "unknown prefix \"{first}\"; the only supported prefix is \
                 CRON_TZ=<IANA time zone> (or TZ=), e.g. \"CRON_TZ=Europe/Berlin 0 2 * * *\""
            )));
        }
        return Ok((Tz::UTC, source));
    };
    let prefix = &source[..source.len() - rest.len()];
    let (name, expression) = rest
        .split_once(char::is_whitespace)
        .map_or((rest, ""), |(name, expression)| (name, expression.trim()));
    if name.is_empty() {
        return Err(error(format!(
            "{prefix} needs a time zone name, e.g. \"{prefix}Europe/Berlin 0 2 * * *\""
        )));
    }
    let timezone: Tz = name.parse().map_err(|_| {
        error(format!(
            "unknown time zone \"{name}\"; expected an IANA time zone name such as \
             \"Europe/Berlin\", \"America/New_York\" or \"UTC\""
        ))
    })?;
    if expression.is_empty() {
        return Err(error(format!(
            "missing cron expression after \"{prefix}{name}\""
        )));
    }
    Ok((timezone, expression))
}

/// Turns the expression into six fields, seconds first, expanding macros, so
/// that the rest of the parser sees one shape only.
fn expand(expression: &str) -> Result<Vec<&str>, ScheduleError> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let first = fields.first().copied().unwrap_or_default();
    if let Some(name) = first.strip_prefix('@') {
        let name = name.to_ascii_lowercase();
        let expanded = match name.as_str() {
            "yearly" | "annually" => "0 0 0 1 1 *",
            "monthly" => "0 0 0 1 * *",
            "weekly" => "0 0 0 * * 0",
            "daily" | "midnight" => "0 0 0 * * *",
            "hourly" => "0 0 * * * *",
            "reboot" => {
                return Err(error(
                    "@reboot is not supported: a backup schedule needs recurring times, \
                     not a run at service start",
                ));
            }
            "every" => {
                return Err(error(
                    "@every is not supported: write the interval as a cron expression, \
                     e.g. \"*/30 * * * *\" for every 30 minutes",
                ));
            }
            _ => {
                return Err(error(format!(
                    "unknown macro \"{first}\"; supported macros are @yearly, @annually, \
                     @monthly, @weekly, @daily, @midnight and @hourly"
                )));
            }
        };
        if fields.len() > 1 {
            return Err(error(format!(
                "the macro \"{first}\" stands for a whole expression and takes no further fields"
            )));
        }
        return Ok(expanded.split(' ').collect());
    }
    if !(5..=6).contains(&fields.len()) {
        let hint = if fields.len() == 7 {
            "; a trailing year field is not supported"
        } else {
            ""
        };
        return Err(error(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week) or 6 fields \
             (second minute hour day-of-month month day-of-week), got {}{hint}",
            fields.len()
        )));
    }
    let mut fields = fields;
    if fields.len() == 5 {
        fields.insert(0, "0");
    }
    Ok(fields)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

struct Field {
    kind: Kind,
    name: &'static str,
    min: u32,
    max: u32,
}

const FIELDS: [Field; 6] = [
    Field {
        kind: Kind::Second,
        name: "second",
        min: 0,
        max: 59,
    },
    Field {
        kind: Kind::Minute,
        name: "minute",
        min: 0,
        max: 59,
    },
    Field {
        kind: Kind::Hour,
        name: "hour",
        min: 0,
        max: 23,
    },
    Field {
        kind: Kind::DayOfMonth,
        name: "day-of-month",
        min: 1,
        max: 31,
    },
    Field {
        kind: Kind::Month,
        name: "month",
        min: 1,
        max: 12,
    },
    Field {
        kind: Kind::DayOfWeek,
        name: "day-of-week",
        min: 0,
        max: 7,
    },
];

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Checks each field and upper-cases it for croner.
///
/// croner replaces names anywhere in the pattern (`MON` in the month field
/// becomes January) and reports bare "Number out of bounds." without naming
/// the field, so the checks that need context are done here.
fn normalize(fields: &[&str]) -> Result<String, ScheduleError> {
    let mut normalized = Vec::with_capacity(fields.len());
    for (field, text) in FIELDS.iter().zip(fields) {
        let upper = text.to_ascii_uppercase();
        check_field(field, &upper)
            .map_err(|why| error(format!("invalid {} field \"{text}\": {why}", field.name)))?;
        normalized.push(upper);
    }
    Ok(normalized.join(" "))
}

fn check_field(field: &Field, text: &str) -> Result<(), String> {
    let day_field = matches!(field.kind, Kind::DayOfMonth | Kind::DayOfWeek);
    for ch in text.chars() {
        let allowed = ch.is_ascii_digit()
            || ch.is_ascii_uppercase()
            || matches!(ch, '*' | ',' | '-' | '/')
            || (ch == '?' && day_field)
            || (ch == '#' && field.kind == Kind::DayOfWeek);
        if !allowed {
            let hint = match ch {
                '+' if field.kind == Kind::DayOfWeek => {
                    " (the '+' day-of-month AND day-of-week modifier is not supported)"
                }
                '?' => " ('?' is only allowed in the day-of-month and day-of-week fields)",
                '#' => " ('#' is only allowed in the day-of-week field)",
                _ => "",
            };
            return Err(format!("character '{ch}' is not allowed{hint}"));
        }
    }
    for item in text.split(',') {
        if item.is_empty() {
            return Err("empty element in list".to_owned());
        }
        check_item(field, item)?;
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Token<'a> {
    Number(&'a str),
    Word(&'a str),
    Symbol(char),
}

/// Splits a list item into runs of digits, runs of letters and single symbols.
/// The item is ASCII by now.
fn tokens(item: &str) -> Vec<Token<'_>> {
    let bytes = item.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let run = |pred: fn(&u8) -> bool| {
            bytes[start..]
                .iter()
                .position(|b| !pred(b))
                .map_or(bytes.len(), |len| start + len)
        };
        let (token, end) = if bytes[start].is_ascii_digit() {
            let end = run(u8::is_ascii_digit);
            (Token::Number(&item[start..end]), end)
        } else if bytes[start].is_ascii_alphabetic() {
            let end = run(u8::is_ascii_alphabetic);
            (Token::Word(&item[start..end]), end)
        } else {
            (Token::Symbol(char::from(bytes[start])), start + 1)
        };
        out.push(token);
        start = end;
    }
    out
}

/// Checks names, value ranges, steps and range order of one list item.
/// Syntax beyond that (`1-2-3`, `5/5`) is left to croner.
fn check_item(field: &Field, item: &str) -> Result<(), String> {
    if field.kind == Kind::DayOfWeek && item == "L" {
        return Err(
            "a bare L is not supported; use 5L or FRI#L for the last Friday of the month"
                .to_owned(),
        );
    }
    let tokens = tokens(item);
    for (i, token) in tokens.iter().enumerate() {
        let preceded_by = match i.checked_sub(1).map(|p| tokens[p]) {
            Some(Token::Symbol(symbol)) => Some(symbol),
            _ => None,
        };
        match *token {
            Token::Number(digits) => {
                let n = number(digits);
                match preceded_by {
                    Some('/') if n == 0 => return Err("a step must be at least 1".to_owned()),
                    Some('/') => {}
                    Some('#') if !(1..=5).contains(&n) => {
                        return Err(format!("#{digits} is out of range (allowed #1-#5)"));
                    }
                    Some('#') => {}
                    _ if !(field.min..=field.max).contains(&n) => {
                        return Err(format!(
                            "{digits} is out of range (allowed {}-{})",
                            field.min, field.max
                        ));
                    }
                    _ => {}
                }
            }
            Token::Word(word) => check_word(field, word)?,
            Token::Symbol(_) => {}
        }
    }
    // croner rejects a reversed range with a bare "Range out of bounds.".
    for window in tokens.windows(3) {
        if let [low, Token::Symbol('-'), high] = *window
            && let (Some(low_value), Some(high_value)) = (value(low, false), value(high, true))
            && low_value > high_value
        {
            return Err(format!(
                "the range {item} is reversed; ranges go from low to high and do not wrap around"
            ));
        }
    }
    Ok(())
}

fn check_word(field: &Field, word: &str) -> Result<(), String> {
    match field.kind {
        Kind::Month if MONTHS.contains(&word) => Ok(()),
        Kind::Month => Err(format!(
            "unknown month name \"{word}\" (use JAN-DEC or 1-12)"
        )),
        Kind::DayOfWeek if WEEKDAYS.contains(&word) || word == "L" => Ok(()),
        Kind::DayOfWeek => Err(format!("unknown day name \"{word}\" (use SUN-SAT or 0-7)")),
        Kind::DayOfMonth if matches!(word, "L" | "W" | "LW") => Ok(()),
        Kind::DayOfMonth => Err(format!(
            "\"{word}\" is not allowed; this field takes 1-31, L (last day) and W (nearest weekday)"
        )),
        Kind::Second | Kind::Minute | Kind::Hour => {
            Err("letters are not allowed; use numbers with *, ',', '-' and '/'".to_owned())
        }
    }
}

/// Digits beyond `u32` are out of range anyway, so they saturate.
fn number(digits: &str) -> u32 {
    digits.parse().unwrap_or(u32::MAX)
}

/// The numeric value of a range endpoint. Sunday ends a range as 7, so that
/// `MON-SUN` is the whole week, as croner reads it.
fn value(token: Token<'_>, end_of_range: bool) -> Option<u32> {
    match token {
        Token::Number(digits) => Some(number(digits)),
        Token::Word("SUN") if end_of_range => Some(7),
        Token::Word(word) => MONTHS
            .iter()
            .position(|&m| m == word)
            .map(|i| i + 1)
            .or_else(|| WEEKDAYS.iter().position(|&d| d == word))
            .and_then(|v| u32::try_from(v).ok()),
        Token::Symbol(_) => None,
    }
}

/// Seconds are always present after `expand`, and years never are.
fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Disallowed)
        .build()
}

fn parse_with_croner(normalized: &str, fields: &[&str]) -> Result<Cron, ScheduleError> {
    let parser = parser();
    let whole = match parser.parse(normalized) {
        Ok(cron) => return Ok(cron),
        Err(whole) => whole,
    };
    // croner does not say which field it choked on; parse each field on its
    // own, with wildcards elsewhere, to find out.
    let normalized: Vec<&str> = normalized.split(' ').collect();
    for (i, field) in FIELDS.iter().enumerate() {
        let mut probe = ["0", "*", "*", "*", "*", "*"];
        probe[i] = normalized[i];
        if let Err(e) = parser.parse(&probe.join(" ")) {
            return Err(error(format!(
                "invalid {} field \"{}\": {}",
                field.name,
                fields[i],
                croner_message(&e)
            )));
        }
    }
    Err(error(format!(
        "invalid cron expression: {}",
        croner_message(&whole)
    )))
}

fn croner_message(e: &CronError) -> String {
    match e {
        CronError::InvalidPattern(message)
        | CronError::IllegalCharacters(message)
        | CronError::ComponentError(message) => message.clone(),
        other => other.to_string(),
    }
}

/// Rejects schedules whose date fields no calendar day satisfies.
///
/// croner reports those by running its search to the year 5000, which takes
/// tens of milliseconds. The Gregorian calendar, weekdays included, repeats
/// every 400 years, so a schedule that fires at all fires within any 400
/// years; a copy of the pattern limited to such a window answers in a few
/// milliseconds. The window is searched in UTC, which has no gaps; in a zone
/// a gap only delays a fixed time or drops interval times on one day, which
/// cannot empty a whole 400-year cycle.
fn ensure_fires(source: &str, normalized: &str) -> Result<(), ScheduleError> {
    let bounded = CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Required)
        .build()
        .parse(&format!("{normalized} 1970-2369"))
        .map_err(|e| error(format!("invalid cron expression: {}", croner_message(&e))))?;
    match bounded.find_next_occurrence(&DateTime::<Utc>::UNIX_EPOCH, true) {
        Ok(_) => Ok(()),
        Err(_) => Err(error(format!(
            "schedule \"{source}\" can never fire: no calendar date matches its \
             day-of-month, month and day-of-week fields"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use chrono::{Datelike as _, NaiveDate, SecondsFormat, TimeDelta, Weekday};

    use super::*;

    /// The fixed reference instant, a Thursday.
    const AFTER: &str = "2026-12-03T17:06:22Z";

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("test instant must be RFC 3339")
    }

    fn schedule(text: &str) -> Schedule {
        text.parse()
            .unwrap_or_else(|e| panic!("{text:?} must parse: {e}"))
    }

    fn show(time: DateTime<Utc>) -> String {
        time.to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    fn upcoming(text: &str, after: &str, n: usize) -> Vec<String> {
        schedule(text)
            .upcoming(at(after), n)
            .into_iter()
            .map(show)
            .collect()
    }

    fn next(text: &str, after: &str) -> String {
        show(
            schedule(text)
                .next_after(at(after))
                .unwrap_or_else(|| panic!("{text:?} must have an occurrence")),
        )
    }

    fn rejection(text: &str) -> String {
        match text.parse::<Schedule>() {
            Ok(s) => panic!("{text:?} must be rejected, parsed as {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn assert_rejected(text: &str, expected: &[&str]) {
        let message = rejection(text);
        for part in expected {
            assert!(
                message.contains(part),
                "message for {text:?} should contain {part:?}: {message}"
            );
        }
    }

    #[test]
    fn five_fields_have_minute_granularity() {
        assert_eq!(
            upcoming("* * * * *", AFTER, 3),
            [
                "2026-12-03T17:07:00Z",
                "2026-12-03T17:08:00Z",
                "2026-12-03T17:09:00Z"
            ]
        );
        assert_eq!(
            upcoming("*/15 9-17 * * *", AFTER, 3),
            [
                "2026-12-03T17:15:00Z",
                "2026-12-03T17:30:00Z",
                "2026-12-03T17:45:00Z"
            ]
        );
    }

    #[test]
    fn six_fields_lead_with_seconds() {
        assert_eq!(next("0 0 * * * *", AFTER), "2026-12-03T18:00:00Z");
        assert_eq!(next("30 * * * * *", AFTER), "2026-12-03T17:06:30Z");
        assert_eq!(next("0 30 17 6 OCT *", AFTER), "2027-10-06T17:30:00Z");
    }

    #[test]
    fn macros_in_any_case() {
        let cases = [
            ("@yearly", "2027-01-01T00:00:00Z"),
            ("@annually", "2027-01-01T00:00:00Z"),
            ("@monthly", "2027-01-01T00:00:00Z"),
            ("@weekly", "2026-12-06T00:00:00Z"),
            ("@daily", "2026-12-04T00:00:00Z"),
            ("@midnight", "2026-12-04T00:00:00Z"),
            ("@hourly", "2026-12-03T18:00:00Z"),
            ("@DAILY", "2026-12-04T00:00:00Z"),
            ("@Weekly", "2026-12-06T00:00:00Z"),
            ("@HoUrLy", "2026-12-03T18:00:00Z"),
        ];
        for (text, expected) in cases {
            assert_eq!(next(text, AFTER), expected, "{text}");
        }
        assert_eq!(
            at("2026-12-06T00:00:00Z").weekday(),
            Weekday::Sun,
            "@weekly is Sunday 00:00"
        );
        assert_eq!(
            upcoming("@monthly", AFTER, 2),
            ["2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z"]
        );
        assert_eq!(
            upcoming("@yearly", AFTER, 2),
            ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]
        );
    }

    #[test]
    fn names_in_any_case() {
        for text in ["0 30 17 6 OCT *", "0 30 17 6 oct *", "0 30 17 6 Oct *"] {
            assert_eq!(next(text, AFTER), "2027-10-06T17:30:00Z", "{text}");
        }
        assert_eq!(
            upcoming("0 9 * * MON-fri", AFTER, 3),
            [
                "2026-12-04T09:00:00Z",
                "2026-12-07T09:00:00Z",
                "2026-12-08T09:00:00Z"
            ]
        );
        assert_eq!(
            upcoming("0 0 1 jan,Jul *", AFTER, 2),
            ["2027-01-01T00:00:00Z", "2027-07-01T00:00:00Z"]
        );
        assert_eq!(next("0 0 * * sun", AFTER), "2026-12-06T00:00:00Z");
        // Sunday as 7 and as the end of a range.
        assert_eq!(next("0 0 * * 7", AFTER), "2026-12-06T00:00:00Z");
        assert_eq!(
            upcoming("0 0 * * Sat-Sun", AFTER, 2),
            ["2026-12-05T00:00:00Z", "2026-12-06T00:00:00Z"]
        );
        assert_eq!(upcoming("0 0 * * MON-SUN", AFTER, 7).len(), 7);
        assert_eq!(
            upcoming("0 0 * * MON-SUN", AFTER, 2),
            ["2026-12-04T00:00:00Z", "2026-12-05T00:00:00Z"]
        );
    }

    #[test]
    fn timezone_prefix() {
        let berlin = schedule("CRON_TZ=Europe/Berlin 0 9 * * *");
        assert_eq!(berlin.timezone(), chrono_tz::Europe::Berlin);
        assert_eq!(
            show(berlin.next_after(at(AFTER)).unwrap()),
            "2026-12-04T08:00:00Z",
            "winter: CET is UTC+1"
        );
        assert_eq!(
            show(berlin.next_after(at("2027-07-01T00:00:00Z")).unwrap()),
            "2027-07-01T07:00:00Z",
            "summer: CEST is UTC+2"
        );

        let new_york = schedule("TZ=America/New_York 0 12 * * *");
        assert_eq!(new_york.timezone(), chrono_tz::America::New_York);
        // 12:00 EST is 17:00Z, just before AFTER.
        assert_eq!(
            show(new_york.next_after(at(AFTER)).unwrap()),
            "2026-12-04T17:00:00Z"
        );

        assert_eq!(schedule("* * * * *").timezone(), Tz::UTC);
        assert_eq!(next("CRON_TZ=UTC @daily", AFTER), "2026-12-04T00:00:00Z");
        assert_eq!(
            next("CRON_TZ=Asia/Tokyo 0 30 17 6 oct *", AFTER),
            "2027-10-06T08:30:00Z"
        );
        assert_eq!(
            next("CRON_TZ=Asia/Kolkata  30 5 * * *", AFTER),
            "2026-12-04T00:00:00Z",
            "extra spaces after the zone are fine"
        );
    }

    #[test]
    fn as_str_is_the_trimmed_text() {
        assert_eq!(
            schedule("  CRON_TZ=Europe/Berlin 0 9 * * Mon \n").as_str(),
            "CRON_TZ=Europe/Berlin 0 9 * * Mon"
        );
        assert_eq!(schedule("\t@daily ").as_str(), "@daily");
    }

    #[test]
    fn occurrences_are_strictly_after() {
        let every_minute = schedule("* * * * *");
        let exact = at("2026-12-03T17:07:00Z");
        assert_eq!(
            show(every_minute.next_after(exact).unwrap()),
            "2026-12-03T17:08:00Z"
        );
        assert_eq!(
            show(
                every_minute
                    .next_after(exact + TimeDelta::milliseconds(500))
                    .unwrap()
            ),
            "2026-12-03T17:08:00Z"
        );
        assert_eq!(
            show(
                every_minute
                    .next_after(exact - TimeDelta::milliseconds(1))
                    .unwrap()
            ),
            "2026-12-03T17:07:00Z"
        );
        assert_eq!(
            next("0 30 17 6 OCT *", "2027-10-06T17:30:00Z"),
            "2028-10-06T17:30:00Z"
        );
        assert_eq!(
            next("@daily", "2026-12-04T00:00:00Z"),
            "2026-12-05T00:00:00Z"
        );
    }

    #[test]
    fn upcoming_lists_n_occurrences() {
        assert_eq!(
            upcoming("*/15 * * * *", AFTER, 4),
            [
                "2026-12-03T17:15:00Z",
                "2026-12-03T17:30:00Z",
                "2026-12-03T17:45:00Z",
                "2026-12-03T18:00:00Z"
            ]
        );
        assert!(schedule("* * * * *").upcoming(at(AFTER), 0).is_empty());
    }

    /// Every midnight from `from` for `days` days on which `fires` holds.
    fn midnights(from: NaiveDate, days: usize, fires: impl Fn(NaiveDate) -> bool) -> Vec<String> {
        from.iter_days()
            .take(days)
            .filter(|&d| fires(d))
            .map(|d| show(d.and_hms_opt(0, 0, 0).unwrap().and_utc()))
            .collect()
    }

    fn midnight_occurrences(text: &str, from: NaiveDate, days: usize) -> Vec<String> {
        let start = from.and_hms_opt(0, 0, 0).unwrap().and_utc() - TimeDelta::seconds(1);
        let end = start + TimeDelta::days(i64::try_from(days).unwrap());
        schedule(text)
            .upcoming(start, 1000)
            .into_iter()
            .take_while(|&t| t < end)
            .map(show)
            .collect()
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_restricted() {
        let from = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let both = midnight_occurrences("0 0 13 * FRI", from, 365);
        assert_eq!(
            both,
            midnights(from, 365, |d| d.day() == 13 || d.weekday() == Weekday::Fri)
        );
        // 2026-02-13 is a Friday and counts once.
        assert!(both.contains(&"2026-02-13T00:00:00Z".to_owned()));
        assert!(both.contains(&"2026-01-13T00:00:00Z".to_owned()));
        assert!(both.contains(&"2026-01-02T00:00:00Z".to_owned()));
        assert_eq!(both.len(), 52 + 12 - 3, "2026 has three Friday 13ths");
    }

    #[test]
    fn only_the_restricted_day_field_counts() {
        let from = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let fridays = midnights(from, 365, |d| d.weekday() == Weekday::Fri);
        let thirteenths = midnights(from, 365, |d| d.day() == 13);
        assert_eq!(midnight_occurrences("0 0 * * FRI", from, 365), fridays);
        assert_eq!(midnight_occurrences("0 0 ? * FRI", from, 365), fridays);
        assert_eq!(midnight_occurrences("0 0 13 * *", from, 365), thirteenths);
        assert_eq!(midnight_occurrences("0 0 13 * ?", from, 365), thirteenths);
        // Only a bare `*` is unrestricted: `*/10` is a day-of-month list, so
        // it combines with the weekday by OR.
        assert_eq!(
            midnight_occurrences("0 0 */10 * MON", from, 365),
            midnights(from, 365, |d| d.day() % 10 == 1
                || d.weekday() == Weekday::Mon)
        );
    }

    #[test]
    fn croner_extensions() {
        assert_eq!(
            upcoming("0 0 L * *", AFTER, 3),
            [
                "2026-12-31T00:00:00Z",
                "2027-01-31T00:00:00Z",
                "2027-02-28T00:00:00Z"
            ]
        );
        // 2027-01-31 is a Sunday; its last weekday is Friday the 29th.
        assert_eq!(
            upcoming("0 0 LW * *", AFTER, 2),
            ["2026-12-31T00:00:00Z", "2027-01-29T00:00:00Z"]
        );
        // 2026-11-15 is a Sunday: the nearest weekday is Monday the 16th.
        assert_eq!(
            next("0 0 15W * *", "2026-11-01T00:00:00Z"),
            "2026-11-16T00:00:00Z"
        );
        assert_eq!(next("0 0 15w * *", AFTER), "2026-12-15T00:00:00Z");
        assert_eq!(
            upcoming("0 0 * * FRI#2", AFTER, 2),
            ["2026-12-11T00:00:00Z", "2027-01-08T00:00:00Z"]
        );
        for last_friday in ["0 0 * * 5L", "0 0 * * 5#L", "0 0 * * fri#L"] {
            assert_eq!(
                upcoming(last_friday, AFTER, 2),
                ["2026-12-25T00:00:00Z", "2027-01-29T00:00:00Z"],
                "{last_friday}"
            );
        }
    }

    #[test]
    fn rare_dates_are_accepted() {
        assert_eq!(next("0 0 29 FEB *", AFTER), "2028-02-29T00:00:00Z");
        // By the OR rule this also fires on February Fridays.
        assert_eq!(next("0 0 30 FEB FRI", AFTER), "2027-02-05T00:00:00Z");
        assert_eq!(next("0 0 31 2,3 *", AFTER), "2027-03-31T00:00:00Z");
    }

    #[test]
    fn spring_forward_fixed_time_runs_right_after_the_gap() {
        // 2026-03-08 in New York: 02:00 EST jumps to 03:00 EDT.
        let s = schedule("CRON_TZ=America/New_York 30 2 * * *");
        assert_eq!(
            s.upcoming(at("2026-03-07T12:00:00Z"), 3)
                .into_iter()
                .map(show)
                .collect::<Vec<_>>(),
            [
                "2026-03-08T07:00:00Z", // 03:00 EDT, the first instant after the gap
                "2026-03-09T06:30:00Z", // 02:30 EDT
                "2026-03-10T06:30:00Z",
            ]
        );
        assert_eq!(
            show(s.next_after(at("2026-03-08T07:00:00Z")).unwrap()),
            "2026-03-09T06:30:00Z"
        );
        // Right before the gap the shifted run is still the next one.
        assert_eq!(
            show(s.next_after(at("2026-03-08T06:59:59Z")).unwrap()),
            "2026-03-08T07:00:00Z"
        );
    }

    #[test]
    fn spring_forward_interval_times_in_the_gap_are_skipped() {
        assert_eq!(
            upcoming(
                "CRON_TZ=America/New_York */20 2 * * *",
                "2026-03-07T12:00:00Z",
                4
            ),
            [
                "2026-03-09T06:00:00Z",
                "2026-03-09T06:20:00Z",
                "2026-03-09T06:40:00Z",
                "2026-03-10T06:00:00Z"
            ]
        );
    }

    #[test]
    fn fall_back_fixed_time_runs_once() {
        // 2026-11-01 in New York: 02:00 EDT falls back to 01:00 EST, so
        // 01:30 happens at 05:30Z (EDT) and again at 06:30Z (EST).
        let s = schedule("CRON_TZ=America/New_York 30 1 * * *");
        assert_eq!(
            s.upcoming(at("2026-10-31T12:00:00Z"), 3)
                .into_iter()
                .map(show)
                .collect::<Vec<_>>(),
            [
                "2026-11-01T05:30:00Z",
                "2026-11-02T06:30:00Z",
                "2026-11-03T06:30:00Z"
            ]
        );
        for after in [
            "2026-11-01T05:30:00Z", // the first 01:30
            "2026-11-01T05:45:00Z", // 01:45 EDT
            "2026-11-01T06:00:00Z", // 01:00 EST, the repeat begins
            "2026-11-01T06:29:59Z", // just before the repeated 01:30
        ] {
            assert_eq!(
                show(s.next_after(at(after)).unwrap()),
                "2026-11-02T06:30:00Z",
                "after {after}"
            );
        }
        // 02:30 exists only once that night, in EST.
        assert_eq!(
            next(
                "CRON_TZ=America/New_York 30 2 * * *",
                "2026-10-31T12:00:00Z"
            ),
            "2026-11-01T07:30:00Z"
        );
    }

    #[test]
    fn fall_back_interval_runs_on_both_passes() {
        assert_eq!(
            upcoming(
                "CRON_TZ=America/New_York */30 1 * * *",
                "2026-10-31T12:00:00Z",
                6
            ),
            [
                "2026-11-01T05:00:00Z",
                "2026-11-01T05:30:00Z",
                "2026-11-01T06:00:00Z",
                "2026-11-01T06:30:00Z",
                "2026-11-02T06:00:00Z",
                "2026-11-02T06:30:00Z"
            ]
        );
    }

    #[test]
    fn occurrences_increase_strictly_through_a_year() {
        for text in [
            "CRON_TZ=America/New_York 30 2 * * *",
            "CRON_TZ=America/New_York 30 1 * * *",
            "CRON_TZ=America/New_York */10 1-3 * * *",
            "CRON_TZ=Europe/Berlin 0 2 * * *",
            "CRON_TZ=Australia/Lord_Howe 15 1-2 * * *",
            "CRON_TZ=America/Santiago 0 0 * * *",
        ] {
            let end = at("2027-01-01T00:00:00Z");
            let times: Vec<_> = schedule(text)
                .upcoming(at("2026-01-01T00:00:00Z"), 10_000)
                .into_iter()
                .take_while(|&t| t < end)
                .collect();
            assert!(times.len() >= 365, "{text}: only {} in 2026", times.len());
            for pair in times.windows(2) {
                assert!(pair[0] < pair[1], "{text}: {} then {}", pair[0], pair[1]);
            }
        }
    }

    #[test]
    fn rejects_empty() {
        for text in ["", "   ", "\t\n"] {
            assert_rejected(text, &["schedule is empty"]);
        }
    }

    #[test]
    fn rejects_wrong_field_counts() {
        assert_rejected("* * * *", &["expected 5 fields", "or 6 fields", "got 4"]);
        assert_rejected("0", &["got 1"]);
        assert_rejected(
            "0 0 0 1 1 * 2027",
            &["got 7", "year field is not supported"],
        );
        assert_rejected("* * * * * * * *", &["got 8"]);
    }

    #[test]
    fn rejects_out_of_range_values() {
        let cases = [
            (
                "61 * * * *",
                "invalid minute field \"61\": 61 is out of range (allowed 0-59)",
            ),
            (
                "* * 32 * *",
                "invalid day-of-month field \"32\": 32 is out of range (allowed 1-31)",
            ),
            (
                "* * 0 * *",
                "invalid day-of-month field \"0\": 0 is out of range (allowed 1-31)",
            ),
            (
                "* 24 * * *",
                "invalid hour field \"24\": 24 is out of range (allowed 0-23)",
            ),
            (
                "* * * 13 *",
                "invalid month field \"13\": 13 is out of range (allowed 1-12)",
            ),
            (
                "* * * * 8",
                "invalid day-of-week field \"8\": 8 is out of range (allowed 0-7)",
            ),
            (
                "60 * * * * *",
                "invalid second field \"60\": 60 is out of range (allowed 0-59)",
            ),
            (
                "0-60 * * * *",
                "invalid minute field \"0-60\": 60 is out of range (allowed 0-59)",
            ),
            (
                "99999999999 * * * *",
                "invalid minute field \"99999999999\": 99999999999 is out of range (allowed 0-59)",
            ),
            (
                "0 0 * * mon#6",
                "invalid day-of-week field \"mon#6\": #6 is out of range (allowed #1-#5)",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(rejection(text), expected, "{text}");
        }
    }

    #[test]
    fn rejects_garbage() {
        assert_rejected("hello", &["expected 5 fields", "got 1"]);
        assert_rejected(
            "every day at noon please",
            &["invalid minute field \"every\"", "letters are not allowed"],
        );
        assert_rejected("* * * * MONDAY", &["unknown day name \"MONDAY\""]);
        assert_rejected("* * * OCTOBER *", &["unknown month name \"OCTOBER\""]);
        assert_rejected(
            "0 0 * MON *",
            &["invalid month field \"MON\"", "unknown month name"],
        );
        assert_rejected(
            "0 0 * * JAN",
            &["invalid day-of-week field \"JAN\"", "unknown day name"],
        );
        assert_rejected("0 0 X * *", &["invalid day-of-month field \"X\""]);
        assert_rejected("1.5 * * * *", &["character '.' is not allowed"]);
        assert_rejected("* * * * * é", &["character 'é' is not allowed"]);
        assert_rejected("0 0 , * *", &["empty element in list"]);
        assert_rejected("1,,2 * * * *", &["empty element in list"]);
        assert_rejected("*/0 * * * *", &["step must be at least 1"]);
        assert_rejected("5-1 * * * *", &["range 5-1 is reversed"]);
        assert_rejected("0 0 * * FRI-MON", &["range FRI-MON is reversed"]);
        assert_rejected("5/5 * * * *", &["invalid minute field \"5/5\"", "*/5"]);
        assert_rejected("1-2-3 * * * *", &["invalid minute field \"1-2-3\""]);
        assert_rejected("? * * * *", &["'?' is only allowed in the day-of-month"]);
        assert_rejected(
            "0 0 1# * *",
            &["'#' is only allowed in the day-of-week field"],
        );
        assert_rejected(
            "0 0 1 * +MON",
            &["'+' day-of-month AND day-of-week modifier"],
        );
        assert_rejected("0 0 * * L", &["bare L is not supported"]);
        assert_rejected(
            "cron_tz=Europe/Berlin * * * * *",
            &["unknown prefix", "CRON_TZ="],
        );
    }

    #[test]
    fn rejects_unsupported_macros() {
        assert_rejected("@reboot", &["@reboot is not supported"]);
        assert_rejected("@REBOOT", &["@reboot is not supported"]);
        assert_rejected("@every 5m", &["@every is not supported"]);
        assert_rejected(
            "@fortnightly",
            &["unknown macro \"@fortnightly\"", "@daily"],
        );
        assert_rejected("@daily 0", &["takes no further fields"]);
        assert_rejected("@", &["unknown macro"]);
    }

    #[test]
    fn rejects_unknown_time_zones() {
        assert_rejected(
            "CRON_TZ=Mars/Olympus * * * * *",
            &["unknown time zone \"Mars/Olympus\"", "IANA"],
        );
        assert_rejected("TZ=Nowhere @daily", &["unknown time zone \"Nowhere\""]);
        assert_rejected("CRON_TZ=Europe/Berlin", &["missing cron expression"]);
        assert_rejected("CRON_TZ=Europe/Berlin   ", &["missing cron expression"]);
        assert_rejected("CRON_TZ= * * * * *", &["needs a time zone name"]);
    }

    #[test]
    fn rejects_schedules_that_never_fire() {
        for text in [
            "0 0 30 FEB *",
            "0 0 31 APR *",
            "0 0 31 2,4,6,9,11 *",
            "* * 30-31 2 *",
            "CRON_TZ=Europe/Berlin 0 0 30 feb *",
        ] {
            assert_rejected(text, &["can never fire"]);
        }
        assert_eq!(
            rejection("0 0 30 FEB *"),
            "schedule \"0 0 30 FEB *\" can never fire: no calendar date matches its \
             day-of-month, month and day-of-week fields"
        );
    }

    #[test]
    fn never_fire_check_is_fast() {
        for text in ["0 0 30 FEB *", "0 0 31 2,4,6,9,11 *", "* * * 30 2 *"] {
            // The fastest of a few runs, so a busy machine does not fail the test.
            let fastest = (0..3)
                .map(|_| {
                    let start = Instant::now();
                    assert!(text.parse::<Schedule>().is_err());
                    start.elapsed()
                })
                .min()
                .unwrap();
            assert!(
                fastest < Duration::from_millis(50),
                "{text} took {fastest:?}"
            );
        }
    }
}
