//! Histograms in jobs (`telemetry:job/histograms`, contract 0.2.0): real pings of two Firefox
//! builds whose Histograms.json lay a histogram out differently, converted, then merged by
//! `histogram-aggregate` by bucket bounds; and a component built against the 0.1.0 contract still
//! runs unchanged.

use crate::common;
use crate::job_new::run_ok;
use crate::jobs_support::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use telemetry_server::histograms::{Definitions, RevisionCache};
use telemetry_server::jobs::{self, CancelToken, Progress, Runtime, RuntimeConfig};
use telemetry_server::storage::DataDir;

pub const NAME: &str = "MEMORY_JS_GC_HEAP";
/// `payload.info.revision` of the Firefox 54 nightly ping.
const FX54_REV: &str = "71224049c0b52ab190564d3ea0eab089a159a4cf";

/// `{lower bound: count}` and `sum` of histogram NAME as the ping sent it.
fn sent(ping: &Value) -> (BTreeMap<i64, u64>, i64) {
    let h = ping
        .pointer(&format!("/payload/histograms/{NAME}"))
        .or_else(|| ping.pointer(&format!("/histograms/{NAME}")))
        .unwrap();
    let values = h["values"].as_object().unwrap();
    let counts = values
        .iter()
        .map(|(k, v)| (k.parse().unwrap(), v.as_u64().unwrap()))
        .collect();
    (counts, h["sum"].as_i64().unwrap())
}

fn bounds_in(file: &str) -> Vec<i64> {
    let text = std::fs::read_to_string(common::data(&format!("histograms/{file}"))).unwrap();
    let defs = Definitions::from_json(&text).unwrap();
    defs.get(NAME)
        .unwrap()
        .layout
        .as_ref()
        .unwrap()
        .bounds
        .clone()
}

/// The real Firefox 21 nightly ping (classic; its build's definitions are the 2012 Fx18 bucket
/// spec's for NAME) and Firefox 54 nightly ping (whose revision's Histograms.json is the March 2017
/// mozilla-central one), converted into one data directory, and a runtime that knows both builds'
/// definitions. The two builds lay NAME out differently.
pub struct TwoBuilds {
    _tmp: tempfile::TempDir,
    pub data: std::path::PathBuf,
    runtime: Runtime,
    fx21: Value,
    fx54: Value,
}

impl TwoBuilds {
    pub fn convert() -> TwoBuilds {
        let tmp = tempfile::tempdir().unwrap();
        let fx21_line = std::fs::read_to_string(common::data(
            "pings/classic-v1.saved-session.Fx21.0a1-nightly.with_hangs.toolbox.tsv",
        ))
        .unwrap();
        let fx21: Value =
            serde_json::from_str(fx21_line.trim_end().split_once('\t').unwrap().1).unwrap();
        let fx54_text = std::fs::read_to_string(common::data(
            "pings/v4.main.Fx54.0a1-nightly.2017-01.heka-decoded.moztelemetry-gzip.json",
        ))
        .unwrap();
        let fx54: Value = serde_json::from_str(&fx54_text).unwrap();
        assert!(fx54.to_string().contains(FX54_REV));
        let input = tmp.path().join("pings.tsv");
        std::fs::write(
            &input,
            format!(
                "{}\nfx54-00000000-0000-0000-0000-000000000054\t{}\n",
                fx21_line.trim_end(),
                fx54
            ),
        )
        .unwrap();
        let defs = tmp.path().join("defs");
        let rev_dir = defs.join("mozilla-central").join(FX54_REV);
        std::fs::create_dir_all(&rev_dir).unwrap();
        std::fs::copy(
            common::data("histograms/Histograms.mozilla-central.2017-03.telemetry-batch-view.json"),
            rev_dir.join("Histograms.json"),
        )
        .unwrap();
        let data = tmp.path().join("data");
        run_ok(
            Command::new(common::binary())
                .args(["convert", "--data-dir"])
                .arg(&data)
                .arg("--histograms")
                .arg(&defs)
                .arg(&input),
        );
        // The compile cache the other job tests share (content-addressed, same engine settings).
        let cache_dir = DataDir::open(&common::repo_root().join("target/test-job-cache")).unwrap();
        let runtime = Runtime::new(cache_dir.sub("cache").unwrap(), RuntimeConfig::default())
            .unwrap()
            .with_histograms(Arc::new(RevisionCache::embedded().with_dir(&defs).unwrap()));
        TwoBuilds {
            _tmp: tmp,
            data,
            runtime,
            fx21,
            fx54,
        }
    }

