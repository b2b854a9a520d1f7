//! Storage on real data: schema/filter semantics for every seed filter and the production
//! schema, the numeric-range fix, dimension values that try to escape the data directory,
//! zstd/xz round trips of every real ping, the seed's LZMA_Alone files, rotation by size and
//! age, and partition pruning.

use crate::common;

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::time::{Duration, Instant};

use cap_std::fs::Dir;
use telemetry_server::storage::{
    self, split_line, Codec, DataDir, FinishedFile, LocalSource, PartitionName, PartitionSource,
    Schema, StorageError, StorageWriter, WriterOptions, OTHER, UNKNOWN,
};

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Stored dimension values for raw ones, exactly as a partition path would parse back.
fn stored(raw: &[&str]) -> Vec<String> {
    PartitionName::new(&s(raw), 2).dims
}

fn load_filter(rel: &str) -> Schema {
    Schema::load(&common::data(&format!("seed/mapreduce-filters/{rel}"))).unwrap()
}

/// A job filter template with its placeholders replaced as the job's run script did.
fn load_template(job: &str, replacements: &[(&str, &str)]) -> Schema {
    let path = common::data(&format!(
        "seed/mapreduce-filters/jobs/{job}.filter_template.json"
    ));
    let mut text = std::fs::read_to_string(path).unwrap();
    for (from, to) in replacements {
        text = text.replace(from, to);
    }
    Schema::from_json(&text).unwrap()
}

/// Asserts `filter.matches` on stored partitions: (raw dims, expected).
fn check(name: &str, filter: &Schema, cases: &[(&[&str], bool)]) {
    for (raw, expected) in cases {
        assert_eq!(filter.matches(&stored(raw)), *expected, "{name}: {raw:?}");
    }
}

const SS_FX_NIGHTLY: [&str; 6] = [
    "saved-session",
    "Firefox",
    "nightly",
    "22.0a1",
    "20130226031002",
    "20131011",
];

