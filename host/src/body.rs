//! A body on its way to the transform: whole, or in chunks as they arrive
//! (from the network, from a snapshot file), with its producer's verdict
//! last: the end, or why it stopped.
//!
//! The chunks in flight are bounded: a producer that runs ahead of the
//! transform waits, so that a price list waiting for the stock to be taken
//! is held back in the socket, not in memory.

use std::io::{self, Read};

use bytes::{Buf as _, Bytes};
use tokio::sync::mpsc;

/// Chunks in flight between a body's producer and the transform (at most
/// some megabytes: HTTP chunks are kilobytes, file chunks 256 KiB).
const CHUNKS_IN_FLIGHT: usize = 16;
/// The size of the chunks a file is read in.
pub const FILE_CHUNK_BYTES: usize = 256 << 10;

/// One body of a run.
pub enum Body {
    /// Held whole.
    Whole(Bytes),
    /// Arriving in chunks.
    Chunks(Chunks),
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Body::Whole(bytes)
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body::Whole(bytes.into())
    }
}

/// What a producer sends.
enum Piece {
    Chunk(Bytes),
    /// Every byte was sent.
    End,
    /// The body cannot be completed: why, in one line that names it.
    Failed(String),
}

/// The receiving end of a body in chunks.
pub struct Chunks {
    receiver: mpsc::Receiver<Piece>,
    /// Where the body comes from, for messages: `Bitcram price_list
    /// (/api/...)`, a snapshot file's path.
    origin: String,
    /// Whether its envelope is still to be checked before a plugin that
    /// takes whole bodies gets it (a snapshot's was checked when it was
    /// taken; replays hand it on as stored).
    unchecked: bool,
}

/// The producing end of a body in chunks. Dropped without
/// [`end`](Self::end) or [`fail`](Self::fail), the body is incomplete.
pub struct ChunkSender(mpsc::Sender<Piece>);

/// The transform stopped taking the body (it failed, or the run ended).
#[derive(Debug)]
pub struct Stopped;

