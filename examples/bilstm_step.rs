//! Times one training step (forward + backward, no optimizer) of the tutorial's
//! BiLSTM classifier at IMDB scale: batch 64, embedding 50, hidden 256, 2 layers,
//! bidirectional, random lengths 200–260 (a bucketed batch), dropout 0.5, f32.
//!
//! Reports ms/step, tokens/s, the implied epoch time for 17,500 reviews of 270.7 tokens
//! (the mean of IMDB's training reviews under the `basic_english` rule), and the step's
//! arithmetic rate (13.2 MFLOP per token, nearly all of it in GEMMs). An epoch in 6 minutes
//! needs ≈ 173 GFLOP/s sustained on these shapes (compare `examples/fma_peak`).
//!
//! With `--peak`, it also measures this CPU's FMA peak at the width of the GEMM kernel in
//! use (`examples/support/fma.rs`, as `examples/fma_peak` does) before and after the steps,
//! on as many threads as the step uses, and reports the steady steps (all but the first)
//! as a share of it: a ratio that holds on any CPU, whatever else the machine is doing.
//! On Linux it splits that share in two: the part of its threads' time the process was on
//! a CPU (its CPU clock over the steady steps' wall time), and the peak's share it ran at
//! while there; a low figure from a machine busy with other work shows in the first.
//!
//! Run: `cargo run --release --example bilstm_step [-- --steps N --batch B --hidden H
//! --emb E --layers L --min-len A --max-len Z --vocab V --peak]`

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;
use tapegrad::autograd::Tensor;
use tapegrad::models::{BiLstmClassifier, BiLstmConfig, Module};

#[path = "support/cli.rs"]
mod cli;
#[path = "support/clock.rs"]
mod clock;
#[cfg(target_arch = "x86_64")]
#[path = "support/fma.rs"]
mod fma;

#[path = "support/memory.rs"]
mod memory;
use memory::memory_line;

struct Args {
    steps: usize,
    batch: usize,
    hidden: usize,
    emb: usize,
    layers: usize,
    min_len: usize,
    max_len: usize,
    vocab: usize,
    peak: bool,
}

const USAGE: &str = "usage: bilstm_step [--steps N] [--batch B] [--hidden H] [--emb E] [--layers L] \
                     [--min-len A] [--max-len Z] [--vocab V] [--peak]";

fn args() -> Args {
    let mut cli = cli::Cli::new(USAGE);
    let peak = cli.switch("--peak");
    let mut n = |flag: &str, default: usize| cli.value(flag, "a non-negative integer").unwrap_or(default);
    let a = Args {
        steps: n("--steps", 2),
        batch: n("--batch", 64),
        hidden: n("--hidden", 256),
        emb: n("--emb", 50),
        layers: n("--layers", 2),
        min_len: n("--min-len", 200),
        max_len: n("--max-len", 260),
        vocab: n("--vocab", 25_002),
        peak,
    };
    cli.positionals(0);
    a
}

/// The multiply-add work of one training step of the packed BiLSTM (forward and backward,
/// both directions, every layer), in FLOPs: per direction and layer the input projection
/// `[N, in]·[in, 4H]` and per step `h_prev·W_hhᵀ` on the running rows, each done three
/// times (forward, dL/dinput, dL/dweight).
fn step_flops(batch_sizes: &[usize], emb: usize, hh: usize, layers: usize) -> f64 {
    let n: usize = batch_sizes.iter().sum();
    let g4 = 4 * hh;
    let mut flops = 0.0;
    for k in 0..layers {
        let inp = if k == 0 { emb } else { 2 * hh };
        for reverse in [false, true] {
            flops += 3.0 * 2.0 * (n * g4 * inp) as f64;
            let steps = batch_sizes.len();
            for s in 1..steps {
                let p = if reverse { batch_sizes[steps - s] } else { batch_sizes[s] };
                flops += 3.0 * 2.0 * (p * g4 * hh) as f64;
            }
        }
    }
    flops
}

