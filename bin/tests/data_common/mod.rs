//! Helpers shared by the `data_*` integration tests.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

/// `../shared/data` of the workspace, or `None` (after printing a SKIPPED
/// line) if `rel` is missing there. Panics when `CI=true` and it is missing.
pub fn shared_data(rel: &str, test: &str) -> Option<PathBuf> {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data"));
    let path = root.join(rel);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but {} is missing (needed by {test})", path.display());
    }
    // straight to stderr, past libtest's capture of print!/eprint!, so the skip shows in the run
    let _ = std::io::Write::write_fmt(
        &mut std::io::stderr(),
        format_args!("SKIPPED: {test}: {} not found\n", path.display()),
    );
    None
}

/// One review file of the fixture.
pub struct FixtureFile {
    pub rel: String,
    pub bytes: Vec<u8>,
}

/// The small aclImdb-format fixture: `train` has 3 hand-written + 27
/// generated reviews per class, `test` 2 per class; plus files that must be
/// ignored (unsup/, *.feat, README, imdb.vocab).
pub fn fixture_files() -> Vec<FixtureFile> {
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("train/pos/0_9.txt".into(), b"Great movie!<br /><br />Loved it.".to_vec()),
        ("train/pos/1_8.txt".into(), b"Good<br/>fun<BR>here".to_vec()),
        ("train/pos/2_10.txt".into(), b"caf\xe9 was good".to_vec()), // Latin-1: invalid UTF-8
        ("train/neg/0_1.txt".into(), b"Bad. Boring<br>and long".to_vec()),
        ("train/neg/1_2.txt".into(), "Awful — truly".as_bytes().to_vec()),
        ("train/neg/2_3.txt".into(), b"Meh \xff\xfe".to_vec()), // invalid UTF-8
        ("test/pos/0_7.txt".into(), b"Nice film.".to_vec()),
        ("test/pos/1_9.txt".into(), b"Superb!".to_vec()),
        ("test/neg/0_4.txt".into(), b"Not good.".to_vec()),
        ("test/neg/1_2.txt".into(), b"Terrible.".to_vec()),
        ("train/unsup/0_0.txt".into(), b"unlabeled".to_vec()),
        ("train/labeledBow.feat".into(), b"0 9:1".to_vec()),
        ("README".into(), b"readme".to_vec()),
        ("imdb.vocab".into(), b"the\nand".to_vec()),
    ];
    for i in 0..27 {
        files.push((
            format!("train/pos/{}_7.txt", 100 + i),
            format!("positive review number {i}").into_bytes(),
        ));
        files.push((
            format!("train/neg/{}_2.txt", 100 + i),
            format!("negative review number {i}").into_bytes(),
        ));
    }
    files.into_iter().map(|(rel, bytes)| FixtureFile { rel, bytes }).collect()
}

/// Write `files` under `root` (which becomes the aclImdb folder).
pub fn write_tree(root: &Path, files: &[FixtureFile]) {
    for f in files {
        let p = root.join(&f.rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, &f.bytes).unwrap();
    }
}

/// Write the fixture as `<dir>/aclImdb/...` and return the aclImdb folder.
pub fn fixture_dir(dir: &Path) -> PathBuf {
    let root = dir.join("aclImdb");
    write_tree(&root, &fixture_files());
    root
}

/// The bytes of a `.tar.gz` holding `files` under `aclImdb/`.
pub fn tar_gz_bytes(files: &[FixtureFile]) -> Vec<u8> {
    let enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(enc);
    for dir in ["aclImdb/", "aclImdb/train/", "aclImdb/test/"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        h.set_mode(0o755);
        builder.append_data(&mut h, dir, std::io::empty()).unwrap();
    }
    for f in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(f.bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder.append_data(&mut h, format!("aclImdb/{}", f.rel), &f.bytes[..]).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// Write the fixture as `<dir>/<name>` (a .tar.gz) and return its path.
pub fn fixture_tar_gz(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, tar_gz_bytes(&fixture_files())).unwrap();
    p
}
