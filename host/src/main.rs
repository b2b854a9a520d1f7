//! `telemetry-server`: one binary, one subcommand per task (see `cli/`).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
