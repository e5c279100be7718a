//! Reading aclImdb from a directory and from a .tar.gz, splits and errors.

mod data_common;

use std::fs;

use data_common::*;
use finetune_imdb::data::imdb::{read_imdb, read_labeled_dir, read_split, ImdbError, Split};
use finetune_imdb::data::split::{take_limit, train_valid_split, SplitOptions};

const BOTH: &[Split] = &[Split::Train, Split::Test];

#[test]
fn directory_labels_cleaning_and_utf8_count() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fixture_dir(tmp.path());
    let data = read_imdb(&root, BOTH).unwrap();
    assert_eq!(data.train.len(), 60);
    assert_eq!(data.test.len(), 4);
    assert_eq!(data.train.iter().filter(|r| r.label == 1).count(), 30);
    assert_eq!(data.stats.files, 64);
    assert_eq!(data.stats.lossy_utf8, 2);
    let by_id = |id: &str| data.train.iter().find(|r| r.id == id).unwrap().clone();
    let r = by_id("train/pos/0_9.txt");
    assert_eq!((r.label, r.rating), (1, Some(9)));
    assert_eq!(r.text, "Great movie!  Loved it.");
    assert_eq!(by_id("train/pos/1_8.txt").text, "Good fun here");
    assert_eq!(by_id("train/neg/0_1.txt").text, "Bad. Boring and long");
    assert_eq!(by_id("train/neg/0_1.txt").label, 0);
    assert_eq!(by_id("train/pos/2_10.txt").text, "caf\u{fffd} was good");
    assert!(data.train.iter().all(|r| !r.id.contains("unsup")));
    // Sorted by id, whatever the directory order.
    assert!(data.train.windows(2).all(|w| w[0].id < w[1].id));
    // The parent folder of aclImdb works too.
    let parent = read_imdb(tmp.path(), &[Split::Test]).unwrap();
    assert_eq!(parent.test, data.test);
    assert!(parent.train.is_empty());
}

#[test]
fn tar_gz_matches_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fixture_dir(tmp.path());
    let archive = fixture_tar_gz(tmp.path(), "aclImdb.tar.gz");
    let from_dir = read_imdb(&root, BOTH).unwrap();
    let from_tar = read_imdb(&archive, BOTH).unwrap();
    assert_eq!(from_tar.train, from_dir.train);
    assert_eq!(from_tar.test, from_dir.test);
    assert_eq!(from_tar.stats.files, 64);
    assert_eq!(from_tar.stats.lossy_utf8, 2);
    // Only the test split: train entries are skipped, not decoded.
    let (test, stats) = read_split(&archive, Split::Test).unwrap();
    assert_eq!(test, from_dir.test);
    assert_eq!(stats.files, 4);
}

#[test]
fn plain_tar_is_read_too() {
    let tmp = tempfile::tempdir().unwrap();
    let gz = tar_gz_bytes(&fixture_files());
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
    let p = tmp.path().join("aclImdb.tar");
    fs::write(&p, raw).unwrap();
    assert_eq!(read_imdb(&p, BOTH).unwrap().train.len(), 60);
}

#[test]
fn labeled_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fixture_dir(tmp.path());
    let (reviews, stats) = read_labeled_dir(&root.join("test")).unwrap();
    assert_eq!(reviews.len(), 4);
    assert_eq!(stats.files, 4);
    assert_eq!(reviews[0].id, "neg/0_4.txt");
    // read_imdb on such a folder returns it as the test split.
    let data = read_imdb(&root.join("train"), &[Split::Train]).unwrap();
    assert!(data.train.is_empty());
    assert_eq!(data.test.len(), 60);
}

#[test]
fn seeded_split_and_limit_are_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let train = read_imdb(&fixture_dir(tmp.path()), &[Split::Train]).unwrap().train;
    let opts = SplitOptions { valid_fraction: 0.2, seed: 11, stratified: true };
    let (tr, va) = train_valid_split(train.clone(), &opts).unwrap();
    assert_eq!((tr.len(), va.len()), (48, 12));
    assert_eq!(va.iter().filter(|r| r.label == 1).count(), 6);
    let (tr2, va2) = train_valid_split(train.clone(), &opts).unwrap();
    assert_eq!((&tr, &va), (&tr2, &va2));
    let ids = |v: &[finetune_imdb::data::imdb::Review]| v.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    let other = train_valid_split(train.clone(), &SplitOptions { seed: 12, ..opts }).unwrap();
    assert_ne!(ids(&va), ids(&other.1));
    let a = take_limit(tr.clone(), 10, 3);
    assert_eq!(ids(&a), ids(&take_limit(tr.clone(), 10, 3)));
    assert_eq!(a.len(), 10);
}

