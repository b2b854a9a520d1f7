//! `telemetry-server`: one binary, one subcommand per task (see `cli/`).

mod cli;
mod malloc_tuning;

fn main() -> std::process::ExitCode {
    malloc_tuning::apply();
    cli::main()
}