#[test]
fn every_seed_example_filter_selects_what_it_says() {
    check(
        "include_all",
        &load_filter("examples-v2/filter_include_all.json"),
        &[
            (&SS_FX_NIGHTLY, true),
            (
                &["OTHER", "OTHER", "OTHER", "UNKNOWN", "UNKNOWN", "20240101"],
                true,
            ),
            (&SS_FX_NIGHTLY[..5], false), // wrong number of dimensions
        ],
    );
    let nightly = load_filter("examples-v2/filter-nightly-buildid.json");
    assert_eq!(
        nightly.dimension_names(),
        [
            "reason",
            "appName",
            "appUpdateChannel",
            "appVersion",
            "appBuildID",
            "submission_date"
        ]
    );
    check(
        "nightly-buildid",
        &nightly,
        &[
            (
                &[
                    "saved-session",
                    "Firefox",
                    "nightly",
                    "30.0a1",
                    "20140301030201",
                    "20140308",
                ],
                true,
            ),
            (
                &[
                    "idle-daily",
                    "Firefox",
                    "nightly",
                    "30.0a1",
                    "20140228000000",
                    "20140309",
                ],
                true,
            ),
            (
                &[
                    "idle-daily",
                    "Firefox",
                    "nightly",
                    "30.0a1",
                    "20140227235959",
                    "20140309",
                ],
                false,
            ), // build before min
            (
                &[
                    "saved-session",
                    "Firefox",
                    "nightly",
                    "30.0a1",
                    "20140301030201",
                    "20140310",
                ],
                false,
            ), // date after max
            (
                &[
                    "saved-session",
                    "Firefox",
                    "nightly",
                    "30.0a1",
                    "20140301030201",
                    "20140307",
                ],
                false,
            ),
            (
                &[
                    "main",
                    "Firefox",
                    "nightly",
                    "30.0a1",
                    "20140301030201",
                    "20140308",
                ],
                false,
            ),
            (
                &[
                    "saved-session",
                    "Fennec",
                    "nightly",
                    "30.0a1",
                    "20140301030201",
                    "20140308",
                ],
                false,
            ),
            (
                &[
                    "saved-session",
                    "Firefox",
                    "aurora",
                    "30.0a1",
                    "20140301030201",
                    "20140308",
                ],
                false,
            ),
        ],
    );
    // Build-id date bounds cover their whole day (the seed's string compare excluded
    // 20130607030201 from max "20130607"; plain numeric compare would admit 2012 builds to min "20130600").
    check(
        "max_buildid",
        &load_filter("examples-v2/filter_max_buildid.json"),
        &[
            (
                &[
                    "saved-session",
                    "Firefox",
                    "nightly",
                    "23.0a1",
                    "20130607030201",
                    "20130610",
                ],
                true,
            ),
            (
                &[
                    "saved-session",
                    "Fennec",
                    "aurora",
                    "22.0a2",
                    "20130520004017",
                    "20130610",
                ],
                true,
            ),
            (
                &[
                    "saved-session",
                    "Firefox",
                    "nightly",
                    "24.0a1",
                    "20130608030201",
                    "20130610",
                ],
                false,
            ),
            (
                &[
                    "saved-session",
                    "Firefox",
                    "beta",
                    "22.0",
                    "20130520004017",
                    "20130610",
                ],
                false,
            ),
        ],
    );
    check(
        "min_buildid",
        &load_filter("examples-v2/filter_min_buildid.json"),
        &[
            (
                &[
                    "saved-session",
                    "Firefox",
                    "nightly",
                    "24.0a1",
                    "20130601030201",
                    "20130610",
                ],
                true,
            ),
            (
                &[
                    "saved-session",
                    "Firefox",
                    "nightly",
                    "28.0a1",
                    "20131029030201",
                    "20131029",
                ],
                true,
            ),
            (
                &[
                    "saved-session",
                    "Firefox",
                    "nightly",
                    "21.0a1",
                    "20120101000000",
                    "20130610",
                ],
                false,
            ),
            (
                &[
                    "saved-session",
                    "Firefox",
                    "nightly",
                    "21.0a1",
                    "20130531235959",
                    "20130610",
                ],
                false,
            ),
        ],
    );
    check(
        "min_max_buildid",
        &load_filter("examples-v2/filter_min_max_buildid.json"),
        &[
            (
                &[
                    "saved-session",
                    "Firefox",
                    "nightly",
                    "24.0a1",
                    "20130600000000",
                    "20130610",
                ],
                true,
            ),
            (
                &[
                    "saved-session",
                    "Firefox",
                    "nightly",
                    "24.0a1",
                    "20130607235959",
                    "20130610",
                ],
                true,
            ),
            (
                &[
                    "saved-session",
                    "Firefox",
                    "nightly",
                    "24.0a1",
                    "20130608000000",
                    "20130610",
                ],
                false,
            ),
            (
                &[
                    "saved-session",
                    "Firefox",
                    "nightly",
                    "24.0a1",
                    "20130531000000",
                    "20130610",
                ],
                false,
            ),
        ],
    );
    check(
        "saved_session_Fx_prerelease",
        &load_filter("examples-v2/filter_saved_session_Fx_prerelease.json"),
        &[
            (
                &[
                    "saved-session",
                    "Firefox",
                    "aurora",
                    "27.0a2",
                    "20131101004003",
                    "20131101",
                ],
                true,
            ),
            (
                &[
                    "saved-session",
                    "Fennec",
                    "nightly",
                    "28.0a1",
                    "20131029030201",
                    "20131103",
                ],
                true,
            ),
            (
                &[
                    "saved-session",
                    "Firefox",
                    "aurora",
                    "27.0a2",
                    "20131101004003",
                    "20131104",
                ],
                false,
            ),
            (
                &[
                    "saved-session",
                    "Firefox",
                    "aurora",
                    "27.0a2",
                    "20131101004003",
                    "20131031",
                ],
                false,
            ),
            (
                &[
                    "saved-session",
                    "Thunderbird",
                    "aurora",
                    "27.0a2",
                    "20131101004003",
                    "20131102",
                ],
                false,
            ),
            (
                &[
                    "saved-session",
                    "Firefox",
                    "release",
                    "25.0",
                    "20131101004003",
                    "20131102",
                ],
                false,
            ),
        ],
    );
    // Already-sanitised list values, and a channel with a dash stored as `nightly_ux`.
    check(
        "analysis-test-filter",
        &load_filter("analysis-test-filter.json"),
        &[
            (
                &[
                    "saved-session",
                    "Firefox",
                    "nightly-ux",
                    "27.0a1",
                    "20131001030205",
                    "20131013",
                ],
                true,
            ),
            (
                &[
                    "saved-session",
                    "Fennec",
                    "release",
                    "24.0",
                    "20130910000000",
                    "20131013",
                ],
                true,
            ),
            (
                &[
                    "saved-session",
                    "Firefox",
                    "OTHER",
                    "27.0a1",
                    "20131001030205",
                    "20131013",
                ],
                false,
            ),
            (
                &[
                    "idle-daily",
                    "Firefox",
                    "nightly",
                    "27.0a1",
                    "20131001030205",
                    "20131013",
                ],
                false,
            ),
            (
                &[
                    "saved-session",
                    "Firefox",
                    "nightly",
                    "27.0a1",
                    "20131001030205",
                    "20131014",
                ],
                false,
            ),
        ],
    );
    // An obsolete top-level flag is ignored.
    check(
        "include_invalid",
        &load_filter("filter_include_invalid.2013.json"),
        &[
            (
                &[
                    "saved-session",
                    "Fennec",
                    "beta",
                    "24.0",
                    "20130910000000",
                    "20131013",
                ],
                true,
            ),
            (
                &[
                    "saved-session",
                    "Thunderbird",
                    "beta",
                    "24.0",
                    "20130910000000",
                    "20131013",
                ],
                false,
            ),
        ],
    );
    // One dimension (the hotfix data set).
    let hotfix = load_filter("filter_hotfix.2014.json");
    for (date, expected) in [
        ("20140714", false),
        ("20140715", true),
        ("20140716", true),
        ("20140717", false),
    ] {
        assert_eq!(hotfix.matches(&stored(&[date])), expected, "hotfix {date}");
    }
    // The 9-dimension Heka layout; plain strings are sanitised like list values.
    let heka = load_filter("examples-heka/filter.json");
    assert_eq!(heka.len(), 9);
    let heka_dims = [
        "telemetry-2",
        "20150824",
        "telemetry",
        "4",
        "saved-session",
        "Firefox",
        "nightly",
        "43.0a1",
        "20150810122907",
    ];
    check("heka", &heka, &[(&heka_dims, true)]);
    for level in 0..9 {
        let mut other = heka_dims;
        other[level] = "x";
        check("heka", &heka, &[(&other, false)]);
    }
}

