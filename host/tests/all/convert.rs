//! The converter on every real ping and seed sample: each converts, or is rejected into the class
//! a reader of docs/convert.md and docs/formats/ expects, written per file below.

use crate::common;
use crate::convert_defs;

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use telemetry_server::convert::{
    BadRecordKind, ConvertOptions, Converted, Converter, UnknownRevision, DEFAULT_SCHEMA,
};
use telemetry_server::histograms::{Query, RevisionCache, Source};
use telemetry_server::rawlog::{self, RawRecord};
use telemetry_server::storage::Schema;

use BadRecordKind::*;

/// What a file is expected to become.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Stored, with these dimensions (schema applied) and format version.
    Stored {
        dims: [&'static str; 6],
        version: u32,
    },
    Rejected(BadRecordKind),
}
use Expect::*;

/// The 2013 converter's rules (strict mode), whose classification these tests check.
fn strict() -> ConvertOptions {
    ConvertOptions {
        unknown_revision: UnknownRevision::Reject,
    }
}

fn converter() -> Converter {
    Converter::with_defaults().with_options(strict())
}

/// Records of a raw log; `stray` bytes are expected to be skipped (telemetry1.log ends with 0x0a).
fn records(rel: &str, stray: u64) -> Vec<RawRecord> {
    let mut reader = rawlog::open(&common::data(rel)).unwrap();
    let recs: Vec<RawRecord> = reader.by_ref().map(|r| r.unwrap()).collect();
    assert_eq!(reader.skipped_bytes(), stray, "{rel}");
    recs
}

fn check(
    file: &str,
    got: &Result<Converted, telemetry_server::convert::BadRecord>,
    expect: Expect,
) {
    match (got, expect) {
        (Ok(c), Stored { dims, version }) => {
            assert_eq!(c.dims, dims, "{file}");
            assert_eq!(c.version, version, "{file}");
            let doc: Value = serde_json::from_str(&c.json)
                .unwrap_or_else(|e| panic!("{file}: stored JSON invalid: {e}"));
            assert!(
                !c.json.contains('\n'),
                "{file}: stored JSON must be one line"
            );
            assert!(doc.is_object(), "{file}");
        }
        (Err(bad), Rejected(kind)) => assert_eq!(bad.kind, kind, "{file}: {}", bad.detail),
        (got, expect) => panic!(
            "{file}: expected {expect:?}, got {:?}",
            got.as_ref()
                .map(|c| (&c.dims, c.version))
                .map_err(|b| b.to_string())
        ),
    }
}

/// Converts a single-document `.json` ping received on `date`.
fn convert_json(
    c: &Converter,
    rel: &str,
    date: &str,
) -> Result<Converted, telemetry_server::convert::BadRecord> {
    let body = std::fs::read(common::data(rel)).unwrap();
    c.convert_body("test-id", &body, date)
}

