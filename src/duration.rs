//! MSR's API carries durations as Go `time.Duration` strings (`"deadline": "1h0m0s"`), so clients
//! expect exactly what Go's `time.ParseDuration` accepts and what `Duration.String()` prints.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

const NANOSECOND: u64 = 1;
const MICROSECOND: u64 = 1_000 * NANOSECOND;
const MILLISECOND: u64 = 1_000 * MICROSECOND;
const SECOND: u64 = 1_000 * MILLISECOND;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;

/// Go's parser accumulates the magnitude in a `uint64` bounded by `1 << 63` rather than by
/// `i64::MAX`, which is what lets `-9223372036854775808ns` parse.
const MAX_MAGNITUDE: u64 = 1 << 63;

/// The units in the order a reader would try them; keep in step with [`unit_nanos`].
const UNIT_HINT: &str = "use ns, us, ms, s, m or h";

/// Signed nanoseconds, as Go's time.Duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration(i64);

impl GoDuration {
    pub const ZERO: GoDuration = GoDuration(0);

    pub const fn from_nanos(n: i64) -> Self {
        Self(n)
    }

    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// `None` when `d` is longer than Go can represent (about 292 years).
    pub fn from_std(d: Duration) -> Option<Self> {
        i64::try_from(d.as_nanos()).ok().map(Self)
    }

    /// `None` when negative, since `std::time::Duration` cannot be.
    pub fn to_std(self) -> Option<Duration> {
        u64::try_from(self.0).ok().map(Duration::from_nanos)
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }
}

/// Why a string is not a Go duration. Go itself only says "invalid duration"; the reasons here
/// are finer so that API users can fix their input without reading Go's source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}")]
pub struct ParseDurationError {
    input: String,
    reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reason {
    Empty,
    Syntax,
    MissingUnit,
    UnknownUnit(String),
    OutOfRange,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Empty => f.write_str("empty"),
            Reason::Syntax => f.write_str("expected a number followed by a unit, like 1h30m"),
            Reason::MissingUnit => write!(f, "missing unit ({UNIT_HINT})"),
            Reason::UnknownUnit(unit) => write!(f, "unknown unit {unit:?} ({UNIT_HINT})"),
            Reason::OutOfRange => f.write_str("out of range"),
        }
    }
}

impl FromStr for GoDuration {
    type Err = ParseDurationError;

    /// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or a bare `0`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s).map_err(|reason| ParseDurationError {
            input: s.to_owned(),
            reason,
        })
    }
}

fn parse(orig: &str) -> Result<GoDuration, Reason> {
    let (neg, mut s) = match orig.as_bytes().first() {
        Some(b'-') => (true, &orig[1..]),
        Some(b'+') => (false, &orig[1..]),
        _ => (false, orig),
    };
    // Zero is the one number Go lets stand without a unit.
    if s == "0" {
        return Ok(GoDuration::ZERO);
    }
    if s.is_empty() {
        return Err(if orig.is_empty() {
            Reason::Empty
        } else {
            Reason::Syntax
        });
    }

    let mut total: u64 = 0;
    while !s.is_empty() {
        if !s.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(Reason::Syntax);
        }

        let (mut v, rest) = leading_int(s).ok_or(Reason::OutOfRange)?;
        let pre = rest.len() != s.len();
        s = rest;

        let (mut frac, mut scale, mut post) = (0, 1.0, false);
        if let Some(rest) = s.strip_prefix('.') {
            (frac, scale, s) = leading_fraction(rest);
            post = s.len() != rest.len();
        }
        // "." or ".s": a point needs a digit on at least one side.
        if !pre && !post {
            return Err(Reason::Syntax);
        }

        // Like Go, the unit runs to the next number, so "1s " has the unit "s ", not "s".
        let end = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if end == 0 {
            return Err(Reason::MissingUnit);
        }
        let (name, rest) = s.split_at(end);
        s = rest;
        let unit = unit_nanos(name).ok_or_else(|| Reason::UnknownUnit(name.to_owned()))?;

        if v > MAX_MAGNITUDE / unit {
            return Err(Reason::OutOfRange);
        }
        v *= unit;
        if frac > 0 {
            // Go does this step in float64, and the float rounding is observable: Go parses
            // "0.3333333333333333333h" as exactly 20m, one nanosecond more than exact integer
            // arithmetic gives. Doing the same float64 operations keeps us bit-identical.
            // The product is below `unit`, so the cast cannot saturate.
            v += (frac as f64 * (unit as f64 / scale)) as u64;
            if v > MAX_MAGNITUDE {
                return Err(Reason::OutOfRange);
            }
        }
        // Go's `d += v` can wrap to 0 when two segments are each exactly 1<<63 (so it accepts
        // "9223372036854775808ns9223372036854775808ns" as 0s); rejecting that is the one place
        // we knowingly differ.
        total = total
            .checked_add(v)
            .filter(|&d| d <= MAX_MAGNITUDE)
            .ok_or(Reason::OutOfRange)?;
    }

    if neg {
        Ok(GoDuration(0i64.wrapping_sub_unsigned(total)))
    } else {
        i64::try_from(total)
            .map(GoDuration)
            .map_err(|_| Reason::OutOfRange)
    }
}

