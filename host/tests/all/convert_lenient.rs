//! Real pings whose Histograms.json revision is not available offline: stored by default
//! (`keep`: each histogram's own parameters, else the nearest definitions, every histogram kept
//! holding the counts it was sent with); rejected in strict mode (`reject`, `missing_histograms`);
//! converted with the nearest definitions in `nearest` mode, histograms that do not fit dropped
//! and counted, every other rejection kept.

use crate::common;

use std::process::Command;

use serde_json::Value;
use telemetry_server::convert::{
    BadRecordKind, ConvertOptions, Converted, Converter, UnknownRevision,
};
use telemetry_server::histograms::{Query, RevisionCache, Source};
use telemetry_server::rawlog::{self, RawRecord};

fn nearest() -> Converter {
    Converter::with_defaults().with_options(ConvertOptions {
        unknown_revision: UnknownRevision::Nearest,
    })
}

fn strict() -> Converter {
    Converter::with_defaults().with_options(ConvertOptions {
        unknown_revision: UnknownRevision::Reject,
    })
}

/// The histogram sections of a stored document (unified main: under `payload`; flattened
/// saved-session: at the top level).
fn sections(doc: &Value) -> Vec<(&str, &Value)> {
    let mut out = Vec::new();
    for holder in [doc, &doc["payload"]] {
        for key in ["histograms", "keyedHistograms"] {
            if let Some(section) = holder.get(key) {
                out.push((key, section));
            }
        }
    }
    out
}

fn is_compact(value: &Value) -> bool {
    value
        .as_array()
        .is_some_and(|a| a.len() >= 6 && a.iter().all(Value::is_number))
}

/// Every histogram left in the output is a compact array (keyed: an object of them); returns
/// how many there are.
fn assert_compact(file: &str, c: &Converted) -> usize {
    let doc: Value = serde_json::from_str(&c.json).unwrap();
    let mut n = 0;
    let found = sections(&doc);
    assert!(!found.is_empty(), "{file}: no histogram section in output");
    for (key, section) in found {
        for (name, value) in section.as_object().unwrap() {
            let compacts: Vec<&Value> = if key == "keyedHistograms" {
                value.as_object().unwrap().values().collect()
            } else {
                vec![value]
            };
            for v in compacts {
                assert!(is_compact(v), "{file}: {key}.{name} is not compact: {v}");
                n += 1;
            }
        }
    }
    n
}

fn real_pings() -> Vec<(&'static str, Option<RawRecord>, Vec<u8>)> {
    let log = "pings/rawlog-v2.saved-session.Fx40.0a2-aurora.2015-05.uberi.finished";
    let mut rec: Vec<RawRecord> = rawlog::open(&common::data(log))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(rec.len(), 1);
    let mut out = vec![(log, rec.pop(), Vec::new())];
    for file in [
        "pings/v4.saved-session.Fx40.0a2-aurora.2015-05.uberi.json",
        "pings/v4.main.Fx45.0-beta.2015-11.sample.pipeline-schemas.json",
        "pings/v4.main.Fx45.0-beta.2015-11.latewrites.pipeline-schemas.json",
        "pings/v4.main.Fx60.0a1-nightly.2018-03.gc_sample.pipeline-schemas.json",
    ] {
        out.push((file, None, std::fs::read(common::data(file)).unwrap()));
    }
    out
}

#[test]
fn real_pings_rejected_by_strict_mode_are_stored_with_nearest() {
    let strict = strict();
    let lenient = nearest();
    for (file, rec, body) in real_pings() {
        let convert = |c: &Converter| match &rec {
            Some(r) => c.convert(r),
            None => c.convert_body("lenient-id", &body, "20180410"),
        };
        let bad = convert(&strict).unwrap_err();
        assert_eq!(
            bad.kind,
            BadRecordKind::MissingHistograms,
            "{file}: {}",
            bad.detail
        );
        let ok = convert(&lenient).unwrap_or_else(|e| panic!("{file}: {e}"));
        let expected_id = match &rec {
            Some(r) => r.path.trim_start_matches('/').split('/').next().unwrap(),
            None => "lenient-id",
        };
        assert_eq!(ok.id, expected_id, "{file}");
        assert_eq!(ok.version, 5, "{file}");
        let compact = assert_compact(file, &ok);
        assert_eq!(
            compact, ok.histograms as usize,
            "{file}: count matches output"
        );
        assert!(ok.histograms > 0, "{file}: some histograms convert");
        assert!(
            ok.unknown_histograms + ok.histograms_dropped > 0,
            "{file}: approximate definitions cannot fit every histogram"
        );
    }
}

