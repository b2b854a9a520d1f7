//! Relative dates in job filters: an `allowed_values` string, list item or `min`/`max` bound
//! written `today`, `-Nd` or `+Nd` (N days before/after the run's UTC date) is replaced by that
//! date as `YYYYMMDD` (the `submission_date` layout) when the job runs. Everything else is left
//! as it is, so resolving an absolute filter returns it unchanged.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

/// The most days a relative date may reach (about 100 years), so no offset overflows a date.
pub const MAX_OFFSET_DAYS: i64 = 36_500;

/// A relative date that cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("relative date {text:?}: the offset must be at most {MAX_OFFSET_DAYS} days (write today, -Nd or +Nd)")]
pub struct BadRelativeDate {
    /// The value as written.
    pub text: String,
}

/// `filter` with every relative date resolved against `now` (UTC); `None` stays `None`.
pub fn resolve(
    filter: Option<&Value>,
    now: DateTime<Utc>,
) -> Result<Option<Value>, BadRelativeDate> {
    let Some(filter) = filter else {
        return Ok(None);
    };
    let mut filter = filter.clone();
    if let Some(dims) = filter.get_mut("dimensions").and_then(Value::as_array_mut) {
        for dim in dims {
            if let Some(allowed) = dim.get_mut("allowed_values") {
                resolve_allowed(allowed, now)?;
            }
        }
    }
    Ok(Some(filter))
}

fn resolve_allowed(allowed: &mut Value, now: DateTime<Utc>) -> Result<(), BadRelativeDate> {
    match allowed {
        Value::String(_) => resolve_value(allowed, now),
        Value::Array(items) => items.iter_mut().try_for_each(|v| resolve_value(v, now)),
        Value::Object(range) => {
            for key in ["min", "max"] {
                if let Some(bound) = range.get_mut(key) {
                    resolve_value(bound, now)?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn resolve_value(value: &mut Value, now: DateTime<Utc>) -> Result<(), BadRelativeDate> {
    let Some(text) = value.as_str() else {
        return Ok(());
    };
    let Some(days) = offset_days(text)? else {
        return Ok(());
    };
    let date = now.date_naive() + Duration::days(days);
    *value = Value::String(date.format("%Y%m%d").to_string());
    Ok(())
}

/// `Some(days)` for `today`, `-Nd`, `+Nd`; `None` for any other value.
fn offset_days(text: &str) -> Result<Option<i64>, BadRelativeDate> {
    if text == "today" {
        return Ok(Some(0));
    }
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'-') => (-1, &text[1..]),
        Some(b'+') => (1, &text[1..]),
        _ => return Ok(None),
    };
    let Some(digits) = rest.strip_suffix('d') else {
        return Ok(None);
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let bad = || BadRelativeDate {
        text: text.to_string(),
    };
    let days: i64 = digits.parse().map_err(|_| bad())?;
    if days > MAX_OFFSET_DAYS {
        return Err(bad());
    }
    Ok(Some(sign * days))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn bounds_lists_and_strings_resolve_in_utc() {
        let filter = json!({"version": 1, "dimensions": [
            {"field_name": "submission_date", "allowed_values": {"min": "-7d", "max": "-1d"}},
            {"field_name": "appVersion", "allowed_values": ["-1d", "41.0"]},
            {"field_name": "reason", "allowed_values": "today"}]});
        let got = resolve(Some(&filter), at("2026-03-01T00:30:00Z"))
            .unwrap()
            .unwrap();
        assert_eq!(
            got["dimensions"][0]["allowed_values"],
            json!({"min": "20260222", "max": "20260228"})
        );
        assert_eq!(
            got["dimensions"][1]["allowed_values"],
            json!(["20260228", "41.0"])
        );
        assert_eq!(got["dimensions"][2]["allowed_values"], json!("20260301"));
        assert_eq!(
            resolve(
                Some(
                    &json!({"dimensions": [{"field_name": "d", "allowed_values": {"min": "+2d"}}]})
                ),
                at("2026-12-31T23:59:00Z")
            )
            .unwrap()
            .unwrap()["dimensions"][0]["allowed_values"]["min"],
            "20270102"
        );
    }

    #[test]
    fn absolute_filters_are_unchanged_and_huge_offsets_refused() {
        let filter = json!({"dimensions": [
            {"field_name": "submission_date", "allowed_values": {"min": "20150101", "max": "-d"}},
            {"field_name": "reason", "allowed_values": ["saved-session", "-5"]}]});
        assert_eq!(
            resolve(Some(&filter), Utc::now()).unwrap().as_ref(),
            Some(&filter)
        );
        assert_eq!(resolve(None, Utc::now()).unwrap(), None);
        let huge = json!({"dimensions": [{"field_name": "d", "allowed_values": "-99999999999d"}]});
        assert!(resolve(Some(&huge), Utc::now())
            .unwrap_err()
            .to_string()
            .contains("at most"));
    }
}
