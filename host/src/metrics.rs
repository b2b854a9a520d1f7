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

/// Registers gauges of the process itself, brought up to date from `/proc/self/status` at each
/// scrape: `telemetry_process_threads` (tokio's blocking pool and the conversion pool start and
/// retire threads) and `telemetry_process_resident_memory_bytes`. Where there is no such file
/// (not Linux) they stay 0.
pub fn register_process_metrics(registry: &Registry) {
    use prometheus_client::metrics::gauge::Gauge;
    let threads = Gauge::<i64>::default();
    let resident = Gauge::<i64>::default();
    registry.register(
        "process_threads",
        "Threads of the server process",
        threads.clone(),
    );
    registry.register(
        "process_resident_memory_bytes",
        "Resident memory of the server process",
        resident.clone(),
    );
    registry.on_scrape(move || {
        let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
            return;
        };
        if let Some(n) = status_field(&status, "Threads") {
            threads.set(n as i64);
        }
        if let Some(kib) = status_field(&status, "VmRSS") {
            resident.set((kib * 1024) as i64);
        }
    });
}

/// The number in a `/proc/<pid>/status` line `name:   N [kB]`.
fn status_field(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_gauges_follow_proc_self_status() {
        let status = "Name:\tts\nVmRSS:\t  183072 kB\nThreads:\t68\n";
        assert_eq!(status_field(status, "VmRSS"), Some(183_072));
        assert_eq!(status_field(status, "Threads"), Some(68));
        assert_eq!(status_field(status, "VmSwap"), None);
        assert_eq!(status_field("ThreadsX:\t3\n", "Threads"), None);

        let registry = Registry::default();
        register_process_metrics(&registry);
        let threads_before = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| status_field(&s, "Threads"))
            .expect("Linux has /proc/self/status");
        registry.run_scrape_hooks();
        let text = registry.encode();
        let value = |name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
        };
        let threads = value("telemetry_process_threads");
        assert!(
            threads >= 1 && threads.abs_diff(threads_before) < 64,
            "threads {threads}"
        );
        assert!(value("telemetry_process_resident_memory_bytes") > 1 << 20);
    }
}
