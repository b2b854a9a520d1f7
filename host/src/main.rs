//! `telemetry-server`: one binary, one subcommand per task (see `cli/`).

mod cli;
mod malloc_arenas;

fn main() -> std::process::ExitCode {
    malloc_arenas::cap();
    cli::main()
}