#[test]
fn every_ping_converts_or_is_rejected_as_expected() {
    let c = converter();
    let expectations: [(&str, Expect); 10] = [
        // Classic pings of 2011-2013 predate info.revision (seed: "Missing in payload: info.revision"),
        // and no revision-table entry covers Firefox 8 / 13 / 21.
        (
            "pings/classic-v1.idle-daily.Fx8.0a1.2011.akela.json",
            Rejected(MissingRevision),
        ),
        (
            "pings/classic-v1.saved-session.Fx13.0-beta.2012.akela.json",
            Rejected(MissingRevision),
        ),
        // A Heka-framed message ({fields, payload}): no `ver`, no `version` → "Missing payload version".
        (
            "pings/v4.crash.Fennec40-beta.2017-01.heka-decoded.batch-view.json",
            Rejected(ConversionError),
        ),
        // Other ping types pass through with a synthesised info; `crash` is not an allowed reason → OTHER.
        (
            "pings/v4.crash.Fx61.0a1-nightly.2018-04.pipeline-schemas.json",
            Stored {
                dims: [
                    "OTHER",
                    "Firefox",
                    "nightly",
                    "61.0a1",
                    "20180409100035",
                    "20180410",
                ],
                version: 5,
            },
        ),
        // Revision mozilla-central bb4d614a0b09 (Fx45 beta): no definitions here, no table entry for 45.
        (
            "pings/v4.main.Fx45.0-beta.2015-11.latewrites.pipeline-schemas.json",
            Rejected(MissingHistograms),
        ),
        (
            "pings/v4.main.Fx45.0-beta.2015-11.sample.pipeline-schemas.json",
            Rejected(MissingHistograms),
        ),
        // Fx54 nightly of 2017-01-30: its revision is unknown, the table maps nightly builds of
        // 2017-01-23..2017-04-18 to the mozilla-central 2017-03 definitions.
        (
            "pings/v4.main.Fx54.0a1-nightly.2017-01.heka-decoded.moztelemetry-gzip.json",
            Stored {
                dims: [
                    "main",
                    "Firefox",
                    "nightly",
                    "54.0a1",
                    "20170130030205",
                    "20180410",
                ],
                version: 5,
            },
        ),
        (
            "pings/v4.main.Fx60.0a1-nightly.2018-03.gc_sample.pipeline-schemas.json",
            Rejected(MissingHistograms),
        ),
        // No payload: "Unified ping has no top-level 'payload' field".
        (
            "pings/v4.main.min.pipeline-schemas.json",
            Rejected(ConversionError),
        ),
        // Aurora revision 0555aa58d0d5 of 2015-05: no definitions, no table entry.
        (
            "pings/v4.saved-session.Fx40.0a2-aurora.2015-05.uberi.json",
            Rejected(MissingHistograms),
        ),
    ];
    let dir: Vec<String> = std::fs::read_dir(common::data("pings"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert_eq!(
        dir.len(),
        expectations.len(),
        "a .json ping without an expectation: {dir:?}"
    );
    for (file, expect) in expectations {
        check(file, &convert_json(&c, file, "20180410"), expect);
    }
}

#[test]
fn tsv_pings_and_raw_logs_are_classified() {
    let c = converter();
    for file in [
        "pings/classic-v1.saved-session.Fx21.0a1-default.late_writes.toolbox.tsv",
        "pings/classic-v1.saved-session.Fx21.0a1-nightly.with_hangs.toolbox.tsv",
    ] {
        let text = std::fs::read(common::data(file)).unwrap();
        let line = text.strip_suffix(b"\n").unwrap_or(&text);
        // Firefox 21.0a1 of January 2013, no info.revision.
        check(
            file,
            &c.convert_line(line, "20130120"),
            Rejected(MissingRevision),
        );
    }

    // The v2 raw log: a gzip Fx40 aurora saved-session; no definitions for its revision.
    let file = "pings/rawlog-v2.saved-session.Fx40.0a2-aurora.2015-05.uberi.finished";
    let recs = records(file, 0);
    assert_eq!(recs.len(), 1);
    check(file, &c.convert(&recs[0]), Rejected(MissingHistograms));
}

#[test]
fn every_seed_sample_converts_or_is_rejected_as_expected() {
    let c = converter();
    // Classic idle-daily Fx 23.0.1 release, revision mozilla-release a55c55edf302 (= the embedded
    // FIREFOX_AURORA_23_BASE definitions); received 2013-09-10T14:21:51Z.
    let stored = Stored {
        dims: [
            "idle-daily",
            "Firefox",
            "release",
            "23.0.1",
            "20130814063812",
            "20130910",
        ],
        version: 2,
    };
    let recs = records("seed/worker-test-data/telemetry1.log", 1);
    assert_eq!(recs.len(), 1);
    let from_log = c.convert(&recs[0]);
    check("telemetry1.log", &from_log, stored);
    let from_json = convert_json(
        &c,
        "seed/worker-test-data/telemetry1.record0.payload.json",
        "20130910",
    );
    check("telemetry1.record0.payload.json", &from_json, stored);
    assert_eq!(
        from_log.as_ref().unwrap().json,
        from_json.as_ref().unwrap().json
    );
    assert_eq!(from_log.unwrap().id, "17caa68c-25f5-450a-9cce-7d31318846d8");

    // The same v4 saved-session twice (gzip, then plain): Fx39 nightly of 2015-03, revision
    // mozilla-central eab4a81e4457, for which there are no definitions and no table entry.
    let recs = records("seed/test/unicode.v1.packed", 0);
    assert_eq!(recs.len(), 2);
    for rec in &recs {
        check(
            "unicode.v1.packed",
            &c.convert(rec),
            Rejected(MissingHistograms),
        );
    }

    // Published v2 storage files: already converted (`ver: 2`), stored unchanged.
    for (file, lines, dims) in [
        (
            "seed/analysis-example/ss-ff-n-22.lzma",
            1,
            [
                "saved-session",
                "Firefox",
                "nightly",
                "22.0a1",
                "20130226031002",
                "20131011",
            ],
        ),
        (
            "seed/analysis-example/ss-ff-n-28.lzma",
            4,
            [
                "saved-session",
                "Firefox",
                "nightly",
                "28.0a1",
                "20131029030201",
                "20131011",
            ],
        ),
    ] {
        let raw = std::fs::File::open(common::data(file)).unwrap();
        let text =
            std::io::read_to_string(telemetry_server::storage::decompress(file, raw).unwrap())
                .unwrap();
        let converted: Vec<_> = text
            .lines()
            .map(|l| c.convert_line(l.as_bytes(), "20131011"))
            .collect();
        assert_eq!(converted.len(), lines, "{file}");
        for (line, got) in text.lines().zip(&converted) {
            check(file, got, Stored { dims, version: 2 });
            let before: Value = serde_json::from_str(line.split_once('\t').unwrap().1).unwrap();
            let after: Value = serde_json::from_str(&got.as_ref().unwrap().json).unwrap();
            assert_eq!(
                before, after,
                "{file}: ver 2 documents pass through unchanged"
            );
        }
    }
}

#[test]
fn classic_histograms_become_compact_arrays() {
    let c = converter();
    let payload: Value = serde_json::from_str(
        &std::fs::read_to_string(common::data(
            "seed/worker-test-data/telemetry1.record0.payload.json",
        ))
        .unwrap(),
    )
    .unwrap();
    let out = convert_json(
        &c,
        "seed/worker-test-data/telemetry1.record0.payload.json",
        "20130910",
    )
    .unwrap();
    let doc: Value = serde_json::from_str(&out.json).unwrap();
    assert_eq!(doc["ver"], 2);
    let defs = c
        .revisions()
        .by_url("http://hg.mozilla.org/releases/mozilla-release/rev/a55c55edf302")
        .unwrap();
    let compact = doc["histograms"].as_object().unwrap();
    let original = payload["histograms"].as_object().unwrap();
    assert_eq!(
        compact.len() as u32 + out.unknown_histograms,
        original.len() as u32
    );
    assert!(compact.len() > 100);
    for (name, array) in compact {
        let hist = &original[name];
        let layout = defs.resolve(name).unwrap().layout.as_ref().unwrap();
        let array = array.as_array().unwrap();
        assert_eq!(array.len(), layout.n_buckets() + 5, "{name}");
        for (bound, count) in hist["values"].as_object().unwrap() {
            let i = layout.index_of(bound.parse().unwrap()).unwrap();
            assert_eq!(&array[i], count, "{name}[{bound}]");
        }
        let total: i64 = array[..layout.n_buckets()]
            .iter()
            .map(|v| v.as_i64().unwrap())
            .sum();
        let expected: i64 = hist["values"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_i64().unwrap())
            .sum();
        assert_eq!(total, expected, "{name}");
        for (i, stat) in [
            "sum",
            "log_sum",
            "log_sum_squares",
            "sum_squares_lo",
            "sum_squares_hi",
        ]
        .iter()
        .enumerate()
        {
            let expected = hist.get(*stat).cloned().unwrap_or(Value::from(-1));
            assert_eq!(array[layout.n_buckets() + i], expected, "{name}.{stat}");
        }
    }
}

#[test]
fn keyed_histograms_are_converted() {
    let c = converter();
    let file = "pings/v4.main.Fx54.0a1-nightly.2017-01.heka-decoded.moztelemetry-gzip.json";
    let original: Value =
        serde_json::from_str(&std::fs::read_to_string(common::data(file)).unwrap()).unwrap();
    let out = convert_json(&c, file, "20170130").unwrap();
    let doc: Value = serde_json::from_str(&out.json).unwrap();
    let keyed = doc["payload"]["keyedHistograms"].as_object().unwrap();
    let original_keyed = original["payload"]["keyedHistograms"].as_object().unwrap();
    assert_eq!(
        keyed.len(),
        original_keyed.len(),
        "all 10 keyed histograms are defined in the 2017-03 file"
    );
    let ipc = &keyed["IPC_MESSAGE_SIZE"]["PBrowser::Msg_AsyncMessage"];
    // exponential 1..8000000, 50 buckets: 50 counts + 5 statistics; sum copied, others absent.
    assert_eq!(ipc.as_array().unwrap().len(), 55);
    assert_eq!(ipc[50], 3434328);
    assert_eq!(ipc[51], -1);
    let bucket_total: i64 = ipc.as_array().unwrap()[..50]
        .iter()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(bucket_total, 3 + 16 + 6 + 62 + 6 + 2 + 1);
    for (name, keys) in original_keyed {
        for key in keys.as_object().unwrap().keys() {
            assert!(keyed[name][key].is_array(), "{name}[{key}]");
        }
    }
    // Plain histograms: the 21 names missing from the March definitions are dropped and counted.
    assert_eq!(out.unknown_histograms, 21);
    assert_eq!(
        doc["payload"]["histograms"].as_object().unwrap().len(),
        485 - 21
    );
    assert_eq!(doc["info"]["reason"], "main");
    assert_eq!(doc["version"], 5);
    assert_eq!(
        doc["meta"], original["meta"],
        "untouched sections pass through"
    );
}

#[test]
fn unified_pings_convert_with_definitions_from_a_spec_dir() {
    let spec_dir = tempfile::tempdir().unwrap();
    for (file, rev) in [
        (
            "pings/v4.saved-session.Fx40.0a2-aurora.2015-05.uberi.json",
            "0555aa58d0d5",
        ),
        (
            "pings/v4.main.Fx45.0-beta.2015-11.sample.pipeline-schemas.json",
            "bb4d614a0b09",
        ),
    ] {
        let ping: Value =
            serde_json::from_str(&std::fs::read_to_string(common::data(file)).unwrap()).unwrap();
        assert_eq!(
            convert_defs::revision_hash(ping["payload"]["info"]["revision"].as_str().unwrap()),
            rev
        );
        let defs = convert_defs::definitions_from_payload(&ping["payload"]);
        std::fs::write(
            spec_dir.path().join(format!("{rev}.json")),
            defs.to_string(),
        )
        .unwrap();
    }
    let cache = Arc::new(RevisionCache::empty().with_dir(spec_dir.path()).unwrap());
    let c = Converter::new(Schema::from_json(DEFAULT_SCHEMA).unwrap(), cache.clone())
        .with_options(strict());

    let saved = convert_json(
        &c,
        "pings/v4.saved-session.Fx40.0a2-aurora.2015-05.uberi.json",
        "20150527",
    )
    .unwrap();
    assert_eq!(
        saved.dims,
        [
            "saved-session",
            "Firefox",
            "aurora",
            "40.0a2",
            "20150522004047",
            "20150527"
        ]
    );
    assert_eq!(saved.unknown_histograms, 0);
    let doc: Value = serde_json::from_str(&saved.json).unwrap();
    // Made to look classic: payload sections at the top, info merged and filled from environment.
    assert!(doc.get("payload").is_none());
    assert_eq!(
        (
            doc["ver"].clone(),
            doc["version"].clone(),
            doc["payload.ver"].clone()
        ),
        (5.into(), 5.into(), 4.into())
    );
    assert!(doc["histograms"]
        .as_object()
        .unwrap()
        .values()
        .all(Value::is_array));
    assert!(doc["simpleMeasurements"].is_object());
    assert_eq!(doc["clientID"], doc["clientId"]);
    let info = &doc["info"];
    assert_eq!(info["appName"], "Firefox");
    assert_eq!(
        info["reason"], "saved-session",
        "application-derived fields win over payload.info"
    );
    assert_eq!(
        info["revision"],
        "https://hg.mozilla.org/releases/mozilla-aurora/rev/0555aa58d0d5"
    );
    assert_eq!(info["OS"], "WINNT", "Windows_NT becomes WINNT");
    assert!(
        info["cpucount"].is_number() && info["memsize"].is_number() && info["locale"].is_string()
    );
    assert!(info["adapterVendorID"].is_string());

    let main = convert_json(
        &c,
        "pings/v4.main.Fx45.0-beta.2015-11.sample.pipeline-schemas.json",
        "20151105",
    )
    .unwrap();
    assert_eq!(
        main.dims,
        [
            "main",
            "Firefox",
            "beta",
            "45.0",
            "20151103030248",
            "20151105"
        ]
    );
    assert_eq!(main.unknown_histograms, 0);
    let doc: Value = serde_json::from_str(&main.json).unwrap();
    assert!(doc["payload"]["keyedHistograms"]
        .as_object()
        .unwrap()
        .values()
        .all(|k| k.as_object().unwrap().values().all(Value::is_array)));
    assert_eq!(cache.stats().by_revision, 2);
}

#[test]
fn a_missing_revision_is_a_typed_counted_error() {
    let cache = Arc::new(RevisionCache::embedded());
    let c = Converter::new(Schema::from_json(DEFAULT_SCHEMA).unwrap(), cache.clone())
        .with_options(strict());
    for _ in 0..3 {
        let bad = convert_json(
            &c,
            "pings/v4.main.Fx60.0a1-nightly.2018-03.gc_sample.pipeline-schemas.json",
            "20180308",
        )
        .unwrap_err();
        assert_eq!(bad.kind, MissingHistograms);
        assert_eq!(bad.detail, "Failed to fetch histograms for URL: https://hg.mozilla.org/mozilla-central/rev/919570891f1c8c8576be89f273f47fb9542c2a1f");
    }
    let bad = convert_json(
        &c,
        "pings/classic-v1.idle-daily.Fx8.0a1.2011.akela.json",
        "20110812",
    )
    .unwrap_err();
    assert_eq!(
        (bad.kind, bad.detail.as_str()),
        (MissingRevision, "Missing in payload: info.revision")
    );
    let stats = cache.stats();
    assert_eq!(stats.missing, 4);
    assert_eq!(
        stats.by_revision + stats.by_channel_build_id + stats.by_app_version,
        0
    );
    let resolved = cache
        .resolve(&Query { revision: Some("https://hg.mozilla.org/mozilla-central/rev/71224049c0b52ab190564d3ea0eab089a159a4cf"), channel: Some("nightly"), build_id: Some("20170130030205"), app_version: Some("54.0a1") })
        .unwrap();
    assert_eq!(
        (resolved.revision.as_str(), resolved.source),
        ("mozilla-central-2017-03", Source::ChannelBuildId)
    );
}

#[test]
fn corrupted_and_bad_path_records_are_classified() {
    let c = converter();
    let good = &records("seed/worker-test-data/telemetry1.log", 1)[0];
    let mut truncated_gzip = good.clone();
    truncated_gzip.body.truncate(good.body.len() / 2);
    assert_eq!(c.convert(&truncated_gzip).unwrap_err().kind, CorruptedData);
    let uuid_only = RawRecord {
        path: "17caa68c-25f5-450a-9cce-7d31318846d8".into(),
        ..good.clone()
    };
    assert_eq!(c.convert(&uuid_only).unwrap_err().kind, UuidOnlyPath);
    let short = RawRecord {
        path: "17caa68c-25f5-450a-9cce-7d31318846d8/idle-daily".into(),
        ..good.clone()
    };
    assert_eq!(c.convert(&short).unwrap_err().kind, InvalidPath);
    let empty = RawRecord {
        body: Vec::new(),
        ..good.clone()
    };
    assert_eq!(c.convert(&empty).unwrap_err().kind, EmptyData);
    // A bucket key that is not a lower bound of the definition: bad_payload (the seed's BadPayloadError).
    let payload = std::fs::read_to_string(common::data(
        "seed/worker-test-data/telemetry1.record0.payload.json",
    ))
    .unwrap();
    let broken = payload.replacen("\"values\":{\"0\":", "\"values\":{\"7777777\":", 1);
    assert_ne!(broken, payload);
    let bad = c
        .convert_body("id", broken.as_bytes(), "20130910")
        .unwrap_err();
    assert_eq!(bad.kind, BadPayload, "{}", bad.detail);
    assert!(Path::new(&common::data("seed")).exists());
}

#[test]
fn classic_pings_without_revision_resolve_through_the_table() {
    // The seed rejected every ping without info.revision; the table finds the Firefox 23 release
    // definitions from the channel and build id.
    let c = converter();
    let payload = std::fs::read_to_string(common::data(
        "seed/worker-test-data/telemetry1.record0.payload.json",
    ))
    .unwrap();
    let without = payload.replacen(
        "\"revision\":\"http://hg.mozilla.org/releases/mozilla-release/rev/a55c55edf302\"",
        "\"noRevision\":true",
        1,
    );
    assert_ne!(without, payload);
    let out = c
        .convert_body("id", without.as_bytes(), "20130910")
        .unwrap();
    assert_eq!(
        out.dims,
        [
            "idle-daily",
            "Firefox",
            "release",
            "23.0.1",
            "20130814063812",
            "20130910"
        ]
    );
    let with = c
        .convert_body("id", payload.as_bytes(), "20130910")
        .unwrap();
    let histograms =
        |json: &str| serde_json::from_str::<Value>(json).unwrap()["histograms"].clone();
    assert_eq!(histograms(&out.json), histograms(&with.json));
    assert_eq!(c.revisions().stats().by_channel_build_id, 1);
}