#[test]
fn nearest_keeps_every_other_rejection() {
    let lenient = nearest();
    let err = |body: &str| {
        lenient
            .convert_body("id", body.as_bytes(), "20150101")
            .unwrap_err()
    };
    // No revision at all stays missing_revision; a bad URL stays what it was.
    assert_eq!(
        err(r#"{"ver": 1, "info": {"appVersion": "8.0"}, "histograms": {}}"#).kind,
        BadRecordKind::MissingRevision
    );
    assert_eq!(
        err(r#"{"ver": 1, "info": {"revision": "/rev/"}, "histograms": {}}"#).kind,
        BadRecordKind::MissingRevisionRepo
    );
    // A ping whose own revision is embedded is still validated strictly.
    let own = r#"{"ver": 1, "info": {"revision": "https://hg.mozilla.org/releases/mozilla-aurora/rev/a55c55edf302"}, "histograms": {"CYCLE_COLLECTOR_NEED_GC": {"values": {"9": 1}}}}"#;
    assert_eq!(err(own).kind, BadRecordKind::BadPayload);
    // With an unknown revision the same histogram is dropped instead.
    let unknown = own.replace("a55c55edf302", "0123456789ab");
    let ok = lenient
        .convert_body("id", unknown.as_bytes(), "20150101")
        .unwrap();
    assert_eq!((ok.histograms, ok.histograms_dropped), (0, 1));
    let doc: Value = serde_json::from_str(&ok.json).unwrap();
    assert_eq!(doc["histograms"], serde_json::json!({}));
}

#[test]
fn nearest_falls_back_to_the_newest_embedded_definitions() {
    let cache = RevisionCache::embedded();
    let query = Query {
        revision: Some("https://hg.mozilla.org/mozilla-central/rev/0123456789ab"),
        channel: Some("beta"),
        build_id: Some("20151101000000"),
        app_version: Some("45.0"),
    };
    assert!(cache.resolve(&query).is_err());
    let resolved = cache.nearest(&query).unwrap();
    assert_eq!(
        (resolved.revision.as_str(), resolved.source),
        ("mozilla-central-2017-03", Source::Newest)
    );
    let by_version = cache
        .nearest(&Query {
            app_version: Some("24.0"),
            ..query
        })
        .unwrap();
    assert_eq!(
        (by_version.revision.as_str(), by_version.source),
        ("8d3810543edc", Source::AppVersion)
    );
    assert!(RevisionCache::empty().nearest(&query).is_err());
}

fn convert_cli(input: &std::path::Path, mode: &str) -> (i32, Value) {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(common::binary())
        .args([
            "convert",
            "--json",
            "--date",
            "20250101",
            "--unknown-revision",
            mode,
        ])
        .arg("--data-dir")
        .arg(data.path())
        .arg(input)
        .output()
        .unwrap();
    let summary = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), summary)
}

#[test]
fn gen_pings_convert_with_nearest_and_fewer_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pings.tsv");
    std::fs::write(&input, common::gen_pings(200, 1)).unwrap();

    let (_, strict) = convert_cli(&input, "reject");
    let (_, lenient) = convert_cli(&input, "nearest");
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap();
    let missing = |v: &Value| {
        v["bad_records_by_type"]["missing_histograms"]
            .as_u64()
            .unwrap_or(0)
    };
    assert_eq!(n(&strict, "records_read"), 200);
    assert_eq!(n(&lenient, "records_read"), 200);
    assert!(missing(&strict) > 0, "{strict}");
    assert_eq!(missing(&lenient), 0, "{lenient}");
    assert!(n(&lenient, "records_written") > 0, "{lenient}");
    assert!(n(&lenient, "bad_records") < n(&strict, "bad_records"));
    assert_eq!(
        n(&lenient, "records_written"),
        n(&strict, "records_written") + missing(&strict),
        "exactly the missing_histograms records are rescued"
    );
    assert!(n(&lenient, "histograms_converted") > 0);
    assert_eq!(n(&strict, "histograms_dropped"), 0);
}

/// Every kind gen-pings.py makes (classic and unified, minimal pings, Heka frames, pings with a
/// client-sent `info`, histograms with corrupted keys) is stored by default: nothing rejected,
/// broken histograms dropped and counted.
#[test]
fn every_generated_ping_is_stored_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pings.tsv");
    std::fs::write(&input, common::gen_pings(400, 7)).unwrap();
    let (code, keep) = convert_cli(&input, "keep");
    let n = |k: &str| keep[k].as_u64().unwrap();
    assert_eq!(code, 0, "{keep}");
    assert_eq!(n("records_read"), 400);
    assert_eq!((n("records_written"), n("bad_records")), (400, 0), "{keep}");
    assert!(n("histograms_converted") > 0, "{keep}");
}

