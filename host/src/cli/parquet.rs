//! `telemetry-server parquet`: stored documents → one Parquet file per partition file, with the
//! record id, the partition dimensions and the chosen JSON pointers as typed columns
//! (`docs/parquet.md`). Files are exported in parallel; in a directory each is written under a
//! temporary name, then renamed, and to `s3://` each is one PUT, so the output only ever holds
//! complete Parquet files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use telemetry_server::columns::{ColumnSpec, FileReport, ParquetExport, S3Out};
use telemetry_server::jobs;
use telemetry_server::storage::{PartitionFile, PartitionSource};

#[derive(clap::Args)]
pub struct Args {
    /// Data directory (its `storage/` holds the partitions), or `s3://bucket/prefix`.
    #[arg(long, visible_alias = "data")]
    data_dir: String,
    #[command(flatten)]
    input: super::job::InputArgs,
    /// A column: `NAME=/json/pointer`, or `NAME:TYPE=/json/pointer` with TYPE one of auto, int,
    /// float, bool, string, json (default auto: typed per partition file from its values).
    #[arg(long = "column", required = true, value_parser = parse_column)]
    columns: Vec<ColumnSpec>,
    /// Output directory, or `s3://bucket/prefix`: `<partition path>.parquet` for each partition
    /// file.
    #[arg(long)]
    out: String,
    /// Files exported at once (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn parse_column(text: &str) -> Result<ColumnSpec, String> {
    text.parse()
        .map_err(|e: telemetry_server::columns::ExportError| e.to_string())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let source = jobs::open_source(&args.data_dir)?;
    let filter = args.input.resolve()?;
    let dimensions: Vec<String> = filter
        .dimension_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let export = ParquetExport::new(args.columns.clone(), dimensions)?;
    let files = source.list(&filter)?;
    let out = Out::open(&args.out)?;
    let total: u64 = files.iter().map(|f| f.size).sum();
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {binary_bytes}/{binary_total_bytes} stored, {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let threads = match args.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(files.len().max(1));
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Summary::default());
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(file) = files.get(i) else { break };
                if first_error.lock().map(|e| e.is_some()).unwrap_or(true) {
                    break;
                }
                match out.export_one(&export, source.as_ref(), file) {
                    Ok(report) => {
                        let mut sum = done.lock().expect("summary lock");
                        sum.add(&report);
                        bar.set_message(format!("{} files, {} rows", sum.files, sum.rows));
                        bar.inc(file.size);
                    }
                    Err(e) => {
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert(e);
                        }
                        break;
                    }
                }
            });
        }
    });
    bar.finish_and_clear();
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    let sum = done.into_inner().expect("summary lock");
    eprintln!(
        "{} Parquet files, {} rows, {:.1} MB of JSON read, into {}",
        sum.files,
        sum.rows,
        sum.json_bytes as f64 / 1e6,
        out.describe()
    );
    if sum.misfits > 0 {
        eprintln!(
            "{} values did not fit their column's type and were written as null",
            sum.misfits
        );
    }
    if !sum.bad.is_empty() {
        eprintln!(
            "{} bad records skipped (not id<TAB>json or not JSON), e.g. {}",
            sum.bad.len(),
            sum.bad[0]
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Default)]
struct Summary {
    files: u64,
    rows: u64,
    json_bytes: u64,
    misfits: u64,
    /// The first bad records' ids.
    bad: Vec<String>,
}

impl Summary {
    fn add(&mut self, r: &FileReport) {
        self.files += 1;
        self.rows += r.rows;
        self.json_bytes += r.json_bytes;
        self.misfits += r.misfits;
        self.bad.extend(
            r.bad
                .iter()
                .take(100usize.saturating_sub(self.bad.len()))
                .cloned(),
        );
    }
}

/// Where the Parquet files go.
enum Out {
    Dir(PathBuf),
    S3(Box<S3Out>),
}

impl Out {
    /// `s3://bucket/prefix`, or a directory (created).
    fn open(out: &str) -> anyhow::Result<Out> {
        if out.starts_with("s3://") {
            return Ok(Out::S3(Box::new(S3Out::open(out)?)));
        }
        let dir = PathBuf::from(out);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Out::Dir(dir))
    }

    fn describe(&self) -> String {
        match self {
            Out::Dir(dir) => dir.display().to_string(),
            Out::S3(s3) => s3.url(),
        }
    }

    /// Exports `file` to `<path>.parquet` under the output.
    fn export_one(
        &self,
        export: &ParquetExport,
        source: &dyn PartitionSource,
        file: &PartitionFile,
    ) -> anyhow::Result<FileReport> {
        match self {
            Out::Dir(dir) => export_to_dir(export, source, file, dir),
            Out::S3(s3) => {
                let mut body = Vec::new();
                let report = export.export_file(source, file, &mut body)?;
                s3.put(&ParquetExport::output_path(file), body)?;
                Ok(report)
            }
        }
    }
}

/// Exports `file` to `out/<path>.parquet` through a temporary file in the same directory.
fn export_to_dir(
    export: &ParquetExport,
    source: &dyn PartitionSource,
    file: &PartitionFile,
    out: &Path,
) -> anyhow::Result<FileReport> {
    let target = out.join(ParquetExport::output_path(file));
    let dir = target.parent().unwrap_or(out);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        target.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let writer = std::io::BufWriter::new(
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
        );
        let report = export.export_file(source, file, writer)?;
        std::fs::rename(&tmp, &target)
            .with_context(|| format!("renaming into {}", target.display()))?;
        Ok(report)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
