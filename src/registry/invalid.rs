//! Refused request input, naming the offending field, and the body parsing
//! that produces it.
//!
//! A body that is not JSON at all is a different failure (`INVALID_JSON`)
//! from JSON whose values are refused (`INVALID_PARAMETERS`), so the two are
//! told apart here, in one pass over the bytes, without building a
//! `serde_json::Value` first: the vulnerability database upload can be large.

use serde::de::{DeserializeOwned, IgnoredAny};

/// Why a value was refused: the field (a JSON path such as
/// `layers[0].digest`, or a parameter name) and a reason a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Not JSON: a syntax error, trailing bytes, or a truncated document.
    #[error("the request body is not valid JSON: {0}")]
    Syntax(String),
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

/// Reads a request body into `T`, naming the offending field on a type error.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    // serde would also read a struct from an array, by position.
    let first = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
    if first != Some(&b'{') {
        return match serde_json::from_slice::<IgnoredAny>(bytes) {
            Ok(_) => Err(Invalid::new("body", "must be a JSON object").into()),
            Err(err) => Err(BodyError::Syntax(err.to_string())),
        };
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.classify() != serde_json::error::Category::Data {
            return BodyError::Syntax(inner.to_string());
        }
        // A value error can come before a syntax error (`{} x`), but a body
        // that is not JSON is reported as such.
        if let Err(syntax) = serde_json::from_slice::<IgnoredAny>(bytes) {
            return BodyError::Syntax(syntax.to_string());
        }
        let reason = strip_position(&inner);
        BodyError::Invalid(Invalid::new(field_of(&path, &reason), reason))
    })?;
    deserializer
        .end()
        .map_err(|err| BodyError::Syntax(err.to_string()))?;
    Ok(value)
}

/// The field a refusal is about. A missing field is reported at the object
/// that lacks it, so its name is taken from the message and appended.
fn field_of(path: &str, reason: &str) -> String {
    let missing = reason
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'));
    match (path, missing) {
        (".", Some(name)) => name.to_owned(),
        (".", None) => "body".to_owned(),
        (path, Some(name)) => format!("{path}.{name}"),
        (path, None) => path.to_owned(),
    }
}

/// serde_json appends "at line L column C" to every message; for a refused
/// value the field path already says where, and says it better.
fn strip_position(err: &serde_json::Error) -> String {
    let message = err.to_string();
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    }
}

/// For the optional fields of a body: absent means "not given", and an
/// explicit `null` is refused like any other value of the wrong type instead
/// of silently meaning the same.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// PostgreSQL `text` and `jsonb` cannot hold NUL, so a string carrying one
/// is refused here instead of failing in the database.
pub fn text(field: impl FnOnce() -> String, value: &str) -> Result<(), Invalid> {
    if value.contains('\0') {
        return Err(Invalid::new(field(), "must not contain NUL characters"));
    }
    Ok(())
}

/// Like [`text`], and also not blank (only spaces), of at most `max`
/// characters, without control characters: for names and identifiers.
pub fn name(field: impl Fn() -> String, value: &str, max: usize) -> Result<(), Invalid> {
    if value.chars().all(|c| c == ' ') {
        return Err(Invalid::new(field(), "must not be empty"));
    }
    limit(&field, value, max)?;
    if value.chars().any(char::is_control) {
        return Err(Invalid::new(field(), "must not contain control characters"));
    }
    Ok(())
}

/// At most `max` characters (not bytes, as JSON Schema's `maxLength` counts).
pub fn limit(field: impl Fn() -> String, value: &str, max: usize) -> Result<(), Invalid> {
    if value.chars().count() > max {
        return Err(Invalid::new(
            field(),
            format!("must be at most {max} characters long"),
        ));
    }
    Ok(())
}

/// A content digest as the registry stores it: `sha256:` and 64 lowercase
/// hex digits (the `blobs.digest` check constraint).
pub fn is_digest(value: &str) -> bool {
    value.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

pub fn digest(field: impl FnOnce() -> String, value: &str) -> Result<(), Invalid> {
    if is_digest(value) {
        Ok(())
    } else {
        Err(Invalid::new(
            field(),
            format!("{value:?} is not a digest of the form sha256:<64 lowercase hex digits>"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        count: u32,
        #[serde(default, deserialize_with = "present")]
        label: Option<String>,
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Item {
        id: String,
    }

    fn refused(body: &str) -> Invalid {
        match parse_body::<Body>(body.as_bytes()) {
            Err(BodyError::Invalid(invalid)) => invalid,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn syntax_and_value_errors_are_told_apart() {
        for body in ["", "{", "{\"count\": 1,}", "{} x", "nope"] {
            assert!(
                matches!(
                    parse_body::<Body>(body.as_bytes()),
                    Err(BodyError::Syntax(_))
                ),
                "{body}"
            );
        }
        assert_eq!(refused("[1, null, []]").field, "body");
        assert_eq!(refused("{\"count\": -1, \"items\": []}").field, "count");
        assert_eq!(
            refused("{\"count\": 1, \"items\": [{\"id\": 2}]}"),
            Invalid::new(
                "items[0].id",
                "invalid type: integer `2`, expected a string"
            )
        );
        assert_eq!(
            refused("{\"count\": 1, \"items\": [], \"label\": null}").field,
            "label"
        );
        assert_eq!(
            refused("{\"count\": 1, \"items\": [], \"extra\": 1}").field,
            "extra"
        );
        assert_eq!(refused("{\"items\": []}").field, "count");
        assert_eq!(
            refused("{\"count\": 1, \"items\": [{}]}").field,
            "items[0].id"
        );
        let body: Body = parse_body(b" {\"count\": 1, \"items\": []}\n").unwrap();
        assert!(body.label.is_none());
    }

    #[test]
    fn digests() {
        let hex = "0123456789abcdef".repeat(4);
        assert!(is_digest(&format!("sha256:{hex}")));
        assert!(!is_digest(&format!("sha256:{}", hex.to_uppercase())));
        assert!(!is_digest(&format!("sha512:{hex}")));
        assert!(!is_digest(&format!("sha256:{hex}0")));
        assert!(!is_digest("sha256:"));
    }
}
