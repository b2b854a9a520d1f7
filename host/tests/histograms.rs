//! Histogram definitions on real Histograms.json files of every era, and the bucket-spec document
//! compared entry for entry with the seed's cached specs.

mod common;

use serde_json::Value;
use telemetry_server::histograms::{
    bucket_spec_json, bucket_spec_string, Definitions, Kind, SpecError,
};

fn read(rel: &str) -> String {
    std::fs::read_to_string(common::data(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The three 2013 raw files beside the seed's cache, the cache file named by revision.
const SEED_SPECS: [(&str, &str); 3] = [
    (
        "seed/worker-test-data/a55c55edf302.json.FIREFOX_AURORA_23_BASE",
        "seed/worker-test-data/cache/a55c55edf302.json",
    ),
    (
        "seed/worker-test-data/8d3810543edc.json.FIREFOX_AURORA_24_BASE",
        "seed/worker-test-data/cache/8d3810543edc.json",
    ),
    (
        "seed/worker-test-data/ad0ae007aa9e.json.FIREFOX_AURORA_25_BASE",
        "seed/worker-test-data/cache/ad0ae007aa9e.json",
    ),
];

#[test]
fn bucket_specs_equal_the_seed_cache_entry_for_entry() {
    for (raw, cached) in SEED_SPECS {
        let defs = Definitions::from_json(&read(raw)).unwrap();
        let ours = bucket_spec_json(&defs);
        let theirs: Value = serde_json::from_str(&read(cached)).unwrap();
        let (ours, theirs) = (
            ours["histograms"].as_object().unwrap(),
            theirs["histograms"].as_object().unwrap(),
        );
        for (name, entry) in theirs {
            assert_eq!(ours.get(name), Some(entry), "{raw}: entry {name}");
        }
        let extra: Vec<&String> = ours.keys().filter(|k| !theirs.contains_key(*k)).collect();
        assert!(
            extra.is_empty(),
            "{raw}: entries the seed did not serve: {extra:?}"
        );
        assert!(theirs.len() > 700, "{cached} has {} entries", theirs.len());
    }
}

#[test]
fn bucket_spec_text_keeps_definition_order() {
    let (raw, cached) = SEED_SPECS[2];
    let text = bucket_spec_string(&Definitions::from_json(&read(raw)).unwrap());
    let ours: Vec<String> = telemetry_server::histograms::RawObject::parse(&text)
        .map(|root| {
            let inner = root.get("histograms").unwrap().get();
            telemetry_server::histograms::RawObject::parse(inner)
                .unwrap()
                .0
                .iter()
                .map(|(k, _)| k.to_string())
                .collect()
        })
        .unwrap();
    let cached = read(cached);
    let theirs: Vec<String> = {
        let root = telemetry_server::histograms::RawObject::parse(&cached).unwrap();
        let inner = root.get("histograms").unwrap().get();
        telemetry_server::histograms::RawObject::parse(inner)
            .unwrap()
            .0
            .iter()
            .map(|(k, _)| k.to_string())
            .collect()
    };
    assert_eq!(ours.len(), theirs.len());
    if let Some(i) = (0..ours.len()).find(|&i| ours[i] != theirs[i]) {
        panic!(
            "order differs at {i}: ours {} theirs {}",
            ours[i], theirs[i]
        );
    }
}

#[test]
fn the_two_cpp_constant_histograms_are_left_out_unpatched() {
    let defs = Definitions::from_json(&read(SEED_SPECS[0].0)).unwrap();
    let spec = bucket_spec_json(&defs);
    assert!(defs.get("GC_REASON_2").unwrap().layout.is_err());
    assert!(spec["histograms"].get("GC_REASON_2").is_none());
    assert!(spec["histograms"]
        .get("STARTUP_MEASUREMENT_ERRORS")
        .is_none());
    assert_eq!(
        spec["histograms"]["STARTUP_HTTP_CACHE_DISPOSITION"],
        spec["histograms"]["HTTP_CACHE_DISPOSITION"]
    );
}

#[test]
fn parses_every_era_and_kind() {
    let mc = Definitions::from_json(&read(
        "histograms/Histograms.mozilla-central.2017-03.telemetry-batch-view.json",
    ))
    .unwrap();
    assert_eq!(mc.len(), 1498);
    let count = |k: Kind| mc.iter().filter(|d| d.kind == k).count();
    assert_eq!(
        [
            Kind::Exponential,
            Kind::Enumerated,
            Kind::Count,
            Kind::Boolean,
            Kind::Linear,
            Kind::Flag,
            Kind::Categorical
        ]
        .map(count),
        [672, 285, 227, 164, 82, 61, 7]
    );
    assert_eq!(mc.iter().filter(|d| d.keyed).count(), 110);
    assert!(
        mc.iter().all(|d| d.layout.is_ok()),
        "every 2017 definition has buckets"
    );

    let short = Definitions::from_json(&read(
        "histograms/ShortHistograms.subset.2017-2018.telemetry-batch-view.json",
    ))
    .unwrap();
    assert_eq!(short.len(), 20);
    let linear = short.get("MOCK_KEYED_LINEAR").unwrap();
    assert!(linear.keyed);
    assert_eq!(
        linear.layout.as_ref().unwrap().bounds,
        [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]
    );

    let fixture = Definitions::from_json(&read(
        "histograms/Histograms.test-fixture.2017-2019.probe-scraper.json",
    ))
    .unwrap();
    let expr = fixture
        .get("EXPRESSION_IN_LOW_HIGH_ATTRIBUTE")
        .unwrap()
        .layout
        .as_ref()
        .unwrap();
    assert_eq!(
        (expr.low, expr.high, expr.n_buckets()),
        (32 * 1024, 16 * 1024 * 1024, 200)
    );
    let nvalues = fixture
        .get("TELEMETRY_TEST_CATEGORICAL_NVALUES")
        .unwrap()
        .layout
        .as_ref()
        .unwrap();
    assert_eq!(nvalues.n_buckets(), 71);
}

#[test]
fn toolbox_bucket_specs_load_and_reject_inconsistent_entries() {
    let fx16 = Definitions::from_json(&read(
        "histograms/bucket-spec.Fx16.2012.telemetry-toolbox.json",
    ))
    .unwrap();
    assert_eq!(fx16.len(), 494);
    let fx18 = Definitions::from_json(&read(
        "histograms/bucket-spec.Fx18.2012.telemetry-toolbox.json",
    ))
    .unwrap();
    assert_eq!(fx18.len(), 373);
    // 43 boolean/flag entries say bucket_count 2 but list 3 buckets: unusable, like the seed C++ loader.
    let inconsistent = fx18.iter().filter(|d| d.layout.is_err()).count();
    assert_eq!(inconsistent, 43);
    let spec = bucket_spec_json(&fx18);
    assert_eq!(
        spec["histograms"].as_object().unwrap().len(),
        fx18.len() - 43 + spec_startup_copies(&fx18)
    );
}

fn spec_startup_copies(defs: &Definitions) -> usize {
    defs.iter()
        .filter(|d| {
            d.layout.is_ok()
                && ["SQLITE", "HTTP", "SPDY", "CACHE", "DNS"]
                    .iter()
                    .any(|f| d.name.contains(f))
        })
        .count()
}

#[test]
fn seed_invalid_spec_files_are_typed_errors() {
    let parse = |f: &str| Definitions::from_json(&read(&format!("seed/worker-test-data/{f}")));
    assert!(matches!(parse("invalid.json"), Err(SpecError::Json(_))));
    assert!(matches!(
        parse("invalid_kind.json"),
        Err(SpecError::UnknownKind { .. })
    ));
    assert!(matches!(
        parse("invalid_schema.json"),
        Err(SpecError::Json(_))
    ));
    assert!(matches!(
        parse("missing_kind.json"),
        Err(SpecError::MissingKind(_))
    ));
}
