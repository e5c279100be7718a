//! Batching end to end on the fixture, and padding efficiency on synthetic
//! IMDB-like lengths (the real-data figure is in `data_real`).

mod data_common;

use finetune_imdb::data::batch::{padding_efficiency, BatchConfig, Batcher};
use finetune_imdb::data::imdb::{read_imdb, Split};
use finetune_imdb::data::tokenize::{Vocab, VocabOptions, PAD_ID};

#[test]
fn fixture_to_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let root = data_common::fixture_dir(tmp.path());
    let train = read_imdb(&root, &[Split::Train]).unwrap().train;
    let vocab = Vocab::build(train.iter().map(|r| r.text.as_str()), &VocabOptions::default());
    let seqs: Vec<Vec<u32>> = train.iter().map(|r| vocab.encode_text(&r.text)).collect();
    let labels: Vec<u8> = train.iter().map(|r| r.label).collect();
    let cfg =
        BatchConfig { batch_size: 8, chunk_batches: 2, max_len: Some(4), seed: 99, ..Default::default() };
    let b = Batcher::new(&seqs, &labels, cfg).unwrap();
    assert_eq!(b.num_batches(), 8);
    let batches: Vec<_> = b.batches(2).collect();
    assert_eq!(batches.len(), 8);
    assert_eq!(batches.iter().map(|x| x.batch_size).sum::<usize>(), 60);
    for batch in &batches {
        assert!(batch.max_len <= 4);
        for (r, &i) in batch.indices.iter().enumerate() {
            let n = batch.lengths[r];
            assert_eq!(&batch.row(r)[..n], &seqs[i][..n]);
            assert!(batch.row(r)[n..].iter().all(|&t| t == PAD_ID));
            assert_eq!(batch.labels[r], train[i].label);
        }
        assert!(batch.lengths.windows(2).all(|w| w[0] >= w[1]));
    }
    // Epoch k's order is a pure function of (seed, k): a fresh batcher gives
    // the same batches, and resuming at batch 5 gives the tail.
    let again = Batcher::new(&seqs, &labels, cfg).unwrap();
    assert_eq!(again.batches(2).collect::<Vec<_>>(), batches);
    assert_eq!(again.batches_from(2, 5).collect::<Vec<_>>(), &batches[5..]);
    assert_ne!(again.plan(3), b.plan(2));
}

#[test]
fn padding_efficiency_synthetic() {
    // Lengths spread like IMDB reviews (roughly 10..1500 tokens, long tail),
    // from a fixed LCG so the figure is stable.
    let mut state = 12345u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    let seqs: Vec<Vec<u32>> = (0..20_000)
        .map(|_| {
            let u: f64 = next();
            let len = (10.0 * (150.0f64).powf(u * u)) as usize;
            vec![5u32; len]
        })
        .collect();
    let labels = vec![0u8; seqs.len()];
    let eff = |chunk_batches| {
        let cfg = BatchConfig { batch_size: 64, chunk_batches, seed: 1, ..Default::default() };
        let b = Batcher::new(&seqs, &labels, cfg).unwrap();
        padding_efficiency(&b.batches(0).collect::<Vec<_>>())
    };
    let (bucketed, one) = (eff(100), eff(1));
    eprintln!(
        "synthetic padding efficiency, batch 64: chunk=100 batches {bucketed:.3}, chunk=1 batch {one:.3}"
    );
    assert!(bucketed > 0.9, "{bucketed}");
    assert!(bucketed > one);
}
