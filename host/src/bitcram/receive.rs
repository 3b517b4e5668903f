//! Reading a response's body: whole, into one buffer, or in chunks handed
//! on as they arrive; either way decompressed, bounded, and checked against
//! its `Content-Length`.

use sha2::{Digest as _, Sha256};

use super::retry::{AttemptError, transport_error};
use crate::body::ChunkSender;

/// The largest `Content-Length` a body buffer is sized for up front: a
/// mistaken or hostile header must not reserve unbounded memory (a larger
/// body still arrives, into a growing buffer).
const MAX_PRESIZED_BODY: u64 = 1 << 30;

/// Why a body stopped arriving.
pub(super) enum BodyFault {
    /// Its taker went away.
    Stopped,
    /// The body cannot be completed: why.
    Failed(String),
}

/// Streams a response's body into `sender` as it arrives (decompressed,
/// bounded by `max_bytes`, checked against its `Content-Length`), hashing it
/// on the way; returns its hex sha256 and size. Waits while the taker is
/// behind, so that the socket holds what the taker has not taken yet.
pub(super) async fn stream_body(
    mut response: reqwest::Response,
    max_bytes: u64,
    sender: &ChunkSender,
    deadline: tokio::time::Instant,
) -> Result<(String, u64), BodyFault> {
    let failed = |e: AttemptError| BodyFault::Failed(e.into_reason());
    let mut bounds = BodyBounds::start(&response, max_bytes).map_err(failed)?;
    let mut hasher = Sha256::new();
    loop {
        let chunk = match tokio::time::timeout_at(deadline, response.chunk()).await {
            Err(_) => {
                return Err(BodyFault::Failed(
                    "the body did not arrive within the extraction's time (--extract-timeout)"
                        .to_owned(),
                ));
            }
            Ok(Err(e)) => return Err(failed(transport_error(&e))),
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => chunk,
        };
        bounds.take(chunk.len()).map_err(failed)?;
        hasher.update(&chunk);
        sender.send(chunk).await.map_err(|_| BodyFault::Stopped)?;
    }
    let received = bounds.finish().map_err(failed)?;
    Ok((hex::encode(hasher.finalize()), received))
}

/// Reads a body chunk by chunk into one buffer sized from its
/// `Content-Length` (up to [`MAX_PRESIZED_BODY`]), rather than gathering
/// the chunks and copying them once more. A body shorter than its
/// `Content-Length` is an error worth another attempt; one longer than
/// `max_bytes` (decompressed, for a gzip body, which has no length up
/// front) is an error that another attempt would not change.
pub(super) async fn read_body(
    mut response: reqwest::Response,
    max_bytes: u64,
) -> Result<Vec<u8>, AttemptError> {
    let mut bounds = BodyBounds::start(&response, max_bytes)?;
    let capacity = bounds
        .expected
        .map_or(0, |len| len.min(MAX_PRESIZED_BODY) as usize);
    let mut body: Vec<u8> = Vec::with_capacity(capacity);
    advise_huge_pages(&mut body);
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(&e))? {
        bounds.take(chunk.len())?;
        body.extend_from_slice(&chunk);
    }
    bounds.finish()?;
    Ok(body)
}

/// The checks every body gets as it arrives, read whole or streamed: a
/// `Content-Length` above the bound is refused up front, the bytes received
/// (decompressed, for a gzip body, which has no length up front) are
/// counted against the bound, and at the end against the `Content-Length`.
struct BodyBounds {
    expected: Option<u64>,
    max_bytes: u64,
    received: u64,
}

impl BodyBounds {
    fn start(response: &reqwest::Response, max_bytes: u64) -> Result<Self, AttemptError> {
        let expected = response.content_length();
        if let Some(len) = expected.filter(|&len| len > max_bytes) {
            return Err(too_large(len, max_bytes));
        }
        Ok(Self {
            expected,
            max_bytes,
            received: 0,
        })
    }

    /// Counts a chunk of `len` bytes; past the bound, an error that another
    /// attempt would not change.
    fn take(&mut self, len: usize) -> Result<(), AttemptError> {
        self.received += len as u64;
        if self.received > self.max_bytes {
            return Err(too_large(self.received, self.max_bytes));
        }
        Ok(())
    }

    /// The size received, once the body ended; short of its
    /// `Content-Length`, an error worth another attempt.
    fn finish(&self) -> Result<u64, AttemptError> {
        match self.expected {
            Some(len) if len != self.received => Err(AttemptError::Transient {
                reason: format!(
                    "the response body was cut short: {} of {len} bytes",
                    self.received
                ),
                retry_after: None,
            }),
            _ => Ok(self.received),
        }
    }
}

fn too_large(at_least: u64, max_bytes: u64) -> AttemptError {
    let limit = if max_bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", max_bytes >> 20)
    } else {
        format!("{max_bytes} bytes")
    };
    AttemptError::Permanent(format!(
        "the response body is larger than the {limit} a body may be (it reached {at_least} \
         bytes, decompressed)"
    ))
}

/// Asks Linux to back a large body's buffer with huge pages where it can.
/// Filling 50 MB of fresh memory otherwise takes some 13,000 page faults,
/// which cost more than the download itself on a fast link (measured on a
/// 2-core VM: 35 ms in 4 KiB pages, 12 ms in 2 MiB ones). Advice only: a
/// kernel without transparent huge pages ignores or refuses it, and the
/// buffer works the same.
fn advise_huge_pages(buffer: &mut Vec<u8>) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        const WORTH_IT: usize = 4 << 20;
        let capacity = buffer.capacity();
        if capacity < WORTH_IT {
            return;
        }
        let start = buffer.as_mut_ptr() as usize;
        let aligned = start.next_multiple_of(PAGE);
        let len = (capacity - (aligned - start)) / PAGE * PAGE;
        // SAFETY: madvise only gives advice about pages that lie wholly
        // inside the buffer's allocation; MADV_HUGEPAGE never changes what
        // the memory holds.
        let refused =
            unsafe { libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE) } != 0;
        if refused {
            tracing::debug!("the kernel refused huge pages for a body buffer");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buffer;
}
