//! [`ConvertOptions`]: how the converter treats pings it cannot fully check, e.g. when the
//! Histograms.json revision a ping names is not available here ([`UnknownRevision`]).

/// What to do with a ping whose histogram definitions (its `revision`) are not available.
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum UnknownRevision {
    /// Reject the record as `missing_histograms` (the seed's behaviour).
    #[default]
    Reject,
    /// Convert with the nearest available definitions (revision table by channel + build id,
    /// then app version, else the newest set); histograms that are unknown to them or do not
    /// validate against them are dropped and counted instead of rejecting the record.
    Nearest,
}

/// Converter options; the default is the seed's strict behaviour.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConvertOptions {
    pub unknown_revision: UnknownRevision,
}
