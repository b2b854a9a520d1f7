//! `telemetry-server histograms …`: Histograms.json tools.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use telemetry_server::histograms::{
    bucket_spec_string, import, patch_cpp_constants, Definitions, Repository,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print the bucket-spec JSON (the seed histogram server's `/histogram_buckets` document) of a
    /// Histograms.json file.
    BucketSpec(BucketSpecArgs),
    /// Read every version of Histograms.json from local Mercurial or git clones of
    /// mozilla-central / -aurora / -beta / -release into DIR: each distinct file once (named by
    /// its content hash) and a revisions.json saying which revision was in effect for which
    /// builds and app versions. Use DIR as `--histograms DIR` (convert) or in
    /// `convert.histogram_dirs` (serve) so pings without a revision resolve by build id.
    ImportHistory(ImportHistoryArgs),
}

#[derive(clap::Args)]
pub struct ImportHistoryArgs {
    /// Output directory (created if needed; entries of other repositories in its revisions.json
    /// are kept).
    #[arg(long)]
    out: PathBuf,
    /// Clones: `PATH` (named after its directory: `mozilla-central`, `releases/mozilla-aurora`, …)
    /// or `NAME=PATH`.
    #[arg(required = true)]
    repos: Vec<String>,
}

#[derive(clap::Args)]
pub struct BucketSpecArgs {
    /// A raw Histograms.json (any era) or a bucket-spec document.
    file: PathBuf,
    /// First replace the C++ constants the seed's revision cache patched
    /// (`JS::gcreason::NUM_TELEMETRY_REASONS`, `mozilla::StartupTimeline::MAX_EVENT_ID`, `80 + 1`).
    /// Without it, definitions using them are left out, as in the seed's cached specs.
    #[arg(long)]
    patch: bool,
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::ImportHistory(args) => import_history(args),
        Command::BucketSpec(args) => {
            let text = std::fs::read_to_string(&args.file)
                .with_context(|| format!("cannot read {}", args.file.display()))?;
            let text = if args.patch {
                patch_cpp_constants(&text)
            } else {
                text.into()
            };
            let defs = Definitions::from_json(&text).with_context(|| {
                format!("{} is not a usable Histograms.json", args.file.display())
            })?;
            println!("{}", bucket_spec_string(&defs));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn import_history(args: ImportHistoryArgs) -> anyhow::Result<ExitCode> {
    let repos: Vec<Repository> = args.repos.iter().map(|r| Repository::parse(r)).collect();
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} revisions")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let summary = import(&repos, &args.out, &mut |repo, done, total| {
        bar.set_message(repo.to_owned());
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .with_context(|| {
        format!(
            "cannot import Histograms.json history into {}",
            args.out.display()
        )
    })?;
    bar.finish_and_clear();
    for (repo, n) in &summary.revisions {
        println!("{repo:<28} {n:>6} revisions");
    }
    println!(
        "{} distinct Histograms.json versions ({} new) in {}",
        summary.distinct_files,
        summary.files_written,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
