//! Archive and gzip integrity: a cut tar, a bad gzip CRC or a missing trailer are
//! errors that say so (and how many reviews were read); a folder missing one class
//! names the folder that is actually missing.

mod data_common;

use std::fs;
use std::io::Write;

use data_common::*;
use finetune_imdb::data::glove::Glove;
use finetune_imdb::data::imdb::{read_imdb, ImdbError, Split};

const BOTH: &[Split] = &[Split::Train, Split::Test];

/// A plain tar of `files` under `aclImdb/`, with its end-of-archive marker.
fn tar_bytes(files: &[FixtureFile]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for f in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(f.bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder.append_data(&mut h, format!("aclImdb/{}", f.rel), &f.bytes[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Labelled reviews among `files` (what the reader keeps).
fn reviews_in(files: &[FixtureFile]) -> usize {
    files.iter().filter(|f| f.rel.contains("/pos/") || f.rel.contains("/neg/")).count()
}

#[test]
fn a_tar_cut_at_an_entry_boundary_is_an_error_that_counts_the_reviews() {
    let tmp = tempfile::tempdir().unwrap();
    // Test reviews first, so that both splits have both classes before the cut.
    let mut files = fixture_files();
    files.sort_by_key(|f| !f.rel.starts_with("test/"));
    let full = tar_bytes(&files);
    for keep in [10, 40] {
        let head = tar_bytes(&files[..keep]);
        // The archive of the first `keep` entries, less its two zero blocks: the
        // full archive cut right after entry `keep`.
        let cut = &head[..head.len() - 1024];
        assert_eq!(cut, &full[..cut.len()], "the cut is a prefix of the full archive");
        let expected = reviews_in(&files[..keep]);
        for (name, bytes) in
            [(format!("cut{keep}.tar"), cut.to_vec()), (format!("cut{keep}.tar.gz"), gzip(cut))]
        {
            let path = tmp.path().join(&name);
            fs::write(&path, bytes).unwrap();
            let e = read_imdb(&path, BOTH).unwrap_err();
            match &e {
                ImdbError::TruncatedArchive { reviews, .. } => assert_eq!(*reviews, expected, "{name}"),
                other => panic!("{name}: expected a truncated archive, got {other:?}"),
            }
            let msg = e.to_string();
            assert!(msg.contains(&name) && msg.contains(&format!("{expected} reviews")), "{msg}");
        }
    }
    // The whole archive, plain and gzipped, still reads.
    let path = tmp.path().join("full.tar");
    fs::write(&path, &full).unwrap();
    assert_eq!(read_imdb(&path, BOTH).unwrap().train.len(), 60);
    fs::write(&path, gzip(&full)).unwrap();
    assert_eq!(read_imdb(&path, BOTH).unwrap().test.len(), 4);
}

#[test]
fn a_gzip_with_a_bad_crc_or_no_trailer_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tar_gz_bytes(&fixture_files());
    let n = good.len();
    // The trailer: CRC-32 (4 bytes), then the length mod 2^32 (4 bytes).
    let mut bad_crc = good.clone();
    bad_crc[n - 8] ^= 0x01;
    let mut bad_len = good.clone();
    bad_len[n - 2] ^= 0x01;
    let cases = [
        ("crc.tar.gz", bad_crc, "crc"),
        ("isize.tar.gz", bad_len, ""),
        ("notrailer.tar.gz", good[..n - 8].to_vec(), ""),
        ("halftrailer.tar.gz", good[..n - 3].to_vec(), ""),
    ];
    for (name, bytes, word) in cases {
        let path = tmp.path().join(name);
        fs::write(&path, bytes).unwrap();
        let e = read_imdb(&path, BOTH).unwrap_err();
        assert!(matches!(e, ImdbError::CorruptArchive { .. }), "{name}: {e:?}");
        let msg = e.to_string();
        assert!(msg.contains(name) && msg.to_lowercase().contains(word), "{msg}");
    }
    let path = tmp.path().join("good.tar.gz");
    fs::write(&path, good).unwrap();
    assert_eq!(read_imdb(&path, BOTH).unwrap().train.len(), 60);
}

#[test]
fn a_folder_with_one_class_names_the_missing_one() {
    let tmp = tempfile::tempdir().unwrap();
    for (have, missing) in [("pos", "neg"), ("neg", "pos")] {
        let dir = tmp.path().join(format!("only-{have}"));
        fs::create_dir_all(dir.join(have)).unwrap();
        fs::write(dir.join(have).join("0_9.txt"), "a review").unwrap();
        let e = read_imdb(&dir, BOTH).unwrap_err();
        match &e {
            ImdbError::MissingLabels { missing: m, split: None, .. } => assert_eq!(*m, missing),
            other => {
                panic!("only {have}/: expected the labeled folder's {missing}/ to be missing: {other:?}")
            }
        }
        let msg = e.to_string();
        assert!(msg.contains(&format!("`{missing}`")) && msg.contains(&format!("only-{have}")), "{msg}");
        assert!(!msg.contains("train"), "nothing about a train split was asked for: {msg}");
    }
}

#[test]
fn a_glove_gzip_with_a_bad_crc_or_no_trailer_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let text: String = (0..200).map(|i| format!("w{i} {i}.5 -{i}.25 0.125\n")).collect();
    let good = gzip(text.as_bytes());
    let n = good.len();
    let mut bad_crc = good.clone();
    bad_crc[n - 7] ^= 0x10;
    for (name, bytes) in [("crc.txt.gz", bad_crc), ("notrailer.txt.gz", good[..n - 8].to_vec())] {
        let path = tmp.path().join(name);
        fs::write(&path, bytes).unwrap();
        let e = Glove::from_text(&path, None).unwrap_err();
        assert!(e.to_string().contains(name), "{e}");
    }
    let path = tmp.path().join("good.txt.gz");
    fs::write(&path, good).unwrap();
    assert_eq!(Glove::from_text(&path, None).unwrap().len(), 200);
}
