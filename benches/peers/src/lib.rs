//! Peers' implementations of this project's workloads, timed by `benches/peers.sh` beside
//! ours. Not part of the engine: a separate crate with its own lock file, so that the
//! workspace (and CI) never builds candle or burn. The binaries (`src/bin/`) each time one
//! workload on one peer and print lines in the format of the example that times ours; what
//! they share (their command lines, the product's operands and its check) is here.

pub mod trainable_bert;

use std::error::Error;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub type Res<T> = Result<T, Box<dyn Error>>;

/// Runs a binary's `run`, printing its error as `error: …` and exiting 1, as our examples do.
pub fn exit_on_error(run: impl FnOnce() -> Res<()>) {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// The command line as numbers: every argument a non-negative integer, or an error naming it.
fn numbers(usage: &str) -> Res<Vec<usize>> {
    std::env::args()
        .skip(1)
        .map(|s| s.parse().map_err(|_| format!("{usage}: {s:?} is not a number").into()))
        .collect()
}

/// `M N K [REPS]`: a product of an M×K and a K×N matrix, timed REPS times.
pub struct GemmArgs {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub reps: Option<usize>,
}

impl GemmArgs {
    pub fn parse(usage: &str) -> Res<Self> {
        match numbers(usage)?[..] {
            [m, n, k, ref rest @ ..] if m > 0 && n > 0 && k > 0 && rest.len() <= 1 => {
                Ok(Self { m, n, k, reps: rest.first().copied() })
            }
            _ => Err(format!("{usage} (M, N, K at least 1)").into()),
        }
    }

    pub fn flops(&self) -> f64 {
        2.0 * (self.m * self.n * self.k) as f64
    }

    /// A (M, K) and B (K, N), row-major: values in [-0.5, 0.5), the same in every binary.
    pub fn operands(&self) -> (Vec<f32>, Vec<f32>) {
        let fill = |len: usize, seed: usize| -> Vec<f32> {
            (0..len).map(|i| ((i * 7919 + seed) % 1000) as f32 / 1000.0 - 0.5).collect()
        };
        (fill(self.m * self.k, 1), fill(self.k * self.n, 2))
    }

    /// Checks one element of C = A·B (row-major, (M, N)) against its dot product in f64, so
    /// that a wrong product is never timed.
    pub fn check(&self, a: &[f32], b: &[f32], c: &[f32]) -> Res<()> {
        let (m, n, k) = (self.m, self.n, self.k);
        let (i, j) = (m / 2, n / 3);
        let want: f64 = (0..k).map(|p| a[i * k + p] as f64 * b[p * n + j] as f64).sum();
        let got = c[i * n + j] as f64;
        if (got - want).abs() > 1e-3 * (1.0 + want.abs()) {
            return Err(format!("C[{i}][{j}] = {got}, want {want}").into());
        }
        Ok(())
    }

    /// The best wall time of `product` over REPS runs, as `examples/gemm.rs` times ours: by
    /// default as many runs as take about a second (3 to 200), after one that sets the count.
    /// Each run's result is dropped after its clock stops: its memory is released untimed and
    /// reused by the next run, as in a steady state (ours writes into one C throughout).
    pub fn best_seconds<T>(&self, mut product: impl FnMut() -> T) -> (f64, usize) {
        let t0 = Instant::now();
        let first = product();
        let once = t0.elapsed().as_secs_f64().max(1e-7);
        drop(first);
        let reps = self.reps.unwrap_or(((1.0 / once) as usize).clamp(3, 200));
        let mut best = f64::INFINITY;
        for _ in 0..reps {
            let t0 = Instant::now();
            let out = product();
            best = best.min(t0.elapsed().as_secs_f64());
            drop(out);
        }
        (best, reps)
    }
}

/// `MODEL_DIR [BATCH [SEQ_LEN [STEPS]]]` of the MiniLM binaries: by default 3 evaluation
/// forwards and 3 training steps of 16 sequences of 256 tokens.
pub struct MinilmArgs {
    pub dir: PathBuf,
    pub batch: usize,
    pub seq_len: usize,
    pub steps: usize,
}

impl MinilmArgs {
    pub fn parse(usage: &str) -> Res<Self> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let dir = PathBuf::from(args.first().ok_or(usage)?);
        if args.len() > 4 {
            return Err(usage.into());
        }
        let num = |i: usize, default: usize| -> Res<usize> {
            match args.get(i) {
                None => Ok(default),
                Some(s) => s.parse().map_err(|_| format!("{usage}: {s:?} is not a number").into()),
            }
        };
        let (batch, seq_len, steps) = (num(1, 16)?, num(2, 256)?, num(3, 3)?);
        if batch == 0 || seq_len < 2 {
            return Err(format!("{usage}: BATCH must be at least 1 and SEQ_LEN at least 2").into());
        }
        Ok(Self { dir, batch, seq_len, steps })
    }

    /// The model's `config.json`, parsed.
    pub fn config<T: serde::de::DeserializeOwned>(&self) -> Res<T> {
        let path = self.dir.join("config.json");
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()).into())
    }

    /// The timed batch's ids (B, T), row-major: [CLS], ids spread over the vocabulary past its
    /// special tokens, [SEP]; the same in every binary (the products' cost does not depend on
    /// which ids they are).
    pub fn ids(&self, vocab_size: usize) -> Res<Vec<u32>> {
        let (batch, seq_len) = (self.batch, self.seq_len);
        if vocab_size < 2000 {
            return Err(format!(
                "{}: a vocabulary of {vocab_size} tokens; BERT's has 30,522",
                self.dir.display()
            )
            .into());
        }
        let vocab = vocab_size as u32;
        Ok((0..batch * seq_len)
            .map(|i| match i % seq_len {
                0 => 101,
                t if t == seq_len - 1 => 102,
                t => 1000 + ((t * 7919 + i / seq_len * 104_729) as u32 % (vocab - 1000)),
            })
            .collect())
    }
}

