//! The on-disk cache of compiled components, keyed by the component's sha256
//! and wasmtime's compatibility hash (version, target, engine settings).
//!
//! Any problem with an entry (missing, unreadable, not a regular file, stale,
//! corrupt header) is a miss: the component is compiled again and the entry
//! rewritten. The cache holds native code that is loaded without
//! verification, so it is used only while the directory and the entry belong
//! to the user that runs the job and nobody else may write them; the job
//! creates the directory `0700`. Otherwise a warning, and a compile as for a
//! miss, with nothing stored.

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use std::os::unix::fs::DirBuilderExt as _;

use sha2::{Digest, Sha256};

use super::file::{CACHE_ENTRY_MAX_BYTES, Unreadable, read_regular, untrusted};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Whether a load hit the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded compiled code from the cache.
    Hit,
    /// Compiled, and (if the directory was writable) stored.
    Miss,
    /// No cache configured.
    Disabled,
}

/// A directory of compiled components.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `$XDG_CACHE_HOME/bitcram-sync/plugins`, `$HOME/.cache/bitcram-sync/plugins`,
    /// or the system temporary directory when neither is set.
    pub fn default_dir() -> PathBuf {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|home| PathBuf::from(home).join(".cache"))
            })
            .unwrap_or_else(std::env::temp_dir);
        base.join("bitcram-sync").join("plugins")
    }

    /// The entry's path for a component with this sha256 on this engine.
    pub fn entry_path(&self, engine: &Engine, sha256: &str) -> PathBuf {
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..8]);
        self.dir.join(format!("{sha256}-{engine_key}.cwasm"))
    }

    /// Loads the compiled component from the cache, or compiles it and stores
    /// it. Only a failure to compile is an error.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        sha256: &str,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let path = self.entry_path(engine, sha256);
        // A directory others may write is not used at all: not read, and
        // not written (what the job stores there could be replaced).
        let dir_trusted = match std::fs::metadata(&self.dir) {
            Ok(meta) => match untrusted(&meta) {
                Some(why) => {
                    tracing::warn!(dir = %self.dir.display(), "the plugin cache directory is {why}: not used; compiling");
                    false
                }
                None => true,
            },
            Err(_) => true,
        };
        if dir_trusted {
            // Read the entry into memory rather than mapping the file: a file
            // truncated under a mapping would crash the process (SIGBUS).
            match read_regular(&path, CACHE_ENTRY_MAX_BYTES, false) {
                Ok((_, meta)) if untrusted(&meta).is_some() => {
                    let why = untrusted(&meta).unwrap_or_default();
                    tracing::warn!(path = %path.display(), "the plugin cache entry is {why}: not used; compiling");
                }
                // SAFETY: the entry was written by `Component::serialize` of
                // this engine configuration (the key includes the
                // compatibility hash) into a directory and a file only the
                // job's user may write (checked above); wasmtime checks the
                // header and version and refuses stale or truncated entries.
                Ok((bytes, _)) => match unsafe { Component::deserialize(engine, &bytes) } {
                    Ok(component) => return Ok((component, CacheOutcome::Hit)),
                    Err(e) => {
                        tracing::debug!(path = %path.display(), error = %e, "plugin cache entry unusable; compiling");
                    }
                },
                Err(Unreadable::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::debug!(path = %path.display(), error = %e, "plugin cache entry unreadable; compiling");
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        if dir_trusted && let Err(e) = self.store(&path, &component) {
            tracing::debug!(dir = %self.dir.display(), error = %e, "plugin cache not written");
        }
        Ok((component, CacheOutcome::Miss))
    }

    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        let bytes = component.serialize()?;
        // Only the job's user may write where native code is kept.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        // Write a temporary file, then rename: readers never see half an entry.
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        file.write_all(&bytes)?;
        file.persist(path)?;
        Ok(())
    }
}

/// Feeds `Hash` input to sha256: a key that is stable across Rust releases,
/// unlike `DefaultHasher`.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("sha256 has 32 bytes"))
    }
}
