//! The fused attention (`kernels/src/attention.rs`) on named shapes: the evaluation
//! forward (no P kept, no dropout: the panels path, `attention/panels.rs`), the training forward (dropout
//! 0.1, P saved for the backward) and the backward, on 1 thread and on all of them.
//! Throughput is in elements = FLOP of the products: the forward's two (Q·Kᵀ and P·V)
//! are 4·B·nh·T²·d, the backward's four 8·B·nh·T²·d; the softmax, the mask and the
//! dropout come on top, so FLOP/s below the GEMM's on the same shapes
//! (`cargo bench --bench gemm -- bert_attn_scores`) is their cost.
//!
//! `cargo bench --bench attention` (filter with e.g. `-- minilm`).
#[path = "support/fill.rs"]
mod support;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use support::fill;
use tapegrad_kernels::attention::{attention_backward, attention_forward, AttentionShape, DropoutMask, Qkv};
use tapegrad_kernels::threads::{num_threads, set_num_threads};

struct Shape {
    name: &'static str,
    s: AttentionShape,
}

const SHAPES: &[Shape] = &[
    // all-MiniLM-L6-v2 as finetune-imdb trains it: 16 reviews of 256 tokens, 12 heads of 32
    Shape { name: "minilm_16x256", s: AttentionShape::square(16, 256, 12, 32) },
    // its last layer in the classifier: the [CLS] query alone over the 256 keys
    Shape {
        name: "minilm_16x256_cls",
        s: AttentionShape { queries: 1, ..AttentionShape::square(16, 256, 12, 32) },
    },
    // BERT-base's heads (64 wide) on shorter sequences
    Shape { name: "bert_base_8x128", s: AttentionShape::square(8, 128, 12, 64) },
];

fn bench(c: &mut Criterion) {
    let all = num_threads();
    let dropout = Some(DropoutMask { p: 0.1, seed: 7 });
    for Shape { name, s } in SHAPES {
        let (s, nq, nkv) = (*s, s.q_numel(), s.kv_numel());
        let (q, k, v, g) = (fill(nq, 1), fill(nkv, 2), fill(nkv, 3), fill(nq, 4));
        // the key mask of a batch with padding: the last eighth of each sequence's keys
        let mask: Vec<f32> =
            (0..s.batch * s.seq).map(|i| if i % s.seq >= s.seq * 7 / 8 { -1e4 } else { 0.0 }).collect();
        let (mut o, mut probs) = (vec![0f32; nq], vec![0f32; s.probs_numel()]);
        let (mut dq, mut dk, mut dv) = (vec![0f32; nq], vec![0f32; nkv], vec![0f32; nkv]);
        let qkv = Qkv { q: &q[..], k: &k[..], v: &v[..] };
        let forward_flop = 4 * s.batch * s.heads * s.queries * s.seq * s.head_dim;
        let mut gr = c.benchmark_group(format!("attention/{name}"));
        gr.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
        let threads = if all > 1 { vec![1, all] } else { vec![1] };
        for &t in &threads {
            set_num_threads(t);
            gr.throughput(Throughput::Elements(forward_flop as u64));
            gr.bench_function(BenchmarkId::new("forward_eval", format!("t{t}")), |b| {
                b.iter(|| attention_forward(s, qkv, Some(&mask), None, &mut o, None))
            });
            gr.bench_function(BenchmarkId::new("forward_train", format!("t{t}")), |b| {
                b.iter(|| attention_forward(s, qkv, Some(&mask), dropout, &mut o, Some(&mut probs)))
            });
            // the backward of the training forward just above (its P and mask)
            attention_forward(s, qkv, Some(&mask), dropout, &mut o, Some(&mut probs));
            gr.throughput(Throughput::Elements(2 * forward_flop as u64));
            gr.bench_function(BenchmarkId::new("backward", format!("t{t}")), |b| {
                b.iter(|| {
                    let grads = Qkv { q: &mut dq[..], k: &mut dk[..], v: &mut dv[..] };
                    attention_backward(s, qkv, black_box(&probs), dropout, &g, grads)
                })
            });
        }
        set_num_threads(all);
        gr.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
