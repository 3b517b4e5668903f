//! The guest's stdout and stderr: each line goes to the host's log, tagged
//! with the plugin's name and the stream, and the last lines are kept so
//! that an error or a crash ends with them (a Python traceback, a JavaScript
//! exception, a Rust panic message).
//!
//! Bounded: a line is cut at [`LINE_MAX_BYTES`]; at most [`LOGGED_LINES_MAX`]
//! lines of one store reach the log (later ones are counted); the last
//! [`TAIL_LINES`] are kept for messages. A write never fails, however much
//! the plugin writes: what is past the bounds is dropped, not refused, so a
//! chatty plugin is not broken by its own logging.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// The longest line kept; the rest of it is cut.
pub const LINE_MAX_BYTES: usize = 1000;
/// Lines of one transform's store written to the log.
pub const LOGGED_LINES_MAX: u32 = 1000;
/// Lines kept for the end of an error message.
pub const TAIL_LINES: usize = 10;

/// Which of the guest's two output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Both streams of one store, shared by the store and the streams it hands
/// the guest.
#[derive(Clone)]
pub struct GuestOutput(Arc<Mutex<Shared>>);

struct Shared {
    plugin: String,
    /// The line being written on each stream, and whether it was cut.
    partial: [(Vec<u8>, bool); 2],
    tail: VecDeque<String>,
    logged: u32,
    dropped: u32,
}

impl GuestOutput {
    /// Output tagged `plugin` in the log.
    pub fn new(plugin: &str) -> Self {
        Self(Arc::new(Mutex::new(Shared {
            plugin: plugin.to_owned(),
            partial: Default::default(),
            tail: VecDeque::with_capacity(TAIL_LINES),
            logged: 0,
            dropped: 0,
        })))
    }

    /// The stream to give the guest as `stream`.
    pub fn stream(&self, stream: Stream) -> GuestStream {
        GuestStream {
            output: self.clone(),
            stream,
        }
    }

    /// The last lines written, oldest first, a line not yet ended included.
    pub fn tail(&self) -> Vec<String> {
        let shared = self.lock();
        let mut lines: Vec<String> = shared.tail.iter().cloned().collect();
        for (bytes, cut) in &shared.partial {
            if !bytes.is_empty() {
                lines.push(line_text(bytes, *cut));
            }
        }
        let skip = lines.len().saturating_sub(TAIL_LINES);
        lines.split_off(skip)
    }

    /// ` (its last output: "a" | "b")`, or nothing when it wrote nothing:
    /// the end of a one-line error message.
    pub fn tail_suffix(&self) -> String {
        let tail = self.tail();
        if tail.is_empty() {
            return String::new();
        }
        format!("; its last output: {}", tail.join(" | "))
    }

    fn write(&self, stream: Stream, mut bytes: &[u8]) {
        let mut shared = self.lock();
        let index = stream as usize;
        while !bytes.is_empty() {
            let (chunk, ended) = match bytes.iter().position(|&b| b == b'\n') {
                Some(at) => (&bytes[..at], true),
                None => (bytes, false),
            };
            bytes = &bytes[(chunk.len() + usize::from(ended)).min(bytes.len())..];
            let (line, cut) = &mut shared.partial[index];
            let room = LINE_MAX_BYTES.saturating_sub(line.len());
            line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            *cut |= chunk.len() > room;
            if ended {
                let (line, cut) = std::mem::take(&mut shared.partial[index]);
                shared.end_line(stream, line_text(&line, cut));
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Shared {
    fn end_line(&mut self, stream: Stream, line: String) {
        // Blank lines (a panic message starts with one) say nothing.
        if line.trim().is_empty() {
            return;
        }
        if self.logged < LOGGED_LINES_MAX {
            self.logged += 1;
            let (plugin, stream) = (self.plugin.as_str(), stream.name());
            match stream {
                "stderr" => tracing::warn!(plugin, stream, "{line}"),
                _ => tracing::info!(plugin, stream, "{line}"),
            }
        } else {
            self.dropped += 1;
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }
}

impl Drop for Shared {
    /// A last line without its newline is logged too; dropped lines are
    /// counted.
    fn drop(&mut self) {
        for index in 0..2 {
            let (line, cut) = std::mem::take(&mut self.partial[index]);
            if !line.is_empty() {
                let stream = if index == 0 {
                    Stream::Stdout
                } else {
                    Stream::Stderr
                };
                self.end_line(stream, line_text(&line, cut));
            }
        }
        if self.dropped > 0 {
            tracing::warn!(
                plugin = %self.plugin,
                "the plugin wrote {} more lines to stdout and stderr than the {LOGGED_LINES_MAX} \
                 the log takes; they were dropped",
                self.dropped
            );
        }
    }
}

fn line_text(bytes: &[u8], cut: bool) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    if cut {
        format!("{text} [cut]")
    } else {
        text.to_owned()
    }
}

/// One of the guest's streams.
#[derive(Clone)]
pub struct GuestStream {
    output: GuestOutput,
    stream: Stream,
}

impl IsTerminal for GuestStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// Room granted to each write: any amount is taken.
const WRITE_PERMIT: usize = 1 << 20;

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.output.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.output.write(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_across_writes_and_cut_at_the_bound() {
        let output = GuestOutput::new("test");
        output.write(Stream::Stderr, b"\nTraceback (most");
        output.write(
            Stream::Stderr,
            b" recent call last):\n  File \"app.py\"\r\n",
        );
        output.write(Stream::Stdout, b"half a line");
        assert_eq!(
            output.tail(),
            [
                "Traceback (most recent call last):",
                "  File \"app.py\"",
                "half a line"
            ]
        );
        let long = vec![b'x'; LINE_MAX_BYTES + 5];
        output.write(Stream::Stdout, &long);
        output.write(Stream::Stdout, b"\n");
        let last = output.tail().pop().unwrap();
        assert_eq!(
            last,
            format!("half a line{} [cut]", "x".repeat(LINE_MAX_BYTES - 11))
        );
    }

    #[test]
    fn only_the_last_lines_are_kept() {
        let output = GuestOutput::new("test");
        for n in 0..(TAIL_LINES + 5) {
            output.write(Stream::Stdout, format!("line {n}\n").as_bytes());
        }
        let tail = output.tail();
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail[0], "line 5");
        assert_eq!(tail[TAIL_LINES - 1], format!("line {}", TAIL_LINES + 4));
        assert_eq!(
            output.tail_suffix(),
            format!("; its last output: {}", tail.join(" | "))
        );
        assert_eq!(GuestOutput::new("quiet").tail_suffix(), "");
        let shared = output.lock();
        assert_eq!(shared.logged, (TAIL_LINES + 5) as u32);
    }

    #[test]
    fn the_log_takes_a_bounded_number_of_lines() {
        let output = GuestOutput::new("test");
        for _ in 0..(LOGGED_LINES_MAX + 7) {
            output.write(Stream::Stdout, b"chatty\n");
        }
        let shared = output.lock();
        assert_eq!((shared.logged, shared.dropped), (LOGGED_LINES_MAX, 7));
    }
}
