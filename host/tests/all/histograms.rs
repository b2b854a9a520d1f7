//! Histogram definitions on real Histograms.json files of every era, and the bucket-spec document
//! compared entry for entry with the seed's cached specs.

use crate::common;

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

/// Runs a version-control command in `dir` with fixed identity and commit `date`.
fn vcs(dir: &std::path::Path, program: &str, args: &[&str], date: &str) {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("HGUSER", "test <test@example.com>")
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_DATE", date)
        .output()
        .unwrap_or_else(|e| panic!("{program} (scripts/install-deps.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A repository whose commits set Histograms.json (and milestone.txt) to `versions` in turn:
/// (commit date, Histograms.json file under ../shared/data, milestone); a `None` file commits an
/// unrelated change. Returns the commit hashes that changed Histograms.json, oldest first.
fn repository(
    dir: &std::path::Path,
    program: &str,
    versions: &[(&str, Option<&str>, &str)],
) -> Vec<String> {
    std::fs::create_dir_all(dir.join("toolkit/components/telemetry")).unwrap();
    std::fs::create_dir_all(dir.join("config")).unwrap();
    let init_date = versions[0].0;
    if program == "hg" {
        vcs(dir, "hg", &["init"], init_date);
    } else {
        vcs(dir, "git", &["init", "-q"], init_date);
    }
    let mut changed = Vec::new();
    for (i, (date, file, milestone)) in versions.iter().enumerate() {
        match file {
            Some(file) => std::fs::write(
                dir.join(telemetry_server::histograms::HISTOGRAMS_PATH),
                read(file),
            )
            .unwrap(),
            None => std::fs::write(dir.join("README"), format!("change {i}")).unwrap(),
        }
        std::fs::write(
            dir.join("config/milestone.txt"),
            format!("# milestone\n{milestone}\n"),
        )
        .unwrap();
        if program == "hg" {
            vcs(
                dir,
                "hg",
                &["commit", "-q", "-A", "-m", "change", "-d", date],
                date,
            );
        } else {
            vcs(dir, "git", &["add", "-A"], date);
            vcs(dir, "git", &["commit", "-q", "-m", "change"], date);
        }
        if file.is_some() {
            let head = match program {
                "hg" => std::process::Command::new("hg")
                    .args(["log", "-r", ".", "--template", "{node}"])
                    .current_dir(dir)
                    .output(),
                _ => std::process::Command::new("git")
                    .args(["rev-parse", "HEAD"])
                    .current_dir(dir)
                    .output(),
            };
            changed.push(
                String::from_utf8(head.unwrap().stdout)
                    .unwrap()
                    .trim()
                    .to_owned(),
            );
        }
    }
    changed
}

/// `histograms import-history` over a real Mercurial and a real git repository holding several
/// real Histograms.json versions: each distinct file written once, named by its content; a
/// revision table whose build-id ranges make a classic ping without a revision resolve.
#[test]
fn import_history_reads_hg_and_git_and_the_fallback_resolves_by_build_id() {
    use telemetry_server::histograms::{Query, RevisionCache, Source};
    let tmp = tempfile::tempdir().unwrap();
    let (central, beta, out) = (
        tmp.path().join("mozilla-central"),
        tmp.path().join("beta-clone"),
        tmp.path().join("history"),
    );
    let aurora23 = "seed/worker-test-data/a55c55edf302.json.FIREFOX_AURORA_23_BASE";
    let aurora24 = "seed/worker-test-data/8d3810543edc.json.FIREFOX_AURORA_24_BASE";
    let aurora25 = "seed/worker-test-data/ad0ae007aa9e.json.FIREFOX_AURORA_25_BASE";
    let hg = repository(
        &central,
        "hg",
        &[
            ("2012-12-01 00:00:00 +0000", Some(aurora23), "21.0a1"),
            ("2013-02-01 12:00:00 +0000", Some(aurora24), "22.0a1"),
            ("2013-02-15 00:00:00 +0000", None, "22.0a1"),
            ("2013-03-01 00:00:00 +0000", Some(aurora25), "22.0a1"),
            ("2013-04-01 00:00:00 +0000", Some(aurora23), "23.0a1"),
        ],
    );
    let git = repository(
        &beta,
        "git",
        &[
            ("2013-01-07T00:00:00+0000", Some(aurora24), "20.0"),
            (
                "2013-02-18T00:00:00+0000",
                Some("histograms/Histograms.mozilla-central.2017-03.telemetry-batch-view.json"),
                "21.0",
            ),
        ],
    );
    assert_eq!((hg.len(), git.len()), (4, 2));
    let beta_arg = format!("releases/mozilla-beta={}", beta.display());
    let run = |args: &[&str]| {
        let out = std::process::Command::new(common::binary())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let stdout = run(&[
        "histograms",
        "import-history",
        "--out",
        out.to_str().unwrap(),
        central.to_str().unwrap(),
        &beta_arg,
    ]);
    assert!(
        stdout.contains("4 distinct Histograms.json versions (4 new)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("mozilla-central") && stdout.contains("releases/mozilla-beta"),
        "{stdout}"
    );

    // Each distinct content once, named by its hash.
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "revisions.json")
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "{files:?}");
    for file in &files {
        let bytes = std::fs::read(out.join(file)).unwrap();
        let hash = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&bytes))
        };
        assert_eq!(file, &format!("{}.json", &hash[..32]));
    }
    let table: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("revisions.json")).unwrap())
            .unwrap();
    let entries = table["revisions"].as_array().unwrap();
    assert_eq!(entries.len(), 6);
    let first_and_last = entries
        .iter()
        .filter(|e| e["repo"] == "mozilla-central")
        .map(|e| e["file"].clone())
        .collect::<Vec<_>>();
    assert_eq!(
        first_and_last[0], first_and_last[3],
        "the same content is one file"
    );
    let nightly_24 = entries.iter().find(|e| e["rev"] == hg[1][..12]).unwrap();
    assert_eq!(
        nightly_24["builds"]["nightly"],
        serde_json::json!(["20130201120000", "20130301000000"])
    );
    assert_eq!(nightly_24["app_versions"], serde_json::json!(["22"]));

    // A classic Fx21 nightly ping without a revision (build 20130108033457) resolves by build id
    // to the definitions in effect that day; an aurora build does not (no aurora repository).
    let cache = RevisionCache::empty().with_dir(&out).unwrap();
    let query = Query {
        revision: None,
        channel: Some("nightly"),
        build_id: Some("20130108033457"),
        app_version: Some("21.0a1"),
    };
    let resolved = cache.resolve(&query).unwrap();
    assert_eq!(
        (resolved.revision.as_str(), resolved.source),
        (&hg[0][..12], Source::ChannelBuildId)
    );
    let expected = Definitions::from_json_with_constants(
        &read(aurora23),
        &telemetry_server::histograms::SEED_CONSTANTS,
    )
    .unwrap();
    assert_eq!(resolved.definitions.len(), expected.len());
    let beta_build = cache
        .resolve(&Query {
            channel: Some("beta"),
            build_id: Some("20130301000000"),
            ..query
        })
        .unwrap();
    assert_eq!(beta_build.revision, git[1][..12]);
    assert!(cache
        .resolve(&Query {
            channel: Some("aurora"),
            app_version: None,
            ..query
        })
        .is_err());

    // The same ping converts with the imported history (strict mode resolves it by build id)
    // and is missing_revision without.
    let ping =
        common::data("pings/classic-v1.saved-session.Fx21.0a1-nightly.with_hangs.toolbox.tsv");
    let convert = |extra: &[&str]| {
        let data = tempfile::tempdir().unwrap();
        let mut args = vec![
            "convert",
            "--json",
            "--unknown-revision",
            "nearest",
            "--date",
            "20130110",
            "--data-dir",
            data.path().to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.push(ping.to_str().unwrap());
        let out = std::process::Command::new(common::binary())
            .args(&args)
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let without = convert(&[]);
    assert_eq!(
        without["bad_records_by_type"]["missing_revision"], 1,
        "{without}"
    );
    let with = convert(&["--histograms", out.to_str().unwrap()]);
    assert_eq!(with["records_written"], 1, "{with}");
    assert!(with["histograms_converted"].as_u64().unwrap() > 0, "{with}");

    // Importing again changes nothing; entries of other repositories are kept.
    let again = run(&[
        "histograms",
        "import-history",
        "--out",
        out.to_str().unwrap(),
        central.to_str().unwrap(),
    ]);
    assert!(
        again.contains("3 distinct Histograms.json versions (0 new)"),
        "{again}"
    );
    let table: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("revisions.json")).unwrap())
            .unwrap();
    assert_eq!(table["revisions"].as_array().unwrap().len(), 6);
}
