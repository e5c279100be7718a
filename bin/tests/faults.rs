//! Fault injection: `kill -9` at random moments and inside checkpoint writes, a
//! full disk, and corrupted checkpoints. After each fault the last complete
//! checkpoint must load and a resume must continue; the kill-and-resume runs must
//! end bit for bit where an uninterrupted run ends.

mod run_common;

use run_common::*;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The run every test interrupts: 6 epochs of 4 steps on the synthetic set.
const EPOCHS: &str = "6";

fn weights(out: &Path) -> Vec<u8> {
    fs::read(out.join("last/model.safetensors")).unwrap()
}

/// Starts the run in `out`, or continues it from its last checkpoint.
fn start_or_resume(f: &Fixture, out: &Path) -> Vec<String> {
    if out.join("last").exists() || out.join(".last.old").exists() {
        f.resume(out, &[])
    } else {
        f.train(out, &["--epochs", EPOCHS, "--overwrite"])
    }
}

/// The last complete checkpoint loads (`predict` reads weights, vocabulary and state).
fn assert_loads(out: &Path) {
    let o = run(&strings(&["predict", "--checkpoint", out.join("last").to_str().unwrap(), "great movie"]));
    assert!(o.status.success(), "the last checkpoint does not load: {}", stderr(&o));
}

#[test]
fn kill_9_at_random_moments_then_resume_ends_where_an_uninterrupted_run_ends() {
    let f = Fixture::new(30);
    let full = f.path("full");
    let o = run(&f.train(&full, &["--epochs", EPOCHS]));
    assert!(o.status.success(), "{}", stderr(&o));
    let (acc, _) = last_line_accuracy(&o);

    let out = f.path("killed");
    // Seeded delays (xorshift: no dependency on a rand version).
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ 14;
    let mut delay_ms = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        30 + state % 1200
    };
    let mut kills = 0;
    for round in 0..40 {
        // Slowed down (80 ms a step, 30 ms inside each checkpoint write) so that the
        // moments spread over steps, validations and saves.
        let child = spawn(&start_or_resume(&f, &out), &[("FINETUNE_IMDB_PAUSE", "step:80,save:30")]);
        // A random moment of the run (or of its start-up).
        let mut child = child;
        std::thread::sleep(Duration::from_millis(delay_ms()));
        if child.try_wait().unwrap().is_some() {
            let o = child.wait_with_output().unwrap();
            assert!(o.status.success(), "round {round}: {}", stderr(&o));
            break;
        }
        signal(&child, "KILL");
        child.wait().unwrap();
        kills += 1;
        if out.join("last").exists() || out.join(".last.old").exists() {
            if !out.join("last").exists() {
                // Killed between the two renames: the next start puts `.last.old` back.
                assert!(out.join(".last.old/run.json").exists());
            } else {
                assert_loads(&out);
            }
        }
    }
    eprintln!("kill -9 landed {kills} times before the run completed");
    assert!(kills >= 5, "only {kills} kills landed; the run is too fast for the test");
    let o = run(&start_or_resume(&f, &out));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(last_line_accuracy(&o).0, acc);
    assert!(
        weights(&out) == weights(&full),
        "after {kills} kills the weights differ from the uninterrupted run's"
    );
    assert_eq!(lines(&out.join("metrics.jsonl")), 6);
    assert_eq!(lines(&out.join("steps.jsonl")), lines(&full.join("steps.jsonl")));
}

#[test]
fn kill_9_inside_checkpoint_writes() {
    let f = Fixture::new(30);
    let out = f.path("out");
    let o = run(&f.train(&out, &["--epochs", EPOCHS, "--max-steps", "2"]));
    assert!(o.status.success(), "{}", stderr(&o));
    for round in 0..3 {
        // Each save stops half-way (weights written, optimizer and run.json not yet).
        let child = spawn(&f.resume(&out, &[]), &[("FINETUNE_IMDB_PAUSE", "save:20000")]);
        wait_for("a checkpoint write", 120, || {
            out.join(".last.tmp").exists() || out.join(".best.tmp").exists()
        });
        std::thread::sleep(Duration::from_millis(100));
        signal(&child, "KILL");
        child.wait_with_output().unwrap();
        assert!(out.join("last/run.json").exists(), "round {round}: the previous last/ is intact");
        assert_loads(&out);
    }
    let o = run(&f.resume(&out, &[]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).is_empty() || !stderr(&o).contains("error"));
    assert!(!out.join(".last.tmp").exists() && !out.join(".best.tmp").exists());
}

