//! docs/jobs/first-job.md, run as written: every ```` ```sh ```` block of the page, in order, in
//! one bash, once per language (in a temp dir outside the repository, the real pings, the real
//! binary on `PATH`, a real server), with only the page's language and port lines swapped. The
//! page's own `cmp` checks the server's result equals the local one; this test checks that result
//! against a native count over the data the page converted, the chart it fetched, and that all
//! four languages print the same.

use crate::common;
use crate::job_new::{native_channels, outside_repo, with_build_env, LANGS};
use std::path::Path;

const PAGE: &str = "docs/jobs/first-job.md";

/// The page's runnable blocks, joined; panics if a line this test swaps is missing.
fn script(lang: &str, pings: &Path, port: u16) -> String {
    let page = std::fs::read_to_string(common::repo_root().join(PAGE)).unwrap();
    let mut script = String::new();
    let mut in_block = false;
    for line in page.lines() {
        if in_block && line == "```" {
            in_block = false;
        } else if in_block {
            script.push_str(line);
            script.push('\n');
        } else if line == "```sh" {
            in_block = true;
        }
    }
    let swaps = [
        ("export JOB_LANG=rust", format!("export JOB_LANG={lang}")),
        (
            "export PINGS=$HOME/pings",
            format!("export PINGS={}", pings.display()),
        ),
        ("PORT=8080", format!("PORT={port}")),
    ];
    for (from, to) in swaps {
        let line = script
            .lines()
            .find(|l| l.starts_with(from))
            .unwrap_or_else(|| panic!("{PAGE} no longer has a line starting {from:?}"))
            .to_string();
        script = script.replace(&line, &to);
    }
    script
}

/// The real pings (not the data directory's README) in a directory of their own.
fn pings(dir: &Path) -> std::path::PathBuf {
    let pings = dir.join("pings");
    std::fs::create_dir_all(&pings).unwrap();
    for entry in std::fs::read_dir(common::data("pings")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap();
        if [".json", ".tsv", ".finished"]
            .iter()
            .any(|s| name.ends_with(s))
        {
            std::fs::copy(&path, pings.join(name)).unwrap();
        }
    }
    pings
}

#[test]
fn first_job_page_runs_in_four_languages() {
    let tmp = outside_repo();
    let pings = pings(tmp.path());
    let bin_dir = common::binary().parent().unwrap().to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(bin_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let runs: Vec<_> = LANGS
        .iter()
        .map(|lang| {
            let dir = tmp.path().join(lang);
            std::fs::create_dir_all(&dir).unwrap();
            let script = format!(
                "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{}",
                script(lang, &pings, common::free_local_addr().port())
            );
            let mut bash = std::process::Command::new("timeout");
            with_build_env(&mut bash)
                .args(["900", "bash", "-c", &script])
                .env("PATH", &path)
                .current_dir(&dir);
            let lang = lang.to_string();
            std::thread::spawn(move || {
                let out = bash.output().unwrap();
                assert!(
                    out.status.success(),
                    "{PAGE} failed for {lang} ({}):\nstdout:\n{}\nstderr:\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8(out.stdout).unwrap()
            })
        })
        .collect();
    let mut results = Vec::new();
    for (lang, run) in LANGS.iter().zip(runs) {
        let stdout = run.join().unwrap();
        assert!(
            stdout.contains("the server's result equals the local one"),
            "{lang}: {stdout}"
        );
        let dir = tmp.path().join(lang).join("first-job");
        let local = std::fs::read_to_string(dir.join("local.tsv")).unwrap();
        assert_eq!(
            local,
            native_channels(&dir.join("data")),
            "{lang}: the job's output is not the native count"
        );
        assert!(local.lines().count() >= 3, "{lang}: {local}");
        let chart = std::fs::read_to_string(dir.join("chart.svg")).unwrap();
        assert!(
            chart.starts_with("<svg") || chart.starts_with("<?xml"),
            "{lang}"
        );
        for line in local.lines() {
            let key = line.split('\t').next().unwrap();
            assert!(chart.contains(key), "{lang}: chart lacks {key}");
        }
        results.push(local);
    }
    assert!(
        results.windows(2).all(|w| w[0] == w[1]),
        "the four languages disagree"
    );
}