/// Go's `leadingInt`: `None` means the digits overflow, which Go also treats as an error.
fn leading_int(s: &str) -> Option<(u64, &str)> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let mut x: u64 = 0;
    for &c in &s.as_bytes()[..digits] {
        if x > MAX_MAGNITUDE / 10 {
            return None;
        }
        x = x * 10 + u64::from(c - b'0');
        if x > MAX_MAGNITUDE {
            return None;
        }
    }
    Some((x, &s[digits..]))
}

/// Go's `leadingFraction`: returns the digits as an integer and the float64 `scale` they are
/// divided by. Digits beyond what fits are consumed but ignored, since they are below a
/// nanosecond anyway; `scale` must stay a float64 built by repeated `*= 10` to round as Go does.
fn leading_fraction(s: &str) -> (u64, f64, &str) {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let mut x: u64 = 0;
    let mut scale = 1.0;
    for &c in &s.as_bytes()[..digits] {
        // Go keeps a sticky overflow flag; once set nothing else changes, so stopping is the same.
        if x > (MAX_MAGNITUDE - 1) / 10 {
            break;
        }
        let y = x * 10 + u64::from(c - b'0');
        if y > MAX_MAGNITUDE {
            break;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, &s[digits..])
}

fn unit_nanos(name: &str) -> Option<u64> {
    Some(match name {
        "ns" => NANOSECOND,
        // Go accepts both the micro sign (U+00B5) and the Greek mu (U+03BC).
        "us" | "\u{b5}s" | "\u{3bc}s" => MICROSECOND,
        "ms" => MILLISECOND,
        "s" => SECOND,
        "m" => MINUTE,
        "h" => HOUR,
        _ => return None,
    })
}

impl fmt::Display for GoDuration {
    /// Go's `Duration.String()`, e.g. `1h30m0s`, `1.5s`, `300ms`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0; 32];
        let start = format_go(self.0, &mut buf);
        let text = std::str::from_utf8(&buf[start..])
            .expect("format_go writes only ASCII and a whole U+00B5");
        // `pad` rather than `write_str` so `{:>8}` and friends work in tables and logs.
        f.pad(text)
    }
}

/// Go's `Duration.format`: fills `buf` from the end and returns where the text starts.
/// The longest output, `-2562047h47m16.854775808s`, is 25 bytes.
fn format_go(d: i64, buf: &mut [u8; 32]) -> usize {
    let mut w = buf.len();
    let mut u = d.unsigned_abs();

    if u < SECOND {
        // Below a second Go switches to the largest unit that keeps an integer part.
        w -= 1;
        buf[w] = b's';
        w -= 1;
        let prec = if u == 0 {
            buf[w] = b'0';
            return w;
        } else if u < MICROSECOND {
            buf[w] = b'n';
            0
        } else if u < MILLISECOND {
            // Go prints the micro sign U+00B5, never "us".
            w -= 1;
            buf[w..w + 2].copy_from_slice("\u{b5}".as_bytes());
            3
        } else {
            buf[w] = b'm';
            6
        };
        (w, u) = fmt_frac(&mut buf[..w], u, prec);
        w = fmt_int(&mut buf[..w], u);
    } else {
        w -= 1;
        buf[w] = b's';
        (w, u) = fmt_frac(&mut buf[..w], u, 9);

        w = fmt_int(&mut buf[..w], u % 60);
        u /= 60;
        if u > 0 {
            w -= 1;
            buf[w] = b'm';
            w = fmt_int(&mut buf[..w], u % 60);
            u /= 60;
            // Go stops at hours because days vary in length.
            if u > 0 {
                w -= 1;
                buf[w] = b'h';
                w = fmt_int(&mut buf[..w], u);
            }
        }
    }

    if d < 0 {
        w -= 1;
        buf[w] = b'-';
    }
    w
}

