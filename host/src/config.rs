//! Server configuration: embedded defaults, overridden by a TOML file, environment variables and flags.
