//! Snapshots: the raw Bitcram API bodies of one run and its context, on disk,
//! so that a plugin can be developed and a run replayed offline.
//!
//! Layout of a snapshot directory:
//!
//! ```text
//! DIR/manifest.json         what, when, where from, and a sha256 per body
//! DIR/checkout.0.json       the checkout discovery response
//! DIR/stock.0.json          the warehouse's stock response
//! DIR/price-list.0.json     the checkout's price-list response
//! ```
//!
//! Bodies are stored byte for byte as received (decompressed), each written
//! as it arrives into a `.part` file that takes its name once every body is
//! complete; the manifest is written last. A source may have several pages
//! (`stock.1.json`, ...); the manifest lists them in the order they are
//! handed to the transform. Reading verifies every body's size and sha256.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::body::{Body, ChunkSender, FILE_CHUNK_BYTES};
use crate::model::{BodyDigest, RunInfo, Source};

/// The `format` value of manifests this version reads and writes.
pub const FORMAT: &str = "bitcram-sync-snapshot/1";
const MANIFEST: &str = "manifest.json";

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// When the bodies were fetched, UTC, RFC 3339.
    pub created_at: String,
    /// The Bitcram instance they came from.
    pub bitcram_url: String,
    /// The checkout number the run was asked for.
    pub checkout_number: String,
    /// The checkout's id.
    pub checkout_id: u64,
    /// The checkout's warehouse id.
    pub warehouse_id: u64,
    /// Every body, in the order the transform receives them.
    pub bodies: Vec<BodyEntry>,
}

/// One stored body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyEntry {
    pub source: Source,
    /// The page within its source, from 0.
    pub page: u32,
    /// The file name, relative to the snapshot directory.
    pub file: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Hex sha256 of the file.
    pub sha256: String,
}

/// A body's hex sha256, as a manifest records it and the run's input key
/// sees it.
pub fn sha256_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// Writes a snapshot of whole bodies into `dir`, numbering the pages of
/// each source from 0 in the order given (see [`BodyFile`] and [`commit`]).
pub fn write<'a>(
    dir: &Path,
    info: &RunInfo,
    bodies: impl IntoIterator<Item = (Source, &'a [u8])>,
) -> anyhow::Result<Manifest> {
    create_dir(dir)?;
    let mut written: Vec<WrittenBody> = Vec::new();
    for (source, body) in bodies {
        let page = written.iter().filter(|w| w.entry.source == source).count() as u32;
        let mut file = BodyFile::create(dir, source, page)?;
        file.write_all(body)
            .with_context(|| format!("writing {}", file.part.path.display()))?;
        written.push(file.finish()?);
    }
    commit(dir, info, written)
}

/// Creates the snapshot directory, if missing.
pub fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the snapshot directory {}", dir.display()))
}

/// One body being written into a snapshot directory as it arrives: into a
/// `.part` file beside its name, hashed and counted on the way. It takes
/// its name only when the whole snapshot is [`commit`]ted; dropped before
/// that, its file is removed.
pub struct BodyFile {
    part: PartFile,
    out: BufWriter<File>,
    hasher: Sha256,
    bytes: u64,
    source: Source,
    page: u32,
}

/// A body written whole, waiting for its snapshot's [`commit`].
pub struct WrittenBody {
    part: PartFile,
    entry: BodyEntry,
}

/// A `.part` file, removed when dropped unless it was renamed.
struct PartFile {
    path: PathBuf,
    renamed: bool,
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl BodyFile {
    /// Starts page `page` of `source` in `dir`.
    pub fn create(dir: &Path, source: Source, page: u32) -> anyhow::Result<Self> {
        let path = dir.join(format!("{}.part", file_name(source, page)));
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            part: PartFile {
                path,
                renamed: false,
            },
            out: BufWriter::with_capacity(FILE_CHUNK_BYTES, file),
            hasher: Sha256::new(),
            bytes: 0,
            source,
            page,
        })
    }

    /// The file being written, for messages.
    pub fn path(&self) -> &Path {
        &self.part.path
    }

    /// Ends the body: every byte was written.
    pub fn finish(mut self) -> anyhow::Result<WrittenBody> {
        let path = &self.part.path;
        self.out
            .flush()
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(WrittenBody {
            entry: BodyEntry {
                source: self.source,
                page: self.page,
                file: file_name(self.source, self.page),
                bytes: self.bytes,
                sha256: hex::encode(self.hasher.finalize()),
            },
            part: self.part,
        })
    }
}

impl Write for BodyFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Removes every `.part` file of `dir`: the bodies of a snapshot that will
/// not be completed. A file still being written stays unnamed.
pub fn remove_parts(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().ends_with(".part") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A body's file name in a snapshot: `price-list.0.json`.
fn file_name(source: Source, page: u32) -> String {
    format!("{}.{page}.json", source.name())
}

/// Completes a snapshot in `dir` whose bodies are all written: the
/// previous manifest (if any) goes first, then each body takes its name,
/// then the new manifest is written (under a temporary name, then
/// renamed). A directory without a manifest is an incomplete snapshot, and
/// no manifest ever names bodies it does not describe.
pub fn commit(dir: &Path, info: &RunInfo, bodies: Vec<WrittenBody>) -> anyhow::Result<Manifest> {
    let path = dir.join(MANIFEST);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing the old {}", path.display()));
        }
        _ => {}
    }
    let mut entries: Vec<BodyEntry> = Vec::with_capacity(bodies.len());
    for mut body in bodies {
        let to = dir.join(&body.entry.file);
        std::fs::rename(&body.part.path, &to).with_context(|| {
            format!("renaming {} to {}", body.part.path.display(), to.display())
        })?;
        body.part.renamed = true;
        entries.push(body.entry.clone());
    }
    entries.sort_by_key(|e| (e.source, e.page));
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        created_at: info.created_at.clone(),
        bitcram_url: info.bitcram_url.clone(),
        checkout_number: info.checkout_number.clone(),
        checkout_id: info.checkout_id,
        warehouse_id: info.warehouse_id,
        bodies: entries,
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest always serializes");
    let part = dir.join(format!("{MANIFEST}.part"));
    std::fs::write(&part, json)
        .and_then(|()| std::fs::rename(&part, &path))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(manifest)
}