/// How many of a burn module's weights `backward()` gave a gradient: (weights, without one).
/// A training binary checks that its timed backward did the whole job.
pub fn burn_weights_without_gradient(
    module: &impl burn::module::Module,
    grads: &burn::tensor::Gradients,
) -> (usize, usize) {
    use burn::module::{ModuleVisitor, Param};
    use burn::tensor::Tensor;
    struct Missing<'a> {
        grads: &'a burn::tensor::Gradients,
        weights: usize,
        missing: usize,
    }
    impl ModuleVisitor for Missing<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.weights += 1;
            if param.val().grad(self.grads).is_none() {
                self.missing += 1;
            }
        }
    }
    let mut check = Missing { grads, weights: 0, missing: 0 };
    module.visit(&mut check);
    (check.weights, check.missing)
}

/// `[STEPS [BATCH [LEN]]]` of a BiLSTM training step: by default 3 steps of 64 reviews of 230
/// tokens.
pub struct StepArgs {
    pub steps: usize,
    pub batch: usize,
    pub len: usize,
}

impl StepArgs {
    pub fn parse(usage: &str) -> Res<Self> {
        let args = numbers(usage)?;
        if args.len() > 3 {
            return Err(usage.into());
        }
        let at = |i: usize, default: usize| args.get(i).copied().unwrap_or(default);
        let (steps, batch, len) = (at(0, 3), at(1, 64), at(2, 230));
        if batch == 0 || len == 0 {
            return Err(format!("{usage}: BATCH and LEN must be at least 1").into());
        }
        Ok(Self { steps, batch, len })
    }
}

/// A BiLSTM step's line, in the format `benches/peers.sh` reads (the best of its `= N s`):
/// `step S: forward F s + backward B s = T s, R tokens/s   loss = L`, then `note`.
pub fn print_step(step: usize, forward: Duration, backward: Duration, tokens: usize, loss: f32, note: &str) {
    let (f, b) = (forward.as_secs_f64(), backward.as_secs_f64());
    println!(
        "step {step}: forward {f:.3} s + backward {b:.3} s = {:.3} s, {:.0} tokens/s   loss = {loss:.4}{note}",
        f + b,
        tokens as f64 / (f + b)
    );
}