#[test]
fn unknown_revision_rejects_bad_values() {
    let out = Command::new(common::binary())
        .args([
            "convert",
            "--data-dir",
            "/nonexistent",
            "--unknown-revision",
            "guess",
            "x",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nearest"));
}

/// Every document of a real-ping file, as (id, body, converted).
fn documents(rel: &str, c: &Converter) -> Vec<(String, Vec<u8>, Result<Converted, String>)> {
    let path = common::data(rel);
    if rel.ends_with(".log") || rel.ends_with(".finished") {
        return rawlog::open(&path)
            .unwrap()
            .map(|r| {
                let rec = r.unwrap();
                let body = c.decode(&rec).unwrap().into_owned();
                let id = rec
                    .path
                    .trim_start_matches('/')
                    .split('/')
                    .next()
                    .unwrap()
                    .to_owned();
                (id, body, c.convert(&rec).map_err(|e| e.to_string()))
            })
            .collect();
    }
    let text = std::fs::read(&path).unwrap();
    if rel.ends_with(".tsv") {
        return text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|line| {
                let tab = line.iter().position(|&b| b == b'\t').unwrap();
                let id = String::from_utf8(line[..tab].to_vec()).unwrap();
                let converted = c.convert_line(line, "20130101").map_err(|e| e.to_string());
                (id, line[tab + 1..].to_vec(), converted)
            })
            .collect();
    }
    let converted = c
        .convert_body("real-id", &text, "20180410")
        .map_err(|e| e.to_string());
    vec![("real-id".to_owned(), text, converted)]
}

/// The histogram sections of a sent ping, by stored section name (a Heka frame's ping is its
/// `payload`; a unified ping's sections are in its `payload`).
fn sent_sections(ping: &Value) -> Vec<(&'static str, &serde_json::Map<String, Value>)> {
    let ping = if ping.get("fields").is_some() {
        &ping["payload"]
    } else {
        ping
    };
    let holder = if ping.get("version").is_some() {
        &ping["payload"]
    } else {
        ping
    };
    ["histograms", "keyedHistograms"]
        .into_iter()
        .filter_map(|key| Some((key, holder.get(key)?.as_object()?)))
        .collect()
}

fn sum_values(hist: &Value) -> i64 {
    hist["values"]
        .as_object()
        .map_or(0, |v| v.values().map(|n| n.as_i64().unwrap()).sum())
}

fn sum_buckets(compact: &Value) -> i64 {
    let a = compact.as_array().unwrap();
    a[..a.len() - 5].iter().map(|n| n.as_i64().unwrap()).sum()
}

/// Default settings store every real ping, mark how each was validated, and keep every
/// histogram's counts: for each histogram kept, the bucket counts sum as sent.
#[test]
fn every_real_ping_is_stored_by_default() {
    let c = Converter::with_defaults();
    let cases: [(&str, Option<&str>); 14] = [
        (
            "pings/classic-v1.idle-daily.Fx8.0a1.2011.akela.json",
            Some("self_described"),
        ),
        (
            "pings/classic-v1.saved-session.Fx13.0-beta.2012.akela.json",
            Some("nearest"),
        ),
        (
            "pings/classic-v1.saved-session.Fx21.0a1-default.late_writes.toolbox.tsv",
            Some("self_described"),
        ),
        (
            "pings/classic-v1.saved-session.Fx21.0a1-nightly.with_hangs.toolbox.tsv",
            Some("self_described"),
        ),
        (
            "pings/rawlog-v2.saved-session.Fx40.0a2-aurora.2015-05.uberi.finished",
            Some("self_described"),
        ),
        (
            "pings/v4.saved-session.Fx40.0a2-aurora.2015-05.uberi.json",
            Some("self_described"),
        ),
        (
            "pings/v4.main.Fx45.0-beta.2015-11.sample.pipeline-schemas.json",
            Some("self_described"),
        ),
        (
            "pings/v4.main.Fx45.0-beta.2015-11.latewrites.pipeline-schemas.json",
            Some("self_described"),
        ),
        (
            "pings/v4.main.Fx54.0a1-nightly.2017-01.heka-decoded.moztelemetry-gzip.json",
            Some("self_described"),
        ),
        (
            "pings/v4.main.Fx60.0a1-nightly.2018-03.gc_sample.pipeline-schemas.json",
            Some("self_described"),
        ),
        ("pings/v4.main.min.pipeline-schemas.json", None),
        (
            "pings/v4.crash.Fx61.0a1-nightly.2018-04.pipeline-schemas.json",
            None,
        ),
        (
            "pings/v4.crash.Fennec40-beta.2017-01.heka-decoded.batch-view.json",
            None,
        ),
        ("seed/worker-test-data/telemetry1.log", Some("definitions")),
    ];
    for (rel, mark) in cases {
        let docs = documents(rel, &c);
        assert!(!docs.is_empty(), "{rel}");
        for (id, body, converted) in docs {
            let out = converted.unwrap_or_else(|e| panic!("{rel}: not stored: {e}"));
            assert_eq!(out.id, id, "{rel}");
            assert_eq!(out.validation.map(|b| b.label()), mark, "{rel}");
            let stored: Value = serde_json::from_str(&out.json).unwrap();
            let sent: Value = serde_json::from_slice(&body).unwrap();
            let stored_mark = stored["conversion"]["validation"].as_str();
            match mark {
                Some("definitions") | None => assert_eq!(stored_mark, None, "{rel}"),
                _ => assert_eq!(stored_mark, mark, "{rel}: mark stored in the document"),
            }
            let (mut kept, mut sent_n) = (0, 0);
            for (key, section) in sent_sections(&sent) {
                let stored_section = [&stored, &stored["payload"]]
                    .into_iter()
                    .find_map(|h| h.get(key).and_then(Value::as_object))
                    .unwrap_or_else(|| panic!("{rel}: {key} not stored"));
                sent_n += section.len();
                for (name, compact) in stored_section {
                    let hist = &section[name];
                    if key == "keyedHistograms" {
                        for (k, compact) in compact.as_object().unwrap() {
                            assert_eq!(
                                sum_buckets(compact),
                                sum_values(&hist[k]),
                                "{rel}: {name}[{k}]"
                            );
                        }
                    } else {
                        assert_eq!(sum_buckets(compact), sum_values(hist), "{rel}: {name}");
                    }
                    kept += 1;
                }
            }
            let lost = (out.histograms_dropped + out.unknown_histograms) as usize;
            if mark.is_some() {
                assert!(kept > 0, "{rel}: no histogram kept");
            }
            if rel.contains("Fx13") {
                assert!(
                    lost > 0,
                    "{rel}: the corrupted histograms are dropped and counted"
                );
            }
            assert!(kept <= sent_n, "{rel}");
            eprintln!("{rel}: {kept} of {sent_n} histograms kept, {lost} dropped or unknown");
        }
    }
}

/// Strict mode still rejects what the 2013 converter rejected, one class each.
#[test]
fn strict_mode_rejects_what_the_2013_converter_rejected() {
    let s = strict();
    let cases = [
        (
            "pings/classic-v1.idle-daily.Fx8.0a1.2011.akela.json",
            BadRecordKind::MissingRevision,
        ),
        (
            "pings/v4.main.Fx45.0-beta.2015-11.sample.pipeline-schemas.json",
            BadRecordKind::MissingHistograms,
        ),
        (
            "pings/v4.main.min.pipeline-schemas.json",
            BadRecordKind::ConversionError,
        ),
        (
            "pings/v4.crash.Fennec40-beta.2017-01.heka-decoded.batch-view.json",
            BadRecordKind::ConversionError,
        ),
    ];
    for (rel, kind) in cases {
        let body = std::fs::read(common::data(rel)).unwrap();
        let err = s.convert_body("id", &body, "20180410").unwrap_err();
        assert_eq!(err.kind, kind, "{rel}: {}", err.detail);
    }
    // A histogram that disagrees with the ping's own definitions rejects it (bad_payload) in
    // strict mode; by default only that histogram is dropped.
    let own = r#"{"ver": 1, "info": {"revision": "https://hg.mozilla.org/releases/mozilla-aurora/rev/a55c55edf302"}, "histograms": {"CYCLE_COLLECTOR_NEED_GC": {"values": {"9": 1}}, "CYCLE_COLLECTOR_FULL": {"values": {"0": 1}}}}"#;
    assert_eq!(
        s.convert_body("id", own.as_bytes(), "20150101")
            .unwrap_err()
            .kind,
        BadRecordKind::BadPayload
    );
    let kept = Converter::with_defaults()
        .convert_body("id", own.as_bytes(), "20150101")
        .unwrap();
    assert_eq!(
        (kept.histograms_dropped, kept.validation.map(|b| b.label())),
        (1, Some("definitions"))
    );
    let doc: Value = serde_json::from_str(&kept.json).unwrap();
    assert_eq!(doc["conversion"]["histogramsDropped"], 1);
    assert!(doc["histograms"].get("CYCLE_COLLECTOR_NEED_GC").is_none());
}