/// A snapshot directory whose manifest has been read and checked.
#[derive(Debug, Clone)]
pub struct Snapshot {
    dir: PathBuf,
    manifest: Manifest,
}

impl Snapshot {
    /// Reads and checks `DIR/manifest.json`; bodies are read later, one at a
    /// time, by [`Snapshot::stream_body`].
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read(&path).with_context(|| {
            format!(
                "reading the snapshot manifest {} (is {} a snapshot directory?)",
                path.display(),
                dir.display()
            )
        })?;
        let manifest: Manifest = serde_json::from_slice(&text)
            .with_context(|| format!("parsing the snapshot manifest {}", path.display()))?;
        if manifest.format != FORMAT {
            bail!(
                "snapshot manifest {} has format {:?}; this version reads {FORMAT:?}",
                path.display(),
                manifest.format
            );
        }
        let mut previous: Option<(Source, u32)> = None;
        for entry in &manifest.bodies {
            let file = Path::new(&entry.file);
            if file.components().count() != 1
                || !matches!(
                    file.components().next(),
                    Some(std::path::Component::Normal(_))
                )
            {
                bail!(
                    "snapshot manifest {} names the file {:?}, which is not a plain file name",
                    path.display(),
                    entry.file
                );
            }
            let key = (entry.source, entry.page);
            if previous.is_some_and(|p| p >= key) {
                bail!(
                    "snapshot manifest {} lists the bodies out of order (checkout, stock, price-list; pages ascending)",
                    path.display()
                );
            }
            previous = Some(key);
        }
        if !manifest
            .bodies
            .iter()
            .any(|e| e.source == Source::PriceList)
        {
            bail!(
                "snapshot manifest {} lists no price-list body",
                path.display()
            );
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn run_info(&self) -> RunInfo {
        let m = &self.manifest;
        RunInfo {
            created_at: m.created_at.clone(),
            bitcram_url: m.bitcram_url.clone(),
            checkout_number: m.checkout_number.clone(),
            checkout_id: m.checkout_id,
            warehouse_id: m.warehouse_id,
        }
    }
}

/// The pages of a snapshot in the order the transform takes them, each read
/// in chunks (and checked against the manifest) only when it is asked for.
pub fn pages(snapshot: Snapshot) -> impl Iterator<Item = anyhow::Result<(Source, Body)>> + Send {
    let entries = snapshot.manifest().bodies.clone();
    entries
        .into_iter()
        .map(move |entry| Ok((entry.source, snapshot.stream_body(entry))))
}

impl Snapshot {
    /// Reads one body in chunks on a blocking thread (which must be had:
    /// call this inside the runtime); its size is checked against the manifest
    /// first and its sha256 at the end, a mismatch ending the chunks in an
    /// error.
    pub fn stream_body(&self, entry: BodyEntry) -> Body {
        let path = self.dir.join(&entry.file);
        let (sender, chunks) = crate::body::chunked(path.display().to_string(), false);
        tokio::task::spawn_blocking(move || match read_chunks(&path, &entry, &sender) {
            Ok(()) => sender.blocking_end(),
            Err(Some(reason)) => sender.blocking_fail(reason),
            // The transform stopped taking it.
            Err(None) => {}
        });
        Body::Chunks(chunks)
    }
}

/// Sends the file at `path` in chunks, then checks it against `entry`.
/// `Err(None)`: the taker went away.
fn read_chunks(path: &Path, entry: &BodyEntry, sender: &ChunkSender) -> Result<(), Option<String>> {
    let reading =
        |e: std::io::Error| Some(format!("reading snapshot body {}: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(reading)?;
    let len = file.metadata().map_err(reading)?.len();
    if len != entry.bytes {
        return Err(Some(format!(
            "snapshot body {} has {len} bytes, but the manifest says {}: the snapshot is damaged",
            path.display(),
            entry.bytes
        )));
    }
    let mut hasher = Sha256::new();
    loop {
        // Read into fresh capacity: `read_to_end` fills it without zeroing it first.
        let mut chunk = Vec::with_capacity(FILE_CHUNK_BYTES);
        let n = Read::take(&mut file, FILE_CHUNK_BYTES as u64)
            .read_to_end(&mut chunk)
            .map_err(reading)?;
        if n == 0 {
            break;
        }
        hasher.update(&chunk);
        sender.blocking_send(chunk.into()).map_err(|_| None)?;
    }
    let sha256 = hex::encode(hasher.finalize());
    if sha256 != entry.sha256 {
        return Err(Some(format!(
            "snapshot body {} has sha256 {sha256}, but the manifest says {}: the snapshot is damaged",
            path.display(),
            entry.sha256
        )));
    }
    Ok(())
}

/// Each body's digest, as the manifest records it.
pub fn digests(manifest: &Manifest) -> Vec<BodyDigest> {
    manifest
        .bodies
        .iter()
        .map(|entry| BodyDigest {
            source: entry.source,
            page: entry.page,
            sha256: entry.sha256.clone(),
        })
        .collect()
}
