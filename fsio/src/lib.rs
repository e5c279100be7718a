//! The one way tapegrad writes files that must never be seen half-written
//! (weights, optimizer state, checkpoints, caches, downloads, metrics).
//!
//! A file is written under a temporary name in the same folder
//! (`.<name>.tmp-<pid>`), fsynced, renamed over the destination, and the folder is
//! fsynced so that the rename itself is durable. A folder is filled under
//! `.<name>.tmp`, every file in it fsynced, the old folder (if any) renamed to
//! `.<name>.old`, the new one renamed into place, and the old one removed. A reader
//! sees the old version or the new one; after a crash between the two renames only
//! `.<name>.old` holds the last complete copy, which [`recover_dir`] puts back.
//!
//! Test hook: with `TAPEGRAD_FAIL_WRITES_AFTER=n` in the environment, every write
//! after the first `n` in the process fails with "no space left on device", as a
//! full disk would; the fault-injection tests use it where no small tmpfs can be
//! mounted.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `path` atomically; `write` fills the temporary file. On any error the
/// temporary file is removed and `path` is as it was.
pub fn write_file(path: &Path, write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>) -> io::Result<()> {
    let dir = parent(path);
    let tmp = dir.join(format!(".{}.tmp-{}", file_name(path), std::process::id()));
    let result = (|| {
        injected_fault()?;
        let mut w = BufWriter::new(File::create(&tmp)?);
        write(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    sync_dir(dir);
    Ok(())
}

/// [`write_file`] with the whole contents at hand.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_file(path, |w| w.write_all(bytes))
}

/// Writes the folder `dir` atomically: `write` fills a fresh temporary folder
/// beside it (`.<name>.tmp`), which then replaces `dir`. On an error from `write`
/// the temporary folder is removed and `dir` is as it was.
pub fn write_dir<E: From<io::Error>>(
    dir: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let parent = parent(dir);
    fs::create_dir_all(parent)?;
    let (tmp, old) = (sibling(dir, "tmp"), sibling(dir, "old"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    fs::create_dir_all(&tmp)?;
    let filled = write(&tmp).and_then(|()| {
        injected_fault()?;
        for entry in fs::read_dir(&tmp)? {
            File::open(entry?.path())?.sync_all()?;
        }
        Ok(())
    });
    if let Err(e) = filled {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if old.exists() {
        fs::remove_dir_all(&old)?;
    }
    if dir.exists() {
        fs::rename(dir, &old)?;
    }
    fs::rename(&tmp, dir)?;
    sync_dir(parent);
    let _ = fs::remove_dir_all(&old);
    Ok(())
}

/// What [`recover_dir`] found beside a folder written by [`write_dir`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// A half-written `.<name>.tmp` folder that was removed.
    pub removed_partial: Option<PathBuf>,
    /// A `.<name>.old` copy removed because `dir` is complete.
    pub removed_old: Option<PathBuf>,
    /// `dir` was missing and `.<name>.old`, the last complete copy, was renamed back.
    pub restored_from: Option<PathBuf>,
}

impl Recovery {
    pub fn is_empty(&self) -> bool {
        *self == Recovery::default()
    }
}

/// Cleans up after a [`write_dir`] of `dir` that a crash interrupted: removes a
/// half-written temporary folder, and either removes the old copy (`dir` exists) or
/// renames it back into place (the crash came between the two renames).
pub fn recover_dir(dir: &Path) -> io::Result<Recovery> {
    let (tmp, old) = (sibling(dir, "tmp"), sibling(dir, "old"));
    let mut r = Recovery::default();
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
        r.removed_partial = Some(tmp);
    }
    if old.exists() {
        if dir.exists() {
            fs::remove_dir_all(&old)?;
            r.removed_old = Some(old);
        } else {
            fs::rename(&old, dir)?;
            sync_dir(parent(dir));
            r.restored_from = Some(old);
        }
    }
    Ok(r)
}

/// `.<name>.<what>` beside `path`: the temporary (`tmp`) or previous (`old`) copy
/// of a folder written by [`write_dir`].
pub fn sibling(path: &Path, what: &str) -> PathBuf {
    parent(path).join(format!(".{}.{what}", file_name(path)))
}

fn parent(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Makes a rename in `dir` durable (best effort: not every platform opens folders).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

static WRITES: AtomicU64 = AtomicU64::new(0);

/// The `TAPEGRAD_FAIL_WRITES_AFTER` test hook (see the module docs).
fn injected_fault() -> io::Result<()> {
    let Some(limit) = std::env::var("TAPEGRAD_FAIL_WRITES_AFTER").ok().and_then(|v| v.parse::<u64>().ok())
    else {
        return Ok(());
    };
    if WRITES.fetch_add(1, Ordering::SeqCst) >= limit {
        return Err(io::Error::new(
            io::ErrorKind::StorageFull,
            "No space left on device (injected by TAPEGRAD_FAIL_WRITES_AFTER)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_file_write_leaves_the_old_file_and_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.bin");
        write_bytes(&p, b"old").unwrap();
        let e = write_file(&p, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        });
        assert_eq!(e.unwrap_err().to_string(), "disk full");
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1, "no temporary left behind");
    }

    #[test]
    fn a_folder_is_replaced_whole_and_recovered_after_a_crash_between_renames() {
        let d = tempfile::tempdir().unwrap();
        let ck = d.path().join("last");
        let fill = |text: &'static str| move |tmp: &Path| fs::write(tmp.join("f"), text);
        write_dir(&ck, fill("1")).unwrap();
        write_dir(&ck, fill("2")).unwrap();
        assert_eq!(fs::read_to_string(ck.join("f")).unwrap(), "2");
        assert!(!sibling(&ck, "old").exists() && !sibling(&ck, "tmp").exists());
        // A failing writer leaves the folder as it was.
        let e = write_dir(&ck, |tmp: &Path| {
            fs::write(tmp.join("f"), "half")?;
            Err(io::Error::other("boom"))
        });
        assert!(e.is_err());
        assert_eq!(fs::read_to_string(ck.join("f")).unwrap(), "2");
        assert!(!sibling(&ck, "tmp").exists());
        // A crash between the renames: only `.last.old` and a partial `.last.tmp`.
        fs::rename(&ck, sibling(&ck, "old")).unwrap();
        fs::create_dir(sibling(&ck, "tmp")).unwrap();
        let r = recover_dir(&ck).unwrap();
        assert!(r.removed_partial.is_some() && r.restored_from.is_some());
        assert_eq!(fs::read_to_string(ck.join("f")).unwrap(), "2");
        assert!(recover_dir(&ck).unwrap().is_empty());
    }
}
