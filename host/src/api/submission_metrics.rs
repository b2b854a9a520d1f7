//! Per-channel and per-docType counters of accepted submissions, with bounded label sets.
//!
//! A telemetry submission URL is `/submit/telemetry/<id>/<docType>/<app>/<version>/<channel>/<build>`.
//! Clients choose those values, so only the ones listed in `[metrics]` (`channels`, `doc_types`)
//! become label values; anything else, a missing segment or another namespace, is counted as
//! `OTHER`. At most `(channels + 1) × (doc_types + 1)` series exist, whatever clients send.
//!
//! A request only finds its [`SubmissionKey`] (two indexes into the known values, no allocation);
//! each series' counters are looked up in the families once, at its first submission, and kept in
//! a table of that bounded size (a family lookup hashes and clones the label strings).

use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::metrics::Metrics;

pub use crate::metrics::{MetricsConfig, MAX_LABEL_VALUES, OTHER};

/// Label set `{channel="nightly", doc_type="main"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubmissionLabel {
    /// The update channel, or `OTHER`.
    pub channel: String,
    /// The document type, or `OTHER`.
    pub doc_type: String,
}

/// A submission's label values, as indexes into the known values (the last index is `OTHER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubmissionKey {
    channel: usize,
    doc_type: usize,
}

/// The counters and the known label values.
#[derive(Clone)]
pub struct SubmissionMetrics {
    channels: Vec<String>,
    doc_types: Vec<String>,
    /// `(requests, bytes)` of each series once it exists, at `channel × (doc_types + 1) + doc_type`.
    series: Arc<[OnceLock<(Counter, Counter)>]>,
    /// Accepted submissions.
    pub requests: Family<SubmissionLabel, Counter>,
    /// Accepted submission body bytes (as received, compressed or not).
    pub bytes: Family<SubmissionLabel, Counter>,
}

impl SubmissionMetrics {
    /// Counters for the label values of `config`, registered in `metrics`.
    pub fn register(config: &MetricsConfig, metrics: &Metrics) -> SubmissionMetrics {
        let this = SubmissionMetrics {
            channels: config.channels.clone(),
            doc_types: config.doc_types.clone(),
            series: (0..(config.channels.len() + 1) * (config.doc_types.len() + 1))
                .map(|_| OnceLock::new())
                .collect(),
            requests: Family::default(),
            bytes: Family::default(),
        };
        metrics.register(
            "submissions",
            "Accepted telemetry submissions by channel and docType (values outside [metrics] are OTHER)",
            this.requests.clone(),
        );
        metrics.register(
            "submission_bytes",
            "Accepted telemetry submission body bytes by channel and docType (values outside [metrics] are OTHER)",
            this.bytes.clone(),
        );
        this
    }

    /// The label values of the submission at `url_path` (`/submit/telemetry/…`).
    pub fn key(&self, url_path: &str) -> SubmissionKey {
        let mut segments = url_path
            .strip_prefix("/submit/telemetry/")
            .unwrap_or_default()
            .split('/');
        let doc_type = segments.nth(1);
        let channel = segments.nth(2);
        SubmissionKey {
            channel: known(&self.channels, channel),
            doc_type: known(&self.doc_types, doc_type),
        }
    }

    /// The labels of `key`.
    pub fn label(&self, key: SubmissionKey) -> SubmissionLabel {
        let value =
            |set: &[String], index: usize| set.get(index).map_or(OTHER, String::as_str).to_string();
        SubmissionLabel {
            channel: value(&self.channels, key.channel),
            doc_type: value(&self.doc_types, key.doc_type),
        }
    }

    /// The labels of the submission at `url_path` (`/submit/telemetry/…`); the request path
    /// uses [`Self::key`] and [`Self::count`] instead, so this is for the tests.
    #[cfg(test)]
    pub fn labels(&self, url_path: &str) -> SubmissionLabel {
        self.label(self.key(url_path))
    }

