//! The process's one Prometheus registry ([`Registry`]): every stage registers its own metrics in
//! it at start-up (the composition root, `server.rs`, hands it out), and `GET /metrics` encodes it
//! after running the scrape hooks that bring computed gauges up to date. [`MetricsConfig`] is the
//! `[metrics]` section: which channels and document types get a label of their own.

use std::sync::Mutex;

use prometheus_client::registry::{Metric, Registry as Prometheus};
use serde::{Deserialize, Serialize};

/// A gauge update run at every scrape.
pub type ScrapeHook = Box<dyn Fn() + Send + Sync>;

/// One `prometheus_client` registry (every name prefixed `telemetry_`) behind a mutex, and the
/// hooks run before each scrape.
pub struct Registry {
    registry: Mutex<Prometheus>,
    scrape_hooks: Mutex<Vec<ScrapeHook>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            registry: Mutex::new(Prometheus::with_prefix("telemetry")),
            scrape_hooks: Mutex::new(Vec::new()),
        }
    }
}

impl Registry {
    /// Runs `hook` before every scrape (for gauges computed from a service's state, such as the
    /// conversion backlog age). Call at start-up: one hook per service.
    pub fn on_scrape(&self, hook: impl Fn() + Send + Sync + 'static) {
        self.scrape_hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(hook));
    }

    /// Registers a metric (its name gets the `telemetry_` prefix). Call at start-up.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.with_registry(|r| r.register(name, help, metric));
    }

    /// Runs `f` with the registry (to register a stage's metrics, or for sub-registries).
    pub fn with_registry<R>(&self, f: impl FnOnce(&mut Prometheus) -> R) -> R {
        f(&mut self.registry.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Runs every scrape hook (see [`Registry::on_scrape`]).
    pub fn run_scrape_hooks(&self) {
        for hook in self
            .scrape_hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            hook();
        }
    }

    /// The OpenMetrics text exposition of every registered metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The label value of everything not in the configured sets.
pub const OTHER: &str = "OTHER";

/// Most values each `[metrics]` list may hold (bounds the number of series).
pub const MAX_LABEL_VALUES: usize = 64;

/// `[metrics]` section of the server configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Update channels counted under their own name; others are `OTHER`.
    pub channels: Vec<String>,
    /// Document types (`reason` in the seed) counted under their own name; others are `OTHER`.
    pub doc_types: Vec<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        let list = |values: &[&str]| values.iter().map(|v| v.to_string()).collect();
        MetricsConfig {
            channels: list(&["release", "beta", "aurora", "nightly", "esr", "default"]),
            doc_types: list(&[
                "main",
                "saved-session",
                "idle-daily",
                "crash",
                "first-shutdown",
                "new-profile",
                "update",
                "event",
                "modules",
                "core",
                "health",
                "deletion-request",
            ]),
        }
    }
}

impl MetricsConfig {
    /// Rejects lists that are too long or hold the reserved `OTHER` or an empty value.
    pub fn validate(&self) -> Result<(), String> {
        for (key, values) in [("channels", &self.channels), ("doc_types", &self.doc_types)] {
            if values.len() > MAX_LABEL_VALUES {
                return Err(format!(
                    "metrics.{key} holds {} values; at most {MAX_LABEL_VALUES}",
                    values.len()
                ));
            }
            if values.iter().any(|v| v.is_empty() || v == OTHER) {
                return Err(format!(
                    "metrics.{key} entries must be non-empty and not {OTHER}"
                ));
            }
        }
        Ok(())
    }
}
