//! `telemetry-server histograms …`: Histograms.json tools.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use telemetry_server::histograms::{bucket_spec_string, patch_cpp_constants, Definitions};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print the bucket-spec JSON (the seed histogram server's `/histogram_buckets` document) of a
    /// Histograms.json file.
    BucketSpec(BucketSpecArgs),
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
