//! `telemetry-server token new`: a random job API token and the `[[jobs.tokens]]` entry to paste
//! into the server config (the token's SHA-256, exactly as `serve` checks it).

use std::process::ExitCode;

use anyhow::Context;
use telemetry_server::api::jobs::new_token::{config_entry, random_token};
use telemetry_server::api::jobs::Role;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print a new random token (first line) and its `[[jobs.tokens]]` config entry.
    New(NewArgs),
}

#[derive(clap::Args)]
pub struct NewArgs {
    /// Who the token belongs to: recorded as the owner of the jobs it submits.
    #[arg(long)]
    name: String,
    /// What it may do: `submit` (its own jobs), `admin` (every job, the cluster's members) or
    /// `worker` (join the cluster as `telemetry-server worker`, nothing else).
    #[arg(long, value_enum, default_value_t = RoleArg::Submit)]
    role: RoleArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Submit,
    Admin,
    Worker,
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::New(args) => {
            let role = match args.role {
                RoleArg::Submit => Role::Submit,
                RoleArg::Admin => Role::Admin,
                RoleArg::Worker => Role::Worker,
            };
            let token = random_token().context("cannot read random bytes")?;
            println!("{token}");
            println!();
            println!("# Add to the server config; give the token above to '{}' (it is not stored anywhere):", args.name);
            print!("{}", config_entry(&token, &args.name, role));
            Ok(ExitCode::SUCCESS)
        }
    }
}
