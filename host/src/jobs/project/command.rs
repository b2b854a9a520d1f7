//! Runs one external tool of a build (cargo, clang, npm, componentize-py, …) with a deadline:
//! either its output shown as it goes (installs: progress) or captured and put into the error.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The last bytes of a failed tool's output kept in the error.
const OUTPUT_TAIL: usize = 8 * 1024;

/// A tool that could not run, failed or overran its deadline.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("could not run {program}: {source}{hint}")]
    Spawn {
        program: String,
        source: std::io::Error,
        hint: String,
    },
    #[error("{what} failed ({status}): {command}\n{output}")]
    Failed {
        what: String,
        status: std::process::ExitStatus,
        command: String,
        output: String,
    },
    #[error("{what} did not finish within {timeout:?} and was stopped: {command}")]
    Timeout {
        what: String,
        timeout: Duration,
        command: String,
    },
}

/// Whether the tool's output goes to our stderr as it comes, or is kept for the error.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Show,
    Capture,
}

/// Runs `cmd` (described as `what` in errors) to completion within `timeout`; `hint` says how
/// to get the program if it is missing.
pub fn run(
    cmd: &mut Command,
    what: &str,
    timeout: Duration,
    output: Output,
    hint: &str,
) -> Result<(), CommandError> {
    let command = format!("{cmd:?}");
    cmd.stdin(Stdio::null());
    match output {
        Output::Show => cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit()),
        Output::Capture => cmd.stdout(Stdio::piped()).stderr(Stdio::piped()),
    };
    let mut child = cmd.spawn().map_err(|source| CommandError::Spawn {
        program: cmd.get_program().to_string_lossy().into_owned(),
        source,
        hint: if hint.is_empty() {
            String::new()
        } else {
            format!(" ({hint})")
        },
    })?;
    let readers = [
        child
            .stdout
            .take()
            .map(|p| std::thread::spawn(move || tail(p))),
        child
            .stderr
            .take()
            .map(|p| std::thread::spawn(move || tail(p))),
    ];
    let status = wait(&mut child, timeout);
    let text: String = readers
        .into_iter()
        .flatten()
        .map(|r| r.join().unwrap_or_default())
        .collect();
    match status {
        None => Err(CommandError::Timeout {
            what: what.into(),
            timeout,
            command,
        }),
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(CommandError::Failed {
            what: what.into(),
            status,
            command,
            output: text,
        }),
    }
}

/// Waits for the child up to `timeout`; kills it (and returns None) after that.
fn wait(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Reads a pipe to the end, keeping its last `OUTPUT_TAIL` bytes.
fn tail(mut pipe: impl Read) -> String {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = pipe.read(&mut buf) {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * OUTPUT_TAIL {
            kept.drain(..kept.len() - OUTPUT_TAIL);
        }
    }
    if kept.len() > OUTPUT_TAIL {
        kept.drain(..kept.len() - OUTPUT_TAIL);
    }
    String::from_utf8_lossy(&kept).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_carry_the_output_and_overruns_are_stopped() {
        let err = run(
            Command::new("sh").args(["-c", "echo boom >&2; exit 3"]),
            "sh",
            Duration::from_secs(10),
            Output::Capture,
            "",
        )
        .unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
        let start = Instant::now();
        let err = run(
            Command::new("sleep").arg("30"),
            "sleep",
            Duration::from_millis(200),
            Output::Capture,
            "",
        )
        .unwrap_err();
        assert!(matches!(err, CommandError::Timeout { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(10));
        let err = run(
            &mut Command::new("no-such-tool-xyz"),
            "x",
            Duration::from_secs(1),
            Output::Capture,
            "install it with apt-get",
        )
        .unwrap_err();
        assert!(err.to_string().contains("apt-get"), "{err}");
    }
}
