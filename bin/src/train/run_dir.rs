//! A run folder (`--out`) holds one run: its checkpoints `last/` and `best/`
//! (and `epoch-N/` with `--keep-epochs`), `metrics.jsonl`, `steps.jsonl` and
//! `curves.svg`. A new run refuses a folder
//! that holds another one unless `--overwrite`; a resumed run continues in the
//! folder of its own run (or starts a fresh folder). `--overwrite` removes the other
//! run only once the new one has its data and model. Temporaries left by an
//! interrupted checkpoint write are cleaned up, and said so, at the start.

use super::checkpoint::{self, RUN_FILE};
use crate::report::{CURVES_FILE, METRICS_FILE, STEPS_FILE};
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// The checkpoint folders of a run.
pub const CHECKPOINTS: [&str; 2] = ["last", "best"];

/// What a run writes into its folder (besides the checkpoints' temporaries and
/// the `epoch-N/` checkpoints of `--keep-epochs`).
const ENTRIES: [&str; 5] = ["last", "best", METRICS_FILE, STEPS_FILE, CURVES_FILE];

/// The folder `--keep-epochs` saves epoch `epoch` (1-based) into.
pub fn epoch_dir(epoch: usize) -> String {
    format!("epoch-{epoch}")
}

/// The `epoch-N` checkpoints in `out`, found as folders or as the temporaries
/// (`.epoch-N.tmp`, `.epoch-N.old`) of an interrupted write.
fn epoch_checkpoints(out: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(out) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| {
            let bare = n.strip_prefix('.').and_then(|b| b.strip_suffix(".tmp").or(b.strip_suffix(".old")));
            let name = bare.unwrap_or(&n);
            let n = name.strip_prefix("epoch-")?;
            (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then(|| name.to_string())
        })
        .collect();
    // By epoch number, so that epoch-10 follows epoch-9 in what is printed.
    names.sort_by_key(|n| (n.len(), n.clone()));
    names.dedup();
    names
}

/// Removes half-written checkpoint temporaries and log files (`.metrics.jsonl.tmp-<pid>`,
/// left by a process killed mid-write) and puts back a checkpoint that a crash left only
/// under its `.old` name, printing what was done.
pub fn recover(out: &Path) -> Result<()> {
    let logs: Vec<String> =
        [METRICS_FILE, STEPS_FILE, CURVES_FILE].iter().map(|f| format!(".{f}.tmp-")).collect();
    for entry in fs::read_dir(out).with_context(|| format!("reading {}", out.display()))? {
        let path = entry.with_context(|| format!("reading {}", out.display()))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if path.is_file() && logs.iter().any(|l| name.starts_with(l.as_str())) {
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            eprintln!("note: removed {}, a log write that did not finish", path.display());
        }
    }
    let names = CHECKPOINTS.iter().map(|c| c.to_string()).chain(epoch_checkpoints(out));
    for name in names {
        let dir = out.join(&name);
        let r = tapegrad_fsio::recover_dir(&dir)
            .with_context(|| format!("cleaning up beside {}", dir.display()))?;
        if let Some(p) = r.removed_partial {
            eprintln!("note: removed {}, a checkpoint write that did not finish", p.display());
        }
        if let Some(p) = r.removed_old {
            eprintln!(
                "note: removed {}, the previous copy of {name}/ left by an interrupted write",
                p.display()
            );
        }
        if let Some(p) = r.restored_from {
            eprintln!("note: restored {} from {}, its last complete copy", dir.display(), p.display());
        }
    }
    Ok(())
}

/// What [`claim`] found in a run folder: nothing in the way, or (with `--overwrite`)
/// another run's entries, which [`Claim::take`] removes. The removal waits until the
/// new run has read its data and built its model, so that a run that fails before it
/// can write anything (a corrupt archive, a bad embeddings line) leaves the old run
/// as it was.
#[must_use = "a claim with --overwrite removes the old run only when taken"]
pub struct Claim {
    out: PathBuf,
    replace: Vec<String>,
}

impl Claim {
    /// Removes the replaced run's files, if any, saying which.
    pub fn take(self) -> Result<()> {
        if self.replace.is_empty() {
            return Ok(());
        }
        for e in &self.replace {
            let p = self.out.join(e);
            let removed = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
            removed.with_context(|| format!("removing {}", p.display()))?;
        }
        eprintln!(
            "note: --overwrite: removed the previous run's {} from {}",
            self.replace.join(", "),
            self.out.display()
        );
        Ok(())
    }
}

/// Makes sure `out` holds no run but `run_id`'s (when resuming) or none at all;
/// with `overwrite`, another run's files are to be replaced (see [`Claim`]).
pub fn claim(out: &Path, run_id: Option<&str>, overwrite: bool) -> Result<Claim> {
    let mut present: Vec<String> =
        ENTRIES.into_iter().filter(|e| out.join(e).exists()).map(String::from).collect();
    present.extend(epoch_checkpoints(out));
    let free = Claim { out: out.to_path_buf(), replace: Vec::new() };
    if present.is_empty() {
        return Ok(free);
    }
    let holder = CHECKPOINTS.iter().find_map(|c| checkpoint::read_run(&out.join(c)).ok().map(|r| r.run_id));
    if run_id.is_some() && holder.as_deref() == run_id {
        return Ok(free);
    }
    if overwrite {
        return Ok(Claim { replace: present, ..free });
    }
    let how = if out.join("last").join(RUN_FILE).exists() {
        format!(", or --resume {} to continue it", out.join("last").display())
    } else {
        String::new()
    };
    bail!(
        "{} holds another run ({}); choose another --out, pass --overwrite to replace it{how}",
        out.display(),
        present.join(", ")
    )
}

/// A new run's id: the time and the process, unique enough to tell runs apart.
pub fn new_run_id() -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{}-{:09}-{}", t.as_secs(), t.subsec_nanos(), std::process::id())
}

#[cfg(test)]
mod tests {
    /// Kept epochs and their temporaries are found once each, in epoch order; other
    /// names are not theirs.
    #[test]
    fn epoch_checkpoints_are_listed_by_number() {
        let dir = tempfile::tempdir().unwrap();
        for name in
            ["epoch-10", "epoch-9", ".epoch-2.tmp", "epoch-2", ".epoch-11.old", "epoch-", "epoch-x", "last"]
        {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        assert_eq!(super::epoch_checkpoints(dir.path()), ["epoch-2", "epoch-9", "epoch-10", "epoch-11"]);
    }
}