#[test]
fn every_seed_job_filter_template_selects_its_target_date() {
    let date = [("__TARGET_DATE__", "20140715")];
    for job in ["addon_perf", "experiments", "flash", "loop_failure_summary"] {
        let f = load_template(job, &date);
        assert!(
            f.matches_prefix(5, "20140715") && !f.matches_prefix(5, "20140716"),
            "{job}"
        );
    }
    check(
        "addon_perf",
        &load_template("addon_perf", &date),
        &[
            (
                &[
                    "saved-session",
                    "Thunderbird",
                    "release",
                    "31.0",
                    "20140710000000",
                    "20140715",
                ],
                true,
            ),
            (
                &[
                    "idle-daily",
                    "Firefox",
                    "release",
                    "31.0",
                    "20140710000000",
                    "20140715",
                ],
                false,
            ),
        ],
    );
    check(
        "experiments",
        &load_template("experiments", &date),
        &[
            (
                &[
                    "saved-session",
                    "Firefox",
                    "beta",
                    "31.0",
                    "20140710000000",
                    "20140715",
                ],
                true,
            ),
            (
                &[
                    "saved-session",
                    "Fennec",
                    "beta",
                    "31.0",
                    "20140710000000",
                    "20140715",
                ],
                false,
            ),
        ],
    );
    // flash lists OTHER: records whose appName the schema grouped away.
    check(
        "flash",
        &load_template("flash", &date),
        &[
            (
                &[
                    "saved-session",
                    "OTHER",
                    "release",
                    "31.0",
                    "20140710000000",
                    "20140715",
                ],
                true,
            ),
            (
                &[
                    "saved-session",
                    "Thunderbird",
                    "release",
                    "31.0",
                    "20140710000000",
                    "20140715",
                ],
                false,
            ),
        ],
    );
    check(
        "loop_failure_summary",
        &load_template("loop_failure_summary", &date),
        &[
            (
                &[
                    "loop",
                    "Firefox",
                    "nightly",
                    "33.0a1",
                    "20140710000000",
                    "20140715",
                ],
                true,
            ),
            (
                &[
                    "saved-session",
                    "Firefox",
                    "nightly",
                    "33.0a1",
                    "20140710000000",
                    "20140715",
                ],
                false,
            ),
        ],
    );
    // fxosping's placeholder is unquoted: the template itself is not JSON; its run script
    // substituted a list or "*".
    let raw = std::fs::read_to_string(common::data(
        "seed/mapreduce-filters/jobs/fxosping.filter_template.json",
    ))
    .unwrap();
    assert!(matches!(
        Schema::from_json(&raw),
        Err(StorageError::Schema { .. })
    ));
    let fxos = load_template("fxosping", &[("__TARGET_DATE__", "[\"20140715\"]")]);
    check(
        "fxosping",
        &fxos,
        &[
            (
                &[
                    "ftu",
                    "FirefoxOS",
                    "release",
                    "1.3",
                    "20140710000000",
                    "20140715",
                ],
                true,
            ),
            (
                &[
                    "ftu",
                    "FirefoxOS",
                    "release",
                    "1.3",
                    "20140710000000",
                    "20140716",
                ],
                false,
            ),
        ],
    );
    let fxos_all = load_template("fxosping", &[("__TARGET_DATE__", "\"*\"")]);
    check(
        "fxosping *",
        &fxos_all,
        &[(
            &[
                "ftu",
                "FirefoxOS",
                "release",
                "1.3",
                "20140710000000",
                "20140716",
            ],
            true,
        )],
    );
    // mainthreadio: build and date ranges; "__END__999999" pads a date to a full build id.
    let mtio = load_template(
        "mainthreadio",
        &[
            ("__BID_BEGIN__", "20140701"),
            ("__BID_END__", "20140707"),
            ("__BEGIN__", "20140708"),
            ("__END__", "20140710"),
        ],
    );
    check(
        "mainthreadio",
        &mtio,
        &[
            (
                &[
                    "saved-session",
                    "Firefox",
                    "nightly",
                    "33.0a1",
                    "20140701030201",
                    "20140708",
                ],
                true,
            ),
            (
                &[
                    "saved-session",
                    "Firefox",
                    "nightly",
                    "33.0a1",
                    "20140707235959",
                    "20140710",
                ],
                true,
            ),
            (
                &[
                    "saved-session",
                    "Firefox",
                    "nightly",
                    "33.0a1",
                    "20140708030201",
                    "20140710",
                ],
                false,
            ),
            (
                &[
                    "saved-session",
                    "Firefox",
                    "nightly",
                    "33.0a1",
                    "20140630030201",
                    "20140710",
                ],
                false,
            ),
            (
                &[
                    "saved-session",
                    "Firefox",
                    "nightly",
                    "33.0a1",
                    "20140705030201",
                    "20140711",
                ],
                false,
            ),
            (
                &[
                    "saved-session",
                    "Firefox",
                    "aurora",
                    "32.0a2",
                    "20140705030201",
                    "20140709",
                ],
                false,
            ),
        ],
    );
    for job in ["chromehangs", "slowsql"] {
        let f = load_template(job, &date);
        assert_eq!(f.len(), 9, "{job}: the Heka layout");
        let dims = [
            "telemetry-2",
            "20140715",
            "telemetry",
            "4",
            "saved_session",
            "Firefox",
            "nightly",
            "33.0a1",
            "20140710000000",
        ];
        check(job, &f, &[(&dims, true)]);
        let mut other_day = dims;
        other_day[1] = "20140716";
        check(job, &f, &[(&other_day, false)]);
    }
}

