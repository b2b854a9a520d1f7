//! `telemetry-server storage sample`: a few stored documents, or the JSON pointers they contain
//! and how often, so a job author can see what records look like and pick the fields to declare.
//! Reads partition files in path order and stops after `--count` documents.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use telemetry_server::jobs;
use telemetry_server::storage::pointers::PointerCounts;
use telemetry_server::storage::records;

/// Distinct JSON pointers `--pointers` keeps (telemetry documents have a few thousand).
const MAX_POINTERS: usize = 100_000;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print stored documents (or, with --pointers, the JSON pointers in them and how often).
    Sample(SampleArgs),
}

#[derive(clap::Args)]
pub struct SampleArgs {
    /// Data directory (its `storage/` holds the partitions), or `s3://bucket/prefix`.
    #[arg(long, visible_alias = "data", default_value = "data")]
    data_dir: String,
    #[command(flatten)]
    input: super::job::InputArgs,
    /// How many documents to read.
    #[arg(long, default_value_t = 10)]
    count: usize,
    /// Print the JSON pointers present in the sampled documents, sorted, each with the number
    /// of documents it occurs in and the JSON types seen there, instead of the documents (one
    /// line each: `COUNT/SAMPLED<TAB>POINTER<TAB>TYPES`; a pointer with control characters is
    /// written as a JSON string).
    #[arg(long)]
    pointers: bool,
    /// Print one document per line (NDJSON) instead of indented JSON.
    #[arg(long, conflicts_with = "pointers")]
    ndjson: bool,
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Sample(args) => sample(args),
    }
}

fn sample(args: SampleArgs) -> anyhow::Result<ExitCode> {
    let source = jobs::open_source(&args.data_dir)?;
    let filter = args.input.resolve()?;
    let mut counts = PointerCounts::new(MAX_POINTERS);
    let mut out = std::io::stdout().lock();
    for record in records(source.as_ref(), &filter)?.take(args.count) {
        let record = record?;
        let doc: serde_json::Value = serde_json::from_str(&record.json)
            .with_context(|| format!("record {} is not JSON", record.id))?;
        if args.pointers {
            counts.add(&doc);
        } else if args.ndjson {
            writeln!(out, "{}", record.json)?;
        } else {
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        }
    }
    if args.pointers {
        let n = counts.documents();
        for (pointer, seen) in counts.pointers() {
            let types: Vec<&str> = seen.types.iter().copied().collect();
            writeln!(
                out,
                "{}/{n}\t{}\t{}",
                seen.documents,
                one_line(pointer),
                types.join(",")
            )?;
        }
        if counts.dropped() > 0 {
            eprintln!(
                "{} pointer occurrences not listed: more than {MAX_POINTERS} distinct pointers",
                counts.dropped()
            );
        }
        eprintln!("{n} documents sampled");
    }
    Ok(ExitCode::SUCCESS)
}

/// The pointer as it is, or as a JSON string when it holds control characters (keys in pings
/// can: SQL text with newlines and tabs), so each pointer stays one line of three columns.
fn one_line(pointer: &str) -> std::borrow::Cow<'_, str> {
    if pointer.chars().any(char::is_control) {
        serde_json::to_string(pointer).unwrap_or_default().into()
    } else {
        pointer.into()
    }
}