/// A small tmpfs where one can be mounted (root on Linux), else `None`.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", dir.to_str()?])
            .output()
            .ok()?
            .status
            .success();
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` (a filler file written until it fails).
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let p = dir.join("filler");
    let mut file = fs::File::create(&p).unwrap();
    let chunk = vec![0u8; 4096];
    while file.write_all(&chunk).and_then(|_| file.sync_all()).is_ok() {}
    p
}

#[test]
fn a_full_disk_fails_the_save_cleanly_and_a_resume_continues() {
    let f = Fixture::new(30);
    let mnt = f.path("mnt");
    let tmpfs = Tmpfs::mount(&mnt, "4m");
    let out = mnt.join("out");
    let o = run(&f.train(&out, &["--epochs", "3", "--max-steps", "2"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let before = weights(&out);
    let filler = match &tmpfs {
        Some(_) => {
            eprintln!("a 4 MiB tmpfs is mounted at {}; filling it", mnt.display());
            let p = fill(&mnt);
            let o = run(&f.resume(&out, &[]));
            assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
            assert!(stderr(&o).contains("No space left on device"), "{}", stderr(&o));
            Some(p)
        }
        None => {
            eprintln!(
                "note: no tmpfs could be mounted; a full disk is injected with TAPEGRAD_FAIL_WRITES_AFTER"
            );
            let o = run_env(&f.resume(&out, &[]), &[("TAPEGRAD_FAIL_WRITES_AFTER", "2")]);
            assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
            assert!(stderr(&o).contains("No space left on device"), "{}", stderr(&o));
            None
        }
    };
    assert!(weights(&out) == before, "the failed save left last/ as it was");
    assert_loads(&out);
    if let Some(p) = filler {
        fs::remove_file(p).unwrap();
    }
    let o = run(&f.resume(&out, &[]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lines(&out.join("metrics.jsonl")), 3);
}

#[test]
fn corrupted_checkpoints_are_named_and_the_other_checkpoint_continues() {
    let f = Fixture::new(30);
    let out = f.path("out");
    let o = run(&f.train(&out, &["--epochs", "2"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let last = out.join("last");
    let pristine = f.path("pristine");
    copy_dir(&last, &pristine);
    type Damage = fn(&Path);
    let damages: [(&str, &str, Damage); 6] = [
        ("truncated weights", "model.safetensors", |d| truncate(&d.join("model.safetensors"), 100)),
        ("garbage weights", "model.safetensors", |d| {
            fs::write(d.join("model.safetensors"), b"\xff\xff\xff\xff\xff\xff\xff\x7f{").unwrap()
        }),
        ("truncated optimizer", "optimizer.safetensors", |d| truncate(&d.join("optimizer.safetensors"), 64)),
        ("truncated run.json", "run.json", |d| truncate(&d.join("run.json"), 40)),
        ("missing vocabulary", "vocab.json", |d| fs::remove_file(d.join("vocab.json")).unwrap()),
        ("flipped bytes", "model.safetensors", |d| flip_header(&d.join("model.safetensors"))),
    ];
    for (what, file, damage) in damages {
        fs::remove_dir_all(&last).unwrap();
        copy_dir(&pristine, &last);
        damage(&last);
        let o = run(&f.resume(&out, &[]));
        assert_eq!(o.status.code(), Some(1), "{what}: must fail cleanly: {}", stderr(&o));
        assert!(stderr(&o).contains(file), "{what}: the error should name {file}: {}", stderr(&o));
    }
    // best/ is complete: the run continues from it.
    let best = out.join("best");
    let o = run(&strings(&[
        "train",
        "--resume",
        best.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
}

fn truncate(path: &Path, len: u64) {
    fs::OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
}

fn flip_header(path: &Path) {
    let mut b = fs::read(path).unwrap();
    for x in &mut b[8..40] {
        *x ^= 0x5a;
    }
    fs::write(path, b).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}