    /// Counts one accepted submission of `bytes` body bytes.
    pub fn count(&self, key: SubmissionKey, bytes: u64) {
        let (requests, body_bytes) = self.series
            [key.channel * (self.doc_types.len() + 1) + key.doc_type]
            .get_or_init(|| {
                let label = self.label(key);
                (
                    self.requests.get_or_create(&label).clone(),
                    self.bytes.get_or_create(&label).clone(),
                )
            });
        requests.inc();
        body_bytes.inc_by(bytes);
    }
}

/// The index of `value` in `set`, or `set.len()` (`OTHER`).
fn known(set: &[String], value: Option<&str>) -> usize {
    value
        .and_then(|v| set.iter().position(|k| k == v))
        .unwrap_or(set.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> SubmissionMetrics {
        SubmissionMetrics::register(&MetricsConfig::default(), &Metrics::new())
    }

    #[test]
    fn known_values_are_labels_and_the_rest_is_other() {
        let m = metrics();
        let l = m.labels("/submit/telemetry/abc/saved-session/Firefox/40.0a2/aurora/20150501");
        assert_eq!(
            (l.channel.as_str(), l.doc_type.as_str()),
            ("aurora", "saved-session")
        );
        let l = m.labels("/submit/telemetry/abc/main/Firefox/61.0/nightly-cck-evil/2018");
        assert_eq!((l.channel.as_str(), l.doc_type.as_str()), ("OTHER", "main"));
        let l = m.labels("/submit/telemetry/abc/x%2F..%2F/Firefox/61.0/beta/2018");
        assert_eq!((l.channel.as_str(), l.doc_type.as_str()), ("beta", "OTHER"));
        for short in [
            "/submit/telemetry/abc",
            "/submit/telemetry/",
            "/submit/other/a/main/F/1/beta/2",
        ] {
            let l = m.labels(short);
            assert_eq!(
                (l.channel.as_str(), l.doc_type.as_str()),
                ("OTHER", "OTHER"),
                "{short}"
            );
        }
    }

    #[test]
    fn series_stay_bounded_whatever_clients_send() {
        let m = metrics();
        for i in 0..1000 {
            let k = m.key(&format!(
                "/submit/telemetry/id/type{i}/Firefox/1.0/chan{i}/1"
            ));
            m.count(k, 10);
        }
        let k = m.key("/submit/telemetry/id/main/Firefox/1.0/release/1");
        m.count(k, 5);
        let registry = Metrics::new();
        registry.register("s", "s", m.requests.clone());
        let text = registry.encode();
        let series = text
            .lines()
            .filter(|l| l.starts_with("telemetry_s_total{"))
            .count();
        assert_eq!(series, 2, "{text}");
        assert!(
            text.contains(r#"telemetry_s_total{channel="OTHER",doc_type="OTHER"} 1000"#),
            "{text}"
        );
    }

    #[test]
    fn each_series_counts_requests_and_bytes_of_its_own() {
        let m = metrics();
        let aurora = m.key("/submit/telemetry/a/saved-session/Firefox/40.0a2/aurora/1");
        let main = m.key("/submit/telemetry/b/main/Firefox/61.0/nightly/2");
        m.count(aurora, 100);
        m.count(main, 7);
        m.count(aurora, 20);
        let registry = Metrics::new();
        registry.register("s", "s", m.requests.clone());
        registry.register("b", "b", m.bytes.clone());
        let text = registry.encode();
        for line in [
            r#"telemetry_s_total{channel="aurora",doc_type="saved-session"} 2"#,
            r#"telemetry_b_total{channel="aurora",doc_type="saved-session"} 120"#,
            r#"telemetry_s_total{channel="nightly",doc_type="main"} 1"#,
            r#"telemetry_b_total{channel="nightly",doc_type="main"} 7"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
    }

    #[test]
    fn config_lists_are_checked() {
        assert!(MetricsConfig::default().validate().is_ok());
        let mut c = MetricsConfig::default();
        c.channels.push(OTHER.into());
        assert!(c.validate().unwrap_err().contains("metrics.channels"));
        let c = MetricsConfig {
            doc_types: (0..=MAX_LABEL_VALUES).map(|i| i.to_string()).collect(),
            ..MetricsConfig::default()
        };
        assert!(c.validate().unwrap_err().contains("at most"));
    }
}