#[test]
fn production_schema_maps_values_to_stored_dimensions() {
    let schema = Schema::load(&common::data("seed/telemetry_schema.json")).unwrap();
    assert_eq!(
        schema.dimension_names(),
        [
            "reason",
            "appName",
            "appUpdateChannel",
            "appVersion",
            "appBuildID",
            "submission_date"
        ]
    );
    let apply = |v: &[Option<&str>]| schema.apply(v);
    assert_eq!(
        apply(&SS_FX_NIGHTLY.map(Some)),
        s(&SS_FX_NIGHTLY),
        "allowed values stay as they are (sanitising is the layout's job)"
    );
    for reason in [
        "idle-daily",
        "saved-session",
        "android-anr-report",
        "ftu",
        "loop",
        "flash-video",
        "appusage",
        "main",
    ] {
        assert_eq!(apply(&[Some(reason)])[0], reason);
    }
    assert_eq!(apply(&[Some("crash")])[0], OTHER);
    assert_eq!(apply(&[Some("main"), Some("SeaMonkey")])[1], OTHER);
    assert_eq!(
        apply(&[Some("main"), Some("B2G"), Some("nightly-ux")])[1..3],
        s(&["B2G", OTHER])
    );
    // Missing values become UNKNOWN first: kept by "*", OTHER for lists.
    let missing = apply(&[Some("main"), None, None, None, Some("20150101000000")]);
    assert_eq!(
        missing,
        s(&["main", OTHER, OTHER, UNKNOWN, "20150101000000", UNKNOWN])
    );
    // Extra values are ignored.
    assert_eq!(apply(&[Some("main"); 9]).len(), 6);
    // Values are compared as written: "saved_session" is not "saved-session".
    assert_eq!(apply(&[Some("saved_session")])[0], OTHER);

    // The 2013 schemas: submission_date first, then last.
    let first = Schema::load(&common::data(
        "seed/schema-history/telemetry_schema.2013-06-19.360b27a.json",
    ))
    .unwrap();
    assert_eq!(first.dimension_names()[0], "submission_date");
    assert_eq!(
        first.apply(&[Some("20130619"), Some("idle-daily"), Some("Thunderbird")])[2],
        OTHER
    );
    let second = Schema::load(&common::data(
        "seed/schema-history/telemetry_schema.2013-06-27.1a4a3d0.json",
    ))
    .unwrap();
    assert_eq!(
        second.apply(&[Some("idle-daily"), Some("Thunderbird")])[1],
        "Thunderbird"
    );
    assert_eq!(second.dimension_names()[5], "submission_date");
    let hotfix = Schema::load(&common::data(
        "seed/schema-history/hotfix_schema.2014-06-04.93cd4aa.json",
    ))
    .unwrap();
    assert_eq!(hotfix.apply(&[Some("20140604")]), s(&["20140604"]));
}

