//! Writing a file of secrets only where it is meant to go: a regular file or a new path,
//! never through a link, never into a FIFO, device, socket or directory.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::Path;

use rustix::fs::{CWD, Mode, OFlags, RenameFlags};

use crate::{Error, Result};

/// Bytes of an existing file read to decide whether it may be replaced.
const HEAD: usize = 256;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

fn refuse(path: &Path, reason: impl Into<String>) -> Error {
    Error::Output {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// What `file_type` is, for a refusal.
fn kind(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The inode an existing regular file at `path` is, after `may_replace` has seen its
/// first bytes; `None` for a new path.
fn check_existing(
    path: &Path,
    may_replace: impl FnOnce(&[u8]) -> std::result::Result<(), String>,
) -> Result<Option<(u64, u64)>> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        return Err(refuse(
            path,
            "it is a symbolic link, which coffer does not follow; name the file itself",
        ));
    }
    if !file_type.is_file() {
        return Err(refuse(
            path,
            format!("it is {}, not a regular file", kind(file_type)),
        ));
    }
    // Read its head through a descriptor that cannot be a link or block on a FIFO
    // swapped in since, and that is the inode just checked.
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(path)(e.into()))?;
    let file = std::fs::File::from(fd);
    let opened = file.metadata().map_err(io(path))?;
    if !opened.is_file() || (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
        return Err(refuse(path, "it changed while coffer was checking it"));
    }
    let mut head = Vec::with_capacity(HEAD);
    file.take(HEAD as u64)
        .read_to_end(&mut head)
        .map_err(io(path))?;
    may_replace(&head).map_err(|reason| refuse(path, reason))?;
    Ok(Some((meta.dev(), meta.ino())))
}

/// Whether `e` says the file system cannot do `renameat2` with flags.
fn unsupported(e: rustix::io::Errno) -> bool {
    e == rustix::io::Errno::INVAL
        || e == rustix::io::Errno::NOSYS
        || e == rustix::io::Errno::OPNOTSUPP
}

/// Writes `contents` to `path` (mode 0600; missing folders are made with mode 0700) if
/// `path` is new, or a regular file whose
/// first bytes `may_replace` accepts. See [`EnvWriter::write_file`](crate::EnvWriter::write_file).
pub(crate) fn replace_regular_file(
    path: &Path,
    contents: &[u8],
    may_replace: impl FnOnce(&[u8]) -> std::result::Result<(), String>,
) -> Result<()> {
    let existing = check_existing(path, may_replace)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if existing.is_none() && !dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(io(dir))?;
    }
    // O_CREAT | O_EXCL, mode 0600: never a link, never someone else's file.
    let mut tmp = tempfile::Builder::new()
        .prefix(".coffer-export-")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    tmp.write_all(contents).map_err(io(path))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    let tmp = tmp.into_temp_path();
    match existing {
        None => match rustix::fs::renameat_with(CWD, &*tmp, CWD, path, RenameFlags::NOREPLACE) {
            Ok(()) => {
                // Renamed: nothing left to remove.
                let _ = tmp.keep();
            }
            Err(rustix::io::Errno::EXIST) => {
                return Err(refuse(path, "it appeared while coffer was writing it"));
            }
            Err(e) if unsupported(e) => {
                if std::fs::symlink_metadata(path).is_ok() {
                    return Err(refuse(path, "it appeared while coffer was writing it"));
                }
                std::fs::rename(&tmp, path).map_err(io(path))?;
                let _ = tmp.keep();
            }
            Err(e) => return Err(io(path)(e.into())),
        },
        Some(inode) => {
            match rustix::fs::renameat_with(CWD, &*tmp, CWD, path, RenameFlags::EXCHANGE) {
                Ok(()) => {
                    // `tmp` now names what was at `path`: the file checked, or the exchange
                    // is undone.
                    let displaced = std::fs::symlink_metadata(&tmp).map_err(io(path))?;
                    if !displaced.is_file() || (displaced.dev(), displaced.ino()) != inode {
                        rustix::fs::renameat_with(CWD, &*tmp, CWD, path, RenameFlags::EXCHANGE)
                            .map_err(|e| io(path)(e.into()))?;
                        return Err(refuse(path, "it changed while coffer was writing it"));
                    }
                    // Dropping `tmp` removes the old file.
                }
                Err(e) if unsupported(e) => {
                    let now = std::fs::symlink_metadata(path).map_err(io(path))?;
                    if !now.is_file() || (now.dev(), now.ino()) != inode {
                        return Err(refuse(path, "it changed while coffer was writing it"));
                    }
                    std::fs::rename(&tmp, path).map_err(io(path))?;
                    let _ = tmp.keep();
                }
                Err(e) => return Err(io(path)(e.into())),
            }
        }
    }
    // The rename itself survives a crash.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
