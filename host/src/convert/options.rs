//! [`ConvertOptions`]: how the converter treats pings it cannot fully check, e.g. when the
//! Histograms.json revision a ping names is not available here ([`UnknownRevision`]).

/// How strictly a ping is held to the 2013 converter's rules, by what it does with a ping whose
/// histogram definitions (its `revision`) are not available here.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownRevision {
    /// Strict, the 2013 converter's behaviour: the record is rejected (`missing_histograms`,
    /// `missing_revision`), and so is a record with any histogram that does not validate
    /// (`bad_payload`) or a unified ping missing a section it expected.
    Reject,
    /// Convert with the nearest available definitions (revision table by channel + build id,
    /// then app version, else the newest set); histograms that are unknown to them or do not
    /// validate against them are dropped and counted instead of rejecting the record. Other
    /// rejections stay as in strict mode.
    Nearest,
    /// Keep every valid ping (the default): a ping's own definitions when available (a histogram
    /// that disagrees is dropped and counted), else each histogram's own `histogram_type`,
    /// `bucket_count` and `range`, else the nearest definitions; every unified document type
    /// and shape is stored. Each stored ping records how it was validated.
    #[default]
    Keep,
}

impl std::str::FromStr for UnknownRevision {
    type Err = String;
    /// `reject`, `nearest` or `keep` (as in `convert.unknown_revision`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reject" => Ok(UnknownRevision::Reject),
            "nearest" => Ok(UnknownRevision::Nearest),
            "keep" => Ok(UnknownRevision::Keep),
            other => Err(format!(
                "unknown revision policy {other:?} (expected reject, nearest or keep)"
            )),
        }
    }
}

/// Converter options; the default keeps every valid ping ([`UnknownRevision::Keep`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConvertOptions {
    /// What happens to pings whose histogram definitions cannot be found.
    pub unknown_revision: UnknownRevision,
}
