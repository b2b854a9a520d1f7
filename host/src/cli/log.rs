//! `telemetry-server log …`: inspect raw submission logs.
//!
//! `log cat FILE…` prints one JSON object per record on stdout and a summary on stderr.
//! Exit codes: 0 all records read cleanly (a closed pipe also exits 0), 1 some records were
//! damaged or had undecodable bodies; a file that cannot be opened stops with an error.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde::de::IgnoredAny;
use telemetry_server::rawlog::{self, decode_body, Limits, LogReader, RawRecord, Version};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print every record of raw logs as JSON lines: file, offset, timestamp, ip, path, and the
    /// body as JSON (gzip inflated) or an error. Summary (records, errors, skipped bytes) on stderr.
    Cat(CatArgs),
}

#[derive(clap::Args)]
pub struct CatArgs {
    /// Raw log files (v0, v1 or v2).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Layout of the files (v0, v1, v2); default: from `.v1.`/`.v2.` in the name, else detected.
    #[arg(long = "log-version", value_name = "VERSION")]
    log_version: Option<Version>,
    /// Largest record body accepted, in bytes (larger headers count as damaged records).
    #[arg(long, default_value_t = rawlog::MAX_DATA_BYTES)]
    max_data_bytes: usize,
    /// Largest inflated gzip body, in bytes (gzip-bomb guard).
    #[arg(long, default_value_t = rawlog::DEFAULT_BODY_LIMIT)]
    max_body_bytes: usize,
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Cat(args) => cat(args),
    }
}

/// Counts over all files.
#[derive(Default)]
struct Summary {
    records: u64,
    damaged: u64,
    bad_bodies: u64,
    skipped_bytes: u64,
}

fn cat(args: CatArgs) -> anyhow::Result<ExitCode> {
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut summary = Summary::default();
    let limits = Limits {
        max_data_bytes: args.max_data_bytes,
        ..Limits::default()
    };
    for path in &args.files {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot open raw log '{}'", path.display()))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let version = args
            .log_version
            .or_else(|| rawlog::version_from_file_name(name));
        let mut reader = LogReader::with_limits(io::BufReader::new(file), version, limits);
        let shown = path.display().to_string();
        while let Some(item) = reader.next() {
            let line = match item {
                Ok(record) => {
                    summary.records += 1;
                    let (line, body_ok) =
                        record_json(&shown, reader.record_offset(), &record, args.max_body_bytes);
                    summary.bad_bodies += u64::from(!body_ok);
                    line
                }
                Err(error) => {
                    summary.damaged += 1;
                    serde_json::json!({"file": shown, "offset": reader.record_offset(), "error": error.to_string()})
                        .to_string()
                }
            };
            if let Err(e) = writeln!(out, "{line}") {
                return broken_pipe_or(e);
            }
        }
        summary.skipped_bytes += reader.skipped_bytes();
    }
    if let Err(e) = out.flush() {
        return broken_pipe_or(e);
    }
    eprintln!(
        "{} records, {} damaged records, {} bodies not JSON, {} bytes skipped",
        summary.records, summary.damaged, summary.bad_bodies, summary.skipped_bytes
    );
    let clean = summary.damaged == 0 && summary.bad_bodies == 0;
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A closed stdout (`| head`) ends the command successfully; other write errors fail it.
fn broken_pipe_or(e: io::Error) -> anyhow::Result<ExitCode> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(e).context("writing to stdout")
    }
}

/// One record as a JSON line, and whether its body decoded to JSON.
fn record_json(
    file: &str,
    offset: u64,
    record: &RawRecord,
    max_body_bytes: usize,
) -> (String, bool) {
    let mut head = serde_json::json!({
        "file": file,
        "offset": offset,
        "timestamp": record.timestamp_ms,
        "ip": record.ip,
        "path": record.path,
    })
    .to_string();
    head.pop(); // reopen the object to append the body verbatim
    let body = decode_body(&record.body, max_body_bytes)
        .map_err(|e| e.to_string())
        .and_then(|body| {
            serde_json::from_slice::<IgnoredAny>(&body)
                .map_err(|e| format!("body is not JSON: {e}"))?;
            Ok(minify(&body))
        });
    match body {
        Ok(json) => (format!("{head},\"body\":{json}}}"), true),
        Err(error) => (
            format!("{head},\"error\":{}}}", serde_json::Value::String(error)),
            false,
        ),
    }
}

/// Removes insignificant whitespace from valid JSON, keeping key order and number text.
fn minify(json: &[u8]) -> String {
    let mut out = Vec::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for &c in json {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
        } else if c == b'"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            out.push(c);
        }
    }
    // Valid JSON (checked by the caller) stays valid UTF-8 when only ASCII whitespace is removed.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minify_keeps_strings_and_order() {
        assert_eq!(
            minify(br#"{ "b" : [1, 2],"a":"x \" y\n" }"#),
            r#"{"b":[1,2],"a":"x \" y\n"}"#
        );
    }

    #[test]
    fn records_become_json_lines() {
        let record = RawRecord {
            timestamp_ms: 5,
            ip: "1.2.3.4".into(),
            path: "id/x".into(),
            body: b"{ \"a\": 1 }".to_vec(),
        };
        let (line, ok) = record_json("f", 0, &record, 100);
        assert!(ok);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["body"]["a"], 1);
        assert_eq!(v["path"], "id/x");
        let bad = RawRecord {
            body: b"not json".to_vec(),
            ..record
        };
        let (line, ok) = record_json("f", 0, &bad, 100);
        assert!(!ok);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(v["error"].as_str().unwrap().contains("not JSON"), "{line}");
    }
}
