//! Streams a stored job result from disk to the client in chunks of about [`CHUNK`] bytes: as
//! stored (text), or rendered line by line (NDJSON, CSV). A download holds one chunk and one line
//! in memory whatever the result's size, so concurrent downloads of a large result do not add
//! its size to the server's memory each.

use std::io;

use axum::body::Body;
use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use super::format::{render_line, ResultFormat};

/// Bytes read from disk (and, roughly, sent) at a time.
pub const CHUNK: usize = 64 << 10;

struct State {
    reader: BufReader<tokio::fs::File>,
    format: ResultFormat,
    header: Option<&'static str>,
    line: Vec<u8>,
}

/// The response body: the open result file, streamed in `format`.
pub fn body(file: std::fs::File, format: ResultFormat) -> Body {
    let state = State {
        reader: BufReader::with_capacity(CHUNK, tokio::fs::File::from_std(file)),
        format,
        header: Some(format.header()),
        line: Vec::new(),
    };
    Body::from_stream(futures_util::stream::try_unfold(state, next_chunk))
}

async fn next_chunk(mut s: State) -> io::Result<Option<(Bytes, State)>> {
    if s.format == ResultFormat::Text {
        let mut buf = vec![0u8; CHUNK];
        let n = s.reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        return Ok(Some((Bytes::from(buf), s)));
    }
    let mut out = String::with_capacity(CHUNK + CHUNK / 2);
    out.push_str(s.header.take().unwrap_or_default());
    while out.len() < CHUNK {
        s.line.clear();
        if s.reader.read_until(b'\n', &mut s.line).await? == 0 {
            break;
        }
        // Line breaks as `str::lines` sees them: `\n` or `\r\n`.
        let mut line = &s.line[..];
        if let Some(rest) = line.strip_suffix(b"\n") {
            line = rest.strip_suffix(b"\r").unwrap_or(rest);
        }
        render_line(&mut out, &String::from_utf8_lossy(line), s.format);
    }
    if out.is_empty() {
        return Ok(None);
    }
    Ok(Some((Bytes::from(out), s)))
}
