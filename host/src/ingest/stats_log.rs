//! The seed's per-request stats log: one JSON line per response, e.g.
//! `{"url":"/submit/telemetry/…","duration_ms":0.547,"code":200,"size":4819,"level":"info","message":"OK","timestamp":"2013-09-10T20:43:17.217Z"}`.
//!
//! Unlike the seed (a synchronous append per request), lines go through a bounded channel to one
//! thread that writes them buffered and flushes whenever the channel runs dry. When the channel is
//! full a line is dropped and counted rather than slowing submissions down.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};

use serde::Serialize;

/// One stats line (field order and names as in the seed).
#[derive(Debug, Serialize)]
pub struct StatsLine {
    /// The request's URL path.
    pub url: String,
    /// Time to answer, in milliseconds.
    pub duration_ms: f64,
    /// The HTTP status sent.
    pub code: u16,
    /// Bytes written to the raw log for this request (0 when rejected).
    pub size: usize,
    /// `error` for 5xx answers, else `info`.
    pub level: &'static str,
    /// The response message sent.
    pub message: String,
    /// When the line was written (RFC 3339, UTC).
    pub timestamp: String,
}

/// Handle to the stats log writer thread.
pub struct StatsLog {
    tx: SyncSender<StatsLine>,
    dropped: AtomicU64,
}

impl StatsLog {
    /// Opens (appending) `path` and starts the writer thread.
    pub fn open(path: &Path) -> std::io::Result<StatsLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (tx, rx) = mpsc::sync_channel::<StatsLine>(65_536);
        std::thread::Builder::new()
            .name("stats-log".into())
            .spawn(move || {
                let mut out = BufWriter::new(file);
                while let Ok(line) = rx.recv() {
                    let mut write = |line: StatsLine| {
                        let _ = serde_json::to_writer(&mut out, &line);
                        let _ = out.write_all(b"\n");
                    };
                    write(line);
                    while let Ok(line) = rx.try_recv() {
                        write(line);
                    }
                    if let Err(err) = out.flush() {
                        tracing::warn!(error = %err, "cannot write the stats log");
                    }
                }
            })?;
        Ok(StatsLog {
            tx,
            dropped: AtomicU64::new(0),
        })
    }

    /// Queues one line; never blocks.
    pub fn log(&self, url: String, duration_ms: f64, code: u16, size: usize, message: &str) {
        let line = StatsLine {
            url,
            duration_ms,
            code,
            size,
            level: if code >= 500 { "error" } else { "info" },
            message: message.to_string(),
            timestamp: chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string(),
        };
        if let Err(TrySendError::Full(_)) = self.tx.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