fn main() {
    let a = args();
    let cfg = BiLstmConfig {
        vocab: a.vocab,
        embedding_dim: a.emb,
        hidden: a.hidden,
        layers: a.layers,
        bidirectional: true,
        pad_index: 1,
        output_dim: 1,
        dropout: 0.5,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut model = BiLstmClassifier::<f32>::new(cfg, &mut rng);
    model.set_training(true);
    println!(
        "BiLSTM step: batch {}, emb {}, hidden {}, {} layers, bidirectional, lengths {}–{}, f32, {} params",
        a.batch,
        a.emb,
        a.hidden,
        a.layers,
        a.min_len,
        a.max_len,
        model.named_parameters().iter().map(|(_, p)| p.numel()).sum::<usize>()
    );

    let threads = tapegrad::kernels::threads::num_threads();
    let peak_before = measure_peak(a.peak, threads);
    let mut total = (0.0, 0.0, 0usize);
    let mut steady = (0.0, 0usize); // all steps but the first: seconds, tokens
    let mut last_batch_sizes = Vec::new();
    // where the steady steps start: the wall clock and the process's CPU time (all threads)
    let mut steady_start = None;
    for step in 0..a.steps {
        if step == 1 {
            steady_start = Some((Instant::now(), clock::process_cpu_seconds()));
        }
        let lengths: Vec<usize> = (0..a.batch).map(|_| rng.random_range(a.min_len..=a.max_len)).collect();
        let t = *lengths.iter().max().expect("non-empty batch");
        let mut text = vec![1usize; a.batch * t];
        for (i, &len) in lengths.iter().enumerate() {
            for tok in &mut text[i * t..i * t + len] {
                *tok = rng.random_range(2..a.vocab);
            }
        }
        let labels: Vec<f32> = (0..a.batch).map(|_| if rng.random() { 1.0 } else { 0.0 }).collect();
        let labels = Tensor::from_vec(labels, &[a.batch, 1]);

        tapegrad::autograd::profile::reset();
        let t0 = Instant::now();
        let out = model.forward(&text, &[a.batch, t], &lengths);
        let loss = out.logits.binary_cross_entropy_with_logits(&labels);
        let t1 = Instant::now();
        loss.backward();
        let t2 = Instant::now();
        drop(out);
        model.zero_grad();
        let (f, b) = ((t1 - t0).as_secs_f64(), (t2 - t1).as_secs_f64());
        let tokens: usize = lengths.iter().sum();
        println!(
            "step {step}: forward {:.0} ms, backward {:.0} ms, total {:.0} ms, {tokens} tokens, loss {:.4}",
            f * 1e3,
            b * 1e3,
            (f + b) * 1e3,
            loss.item()
        );
        println!("  {}", memory_line());
        if tapegrad::autograd::profile::is_enabled() {
            // TAPEGRAD_PROFILE=1: where this step went, per op
            print!("{}", tapegrad::autograd::profile::report());
        }
        total = (total.0 + f, total.1 + b, total.2 + tokens);
        if step > 0 {
            steady = (steady.0 + f + b, steady.1 + tokens);
        }
        let mut sorted = lengths.clone();
        sorted.sort_by(|x, y| y.cmp(x));
        last_batch_sizes = (0..t).map(|s| sorted.iter().filter(|&&l| l > s).count()).collect();
    }
    // the share of the threads' time the process was on a CPU over the steady steps
    let busy = match (steady_start, clock::process_cpu_seconds()) {
        (Some((wall0, Some(cpu0))), Some(cpu1)) => {
            Some((cpu1 - cpu0) / (threads as f64 * wall0.elapsed().as_secs_f64()))
        }
        _ => None,
    };
    tapegrad::autograd::alloc::empty_cache(); // the end of a phase: the cache goes back
    println!("after empty_cache: {}", memory_line());
    let steps = a.steps as f64;
    let step_s = (total.0 + total.1) / steps;
    let tok_per_s = total.2 as f64 / (total.0 + total.1);
    let epoch_tokens = 17_500.0 * 270.7;
    println!(
        "mean: {:.0} ms/step (forward {:.0}, backward {:.0}), {:.0} tokens/s",
        step_s * 1e3,
        total.0 / steps * 1e3,
        total.1 / steps * 1e3,
        tok_per_s
    );
    println!(
        "implied epoch (17,500 reviews × 270.7 tokens = {:.2} M tokens): {:.0} s = {:.1} min",
        epoch_tokens / 1e6,
        epoch_tokens / tok_per_s,
        epoch_tokens / tok_per_s / 60.0
    );
    let flops = step_flops(&last_batch_sizes, a.emb, a.hidden, a.layers);
    let last_tokens: usize = last_batch_sizes.iter().sum();
    println!(
        "arithmetic: {:.1} MFLOP per token ({:.1} GFLOP in the last step); the mean step runs at {:.1} GFLOP/s",
        flops / last_tokens as f64 / 1e6,
        flops / 1e9,
        flops / last_tokens as f64 * tok_per_s / 1e9
    );
    if a.peak {
        report_peak(PeakReport {
            before: peak_before,
            after: measure_peak(true, threads),
            flops_per_token: flops / last_tokens as f64,
            steady,
            threads,
            busy,
        });
    }
}

/// The FMA peak of the GEMM kernel's width on `threads` threads, when asked for.
fn measure_peak(asked: bool, threads: usize) -> Option<(&'static str, f64)> {
    if !asked {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        fma::peak_of_active_isa(threads, 1.0).map(|(w, p)| (w.name(), p))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

struct PeakReport {
    before: Option<(&'static str, f64)>,
    after: Option<(&'static str, f64)>,
    flops_per_token: f64,
    /// The steady steps (all but the first): seconds, tokens.
    steady: (f64, usize),
    threads: usize,
    /// The process's CPU time over the steady steps per thread's wall time (Linux).
    busy: Option<f64>,
}

/// The steady step's arithmetic rate as a share of the better of the two peak measurements.
fn report_peak(r: PeakReport) {
    let (Some((width, before)), Some((_, after))) = (r.before, r.after) else {
        println!("FMA peak: SKIPPED (needs x86_64 and an AVX2 or AVX-512 GEMM kernel)");
        return;
    };
    if r.steady.1 == 0 {
        println!(
            "FMA peak: {width} {before:.1} / {after:.1} GFLOP/s; run --steps 2 or more for a steady step"
        );
        return;
    }
    let peak = before.max(after);
    let rate = r.flops_per_token * r.steady.1 as f64 / r.steady.0 / 1e9;
    let share = rate / peak;
    let threads = if r.threads == 1 { "1 thread".to_string() } else { format!("{} threads", r.threads) };
    println!(
        "steady steps (all but the first) run at {rate:.1} GFLOP/s = {:.1}% of the {width} FMA peak on {threads} ({before:.1} before, {after:.1} after the steps)",
        100.0 * share,
    );
    // share = busy × (the rate while on a CPU): which of the two a low figure comes from
    if let Some(busy) = r.busy {
        println!(
            "  the process was on a CPU {:.1}% of the time of its {threads} over those steps (the rest: waiting, or the machine's other work); while on a CPU, {:.1}% of the peak",
            100.0 * busy,
            100.0 * share / busy
        );
    }
}
