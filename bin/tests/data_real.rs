//! The real data sets in `../shared/data` (skipped, with a SKIPPED line, when
//! they are missing; failing when `CI=true`). Prints timings: run with
//! `--nocapture` to see them.

mod data_common;

use std::time::Instant;

use data_common::shared_data;
use finetune_imdb::data::batch::{padding_efficiency, BatchConfig, Batcher};
use finetune_imdb::data::glove::{CacheStatus, Glove};
use finetune_imdb::data::imdb::{read_imdb, Split};
use finetune_imdb::data::split::{train_valid_split, SplitOptions};
use finetune_imdb::data::tokenize::{Vocab, VocabOptions, PAD_ID};

/// The whole archive: 12,500 reviews per class and split; then the tutorial's
/// vocabulary (25,000 words) and length-bucketed batches of the training set.
#[test]
fn real_imdb_archive_vocab_and_batches() {
    let Some(archive) = shared_data("imdb/aclImdb_labeled.tar.gz", "real_imdb_archive") else {
        return;
    };
    let t = Instant::now();
    let data = read_imdb(&archive, &[Split::Train, Split::Test]).unwrap();
    let read_s = t.elapsed().as_secs_f64();
    eprintln!(
        "read {} ({} reviews, {:.1} MB text, {} lossy UTF-8) in {read_s:.2} s",
        archive.display(),
        data.stats.files,
        data.stats.bytes as f64 / 1e6,
        data.stats.lossy_utf8
    );
    for split in [Split::Train, Split::Test] {
        let reviews = data.split(split);
        assert_eq!(reviews.len(), 25_000, "{split}");
        assert_eq!(reviews.iter().filter(|r| r.label == 1).count(), 12_500, "{split}");
    }
    assert!(data.train.iter().all(|r| !r.text.contains("<br />")));
    assert!(data.train.iter().all(|r| r.rating.is_some_and(|x| (1..=10).contains(&x))));

    let (train, valid) = train_valid_split(data.train, &SplitOptions::default()).unwrap();
    assert_eq!((train.len(), valid.len()), (22_500, 2_500));

    let t = Instant::now();
    let vocab = Vocab::build(
        train.iter().map(|r| r.text.as_str()),
        &VocabOptions { max_size: Some(25_000), min_freq: 1 },
    );
    let seqs: Vec<Vec<u32>> = train.iter().map(|r| vocab.encode_text(&r.text)).collect();
    eprintln!("vocab + encode of {} reviews in {:.2} s", train.len(), t.elapsed().as_secs_f64());
    assert_eq!(vocab.len(), 25_002);
    assert_eq!(vocab.words()[2], "the");
    let labels: Vec<u8> = train.iter().map(|r| r.label).collect();

    let cfg = BatchConfig { batch_size: 64, seed: 1234, ..Default::default() };
    let batcher = Batcher::new(&seqs, &labels, cfg).unwrap();
    let bucketed: Vec<_> = batcher.batches(0).collect();
    let unsorted =
        Batcher::new(&seqs, &labels, BatchConfig { chunk_batches: 1, batch_size: 1, ..cfg }).unwrap();
    // Plain random batches of 64 for comparison (chunks of one batch: no
    // sorting across examples).
    let random: Vec<_> = {
        let plan = unsorted.plan(0);
        plan.concat().chunks(64).map(|ix| unsorted.make_batch(ix)).collect()
    };
    let (eb, er) = (padding_efficiency(&bucketed), padding_efficiency(&random));
    eprintln!("padding efficiency (real / padded tokens), batch 64: bucketed {eb:.3}, random {er:.3}");
    assert!(eb > 0.9, "{eb}");
    assert!(er < 0.6, "{er}");
    assert!(bucketed.iter().all(|b| b.ids.len() == b.batch_size * b.max_len));
    assert!(
        bucketed[0].ids.contains(&PAD_ID) || bucketed[0].lengths.iter().all(|&l| l == bucketed[0].max_len)
    );
}

/// The real GloVe 6B 50d: parse once into a safetensors cache, then map it.
#[test]
fn real_glove_parse_cache_and_mmap() {
    let Some(src) = shared_data("glove/glove.6B.50d.txt.gz", "real_glove") else {
        return;
    };
    let cache_dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let (g, status) = Glove::load_cached(&src, cache_dir.path(), Some(50)).unwrap();
    let build_s = t.elapsed().as_secs_f64();
    assert_eq!(status, CacheStatus::Built);
    assert_eq!((g.len(), g.dim()), (400_000, 50));
    let the = g.get("the").unwrap().to_vec();
    assert_eq!(the.len(), 50);
    assert!((the[0] - 0.418).abs() < 1e-6, "{}", the[0]);
    drop(g);

    let t = Instant::now();
    let (g, status) = Glove::load_cached(&src, cache_dir.path(), Some(50)).unwrap();
    let map_s = t.elapsed().as_secs_f64();
    assert_eq!(status, CacheStatus::Hit);
    assert!(g.is_mapped());
    assert_eq!(g.get("the").unwrap(), &the[..]);
    assert_eq!(g.len(), 400_000);
    let vocab =
        Vocab::from_words(["<unk>", "<pad>", "the", "movie", "film", "qwxzv"].map(String::from).to_vec())
            .unwrap();
    let m = g.embedding_matrix(&vocab, 0);
    assert_eq!((m.found, m.missing), (3, 1));
    eprintln!(
        "GloVe 6B.50d: parse .txt.gz + write cache {build_s:.2} s; mmap cache {map_s:.3} s; cache {:.1} MB",
        std::fs::metadata(Glove::cache_path(&src, cache_dir.path())).unwrap().len() as f64 / 1e6
    );
}