#[test]
fn numeric_ranges_compare_as_numbers() {
    // The C++ worker's test schema: memsize {"min": 448, "max": 500} (JSON numbers).
    let schema = Schema::load(&common::data(
        "seed/worker-test-data/telemetry_schema.test.json",
    ))
    .unwrap();
    assert_eq!(schema.len(), 7);
    let memsize = |v: &str| schema.apply(&[None, None, None, None, None, None, Some(v)])[6].clone();
    // The seed compared strings: "5" and "4480" passed (between "448" and "500"), "1000" failed min.
    for (value, expected) in [
        ("448", "448"),
        ("450", "450"),
        ("500", "500"),
        ("5", OTHER),
        ("4480", OTHER),
        ("447", OTHER),
        ("501", OTHER),
        ("1000", OTHER),
    ] {
        assert_eq!(memsize(value), expected, "memsize {value}");
    }
    let wide = Schema::from_json(r#"{"version":1,"dimensions":[{"field_name":"n","allowed_values":{"min":"9","max":"1000"}}]}"#).unwrap();
    assert_eq!(
        wide.apply(&[Some("10")]),
        s(&["10"]),
        "string order would put \"10\" before \"9\""
    );
    assert_eq!(wide.apply(&[Some("999.5")]), s(&["999.5"]));
    assert_eq!(wide.apply(&[Some("1000.5")]), s(&[OTHER]));
    assert_eq!(
        wide.apply(&[Some("abc")]),
        s(&[OTHER]),
        "non-numbers compare as strings: \"abc\" > \"9\""
    );
}

fn temp_data_dir() -> (tempfile::TempDir, DataDir) {
    let tmp = tempfile::tempdir().unwrap();
    let data = DataDir::open(&tmp.path().join("data")).unwrap();
    (tmp, data)
}

/// Every file under `root`, relative, sorted.
fn files_under(root: &std::path::Path) -> Vec<String> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn production_schema() -> Schema {
    Schema::load(&common::data("seed/telemetry_schema.json")).unwrap()
}

#[test]
fn hostile_dimension_values_stay_inside_the_storage_directory() {
    let (tmp, data) = temp_data_dir();
    let schema = production_schema();
    let mut writer = StorageWriter::new(
        data.sub(storage::datadir::STORAGE).unwrap(),
        schema.clone(),
        WriterOptions::default(),
    );
    let hostile: [[&str; 6]; 5] = [
        ["..", "..", "..", "..", "..", ".."],
        [
            "../../../../etc",
            "Firefox",
            "nightly",
            "/etc/passwd",
            "../x",
            "../../y",
        ],
        [
            "saved-session",
            "Firefox",
            "nightly",
            "/",
            "/abs/olute",
            "20240101",
        ],
        ["main", "Firefox", "nightly", "a/../../b", ".", ""],
        ["main", "Firefox", "nightly", "C:\\Windows", "\0", "%2e%2e"],
    ];
    for (i, raw) in hostile.iter().enumerate() {
        let dims = schema.apply(&raw.map(Some));
        writer.write(&dims, 2, &format!("id-{i}"), "{}").unwrap();
    }
    let finished = writer.finish().unwrap();
    assert_eq!(finished.len(), hostile.len());
    // Everything written is under data/storage, and nothing else appeared in the temp dir.
    let all = files_under(tmp.path());
    let mut finished_paths: Vec<String> = finished
        .iter()
        .map(|f| format!("data/storage/{}", f.path))
        .collect();
    finished_paths.sort();
    assert_eq!(all, finished_paths);
    for done in &finished {
        // Exactly one component per dimension: 4 directories and the file.
        assert_eq!(done.path.split('/').count(), 5, "{}", done.path);
        assert!(
            done.path
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".."),
            "{}",
            done.path
        );
        assert_eq!(
            storage::parse_partition_path(&done.path, 6).unwrap(),
            done.dims
        );
    }
    // And they list and read back.
    let source = LocalSource::new(data.sub("storage").unwrap());
    let listed = source
        .list(
            &Schema::load(&common::data(
                "seed/mapreduce-filters/examples-v2/filter_include_all.json",
            ))
            .unwrap(),
        )
        .unwrap();
    assert_eq!(listed.len(), hostile.len());

    // Subdirectory names must be one plain component.
    for bad in ["..", "../x", "/etc", "a/b", "", ".", "/"] {
        assert!(
            matches!(data.sub(bad), Err(StorageError::InvalidName { .. })),
            "{bad:?}"
        );
    }
    // And the capability itself refuses to leave, whatever a caller passes.
    let storage_dir = data.sub("storage").unwrap();
    assert!(storage_dir.create("../escape").is_err());
    assert!(storage_dir.create("/tmp/escape").is_err());
    assert!(storage_dir.create_dir_all("../../escape").is_err());
    assert!(!tmp.path().join("escape").exists() && !tmp.path().join("data/escape").exists());
}

/// Every real JSON ping as `(id, json)`, in its original (pretty-printed, multi-line) form.
fn real_pings() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(common::data("pings"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(out.len() >= 10);
    out
}

/// All `(id, json)` lines of every listed file, by path.
fn read_back(
    source: &dyn PartitionSource,
    filter: &Schema,
) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out = BTreeMap::new();
    for file in source.list(filter).unwrap() {
        let mut lines = Vec::new();
        for line in source.open(&file).unwrap().split(b'\n') {
            let line = line.unwrap();
            let (id, json) = split_line(&line).unwrap();
            lines.push((
                String::from_utf8(id.to_vec()).unwrap(),
                String::from_utf8(json.to_vec()).unwrap(),
            ));
        }
        out.insert(file.path, lines);
    }
    out
}

fn all_filter() -> Schema {
    Schema::load(&common::data(
        "seed/mapreduce-filters/examples-v2/filter_include_all.json",
    ))
    .unwrap()
}

