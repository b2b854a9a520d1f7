//! The S3 key layout, the seed's (docs/s3.md#key-layout): a partition file's key is its path relative to the
//! storage root under `prefix` (`<reason>/<appName>/<channel>/<appVersion>/<buildid>.<date>.v<N>.log.<id>.<codec>`),
//! a raw log's key is its file name under `raw_prefix` (`telemetry.log.v2.<host>.<pid>.<ms>.finished`).

use super::S3Error;

/// Normalises a key prefix: no leading `/`, and a trailing `/` unless empty.
pub fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}/")
    }
}

/// `prefix` + `relative` (a `/`-separated path relative to the exported root).
pub fn object_key(prefix: &str, relative: &str) -> String {
    format!(
        "{}{}",
        normalize_prefix(prefix),
        relative.trim_start_matches('/')
    )
}

/// Splits `s3://bucket/some/prefix` into `("bucket", "some/prefix/")`.
pub fn parse_s3_url(url: &str) -> Result<(String, String), S3Error> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| S3Error::Config(format!("{url:?} is not an s3://bucket/prefix URL")))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid_bucket {
        return Err(S3Error::Config(format!(
            "{url:?}: bucket {bucket:?} must be 3-63 characters of a-z, 0-9, '-' and '.'"
        )));
    }
    Ok((bucket.to_string(), normalize_prefix(prefix)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_seed_layout() {
        let rel = "saved_session/Firefox/nightly/22.0a1/20130226031002.20131011.v2.log.e28a.zst";
        assert_eq!(object_key("published", rel), format!("published/{rel}"));
        assert_eq!(object_key("/published/", rel), format!("published/{rel}"));
        assert_eq!(object_key("", rel), rel);
    }

    #[test]
    fn s3_urls_parse_and_bad_ones_are_rejected() {
        assert_eq!(
            parse_s3_url("s3://telemetry/pub").unwrap(),
            ("telemetry".into(), "pub/".into())
        );
        assert_eq!(
            parse_s3_url("s3://telemetry").unwrap(),
            ("telemetry".into(), String::new())
        );
        assert_eq!(
            parse_s3_url("s3://telemetry/a/b/").unwrap(),
            ("telemetry".into(), "a/b/".into())
        );
        assert!(parse_s3_url("http://x/y").is_err());
        assert!(parse_s3_url("s3://").is_err());
        assert!(parse_s3_url("s3://Bad_Bucket/x").is_err());
    }
}