/// A body in chunks from `origin` (named in messages), `unchecked` when its
/// envelope is yet to be checked: the end that produces it and the one that
/// takes it.
pub fn chunked(origin: String, unchecked: bool) -> (ChunkSender, Chunks) {
    let (sender, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
    (
        ChunkSender(sender),
        Chunks {
            receiver,
            origin,
            unchecked,
        },
    )
}

impl ChunkSender {
    /// Sends one chunk, waiting while the chunks in flight are all untaken.
    pub async fn send(&self, chunk: Bytes) -> Result<(), Stopped> {
        self.0.send(Piece::Chunk(chunk)).await.map_err(|_| Stopped)
    }

    /// [`send`](Self::send), from a blocking thread.
    pub fn blocking_send(&self, chunk: Bytes) -> Result<(), Stopped> {
        self.0
            .blocking_send(Piece::Chunk(chunk))
            .map_err(|_| Stopped)
    }

    /// Says that every byte was sent.
    pub async fn end(self) {
        let _ = self.0.send(Piece::End).await;
    }

    /// [`end`](Self::end), from a blocking thread.
    pub fn blocking_end(self) {
        let _ = self.0.blocking_send(Piece::End);
    }

    /// Says why the body cannot be completed.
    pub async fn fail(self, reason: String) {
        let _ = self.0.send(Piece::Failed(reason)).await;
    }

    /// [`fail`](Self::fail), from a blocking thread.
    pub fn blocking_fail(self, reason: String) {
        let _ = self.0.blocking_send(Piece::Failed(reason));
    }
}

/// Why a producer stopped before the end, when it said nothing.
const PRODUCER_GONE: &str = "the body stopped arriving before its end";

impl Body {
    /// Where the body comes from, when it arrives in chunks.
    pub fn origin(&self) -> Option<&str> {
        match self {
            Body::Whole(_) => None,
            Body::Chunks(chunks) => Some(&chunks.origin),
        }
    }

    /// Whether its envelope is still to be checked.
    pub fn unchecked(&self) -> bool {
        matches!(self, Body::Chunks(chunks) if chunks.unchecked)
    }

    /// The whole body, gathered (for a plugin that takes whole bodies), or
    /// its producer's failure.
    pub async fn whole(self) -> Result<Bytes, String> {
        let mut chunks = match self {
            Body::Whole(bytes) => return Ok(bytes),
            Body::Chunks(chunks) => chunks.receiver,
        };
        let mut body = Vec::new();
        loop {
            match chunks.recv().await {
                Some(Piece::Chunk(chunk)) => body.extend_from_slice(&chunk),
                Some(Piece::End) => return Ok(body.into()),
                Some(Piece::Failed(reason)) => return Err(reason),
                None => return Err(PRODUCER_GONE.to_owned()),
            }
        }
    }

    /// A blocking reader of the body, whole or in chunks (see [`ChunkReader`]).
    pub fn into_reader(self) -> ChunkReader {
        match self {
            Body::Whole(bytes) => ChunkReader {
                // Never asked: the body has ended.
                chunks: mpsc::channel(1).1,
                current: bytes,
                ended: true,
                failure: None,
            },
            Body::Chunks(chunks) => chunks.into_reader(),
        }
    }
}

impl Chunks {
    /// A blocking reader of the chunks, for a parser on a blocking thread.
    pub fn into_reader(self) -> ChunkReader {
        ChunkReader {
            chunks: self.receiver,
            current: Bytes::new(),
            ended: false,
            failure: None,
        }
    }
}

/// Reads a body in chunks as one stream of bytes; must be used on a thread
/// that may block. A producer's failure reads as an I/O error, and stays
/// in [`failure`](Self::failure) for the caller to name.
pub struct ChunkReader {
    chunks: mpsc::Receiver<Piece>,
    current: Bytes,
    ended: bool,
    failure: Option<String>,
}

impl ChunkReader {
    /// Why the body could not be read to its end, if it could not.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if self.ended {
                return Ok(0);
            }
            if let Some(reason) = &self.failure {
                return Err(io::Error::other(reason.clone()));
            }
            match self.chunks.blocking_recv() {
                Some(Piece::Chunk(chunk)) => self.current = chunk,
                Some(Piece::End) => self.ended = true,
                Some(Piece::Failed(reason)) => self.failure = Some(reason),
                None => self.failure = Some(PRODUCER_GONE.to_owned()),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunks_read_as_one_stream_and_a_failure_is_kept() {
        let (sender, chunks) = chunked("a test".to_owned(), true);
        tokio::spawn(async move {
            for part in ["{\"it", "ems\":", "", "[1]}"] {
                sender.send(Bytes::from(part)).await.unwrap();
            }
            sender.end().await;
        });
        let text = tokio::task::spawn_blocking(move || {
            let mut text = String::new();
            chunks.into_reader().read_to_string(&mut text).map(|_| text)
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(text, r#"{"items":[1]}"#);

        let (sender, chunks) = chunked("a test".to_owned(), true);
        tokio::spawn(async move {
            sender.send(Bytes::from("{\"items\"")).await.unwrap();
            sender.fail("cut short: 8 of 20 bytes".to_owned()).await;
        });
        let (read, failure) = tokio::task::spawn_blocking(move || {
            let mut reader = chunks.into_reader();
            let mut text = Vec::new();
            let read = reader.read_to_end(&mut text).map_err(|e| e.to_string());
            (read, reader.failure().map(str::to_owned))
        })
        .await
        .unwrap();
        assert_eq!(read, Err("cut short: 8 of 20 bytes".to_owned()));
        assert_eq!(failure.as_deref(), Some("cut short: 8 of 20 bytes"));
    }

    #[tokio::test]
    async fn a_producer_gone_without_a_word_is_an_incomplete_body() {
        let (sender, chunks) = chunked("a test".to_owned(), true);
        sender.send(Bytes::from("{")).await.unwrap();
        drop(sender);
        assert_eq!(
            Body::Chunks(chunks).whole().await,
            Err(PRODUCER_GONE.to_owned())
        );
        let (sender, chunks) = chunked("a test".to_owned(), true);
        sender.send(Bytes::from("{}")).await.unwrap();
        sender.end().await;
        assert_eq!(Body::Chunks(chunks).whole().await, Ok(Bytes::from("{}")));
    }
}
