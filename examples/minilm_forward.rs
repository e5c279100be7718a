//! Times all-MiniLM-L6-v2 on the CPU: loading (memory-mapped), a forward without
//! the tape, and a forward + backward of the classification loss, both as `finetune-imdb`
//! runs them (`BertForSequenceClassification::logits`: the last layer computed at the
//! `[CLS]` position only), or with `--all-positions` every layer at every position, the
//! work transformers' forward does.
//!
//! ```text
//! cargo run --release --example minilm_forward [-- [--all-positions] MODEL_DIR [BATCH [SEQ_LEN [STEPS [PRECISION]]]]]
//! ```
//! Defaults: `../shared/models/all-MiniLM-L6-v2`, 16 sequences of 256 tokens, 3 training steps,
//! precision `f32`. PRECISION is the precision of the linear layers' and attention's products (`f32` or `bf16`, see
//! `autograd::precision`), or `both`: then, after one warm-up of each, STEPS rounds each time an
//! evaluation forward and a training step in f32 and then in bf16 (interleaved), and the
//! median bf16/f32 time ratios.

use std::path::PathBuf;
use std::time::Instant;
use tapegrad::autograd::precision::{set_product_precision, Precision};
use tapegrad::autograd::{no_grad, Tensor};
use tapegrad::models::bert::{BertForSequenceClassification, BertInput, Positions};
use tapegrad::models::tokenizer::Tokenizer;
use tapegrad::models::Module;

#[path = "support/cli.rs"]
mod cli;
#[path = "support/memory.rs"]
mod memory;
use memory::memory_line;

const REVIEW: &str = "This movie was absolutely wonderful: the acting is superb, the plot keeps you \
guessing until the very last minute, and the soundtrack is something I still hum days later. \
Some scenes drag a little in the middle, and one or two characters felt underwritten, but the \
director's eye for detail more than makes up for it. I would happily watch it again. ";

const USAGE: &str =
    "usage: minilm_forward [--all-positions] [MODEL_DIR [BATCH [SEQ_LEN [STEPS [PRECISION]]]]]   \
                     (PRECISION: f32, bf16 or both)";

fn main() {
    // errors (a missing model folder, a bad config) as their messages, not as Debug
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut cli = cli::Cli::new(USAGE);
    let at = if cli.switch("--all-positions") { Positions::All } else { Positions::First };
    let mut args = cli.positionals(5);
    let default_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/models/all-MiniLM-L6-v2");
    let dir: PathBuf = args.next("MODEL_DIR", "a path", default_dir.into());
    let batch: usize = args.next("BATCH", "a non-negative integer", 16);
    let seq_len: usize = args.next("SEQ_LEN", "a non-negative integer", 256);
    let steps: usize = args.next("STEPS", "a non-negative integer", 3);
    let precision: String = args.next("PRECISION", "a word", "f32".into());
    let both = precision == "both";
    let precision = match both {
        true => Precision::F32,
        false => Precision::parse(&precision).unwrap_or_else(|e| cli.fail(&format!("PRECISION: {e}"))),
    };
    let _mode = set_product_precision(precision);

    let t0 = Instant::now();
    let mut model = BertForSequenceClassification::<f32>::from_pretrained(&dir, 2, 0)?;
    let load = t0.elapsed();
    let mapped = model.named_parameters().iter().filter(|(_, p)| p.is_mapped()).count();
    let total: usize = model.named_parameters().iter().map(|(_, p)| p.numel()).sum();
    println!(
        "load: {:.1} ms ({} parameters, {mapped}/{} tensors memory-mapped)",
        load.as_secs_f64() * 1e3,
        total,
        model.named_parameters().len()
    );

    // Real tokenized text: the review repeated past the length, each sequence
    // starting at a different sentence, truncated to `seq_len`.
    let tok = Tokenizer::from_dir(&dir, seq_len)?;
    let long = REVIEW.repeat(seq_len / 40 + 2);
    let texts: Vec<String> = (0..batch).map(|i| long[(i * 7) % REVIEW.len()..].to_string()).collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let x = tok.encode_batch(&texts)?;
    let labels: Vec<usize> = (0..batch).map(|i| i % 2).collect();
    println!("batch: {:?} tokens", x.shape);
    if both {
        return compare(&mut model, &x, &labels, steps, at);
    }
    println!("precision: {precision}, last layer at {at:?} positions");

    // Evaluation forwards: the first also pages in the weights and grows the cache.
    model.set_training(false);
    for i in 0..steps.max(2) {
        tapegrad::autograd::profile::reset();
        let t0 = Instant::now();
        let logits = no_grad(|| logits(&model, &x, at))?;
        let fwd = t0.elapsed();
        println!(
            "forward {i} (no_grad): {:.3} s   logits[0] = {:?}",
            fwd.as_secs_f64(),
            &logits.to_vec()[..2]
        );
        if tapegrad::autograd::profile::is_enabled() {
            print!("{}", tapegrad::autograd::profile::report());
        }
    }

    println!("after the evaluation forwards: {}", memory_line());

    // Training steps: the first one grows the cache; later ones reuse its blocks.
    model.set_training(true);
    tapegrad::autograd::profile::reset();
    for step in 0..steps {
        let t0 = Instant::now();
        let logits = logits(&model, &x, at)?;
        let loss = model.loss(&logits, &labels)?;
        let t1 = Instant::now();
        loss.backward();
        let t2 = Instant::now();
        println!(
            "training step {step} (dropout on): forward {:.3} s + backward {:.3} s = {:.3} s   loss = {:.4}",
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            (t2 - t0).as_secs_f64(),
            loss.item()
        );
        drop(logits);
        model.zero_grad();
        println!("  {}", memory_line());
        if tapegrad::autograd::profile::is_enabled() {
            // TAPEGRAD_PROFILE=1: where this step went, per op
            print!("{}", tapegrad::autograd::profile::report());
            tapegrad::autograd::profile::reset();
        }
    }
    tapegrad::autograd::alloc::empty_cache(); // the end of a phase: the cache goes back
    println!("after empty_cache: {}", memory_line());
    Ok(())
}

