//! The fused attention (`kernels/src/attention.rs`) on named shapes: the evaluation
//! forward (no P kept, no dropout: in f32 the panels path, `attention/panels.rs`), the training forward (dropout
//! 0.1, P saved for the backward) and the backward, on 1 thread and on all of them.
//! Throughput is in elements = FLOP of the products: the forward's two (Q·Kᵀ and P·V)
//! are 4·B·nh·T²·d, the backward's four 8·B·nh·T²·d; the softmax, the mask and the
//! dropout come on top, so FLOP/s below the GEMM's on the same shapes
//! (`cargo bench --bench gemm -- bert_attn_scores`) is their cost.
//!
//! Each runs in f32 and with the products in bf16 (`--precision bf16`: `attention_forward_bf16`
//! and `attention_backward_bf16`, ids `bf16_forward_eval`, …), whose products run on the
//! `bf16gemm` kernel this CPU has (AVX512-BF16 or AMX where present; the evaluation forward on
//! the row path: the panels are f32's alone).
//!
//! `cargo bench --bench attention` (filter with e.g. `-- minilm` or `-- bf16`).
#[path = "support/fill.rs"]
mod support;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use support::fill;
use tapegrad_kernels::attention::{
    attention_backward, attention_backward_bf16, attention_forward, attention_forward_bf16, AttentionShape,
    DropoutMask, Qkv,
};
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

type Forward =
    fn(AttentionShape, Qkv<&[f32]>, Option<&[f32]>, Option<DropoutMask>, &mut [f32], Option<&mut [f32]>);
type Backward = fn(AttentionShape, Qkv<&[f32]>, &[f32], Option<DropoutMask>, &[f32], Qkv<&mut [f32]>);

/// The two precisions of the products: the ids' prefix and the kernels.
const PRECISIONS: [(&str, Forward, Backward); 2] =
    [("", attention_forward, attention_backward), ("bf16_", attention_forward_bf16, attention_backward_bf16)];

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
        for (prefix, forward, backward) in PRECISIONS {
            for &t in &threads {
                set_num_threads(t);
                let id = |what: &str| BenchmarkId::new(format!("{prefix}{what}"), format!("t{t}"));
                gr.throughput(Throughput::Elements(forward_flop as u64));
                gr.bench_function(id("forward_eval"), |b| {
                    b.iter(|| forward(s, qkv, Some(&mask), None, &mut o, None))
                });
                gr.bench_function(id("forward_train"), |b| {
                    b.iter(|| forward(s, qkv, Some(&mask), dropout, &mut o, Some(&mut probs)))
                });
                // the backward of the training forward just above (its P and mask)
                forward(s, qkv, Some(&mask), dropout, &mut o, Some(&mut probs));
                gr.throughput(Throughput::Elements(2 * forward_flop as u64));
                gr.bench_function(id("backward"), |b| {
                    b.iter(|| {
                        let grads = Qkv { q: &mut dq[..], k: &mut dk[..], v: &mut dv[..] };
                        backward(s, qkv, black_box(&probs), dropout, &g, grads)
                    })
                });
            }
        }
        set_num_threads(all);
        gr.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