#[test]
fn zstd_and_xz_round_trip_every_real_ping() {
    let pings = real_pings();
    for codec in [Codec::Zstd { level: 3 }, Codec::Xz { preset: 0 }] {
        let (_tmp, data) = temp_data_dir();
        let schema = production_schema();
        let options = WriterOptions {
            codec,
            ..WriterOptions::default()
        };
        let mut writer = StorageWriter::new(data.sub("storage").unwrap(), schema.clone(), options);
        let dims = schema.apply(&SS_FX_NIGHTLY.map(Some));
        for (id, json) in &pings {
            writer.write(&dims, 4, id, json).unwrap();
        }
        let finished = writer.finish().unwrap();
        assert_eq!(finished.len(), 1);
        let file = &finished[0];
        assert!(
            file.path.ends_with(&format!(".{}", codec.extension())),
            "{}",
            file.path
        );
        assert!(file
            .path
            .starts_with("saved_session/Firefox/nightly/22.0a1/20130226031002.20131011.v4.log."));
        assert_eq!(file.records, pings.len() as u64);
        assert!(
            file.size < file.uncompressed_bytes / 3,
            "{codec}: {} of {}",
            file.size,
            file.uncompressed_bytes
        );

        let source = LocalSource::new(data.sub("storage").unwrap());
        let back = read_back(&source, &all_filter());
        let lines = &back[&file.path];
        assert_eq!(lines.len(), pings.len());
        for ((id, json), (id2, json2)) in pings.iter().zip(lines) {
            assert_eq!(id, id2);
            assert!(!json2.contains('\n'));
            let a: serde_json::Value = serde_json::from_str(json).unwrap();
            let b: serde_json::Value = serde_json::from_str(json2).unwrap();
            assert!(a == b, "{codec}: {id} changed");
        }
    }
}

#[test]
fn ids_and_json_with_line_breaks_stay_one_line() {
    let (_tmp, data) = temp_data_dir();
    let schema =
        Schema::from_json(r#"{"dimensions":[{"field_name":"d","allowed_values":"*"}]}"#).unwrap();
    let mut writer = StorageWriter::new(
        data.sub("storage").unwrap(),
        schema,
        WriterOptions::default(),
    );
    writer
        .write(&s(&["20240101"]), 2, "a\tb\nc", "{\r\n\"x\":\t1\n}")
        .unwrap();
    assert!(matches!(
        writer.write(&s(&["a", "b"]), 2, "id", "{}"),
        Err(StorageError::DimensionCount {
            expected: 1,
            actual: 2
        })
    ));
    writer.finish().unwrap();
    let source = LocalSource::new(data.sub("storage").unwrap());
    let filter =
        Schema::from_json(r#"{"dimensions":[{"field_name":"d","allowed_values":"*"}]}"#).unwrap();
    let back = read_back(&source, &filter);
    let lines: Vec<_> = back.values().flatten().collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].0, "a_b_c");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&lines[0].1).unwrap(),
        serde_json::json!({"x": 1})
    );
}

#[test]
fn seed_lzma_alone_and_xz_files_read_by_extension() {
    // test.txt in three containers: the same five lines.
    let expected = "line 1\nline 2\nline 3\nanother \tline\nline 5\n";
    for name in ["test.txt.lzma", "test.txt.xz", "test.txt.gz"] {
        let file = std::fs::File::open(common::data(&format!("seed/test/{name}"))).unwrap();
        let mut text = String::new();
        storage::decompress(name, file)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, expected, "{name}");
    }
    // The published storage samples, placed at their S3 keys (input.txt) in a storage dir.
    let (_tmp, data) = temp_data_dir();
    let storage_dir = data.sub("storage").unwrap();
    let keys = std::fs::read_to_string(common::data("seed/analysis-example/input.txt")).unwrap();
    for line in keys.lines() {
        let (key, local) = line.split_once('\t').unwrap();
        let bytes = std::fs::read(common::data(&format!(
            "seed/analysis-example/{}",
            local.trim_start_matches("input/")
        )))
        .unwrap();
        assert_eq!(&bytes[..5], [0x5D, 0, 0, 0x80, 0], "LZMA_Alone magic");
        storage_dir
            .create_dir_all(key.rsplit_once('/').unwrap().0)
            .unwrap();
        storage_dir.write(key, &bytes).unwrap();
    }
    let source = LocalSource::new(data.sub("storage").unwrap());
    let back = read_back(&source, &all_filter());
    let counts: Vec<usize> = back.values().map(Vec::len).collect();
    assert_eq!(counts, [1, 4], "{:?}", back.keys());
    for (path, lines) in &back {
        let dims = storage::parse_partition_path(path, 6).unwrap();
        for (id, json) in lines {
            assert_eq!(id.len(), 36, "{id}");
            let doc: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(doc["ver"], 2);
            assert_eq!(doc["info"]["appVersion"], dims[3].as_str());
            assert_eq!(doc["info"]["appBuildID"], dims[4].as_str());
        }
    }
    // The same records through `records`: (id, dims, json) in path order.
    let all: Vec<storage::Record> = storage::records(&source, &all_filter())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0].dims[3], "22.0a1");
    assert!(all[1..].iter().all(|r| r.dims[3] == "28.0a1"));
    assert_eq!(all[0].id, back.values().next().unwrap()[0].0);

    // Pruned by version: only the 28.0a1 file.
    let only28 = Schema::from_json(
        r#"{"version": 1, "dimensions": [
            {"field_name": "reason", "allowed_values": "*"},
            {"field_name": "appName", "allowed_values": "*"},
            {"field_name": "appUpdateChannel", "allowed_values": "*"},
            {"field_name": "appVersion", "allowed_values": ["28.0a1"]},
            {"field_name": "appBuildID", "allowed_values": "*"},
            {"field_name": "submission_date", "allowed_values": "*"}]}"#,
    )
    .unwrap();
    let listed = source.list(&only28).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        listed[0].dims,
        s(&[
            "saved_session",
            "Firefox",
            "nightly",
            "28.0a1",
            "20131029030201",
            "20131029"
        ])
    );
}

