//! Times all-MiniLM-L6-v2 on the CPU: loading (memory-mapped), a forward without
//! the tape, and a forward + backward of the classification loss.
//!
//! ```text
//! cargo run --release --example minilm_forward [-- MODEL_DIR [BATCH [SEQ_LEN [STEPS]]]]
//! ```
//! Defaults: `../shared/models/all-MiniLM-L6-v2`, 16 sequences of 256 tokens, 3 training steps.

use std::path::PathBuf;
use std::time::Instant;
use tapegrad::autograd::no_grad;
use tapegrad::models::bert::BertForSequenceClassification;
use tapegrad::models::tokenizer::Tokenizer;
use tapegrad::models::Module;

#[path = "support/memory.rs"]
mod memory;
use memory::memory_line;

const REVIEW: &str = "This movie was absolutely wonderful: the acting is superb, the plot keeps you \
guessing until the very last minute, and the soundtrack is something I still hum days later. \
Some scenes drag a little in the middle, and one or two characters felt underwritten, but the \
director's eye for detail more than makes up for it. I would happily watch it again. ";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/models/all-MiniLM-L6-v2"))
    });
    let batch: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(16);
    let seq_len: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(256);
    let steps: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3);

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

    // Evaluation forwards: the first also pages in the weights and grows the cache.
    model.set_training(false);
    for i in 0..steps.max(2) {
        tapegrad::autograd::profile::reset();
        let t0 = Instant::now();
        let logits = no_grad(|| model.forward(&x).map(|o| o.logits))?;
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
        let out = model.forward(&x)?;
        let loss = model.loss(&out.logits, &labels)?;
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
        drop(out);
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
