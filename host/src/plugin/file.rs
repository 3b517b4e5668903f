//! Reading a file that may be hostile: a plugin named on the command line,
//! an entry of the compile cache. Only a regular file is read, it is opened
//! without blocking (a FIFO cannot hang the run), and no more than a stated
//! number of bytes is read (`/dev/zero` cannot fill memory).

use std::fs::{File, Metadata, OpenOptions};
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;

/// The largest plugin file read: a CPython or JavaScript component is
/// 10 to 20 MB.
pub const PLUGIN_FILE_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// The largest compile-cache entry read.
pub const CACHE_ENTRY_MAX_BYTES: u64 = 1024 * 1024 * 1024;

/// Why a file was not read.
#[derive(Debug)]
pub enum Unreadable {
    /// It could not be opened or read.
    Io(std::io::Error),
    /// It is not what may be read, or too large: said in words.
    Refused(String),
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::Io(e) => write!(f, "cannot read the file: {e}"),
            Unreadable::Refused(why) => f.write_str(why),
        }
    }
}

/// Reads `path` whole if it is a regular file of at most `limit` bytes.
/// With `follow_symlinks` false, a symbolic link is refused too. Returns
/// the bytes and the file's metadata (for ownership checks).
pub fn read_regular(
    path: &Path,
    limit: u64,
    follow_symlinks: bool,
) -> Result<(Vec<u8>, Metadata), Unreadable> {
    let mut flags = libc::O_NONBLOCK;
    if !follow_symlinks {
        flags |= libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) if !follow_symlinks => {
                Unreadable::Refused("it is a symbolic link, not a regular file".to_owned())
            }
            _ => Unreadable::Io(e),
        })?;
    let meta = file.metadata().map_err(Unreadable::Io)?;
    let kind = meta.file_type();
    let not_regular = if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_char_device() || kind.is_block_device() {
        Some("a device")
    } else if kind.is_socket() {
        Some("a socket")
    } else if !kind.is_file() {
        Some("not a plain file")
    } else {
        None
    };
    if let Some(what) = not_regular {
        return Err(Unreadable::Refused(format!(
            "it is {what}, not a regular file"
        )));
    }
    if meta.len() > limit {
        return Err(too_large(meta.len(), limit));
    }
    let bytes = read_at_most(file, limit)?;
    Ok((bytes, meta))
}

fn read_at_most(file: File, limit: u64) -> Result<Vec<u8>, Unreadable> {
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(Unreadable::Io)?;
    if bytes.len() as u64 > limit {
        // It grew while being read.
        return Err(too_large(bytes.len() as u64, limit));
    }
    Ok(bytes)
}

fn too_large(bytes: u64, limit: u64) -> Unreadable {
    Unreadable::Refused(format!(
        "it is {} MiB or more, larger than the limit of {} MiB",
        bytes / (1024 * 1024),
        limit / (1024 * 1024)
    ))
}

/// Why a file or directory of the compile cache must not be trusted with
/// native code the job will run: another user owns it, or others may write
/// it.
pub fn untrusted(meta: &Metadata) -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        Some("owned by another user")
    } else if meta.mode() & 0o022 != 0 {
        Some("writable by other users")
    } else {
        None
    }
}