#[test]
fn files_rotate_by_size() {
    let (_tmp, data) = temp_data_dir();
    let schema = production_schema();
    let pings = real_pings();
    let options = WriterOptions {
        max_file_bytes: 400_000,
        ..WriterOptions::default()
    };
    let mut writer = StorageWriter::new(data.sub("storage").unwrap(), schema.clone(), options);
    let dims = schema.apply(&SS_FX_NIGHTLY.map(Some));
    let mut finished_early = 0;
    for (id, json) in &pings {
        writer.write(&dims, 4, id, json).unwrap();
        finished_early += writer.take_finished().len();
    }
    let rest = writer.finish().unwrap();
    assert_eq!(rest.len(), 1, "the last file is finished by finish()");
    // Expected: a file is finished by the first line that takes it to 400 KB or more.
    let (mut expected_files, mut in_file) = (0, 0);
    for (id, json) in &pings {
        in_file += id.len() + json.len() + 2;
        if in_file >= 400_000 {
            expected_files += 1;
            in_file = 0;
        }
    }
    assert!(expected_files >= 2);
    assert_eq!(finished_early, expected_files);
    let source = LocalSource::new(data.sub("storage").unwrap());
    let back = read_back(&source, &all_filter());
    assert_eq!(back.len(), finished_early + 1);
    assert_eq!(back.values().map(Vec::len).sum::<usize>(), pings.len());
    // Each file stopped at the first line that took it to 400 KB or more.
    for lines in back.values() {
        let sizes: Vec<usize> = lines
            .iter()
            .map(|(id, json)| id.len() + json.len() + 2)
            .collect();
        let before_last: usize = sizes[..sizes.len() - 1].iter().sum();
        assert!(before_last < 400_000, "{sizes:?}");
    }
}

#[test]
fn files_rotate_by_age_and_partial_files_are_invisible() {
    let (_tmp, data) = temp_data_dir();
    let schema = production_schema();
    let options = WriterOptions {
        max_file_age: Duration::from_secs(3600),
        ..WriterOptions::default()
    };
    let mut writer = StorageWriter::new(data.sub("storage").unwrap(), schema.clone(), options);
    let source = LocalSource::new(data.sub("storage").unwrap());
    let a = schema.apply(&SS_FX_NIGHTLY.map(Some));
    let b = schema.apply(
        &[
            "main",
            "Firefox",
            "release",
            "45.0",
            "20151103030248",
            "20151105",
        ]
        .map(Some),
    );
    writer.write(&a, 2, "1", "{\"n\":1}").unwrap();
    writer.write(&b, 4, "2", "{\"n\":2}").unwrap();
    // Open files are `.partial` and not listed.
    assert!(source.list(&all_filter()).unwrap().is_empty());
    assert_eq!(writer.open_files(), 2);
    assert!(writer.rotate_expired_at(Instant::now()).unwrap().is_empty());
    let rotated = writer
        .rotate_expired_at(Instant::now() + Duration::from_secs(3601))
        .unwrap();
    assert_eq!(rotated.len(), 2);
    assert_eq!(writer.open_files(), 0);
    assert_eq!(source.list(&all_filter()).unwrap().len(), 2);
    // Writing again opens a new file in the same partition.
    writer.write(&a, 2, "3", "{\"n\":3}").unwrap();
    let last: Vec<FinishedFile> = writer.finish().unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(
        last[0].dims,
        rotated
            .iter()
            .find(|f| f.dims[0] == "saved_session")
            .unwrap()
            .dims
    );
    let listed = source.list(&all_filter()).unwrap();
    assert_eq!(listed.len(), 3);
    for file in &listed {
        assert!(!file.path.ends_with(".partial"));
        let from_writer = rotated
            .iter()
            .chain(&last)
            .find(|f| f.path == file.path)
            .unwrap();
        assert_eq!(file.size, from_writer.size);
        assert_eq!(file.clone(), from_writer.partition_file());
    }
}

#[test]
fn open_files_are_bounded_and_a_dropped_writer_still_finishes() {
    let (_tmp, data) = temp_data_dir();
    let schema = production_schema();
    let options = WriterOptions {
        max_open_files: 2,
        ..WriterOptions::default()
    };
    let mut writer = StorageWriter::new(data.sub("storage").unwrap(), schema.clone(), options);
    for version in ["1.0", "2.0", "3.0"] {
        let dims = schema.apply(
            &[
                "main",
                "Firefox",
                "release",
                version,
                "20150101000000",
                "20150102",
            ]
            .map(Some),
        );
        writer.write(&dims, 4, version, "{}").unwrap();
        assert!(writer.open_files() <= 2);
    }
    let evicted = writer.take_finished();
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0].dims[3], "1.0", "the least recently written");
    drop(writer);
    let source = LocalSource::new(data.sub("storage").unwrap());
    assert_eq!(source.list(&all_filter()).unwrap().len(), 3);
}