#[test]
fn errors_name_the_path() {
    let tmp = tempfile::tempdir().unwrap();

    let missing = tmp.path().join("nope");
    let e = read_imdb(&missing, BOTH).unwrap_err();
    assert!(matches!(e, ImdbError::NotFound { .. }), "{e:?}");
    assert!(e.to_string().contains("nope"));

    // A directory without neg/ for the requested split.
    let partial = tmp.path().join("partial");
    fs::create_dir_all(partial.join("train/pos")).unwrap();
    fs::write(partial.join("train/pos/0_9.txt"), "good").unwrap();
    let e = read_imdb(&partial, &[Split::Train]).unwrap_err();
    assert!(matches!(e, ImdbError::MissingLabels { missing: "neg", .. }), "{e:?}");
    assert!(e.to_string().contains("partial"), "{e}");
    // An empty neg/ is as bad as none.
    fs::create_dir_all(partial.join("train/neg")).unwrap();
    let e = read_imdb(&partial, &[Split::Train]).unwrap_err();
    assert!(matches!(e, ImdbError::MissingLabels { missing: "neg", .. }), "{e:?}");
    // No test split at all.
    let e = read_imdb(&partial, &[Split::Test]).unwrap_err();
    assert!(matches!(e, ImdbError::MissingLabels { missing: "pos", .. }), "{e:?}");

    // An archive without the test split.
    let only_train: Vec<FixtureFile> =
        fixture_files().into_iter().filter(|f| f.rel.starts_with("train/")).collect();
    let arch = tmp.path().join("train-only.tar.gz");
    fs::write(&arch, tar_gz_bytes(&only_train)).unwrap();
    assert_eq!(read_imdb(&arch, &[Split::Train]).unwrap().train.len(), 60);
    let e = read_imdb(&arch, BOTH).unwrap_err();
    assert!(matches!(e, ImdbError::MissingLabels { .. }), "{e:?}");
    assert!(e.to_string().contains("train-only.tar.gz"));

    // Unreadable review file (a dangling symlink named *.txt).
    let bad = tmp.path().join("bad");
    let bad_root = fixture_dir(&bad);
    std::os::unix::fs::symlink(bad.join("nowhere"), bad_root.join("test/pos/9_9.txt")).unwrap();
    let e = read_imdb(&bad_root, &[Split::Test]).unwrap_err();
    assert!(matches!(e, ImdbError::Read { .. }), "{e:?}");
    assert!(e.to_string().contains("9_9.txt"), "{e}");

    // Corrupt archives: truncated gzip, garbage after the gzip magic.
    let full = tar_gz_bytes(&fixture_files());
    let cut = tmp.path().join("cut.tar.gz");
    fs::write(&cut, &full[..full.len() / 2]).unwrap();
    let e = read_imdb(&cut, BOTH).unwrap_err();
    assert!(matches!(e, ImdbError::CorruptArchive { .. }), "{e:?}");
    assert!(e.to_string().contains("cut.tar.gz"));
    let junk = tmp.path().join("junk.tar.gz");
    let mut bytes = vec![0x1f, 0x8b];
    bytes.extend((0..4000u32).map(|i| (i * 7919 % 251) as u8));
    fs::write(&junk, bytes).unwrap();
    let e = read_imdb(&junk, BOTH).unwrap_err();
    assert!(matches!(e, ImdbError::CorruptArchive { .. }), "{e:?}");

    // A file that is no archive.
    let text = tmp.path().join("reviews.txt");
    fs::write(&text, "hello").unwrap();
    let e = read_imdb(&text, BOTH).unwrap_err();
    assert!(matches!(e, ImdbError::NotADataSet { .. }), "{e:?}");
    // A plain-tar name holding garbage.
    let t = tmp.path().join("garbage.tar");
    fs::write(&t, vec![b'x'; 1500]).unwrap();
    assert!(read_imdb(&t, BOTH).is_err());
}