/// Go's `fmtFrac`: writes the low `prec` digits of `v` as ".123" at the end of `buf`, dropping
/// trailing zeros (and the point if nothing is left). Returns the new start and `v / 10^prec`.
fn fmt_frac(buf: &mut [u8], mut v: u64, prec: u32) -> (usize, u64) {
    let mut w = buf.len();
    let mut print = false;
    for _ in 0..prec {
        let digit = (v % 10) as u8;
        print = print || digit != 0;
        if print {
            w -= 1;
            buf[w] = b'0' + digit;
        }
        v /= 10;
    }
    if print {
        w -= 1;
        buf[w] = b'.';
    }
    (w, v)
}

/// Go's `fmtInt`: writes `v` in decimal at the end of `buf` and returns the new start.
fn fmt_int(buf: &mut [u8], mut v: u64) -> usize {
    let mut w = buf.len();
    loop {
        w -= 1;
        buf[w] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return w;
        }
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(GoDurationVisitor)
    }
}

struct GoDurationVisitor;

impl Visitor<'_> for GoDurationVisitor {
    type Value = GoDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration string like \"1h30m\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<GoDuration, E> {
        v.parse().map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as ValueError, StrDeserializer, StringDeserializer};

    const NS: i64 = NANOSECOND as i64;
    const US: i64 = MICROSECOND as i64;
    const MS: i64 = MILLISECOND as i64;
    const S: i64 = SECOND as i64;
    const M: i64 = MINUTE as i64;
    const H: i64 = HOUR as i64;

    fn parse_ok(s: &str) -> i64 {
        match s.parse::<GoDuration>() {
            Ok(d) => d.as_nanos(),
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    fn parse_err(s: &str) -> String {
        match s.parse::<GoDuration>() {
            Ok(d) => panic!("{s:?} should not parse, got {d} ({}ns)", d.as_nanos()),
            Err(e) => e.to_string(),
        }
    }

    fn show(n: i64) -> String {
        GoDuration::from_nanos(n).to_string()
    }

    fn assert_parses(cases: &[(&str, i64)]) {
        for &(input, want) in cases {
            assert_eq!(parse_ok(input), want, "parsing {input:?}");
        }
    }

    /// Go's `parseDurationTests` from src/time/time_test.go.
    #[test]
    fn parse_go_table() {
        assert_parses(&[
            // simple
            ("0", 0),
            ("5s", 5 * S),
            ("30s", 30 * S),
            ("1478s", 1478 * S),
            // sign
            ("-5s", -5 * S),
            ("+5s", 5 * S),
            ("-0", 0),
            ("+0", 0),
            // decimal
            ("5.0s", 5 * S),
            ("5.6s", 5 * S + 600 * MS),
            ("5.s", 5 * S),
            (".5s", 500 * MS),
            ("1.0s", S),
            ("1.00s", S),
            ("1.004s", S + 4 * MS),
            ("1.0040s", S + 4 * MS),
            ("100.00100s", 100 * S + MS),
            // different units
            ("10ns", 10 * NS),
            ("11us", 11 * US),
            ("12\u{b5}s", 12 * US),
            ("12\u{3bc}s", 12 * US),
            ("13ms", 13 * MS),
            ("14s", 14 * S),
            ("15m", 15 * M),
            ("16h", 16 * H),
            // composite durations
            ("3h30m", 3 * H + 30 * M),
            ("10.5s4m", 4 * M + 10 * S + 500 * MS),
            ("-2m3.4s", -(2 * M + 3 * S + 400 * MS)),
            (
                "1h2m3s4ms5us6ns",
                H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS,
            ),
            ("39h9m14.425s", 39 * H + 9 * M + 14 * S + 425 * MS),
            // large value
            ("52763797000ns", 52763797000 * NS),
            // more than 9 digits after decimal point, golang.org/issue/6617; also the case
            // where Go's float64 step differs from exact arithmetic (which gives 20m - 1ns)
            ("0.3333333333333333333h", 20 * M),
            // 1<<53 + 1 cannot be stored precisely in a float64
            ("9007199254740993ns", (1 << 53) + 1),
            // largest duration that can be represented by int64 in nanoseconds
            ("9223372036854775807ns", i64::MAX),
            ("9223372036854775.807us", i64::MAX),
            ("9223372036s854ms775us807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("-9223372036854775.808us", i64::MIN),
            ("-9223372036s854ms775us808ns", i64::MIN),
            // largest negative round trip value, golang.org/issue/48629
            ("-2562047h47m16.854775808s", i64::MIN),
            // huge string; golang.org/issue/15011
            ("0.100000000000000000000h", 6 * M),
            // the first overflow check in leadingFraction
            ("0.830103483285477580700h", 49 * M + 48 * S + 372539827 * NS),
        ]);
    }

    #[test]
    fn parse_api_examples() {
        assert_parses(&[
            ("1h30m", H + 30 * M),
            ("1h1h", 2 * H),
            ("2h45m30.5s", 2 * H + 45 * M + 30 * S + 500 * MS),
            ("1.5h", H + 30 * M),
            ("90m", 90 * M),
            ("300ms", 300 * MS),
            ("-1.5h", -(H + 30 * M)),
            ("1\u{b5}s", US),
            ("1\u{3bc}s", US),
            ("1us", US),
            ("100ns", 100),
            (".5h", 30 * M),
            ("1.h", H),
            ("0.0s", 0),
            ("-0s", 0),
            ("00012s", 12 * S),
            ("1h0m0s", H),
            ("2562047h", 2562047 * H),
            ("-2562047h47m16.854775808s", i64::MIN),
            ("2562047h47m16.854775807s", i64::MAX),
            // "0" is only special on its own; followed by a unit it is an ordinary number
            ("0h0m0.000000001s", 1),
        ]);
    }

    /// Go's `parseDurationErrorTests`, minus the inputs that are not valid UTF-8 and so cannot
    /// be a `&str`. Go's only promise is that the message quotes the input.
    #[test]
    fn parse_errors_go_table() {
        for input in [
            "",
            "3",
            "-",
            "s",
            ".",
            "-.",
            ".s",
            "+.s",
            "1d",
            "\u{fffd}",
            "\u{fffd} hello \u{fffd} world",
            "9223372036854775810ns",
            "9223372036854775808ns",
            "-9223372036854775809ns",
            "9223372036854776us",
            "3000000h",
            "9223372036854775.808us",
            "9223372036854ms775us808ns",
        ] {
            let msg = parse_err(input);
            assert!(
                msg.starts_with(&format!("invalid duration {input:?}: ")),
                "{input:?} gave {msg:?}"
            );
        }
    }

    #[test]
    fn parse_error_messages() {
        let hint = "(use ns, us, ms, s, m or h)";
        for (input, want) in [
            ("", r#"invalid duration "": empty"#.to_owned()),
            ("1", format!(r#"invalid duration "1": missing unit {hint}"#)),
            (
                "1.5",
                format!(r#"invalid duration "1.5": missing unit {hint}"#),
            ),
            (
                "1h30",
                format!(r#"invalid duration "1h30": missing unit {hint}"#),
            ),
            (
                "1d",
                format!(r#"invalid duration "1d": unknown unit "d" {hint}"#),
            ),
            (
                "1s ",
                format!(r#"invalid duration "1s ": unknown unit "s " {hint}"#),
            ),
            (
                "1S",
                format!(r#"invalid duration "1S": unknown unit "S" {hint}"#),
            ),
            (
                "1hour",
                format!(r#"invalid duration "1hour": unknown unit "hour" {hint}"#),
            ),
            (
                "9999999999h",
                r#"invalid duration "9999999999h": out of range"#.to_owned(),
            ),
            (
                "9223372036854775808ns",
                r#"invalid duration "9223372036854775808ns": out of range"#.to_owned(),
            ),
            (
                "3000000h",
                r#"invalid duration "3000000h": out of range"#.to_owned(),
            ),
            (
                "99999999999999999999s",
                r#"invalid duration "99999999999999999999s": out of range"#.to_owned(),
            ),
            (
                "2562047h47m16.854775808s",
                r#"invalid duration "2562047h47m16.854775808s": out of range"#.to_owned(),
            ),
        ] {
            assert_eq!(parse_err(input), want, "input {input:?}");
        }

        let syntax = "expected a number followed by a unit, like 1h30m";
        for input in [
            "abc", ".", "-", "+", "-.", ".s", ".h", "s", "--1s", "+-1s", " 1s", "\u{fffd}",
        ] {
            assert_eq!(
                parse_err(input),
                format!("invalid duration {input:?}: {syntax}"),
                "input {input:?}"
            );
        }

        // Go's unit is everything up to the next digit or point, so these fail on the unit.
        for (input, unit) in [
            ("0x10s", "x"),
            ("1e3s", "e"),
            ("1,5s", ","),
            ("1s 2m", "s "),
            ("1h-1m", "h-"),
            ("1h\u{fffd}", "h\u{fffd}"),
        ] {
            assert_eq!(
                parse_err(input),
                format!("invalid duration {input:?}: unknown unit {unit:?} {hint}"),
                "input {input:?}"
            );
        }

        for input in ["00", "-00", "1h1", "5.", ".5"] {
            assert!(parse_err(input).contains("missing unit"), "{input:?}");
        }
    }

    /// The one deliberate departure from Go (see `parse`): Go's sum wraps to 0 here.
    #[test]
    fn parse_rejects_sum_that_would_wrap_in_go() {
        for input in [
            "9223372036854775808ns9223372036854775808ns",
            "-9223372036854775808ns9223372036854775808ns",
            "2562047h2562047h",
        ] {
            assert!(parse_err(input).ends_with("out of range"), "{input:?}");
        }
    }

    /// Go's `durationTests`, plus the forms the MSR API shows.
    #[test]
    fn format_go_table() {
        for (want, d) in [
            ("0s", 0),
            ("1ns", NS),
            ("1.1\u{b5}s", 1100 * NS),
            ("2.2ms", 2200 * US),
            ("3.3s", 3300 * MS),
            ("4m5s", 4 * M + 5 * S),
            ("4m5.001s", 4 * M + 5001 * MS),
            ("5h6m7.001s", 5 * H + 6 * M + 7001 * MS),
            ("8m0.000000001s", 8 * M + NS),
            ("2562047h47m16.854775807s", i64::MAX),
            ("-2562047h47m16.854775808s", i64::MIN),
            // API examples
            ("1ns", 1),
            ("100ns", 100),
            ("999ns", 999),
            ("1\u{b5}s", US),
            ("1.5\u{b5}s", 1500),
            ("1.1ms", 1100 * US),
            ("300ms", 300 * MS),
            ("999.999999ms", S - 1),
            ("1s", S),
            ("1.5s", 1500 * MS),
            ("1m30s", 90 * S),
            ("1m0s", M),
            ("1h0m0s", H),
            ("1h30m0s", 90 * M),
            ("2h45m30.5s", 2 * H + 45 * M + 30 * S + 500 * MS),
            ("-1h30m0s", -(90 * M)),
            ("-1ns", -1),
            ("-1.5\u{b5}s", -1500),
            ("-300ms", -300 * MS),
            ("-1.5s", -1500 * MS),
            ("48h0m0s", 48 * H),
        ] {
            assert_eq!(show(d), want, "formatting {d}ns");
        }
    }

    #[test]
    fn format_uses_micro_sign_not_greek_mu() {
        let text = show(US);
        assert_eq!(text.as_bytes(), b"1\xc2\xb5s");
    }

    #[test]
    fn format_honours_width_and_alignment() {
        assert_eq!(format!("{:>6}|", GoDuration::from_nanos(S)), "    1s|");
        assert_eq!(
            format!("{:<6}|", GoDuration::from_nanos(US)),
            "1\u{b5}s   |"
        );
    }

    /// Cheap deterministic pseudo-random values (SplitMix64), so failures reproduce.
    fn pseudo_random(count: usize) -> impl Iterator<Item = i64> {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..count).map(move |_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) as i64
        })
    }

    fn assert_round_trips(d: i64) {
        let text = show(d);
        match text.parse::<GoDuration>() {
            Ok(back) => assert_eq!(back.as_nanos(), d, "{d}ns -> {text:?}"),
            Err(e) => panic!("{d}ns -> {text:?} does not parse back: {e}"),
        }
    }

    #[test]
    fn round_trip_extremes_and_boundaries() {
        let mut values = vec![0, 1, -1, i64::MAX, i64::MIN, i64::MAX - 1, i64::MIN + 1];
        for unit in [NS, US, MS, S, M, H] {
            for k in [1, 2, 10, 59, 60, 61, 999, 1000, 1001] {
                let base = unit * k;
                values.extend([base - 1, base, base + 1, -base + 1, -base, -base - 1]);
            }
        }
        values.extend(-2000..=2000);
        for d in values {
            assert_round_trips(d);
        }
    }

    #[test]
    fn round_trip_pseudo_random() {
        for d in pseudo_random(20_000) {
            assert_round_trips(d);
            // Also exercise small magnitudes, where the sub-second formats are used.
            assert_round_trips(d % (2 * S));
            // Go's own round-trip test uses whole milliseconds.
            assert_round_trips((d % (1 << 31)) * MS);
        }
    }

    #[test]
    fn std_conversions() {
        assert_eq!(
            GoDuration::from_std(Duration::from_millis(1500)),
            Some(GoDuration::from_nanos(1500 * MS))
        );
        assert_eq!(
            GoDuration::from_std(Duration::from_nanos(i64::MAX as u64)),
            Some(GoDuration::from_nanos(i64::MAX))
        );
        assert_eq!(
            GoDuration::from_std(Duration::from_nanos(i64::MAX as u64 + 1)),
            None
        );
        assert_eq!(GoDuration::from_std(Duration::MAX), None);
        assert_eq!(GoDuration::from_std(Duration::ZERO), Some(GoDuration::ZERO));

        assert_eq!(
            GoDuration::from_nanos(90 * S).to_std(),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            GoDuration::from_nanos(i64::MAX).to_std(),
            Some(Duration::from_nanos(i64::MAX as u64))
        );
        assert_eq!(GoDuration::ZERO.to_std(), Some(Duration::ZERO));
        assert_eq!(GoDuration::from_nanos(-1).to_std(), None);
        assert_eq!(GoDuration::from_nanos(i64::MIN).to_std(), None);
    }

    #[test]
    fn constants_and_predicates() {
        assert_eq!(GoDuration::ZERO, GoDuration::default());
        assert_eq!(GoDuration::ZERO.as_nanos(), 0);
        assert_eq!(GoDuration::from_nanos(42).as_nanos(), 42);
        assert!(GoDuration::from_nanos(1).is_positive());
        assert!(!GoDuration::ZERO.is_positive());
        assert!(!GoDuration::from_nanos(-1).is_positive());
        assert!(GoDuration::from_nanos(-1) < GoDuration::ZERO);
        const _: () = assert!(GoDuration::from_nanos(7).as_nanos() == 7);
    }

    /// serde_json is not available here, so capture what `Serialize` emits with a serializer
    /// that only understands strings.
    struct StrOnly;

    fn only_strings<T>() -> Result<T, ValueError> {
        Err(serde::ser::Error::custom("only strings are supported"))
    }

    macro_rules! reject {
        ($($method:ident($($arg:ty),*) -> $ok:ty;)*) => {
            $(fn $method(self, $(_: $arg),*) -> Result<$ok, ValueError> { only_strings() })*
        };
    }

    impl Serializer for StrOnly {
        type Ok = String;
        type Error = ValueError;
        type SerializeSeq = serde::ser::Impossible<String, ValueError>;
        type SerializeTuple = serde::ser::Impossible<String, ValueError>;
        type SerializeTupleStruct = serde::ser::Impossible<String, ValueError>;
        type SerializeTupleVariant = serde::ser::Impossible<String, ValueError>;
        type SerializeMap = serde::ser::Impossible<String, ValueError>;
        type SerializeStruct = serde::ser::Impossible<String, ValueError>;
        type SerializeStructVariant = serde::ser::Impossible<String, ValueError>;

        fn serialize_str(self, v: &str) -> Result<String, ValueError> {
            Ok(v.to_owned())
        }

        reject! {
            serialize_bool(bool) -> String;
            serialize_i8(i8) -> String;
            serialize_i16(i16) -> String;
            serialize_i32(i32) -> String;
            serialize_i64(i64) -> String;
            serialize_u8(u8) -> String;
            serialize_u16(u16) -> String;
            serialize_u32(u32) -> String;
            serialize_u64(u64) -> String;
            serialize_f32(f32) -> String;
            serialize_f64(f64) -> String;
            serialize_char(char) -> String;
            serialize_bytes(&[u8]) -> String;
            serialize_none() -> String;
            serialize_unit() -> String;
            serialize_unit_struct(&'static str) -> String;
            serialize_unit_variant(&'static str, u32, &'static str) -> String;
            serialize_seq(Option<usize>) -> Self::SerializeSeq;
            serialize_tuple(usize) -> Self::SerializeTuple;
            serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
            serialize_tuple_variant(&'static str, u32, &'static str, usize)
                -> Self::SerializeTupleVariant;
            serialize_map(Option<usize>) -> Self::SerializeMap;
            serialize_struct(&'static str, usize) -> Self::SerializeStruct;
            serialize_struct_variant(&'static str, u32, &'static str, usize)
                -> Self::SerializeStructVariant;
        }

        fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<String, ValueError> {
            only_strings()
        }

        fn serialize_newtype_struct<T: ?Sized + Serialize>(
            self,
            _: &'static str,
            _: &T,
        ) -> Result<String, ValueError> {
            only_strings()
        }

        fn serialize_newtype_variant<T: ?Sized + Serialize>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<String, ValueError> {
            only_strings()
        }
    }

    fn from_str_de(s: &str) -> Result<GoDuration, ValueError> {
        let de: StrDeserializer<'_, ValueError> = s.into_deserializer();
        GoDuration::deserialize(de)
    }

    #[test]
    fn serialize_as_go_string() {
        for (d, want) in [
            (H, "1h0m0s"),
            (90 * M, "1h30m0s"),
            (0, "0s"),
            (1500, "1.5\u{b5}s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ] {
            assert_eq!(GoDuration::from_nanos(d).serialize(StrOnly).unwrap(), want);
        }
    }

    #[test]
    fn deserialize_from_string() {
        assert_eq!(from_str_de("1h0m0s").unwrap(), GoDuration::from_nanos(H));
        assert_eq!(from_str_de("90m").unwrap(), GoDuration::from_nanos(90 * M));
        assert_eq!(from_str_de("0").unwrap(), GoDuration::ZERO);
        assert_eq!(
            from_str_de("-9223372036854775808ns").unwrap(),
            GoDuration::from_nanos(i64::MIN)
        );

        let owned: StringDeserializer<ValueError> = "1.5h".to_owned().into_deserializer();
        assert_eq!(
            GoDuration::deserialize(owned).unwrap(),
            GoDuration::from_nanos(90 * M)
        );
    }

    #[test]
    fn deserialize_error_is_parse_error_message() {
        for input in ["", "1", "1d", "abc", "9999999999h", "1s "] {
            let want = input.parse::<GoDuration>().unwrap_err().to_string();
            assert_eq!(from_str_de(input).unwrap_err().to_string(), want);
        }
        assert_eq!(
            from_str_de("1d").unwrap_err().to_string(),
            r#"invalid duration "1d": unknown unit "d" (use ns, us, ms, s, m or h)"#
        );
    }

    #[test]
    fn deserialize_rejects_non_strings() {
        let de = serde::de::value::I64Deserializer::<ValueError>::new(3600);
        let msg = GoDuration::deserialize(de).unwrap_err().to_string();
        assert!(msg.contains("a duration string"), "{msg}");
    }

    #[test]
    fn serde_round_trip() {
        for d in pseudo_random(1_000).chain([i64::MIN, i64::MAX, 0]) {
            let d = GoDuration::from_nanos(d);
            let text = d.serialize(StrOnly).unwrap();
            assert_eq!(from_str_de(&text).unwrap(), d, "{text:?}");
        }
    }
}
