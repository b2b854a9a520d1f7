//! `telemetry-server parquet` (docs/parquet.md) over real converted pings, read back by DuckDB,
//! pyarrow and pandas (installed by scripts/install-deps.sh into target/analysis-tools/py):
//! DuckDB's `GROUP BY` over the exported OS and version columns equals the os-distribution job's
//! output on the same data, the column types follow the typing rule, and an export from and to
//! S3 (s3s-fs) writes the same files as a local one.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common;
use crate::jobs_support::{all_with, converted_data, output_text, run_guest, tiny_data};
use crate::s3_common::S3Server;

/// The Python with DuckDB, pyarrow and pandas.
fn analysis_python() -> PathBuf {
    let python = common::repo_root().join("target/analysis-tools/py/bin/python");
    assert!(
        python.exists(),
        "{} missing: run scripts/install-deps.sh first",
        python.display()
    );
    python
}

/// Runs a Python script with the analysis tools; its stdout.
pub(crate) fn python(script: &str, args: &[&Path]) -> String {
    let out = Command::new(analysis_python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn export(data: &Path, out: &Path, columns: &[&str]) -> String {
    let mut cmd = Command::new(common::binary());
    cmd.args(["parquet", "--data-dir"])
        .arg(data)
        .arg("--out")
        .arg(out);
    for c in columns {
        cmd.args(["--column", c]);
    }
    let run = cmd.output().unwrap();
    assert!(
        run.status.success(),
        "parquet failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8(run.stderr).unwrap()
}

/// Every file under `dir`.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

const GROUP_BY_OS: &str = r#"
import sys, duckdb
rows = duckdb.sql(f"""
    SELECT coalesce(os, info_os, 'UNKNOWN') || ',' || coalesce(version, info_version, 'UNKNOWN') AS k,
           count(*) AS n
    FROM read_parquet('{sys.argv[1]}/**/*.parquet', union_by_name = true)
    GROUP BY k ORDER BY k""").fetchall()
for k, n in rows:
    print(f"{k}\t{n}")
"#;

const PANDAS_READS: &str = r#"
import sys, pandas, pyarrow.parquet as pq, glob
files = sorted(glob.glob(sys.argv[1] + "/**/*.parquet", recursive=True))
frame = pandas.concat([pandas.read_parquet(f) for f in files])
schema = pq.read_schema(files[0])
print(len(frame), ",".join(schema.names))
"#;

/// The OS and version columns the os-distribution job reads.
const OS_COLUMNS: [&str; 4] = [
    "os:string=/environment/system/os/name",
    "info_os:string=/info/OS",
    "version:string=/application/version",
    "info_version:string=/info/appVersion",
];

#[test]
fn duckdb_group_by_equals_the_os_distribution_job_and_pandas_reads_it() {
    let data = converted_data();
    let out = tempfile::tempdir().unwrap();
    let summary = export(data, out.path(), &OS_COLUMNS);
    let job = run_guest(data, "os-distribution-rust", &all_with(2)).unwrap();
    let files = all_files(out.path());
    assert!(
        files
            .iter()
            .all(|f| f.extension().is_some_and(|e| e == "parquet")),
        "only complete Parquet files: {files:?}"
    );
    assert_eq!(
        files.len() as u64,
        job.cost.files_read,
        "one Parquet file per partition file"
    );
    assert!(
        summary.contains(&format!("{} rows", job.cost.records_read)),
        "{summary}"
    );
    let grouped = python(GROUP_BY_OS, &[out.path()]);
    assert_eq!(grouped, output_text(&job));

    let pandas = python(PANDAS_READS, &[out.path()]);
    let records = job.cost.records_read;
    assert_eq!(
        pandas.trim(),
        format!(
            "{records} id,reason,appName,appUpdateChannel,appVersion,appBuildID,submission_date,os,info_os,version,info_version"
        )
    );
}

const TYPES: &str = r#"
import sys, glob, pyarrow.parquet as pq
[f] = glob.glob(sys.argv[1] + "/**/*.parquet", recursive=True)
t = pq.read_table(f)
print(" ".join(f"{n}:{t.schema.field(n).type}" for n in t.schema.names[7:]))
for n in t.schema.names[7:]:
    print(n, t.column(n).to_pylist())
"#;

#[test]
fn columns_are_typed_by_the_rule() {
    let data = tiny_data(&[
        (
            "a",
            r#"{"n":1,"f":1.5,"b":true,"s":"x","o":{"k":[1]},"m":1,"i":"7"}"#,
        ),
        (
            "b",
            r#"{"n":-2,"f":2,"b":false,"s":"y\"z","o":[1],"m":"one","i":"no"}"#,
        ),
        ("c", r#"{"n":null}"#),
    ]);
    let out = tempfile::tempdir().unwrap();
    let summary = export(
        data.path(),
        out.path(),
        &[
            "n=/n",
            "f=/f",
            "b=/b",
            "s=/s",
            "o=/o",
            "m=/m",
            "i:int=/i",
            "gone=/x/y",
        ],
    );
    assert!(summary.contains("2 values did not fit"), "{summary}");
    let got = python(TYPES, &[out.path()]);
    let expected = "n:int64 f:double b:bool s:string o:string m:string i:int64 gone:string\n\
        n [1, -2, None]\n\
        f [1.5, 2.0, None]\n\
        b [True, False, None]\n\
        s ['x', 'y\"z', None]\n\
        o ['{\"k\":[1]}', '[1]', None]\n\
        m ['1', '\"one\"', None]\n\
        i [None, None, None]\n\
        gone [None, None, None]\n";
    assert_eq!(got, expected);
}

#[test]
fn bad_columns_are_refused_before_anything_is_written() {
    let data = tiny_data(&[("a", r#"{"n":1}"#)]);
    let out = tempfile::tempdir().unwrap();
    for bad in ["n=no-slash", "n:decimal=/n", "reason=/n", "=/n"] {
        let run = Command::new(common::binary())
            .args(["parquet", "--data-dir"])
            .arg(data.path())
            .arg("--out")
            .arg(out.path())
            .args(["--column", bad])
            .output()
            .unwrap();
        assert!(!run.status.success(), "{bad} accepted");
        assert!(
            String::from_utf8_lossy(&run.stderr).contains("column"),
            "{bad}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    assert!(all_files(out.path()).is_empty());
}

#[test]
fn from_s3_to_s3_gives_the_files_of_a_local_export() {
    let server = S3Server::start();
    let data = converted_data();
    crate::s3_jobs::export_and_open(&server, data, "telemetry", "pub/");
    let local = tempfile::tempdir().unwrap();
    export(data, local.path(), &OS_COLUMNS);

    let mut cmd = Command::new(common::binary());
    cmd.args([
        "parquet",
        "--data-dir",
        "s3://telemetry/pub",
        "--out",
        "s3://columns/os/",
    ])
    .envs(server.env());
    for c in OS_COLUMNS {
        cmd.args(["--column", c]);
    }
    let run = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "parquet failed: {stderr}");
    assert!(stderr.contains("into s3://columns/os/"), "{stderr}");

    let local_files = all_files(local.path());
    assert!(local_files.len() > 3);
    let uploaded = server.object_file("columns", "os");
    assert_eq!(
        all_files(&uploaded).len(),
        local_files.len(),
        "one object per partition file"
    );
    for file in &local_files {
        let relative = file.strip_prefix(local.path()).unwrap();
        assert_eq!(
            std::fs::read(uploaded.join(relative)).unwrap(),
            std::fs::read(file).unwrap(),
            "{}",
            relative.display()
        );
    }
    let job = run_guest(data, "os-distribution-rust", &all_with(2)).unwrap();
    assert_eq!(python(GROUP_BY_OS, &[&uploaded]), output_text(&job));
}
