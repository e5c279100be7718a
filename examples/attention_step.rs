//! Times the non-GEMM-layer kernels of a MiniLM layer at its shapes: the fused attention
//! (evaluation forward; training forward with dropout alone, and with its backward), the hidden
//! dropout, and the broadcasts
//! around a linear layer (its bias gradient summed over the rows, the residual add; the
//! bias itself is added inside the product, `gemm::MatMut::with_bias`).
//!
//! ```text
//! cargo run --release --example attention_step [-- BATCH SEQ_LEN REPS THREADS]
//! ```
//! Defaults: 16 sequences of 256 tokens, 12 heads of 32 (all-MiniLM-L6-v2), best of 20
//! repetitions, 1 thread. With 1 thread each figure is the calling thread's CPU time
//! (Linux), so other work on a shared machine barely moves it; with more, the wall clock.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/clock.rs"]
mod clock;
use clock::thread_cpu_seconds;
use std::time::Instant;
use tapegrad::kernels::attention::{attention_backward, attention_forward, AttentionShape, DropoutMask, Qkv};
use tapegrad::kernels::broadcast::{binary, sum_to, Binary};
use tapegrad::kernels::dropout::{dropout_backward, dropout_forward};
use tapegrad::kernels::threads::set_num_threads;

const USAGE: &str = "usage: attention_step [BATCH [SEQ_LEN [REPS [THREADS]]]]";

fn main() {
    let cli = cli::Cli::new(USAGE);
    let mut args = cli.positionals(4);
    let batch: usize = args.next("BATCH", "a non-negative integer", 16);
    let seq: usize = args.next("SEQ_LEN", "a non-negative integer", 256);
    let reps: usize = args.next("REPS", "a non-negative integer", 20);
    let threads: usize = args.next("THREADS", "a non-negative integer", 1);
    if reps == 0 || threads == 0 {
        cli.fail("REPS and THREADS must be at least 1");
    }
    set_num_threads(threads);
    let cpu = threads == 1;
    let s = AttentionShape::square(batch, seq, 12, 32);
    let (n, hid, rows) = (s.q_numel(), 12 * 32, batch * seq);
    // deterministic inputs in [-1, 1)
    let fill = |len: usize, k: usize| -> Vec<f32> {
        (0..len).map(|i| ((i * 7919 + k * 104_729) % 2000) as f32 / 1000.0 - 1.0).collect()
    };
    let (q, k, v, g) = (fill(n, 1), fill(n, 2), fill(n, 3), fill(n, 4));
    let mask = vec![0f32; rows];
    let (mut o, mut probs) = (vec![0f32; n], vec![0f32; s.probs_numel()]);
    let (mut dq, mut dk, mut dv) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
    let dropout = Some(DropoutMask { p: 0.1, seed: 5 });
    let (x, y) = (fill(rows * hid, 6), fill(rows * hid, 7));
    let mut out = vec![0f32; rows * hid];

    let time = |what: &str, f: &mut dyn FnMut()| {
        f(); // warm: pages, pool, scratch
        let best = (0..reps)
            .map(|_| {
                let (t, c) = (Instant::now(), thread_cpu_seconds());
                f();
                if cpu {
                    thread_cpu_seconds() - c
                } else {
                    t.elapsed().as_secs_f64()
                }
            })
            .fold(f64::INFINITY, f64::min);
        println!("{what:<40} {:9.3} ms", best * 1e3);
    };
    println!(
        "B={batch} T={seq} heads=12 d=32 threads={threads} clock={} best of {reps}",
        if cpu { "thread-cpu" } else { "wall" }
    );
    time("attention forward (eval)", &mut || {
        attention_forward(s, Qkv { q: &q, k: &k, v: &v }, Some(&mask), None, &mut o, None)
    });
    time("attention forward (training, dropout)", &mut || {
        attention_forward(s, Qkv { q: &q, k: &k, v: &v }, Some(&mask), dropout, &mut o, Some(&mut probs))
    });
    time("attention forward + backward (dropout)", &mut || {
        let qkv = Qkv { q: &q[..], k: &k[..], v: &v[..] };
        attention_forward(s, qkv, Some(&mask), dropout, &mut o, Some(&mut probs));
        attention_backward(s, qkv, &probs, dropout, &g, Qkv { q: &mut dq, k: &mut dk, v: &mut dv });
    });
    let (mut keep, mut dx) = (vec![0u8; rows * hid], vec![0f32; rows * hid]);
    time("hidden dropout forward [B·T, 384]", &mut || dropout_forward(&x, 0.1, 9, &mut out, &mut keep));
    time("hidden dropout backward [B·T, 384]", &mut || dropout_backward(&y, &keep, 0.1, &mut dx));
    let mut bias_grad = vec![0f32; hid];
    time("bias gradient [B·T, 384] -> [384]", &mut || sum_to(&x, &[rows, hid], &[hid], &mut bias_grad));
    time("residual add [B·T, 384]", &mut || {
        binary(Binary::Add, &x, &[rows, hid], &y, &[rows, hid], &[rows, hid], &mut out)
    });
}