    /// Runs built guest `guest` (e.g. `histogram-aggregate-rust`) with parameter `param` over
    /// both pings (2 workers); its output text.
    pub fn run(&self, guest: &str, param: &str) -> String {
        let job = self
            .runtime
            .compile(&std::fs::read(common::guest(guest)).unwrap())
            .unwrap();
        let mut opts = all_with(2);
        opts.param = param.to_string();
        let result = jobs::run(
            &self.runtime,
            &job,
            jobs::open_source(self.data.to_str().unwrap()).unwrap(),
            &opts,
            &Progress::default(),
            &CancelToken::new(),
        )
        .unwrap_or_else(|e| panic!("{guest} {param}: {e}"));
        output_text(&result).to_string()
    }

    /// Checks the `nightly` line of histogram-aggregate's `NAME:channel` output against the two
    /// pings as sent and the two builds' real layouts, computed here independently of any SDK.
    pub fn check_merged(&self, text: &str) {
        let line = text
            .lines()
            .find(|l| l.starts_with("nightly\t"))
            .unwrap_or_else(|| panic!("{text}"));
        let got: Value = serde_json::from_str(line.split_once('\t').unwrap().1).unwrap();
        assert_eq!(got["submissions"], 2, "{line}");
        assert!(got.get("unknown_layout").is_none(), "{line}");

        // The two layouts differ: the job must not add the arrays by position.
        let fx18_bounds = bounds_in("bucket-spec.Fx18.2012.telemetry-toolbox.json");
        let fx54_bounds = bounds_in("Histograms.mozilla-central.2017-03.telemetry-batch-view.json");
        assert_ne!(fx18_bounds, fx54_bounds);
        // Bounds: the union of both builds' real layouts.
        let mut union: Vec<i64> = fx18_bounds.iter().chain(&fx54_bounds).copied().collect();
        union.sort_unstable();
        union.dedup();
        let bounds: Vec<i64> = serde_json::from_value(got["histogram"]["bounds"].clone()).unwrap();
        let counts: Vec<u64> = serde_json::from_value(got["histogram"]["counts"].clone()).unwrap();
        assert_eq!(bounds, union);
        // Counts: every count the two pings sent, at its own lower bound; totals and sums add up.
        let ((a, a_sum), (b, b_sum)) = (sent(&self.fx21), sent(&self.fx54));
        let mut expected: BTreeMap<i64, u64> = union.iter().map(|&bound| (bound, 0)).collect();
        for (bound, count) in a.iter().chain(&b) {
            *expected
                .get_mut(bound)
                .unwrap_or_else(|| panic!("bound {bound} not in the layouts")) += count;
        }
        let merged: BTreeMap<i64, u64> =
            bounds.iter().copied().zip(counts.iter().copied()).collect();
        assert_eq!(merged, expected);
        let total: u64 = a.values().chain(b.values()).sum();
        assert!(total > 0);
        assert_eq!(counts.iter().sum::<u64>(), total);
        assert_eq!(got["histogram"]["sum"].as_i64().unwrap(), a_sum + b_sum);
        // The median is the lower bound of a bucket both layouts' samples can fall in.
        let median = got["median"].as_i64().unwrap();
        let below: u64 = merged.range(..=median).map(|(_, c)| c).sum();
        assert!(
            below * 2 >= total && merged.range(..median).map(|(_, c)| c).sum::<u64>() * 2 < total
        );
    }
}

#[test]
fn histogram_aggregate_merges_two_builds_layouts_by_bucket_bounds() {
    let builds = TwoBuilds::convert();
    builds.check_merged(&builds.run("histogram-aggregate-rust", &format!("{NAME}:channel")));
}

#[test]
fn a_component_built_against_the_0_1_0_contract_still_runs() {
    // simple-counter-v0-1 is simple-counter built with raw bindings of wit/v0.1.0/job.wit: its
    // component imports `telemetry:job/host@0.1.0` and exports `telemetry:job/job@0.1.0`.
    let old = std::fs::read(common::guest("simple-counter-v0-1-rust")).unwrap();
    let text = String::from_utf8_lossy(&old);
    assert!(text.contains("telemetry:job/job@0.1.0") && !text.contains("@0.2.0"));
    let data = converted_data();
    let v0_1 = run_guest(data, "simple-counter-v0-1-rust", &all_with(2)).unwrap();
    let current = run_guest(data, "simple-counter-rust", &all_with(2)).unwrap();
    assert!(
        output_text(&v0_1).contains("records="),
        "{}",
        output_text(&v0_1)
    );
    assert_eq!(output_text(&v0_1), output_text(&current));
    assert_eq!(v0_1.cost.records_read, current.cost.records_read);
}
