//! The bridge from async S3 bodies to the sync `Read` that job readers want: a background task
//! on the S3 runtime streams an object's chunks into a bounded channel (so a slow reader applies
//! back-pressure instead of buffering the object), resuming with a `Range` request if the
//! connection drops mid-body; [`ChannelReader`] blocks on the channel.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use aws_sdk_s3::Client;
use bytes::{Buf, Bytes};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, Semaphore};

use super::backoff;

/// Chunks buffered per open object (the read-ahead; bodies arrive in chunks of ~16-64 KiB).
const CHANNEL_CHUNKS: usize = 32;

/// The runtime all sync S3 reads run on (two I/O threads; the work is network-bound).
pub(crate) fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3-io")
            .enable_all()
            .build()
            .expect("cannot start the S3 I/O runtime")
    })
}

enum Msg {
    Data(Bytes),
    End,
    Failed(String),
}

/// What to fetch and how.
pub(crate) struct Fetch {
    pub client: Client,
    pub bucket: String,
    pub key: String,
    /// Expected object size (from the listing); a shorter or longer body is an error.
    pub size: u64,
    pub max_attempts: u32,
    /// Bounds the number of objects being fetched at once.
    pub limit: Arc<Semaphore>,
    /// Counts GETs resumed with a `Range` after a failure (shared by one source).
    pub resumed: Arc<AtomicU64>,
}

/// Starts fetching on the S3 runtime and returns the blocking reader over the body.
pub(crate) fn open(fetch: Fetch) -> ChannelReader {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let name = format!("s3://{}/{}", fetch.bucket, fetch.key);
    runtime().spawn(async move {
        let result = pump(&fetch, &tx).await;
        let _ = tx
            .send(match result {
                Ok(()) => Msg::End,
                Err(message) => Msg::Failed(message),
            })
            .await;
    });
    ChannelReader {
        rx,
        current: Bytes::new(),
        name,
        finished: false,
    }
}

/// Sends the object's bytes into `tx`; retries from the last offset received.
async fn pump(f: &Fetch, tx: &mpsc::Sender<Msg>) -> Result<(), String> {
    let _permit = f
        .limit
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| e.to_string())?;
    let mut offset = 0u64;
    let mut attempt = 1;
    loop {
        let error = match fetch_from(f, offset, tx).await {
            Ok(Step::Done(received)) => {
                offset += received;
                if offset != f.size {
                    return Err(format!(
                        "object is {offset} bytes, the listing said {}",
                        f.size
                    ));
                }
                return Ok(());
            }
            Ok(Step::ReaderGone) => return Ok(()),
            Err((received, error)) => {
                offset += received;
                error
            }
        };
        if attempt >= f.max_attempts {
            return Err(format!(
                "GetObject failed after {attempt} attempts at byte {offset}: {error}"
            ));
        }
        tracing::warn!(bucket = %f.bucket, key = %f.key, offset, attempt, %error, "S3 read failed, resuming");
        tokio::time::sleep(backoff(attempt)).await;
        f.resumed.fetch_add(1, Ordering::Relaxed);
        attempt += 1;
    }
}

enum Step {
    Done(u64),
    ReaderGone,
}

/// One GET from `offset`; on failure returns the bytes already forwarded with the error.
async fn fetch_from(f: &Fetch, offset: u64, tx: &mpsc::Sender<Msg>) -> Result<Step, (u64, String)> {
    if offset == f.size {
        return Ok(Step::Done(0)); // everything arrived before the connection dropped
    }
    let mut request = f.client.get_object().bucket(&f.bucket).key(&f.key);
    if offset > 0 {
        request = request.range(format!("bytes={offset}-"));
    }
    let output = request.send().await.map_err(|e| {
        (
            0,
            super::S3Error::request("GetObject", &f.bucket, &f.key, e).to_string(),
        )
    })?;
    let mut body = output.body;
    let mut received = 0u64;
    loop {
        match body.next().await {
            Some(Ok(chunk)) => {
                received += chunk.len() as u64;
                if tx.send(Msg::Data(chunk)).await.is_err() {
                    return Ok(Step::ReaderGone);
                }
            }
            Some(Err(e)) => return Err((received, e.to_string())),
            None => return Ok(Step::Done(received)),
        }
    }
}

/// A blocking `Read` over the chunks a fetch task sends. Must not be read from inside an async
/// task (it blocks the thread); job workers are plain threads.
pub struct ChannelReader {
    rx: mpsc::Receiver<Msg>,
    current: Bytes,
    name: String,
    finished: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if self.finished {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Msg::Data(chunk)) => self.current = chunk,
                Some(Msg::End) => self.finished = true,
                Some(Msg::Failed(message)) => {
                    return Err(io::Error::other(format!("{}: {message}", self.name)))
                }
                // The task died without saying how it ended: never pass that off as a clean EOF.
                None => {
                    return Err(io::Error::other(format!(
                        "{}: fetch stopped unexpectedly",
                        self.name
                    )))
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}