#[test]
fn pruning_lists_only_matching_files() {
    let (_tmp, data) = temp_data_dir();
    let schema = production_schema();
    let mut writer = StorageWriter::new(
        data.sub("storage").unwrap(),
        schema.clone(),
        WriterOptions::default(),
    );
    let mut expected_by_filter: BTreeMap<&str, usize> = BTreeMap::new();
    let partitions = [
        [
            "saved-session",
            "Firefox",
            "nightly",
            "28.0a1",
            "20131029030201",
            "20131101",
        ],
        [
            "saved-session",
            "Fennec",
            "aurora",
            "27.0a2",
            "20131028004003",
            "20131102",
        ],
        [
            "saved-session",
            "Firefox",
            "release",
            "25.0",
            "20131028004003",
            "20131103",
        ],
        [
            "idle-daily",
            "Firefox",
            "nightly",
            "28.0a1",
            "20131029030201",
            "20131101",
        ],
        [
            "saved-session",
            "Firefox",
            "nightly",
            "28.0a1",
            "20131029030201",
            "20131104",
        ],
        [
            "saved-session",
            "Thunderbird",
            "nightly",
            "28.0a1",
            "20131029030201",
            "20131102",
        ],
        [
            "main",
            "Firefox",
            "nightly",
            "45.0a1",
            "20151103030248",
            "20151105",
        ],
    ];
    for (i, raw) in partitions.iter().enumerate() {
        writer
            .write(&schema.apply(&raw.map(Some)), 2, &i.to_string(), "{}")
            .unwrap();
    }
    writer.finish().unwrap();
    // Misleading files: a partial file and a stray file at a directory level.
    let storage_dir: Dir = data.sub("storage").unwrap();
    storage_dir
        .write(
            "saved_session/Firefox/nightly/28.0a1/20131029030201.20131101.v2.log.x.zst.partial",
            b"",
        )
        .unwrap();
    storage_dir
        .write("saved_session/Firefox/stray.20131101.v2.log.x.zst", b"")
        .unwrap();
    // A symbolic link to a partition tree outside the storage directory is not followed.
    let outside = tempfile::tempdir().unwrap();
    let leaf = outside.path().join("Firefox/nightly/45.0a1");
    std::fs::create_dir_all(&leaf).unwrap();
    std::fs::write(leaf.join("20151103030248.20151105.v2.log.x.zst"), b"x").unwrap();
    std::os::unix::fs::symlink(outside.path(), data.path().join("storage/appusage")).unwrap();
    let source = LocalSource::new(storage_dir);
    expected_by_filter.insert("examples-v2/filter_saved_session_Fx_prerelease.json", 2);
    expected_by_filter.insert("examples-v2/filter_include_all.json", partitions.len());
    expected_by_filter.insert("examples-v2/filter_min_buildid.json", 3);
    expected_by_filter.insert("examples-v2/filter-nightly-buildid.json", 0);
    for (filter_file, expected) in expected_by_filter {
        let filter = load_filter(filter_file);
        let listed = source.list(&filter).unwrap();
        assert_eq!(listed.len(), expected, "{filter_file}: {listed:?}");
        for file in &listed {
            assert!(filter.matches(&file.dims), "{filter_file}: {file:?}");
            assert!(file.size > 0);
        }
    }
    let prerelease = source
        .list(&load_filter(
            "examples-v2/filter_saved_session_Fx_prerelease.json",
        ))
        .unwrap();
    let versions: Vec<&str> = prerelease.iter().map(|f| f.dims[3].as_str()).collect();
    assert_eq!(versions, ["27.0a2", "28.0a1"]);
}

#[test]
fn records_report_lines_without_a_tab_and_go_on() {
    let (_tmp, data) = temp_data_dir();
    let storage_dir = data.sub("storage").unwrap();
    storage_dir
        .write(
            "a.20240101.v2.log",
            b"id1\t{}\nno tab here\nid3\t{\"x\":1}\n",
        )
        .unwrap();
    storage_dir
        .write(
            "b.20240101.v2.log.u.zst",
            zstd::stream::encode_all(&b"id4\t[]\n"[..], 3).unwrap(),
        )
        .unwrap();
    let filter = Schema::from_json(r#"{"dimensions":[{"field_name":"b","allowed_values":"*"},{"field_name":"d","allowed_values":"*"}]}"#).unwrap();
    let source = LocalSource::new(storage_dir);
    let items: Vec<_> = storage::records(&source, &filter).unwrap().collect();
    assert_eq!(items.len(), 4);
    assert!(
        matches!(&items[1], Err(StorageError::BadLine { path, line: 2 }) if path == "a.20240101.v2.log"),
        "{items:?}"
    );
    let ids: Vec<String> = items
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(ids, ["id1", "id3", "id4"]);
    assert_eq!(
        items[3].as_ref().unwrap().dims.to_vec(),
        s(&["b", "20240101"])
    );
}
