//! `telemetry-server job new` and `job build`: create a self-contained job project in any
//! directory and build it into a component with its pinned toolchain.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use telemetry_server::jobs::project::{self, Lang, Tools};

/// `job new`.
#[derive(clap::Args)]
pub struct NewArgs {
    /// The job's name (lowercase letters, digits, '-'): the project directory and the component
    /// `target/NAME.wasm`.
    name: String,
    /// The language of the job: `rust`, `c`, `js` or `python`.
    #[arg(long)]
    lang: Lang,
    /// Where to create the project directory NAME (default: the current directory).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

/// `job build`.
#[derive(clap::Args)]
pub struct BuildArgs {
    /// The project directory (holding telemetry-job.toml).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Where the pinned build tools are installed on first use (default:
    /// $XDG_CACHE_HOME/telemetry-server/guest-tools or ~/.cache/telemetry-server/guest-tools).
    #[arg(long, env = "TELEMETRY_JOB_TOOLS")]
    tools_dir: Option<PathBuf>,
}

pub fn new(args: NewArgs) -> anyhow::Result<ExitCode> {
    let dir = project::create(&args.dir, &args.name, args.lang)
        .with_context(|| format!("creating job project {}", args.name))?;
    println!("{}", dir.display());
    eprintln!(
        "job new: created a {} job in {}; build it with `telemetry-server job build {}` (see its README.md)",
        args.lang.name(),
        dir.display(),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let progress = Box::new(|line: &str| eprintln!("job build: {line}"));
    let tools = match args.tools_dir {
        Some(dir) => Tools::new(dir, progress),
        None => Tools::from_env(progress),
    };
    let wasm = project::build(&args.dir, &tools)
        .with_context(|| format!("building job project {}", args.dir.display()))?;
    println!("{}", wasm.display());
    Ok(ExitCode::SUCCESS)
}
