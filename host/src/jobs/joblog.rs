//! [`JobLog`]: the size-capped text log of one job. Guest `log` calls and anything the guest writes
//! to stdout/stderr land here; past the cap lines are dropped and counted.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// A job's log, shared by all its workers.
#[derive(Debug)]
pub struct JobLog {
    cap: usize,
    inner: Mutex<LogInner>,
}

#[derive(Debug, Default)]
struct LogInner {
    text: String,
    dropped: u64,
}

impl JobLog {
    /// An empty log keeping at most `cap` bytes.
    pub fn new(cap: u64) -> Self {
        JobLog {
            cap: cap as usize,
            inner: Mutex::new(LogInner::default()),
        }
    }

    /// Appends one line (a newline is added).
    pub fn line(&self, line: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.text.len() + line.len() + 1 > self.cap {
            inner.dropped += 1;
            return;
        }
        inner.text.push_str(line);
        inner.text.push('\n');
    }

    /// Appends raw guest output (stdout/stderr); whatever does not fit is dropped.
    fn raw(&self, bytes: &[u8]) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.cap.saturating_sub(inner.text.len());
        if bytes.len() > room {
            inner.dropped += 1;
        }
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(room)]).into_owned();
        inner.text.push_str(&text);
    }

    /// The log text, with a note if anything was dropped.
    pub fn contents(&self) -> String {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = inner.text.clone();
        if inner.dropped > 0 {
            text.push_str(&format!(
                "[log limit of {} bytes reached: {} writes dropped]\n",
                self.cap, inner.dropped
            ));
        }
        text
    }
}

/// A guest's stdout or stderr, appended to the job log. Never blocks or fails the guest.
#[derive(Clone)]
pub(crate) struct LogStream(pub Arc<JobLog>);

impl wasmtime_wasi::cli::IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.raw(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