/// The logits with the last layer at the positions `at` (`First`: `model.logits(x)`).
fn logits(
    model: &BertForSequenceClassification<f32>,
    x: &BertInput,
    at: Positions,
) -> Result<Tensor<f32>, tapegrad::models::bert::BertError> {
    Ok(model.forward_at(x, at)?.logits)
}

/// One evaluation forward (no tape) in seconds, in the thread's current precision.
fn eval_forward(
    model: &mut BertForSequenceClassification<f32>,
    x: &BertInput,
    at: Positions,
) -> Result<f64, Box<dyn std::error::Error>> {
    model.set_training(false);
    let t0 = Instant::now();
    let logits: Tensor<f32> = no_grad(|| logits(model, x, at))?;
    let secs = t0.elapsed().as_secs_f64();
    drop(logits);
    Ok(secs)
}

/// One training step (forward + backward, dropout on) in seconds, and its loss.
fn train_step(
    model: &mut BertForSequenceClassification<f32>,
    x: &BertInput,
    labels: &[usize],
    at: Positions,
) -> Result<(f64, f32), Box<dyn std::error::Error>> {
    model.set_training(true);
    let t0 = Instant::now();
    let logits = logits(model, x, at)?;
    let loss = model.loss(&logits, labels)?;
    loss.backward();
    let secs = t0.elapsed().as_secs_f64();
    drop(logits);
    model.zero_grad();
    Ok((secs, loss.item()))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// f32 and bf16 interleaved: per round an evaluation forward and a training step in each.
fn compare(
    model: &mut BertForSequenceClassification<f32>,
    x: &BertInput,
    labels: &[usize],
    rounds: usize,
    at: Positions,
) -> Result<(), Box<dyn std::error::Error>> {
    let precisions = [Precision::F32, Precision::Bf16];
    for p in precisions {
        // warm-up: pages in the weights, grows the heap
        let _mode = set_product_precision(p);
        eval_forward(model, x, at)?;
        train_step(model, x, labels, at)?;
    }
    let (mut fwd, mut step) = (vec![vec![]; 2], vec![vec![]; 2]);
    for round in 0..rounds.max(1) {
        for (i, p) in precisions.into_iter().enumerate() {
            let _mode = set_product_precision(p);
            let f = eval_forward(model, x, at)?;
            let (s, loss) = train_step(model, x, labels, at)?;
            println!("round {round} {p:>4}: forward (no_grad) {f:.3} s   training step {s:.3} s   loss = {loss:.4}");
            fwd[i].push(f);
            step[i].push(s);
        }
    }
    let ratio = |v: &[Vec<f64>]| median(v[1].iter().zip(&v[0]).map(|(b, f)| b / f).collect());
    println!(
        "median of {} rounds: forward f32 {:.3} s, bf16 {:.3} s (bf16/f32 {:.3}); training step f32 {:.3} s, \
         bf16 {:.3} s (bf16/f32 {:.3})",
        rounds.max(1),
        median(fwd[0].clone()),
        median(fwd[1].clone()),
        ratio(&fwd),
        median(step[0].clone()),
        median(step[1].clone()),
        ratio(&step)
    );
    Ok(())
}
