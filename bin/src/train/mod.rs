//! The fine-tuning procedure: load pretrained weights, load and preprocess the
//! data, choose the loss and the optimizer with its learning rate, train,
//! evaluate. Each step is the tutorial's: L = (1/N) Σᵢ l(f(xᵢ; θ), yᵢ) on a batch,
//! backward for ∇L(θ), then the optimizer's update of θ.

pub mod checkpoint;
pub mod evaluate;
pub mod task;

use crate::cli::{DeviceKind, ModelKind, TrainArgs};
use crate::data::batch::{BatchConfig, Batcher};
use crate::data::glove::Glove;
use crate::data::imdb::{read_imdb, Review, Split};
use crate::data::seed::{self, Purpose};
use crate::data::split::{take_limit, train_valid_split, SplitOptions};
use crate::data::tokenize::{Vocab, VocabOptions};
use crate::report::{curves_svg, summary_table, EpochMetrics, MetricsLog};
use anyhow::{bail, Context, Result};
use checkpoint::{RunState, MODEL_FILE, OPTIMIZER_FILE, RUN_FILE};
use evaluate::{evaluate, Encoded};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tapegrad_optim::{clip_grad_norm, Adam, AdamConfig, LinearWarmup, LrSchedule, Optimizer, ParamGroup};
use task::{ModelSpec, Task};

/// How a training run ended.
#[derive(Debug)]
pub struct Outcome {
    /// Test accuracy of the best checkpoint, when the run went to the end.
    pub test_accuracy: Option<f64>,
    pub test_reviews: usize,
    /// Stopped early by Ctrl-C or `--max-steps` (a `last` checkpoint was saved).
    pub interrupted: bool,
}

/// Defaults that differ between the two models.
struct Recipe {
    epochs: usize,
    batch_size: usize,
    lr: f64,
    weight_decay: f64,
    warmup: f64,
    clip: Option<f64>,
    max_len: Option<usize>,
}

fn recipe(a: &TrainArgs) -> Recipe {
    let bert = a.model == ModelKind::Bert;
    Recipe {
        epochs: a.epochs.unwrap_or(if bert { 2 } else { 5 }),
        batch_size: a.batch_size.unwrap_or(if bert { 16 } else { 64 }),
        lr: a.lr.unwrap_or(if bert { 3e-5 } else { 1e-3 }),
        weight_decay: a.weight_decay.unwrap_or(if bert { 0.01 } else { 0.0 }),
        warmup: a.warmup.unwrap_or(if bert { 0.1 } else { 0.0 }),
        clip: a.clip.or(if bert { Some(1.0) } else { None }),
        max_len: a.max_len.or(if bert { Some(256) } else { None }),
    }
}

/// Runs `train` as the command line asked; `stop` is raised by Ctrl-C.
pub fn train(args: TrainArgs, stop: Arc<AtomicBool>) -> Result<Outcome> {
    if args.device == DeviceKind::Cuda {
        bail!("--device cuda: this build has no CUDA backend yet; use --device cpu");
    }
    if let Some(t) = args.threads {
        tapegrad_kernels::threads::set_num_threads(t);
    }
    // A resumed run continues with the arguments it was started with.
    let (args, resumed) = match &args.resume {
        Some(dir) => {
            let dir = checkpoint::resolve(dir)?;
            let run = checkpoint::read_run(&dir)?;
            let mut a = run.args.clone();
            (a.out, a.quiet, a.max_steps, a.threads) =
                (args.out.clone(), args.quiet, args.max_steps, args.threads);
            (a, Some((dir, run)))
        }
        None => (args, None),
    };
    let r = recipe(&args);
    let say = |msg: String| {
        if !args.quiet {
            eprintln!("{msg}");
        }
    };

    // The data: train (minus a validation split) and test.
    let t0 = Instant::now();
    let data = read_imdb(&args.data, &[Split::Train, Split::Test])?;
    if data.train.is_empty() {
        bail!("{}: no training reviews (expected train/pos and train/neg)", args.data.display());
    }
    if data.stats.lossy_utf8 > 0 {
        eprintln!(
            "warning: {} of {} reviews in {} were not valid UTF-8 and were decoded lossily",
            data.stats.lossy_utf8,
            data.stats.files,
            args.data.display()
        );
    }
    let train_all = match args.limit_train {
        Some(n) => take_limit(data.train, n, args.seed),
        None => data.train,
    };
    let split = SplitOptions { valid_fraction: args.valid_fraction, seed: args.seed, stratified: true };
    let (train_reviews, valid_reviews) = train_valid_split(train_all, &split)?;
    let test_reviews = match args.limit_test {
        Some(n) => take_limit(data.test, n, args.seed ^ 1),
        None => data.test,
    };
    say(format!(
        "data: {} train, {} validation, {} test reviews ({:.1}s)",
        train_reviews.len(),
        valid_reviews.len(),
        test_reviews.len(),
        t0.elapsed().as_secs_f64()
    ));

    // The model: pretrained weights, or a resumed run's.
    let mut init_rng = seed::rng(args.seed, Purpose::ModelInit, 0);
    let (mut task, spec) = match &resumed {
        Some((dir, run)) => {
            let mut task = task::load_task(&run.spec, dir, &mut init_rng)?;
            task.set_training(true);
            (task, run.spec.clone())
        }
        None => build_task(&args, &train_reviews, &mut init_rng, &say)?,
    };
    if args.freeze_embeddings {
        task.module().freeze("embedding", true);
    }

    let t0 = Instant::now();
    let encode = |reviews: &[Review]| Encoded::new(&task, reviews);
    let (train, valid, test) = (encode(&train_reviews)?, encode(&valid_reviews)?, encode(&test_reviews)?);
    say(format!("tokenized in {:.1}s", t0.elapsed().as_secs_f64()));
    let max_len = task.batch_max_len(r.max_len);
    let batch_cfg = |shuffle| BatchConfig {
        batch_size: r.batch_size,
        max_len,
        pad_id: task.pad_id(),
        seed: args.seed,
        shuffle,
        ..BatchConfig::default()
    };
    let batcher = Batcher::new(&train.ids, &train.labels, batch_cfg(true))?;
    let per_epoch = batcher.num_batches() as u64;

    // Optimizer: Adam (BiLSTM) or AdamW (BERT); no weight decay on biases and LayerNorm.
    let (decay, no_decay): (Vec<_>, Vec<_>) =
        task.module().trainable_parameters().into_iter().partition(|(n, _)| !Task::no_decay(n));
    let groups = vec![ParamGroup::new(decay), ParamGroup::new(no_decay).with_weight_decay(0.0)];
    let config = if args.model == ModelKind::Bert { AdamConfig::adamw(r.lr) } else { AdamConfig::new(r.lr) };
    let mut opt = Adam::with_groups(groups, config.weight_decay(r.weight_decay));
    let total_steps = per_epoch * r.epochs as u64;
    let schedule =
        LinearWarmup { warmup: (r.warmup * total_steps as f64).round() as u64, total: total_steps };

    let mut run = match resumed {
        Some((dir, run)) => {
            let state = tapegrad_optim::read_optim_state(dir.join(OPTIMIZER_FILE))?;
            opt.load_state(&state)?;
            say(format!(
                "resuming {} at epoch {}, batch {} (step {})",
                dir.display(),
                run.epoch + 1,
                run.next_batch,
                run.step
            ));
            run
        }
        None => RunState {
            args: args.clone(),
            spec,
            epoch: 0,
            next_batch: 0,
            step: 0,
            total_steps,
            best_valid_loss: f64::INFINITY,
            epochs_without_improvement: 0,
            epoch_loss_sum: 0.0,
            epoch_correct: 0,
            epoch_seen: 0,
            epoch_seconds: 0.0,
            history: Vec::new(),
            finished: false,
        },
    };

    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let log = MetricsLog::new(&args.out.join("metrics.jsonl"));
    let (last_dir, best_dir) = (args.out.join("last"), args.out.join("best"));
    let save = |dir: &Path, task: &Task, opt: &Adam<f32>, run: &RunState| -> Result<()> {
        checkpoint::write_atomically(dir, |tmp| {
            task.save_model(tmp)?;
            tapegrad_optim::save_checkpoint::<f32>(tmp.join(OPTIMIZER_FILE), &[], Some(&opt.state()))?;
            checkpoint::write_json(&tmp.join(RUN_FILE), run)
        })
    };

    let plain_progress = !args.quiet && !std::io::stderr().is_terminal();
    let plain_every = (per_epoch / 20).max(1);
    let mut interrupted = false;
    'epochs: while run.epoch < r.epochs && !run.finished {
        let bar = progress_bar(per_epoch, run.next_batch as u64, run.epoch + 1, r.epochs, args.quiet);
        task.set_training(true);
        let t_epoch = Instant::now();
        for batch in batcher.batches_from(run.epoch as u64, run.next_batch) {
            task.reseed_dropout(rand::Rng::next_u64(&mut seed::rng(args.seed, Purpose::Dropout, run.step)));
            let logits = task.logits(&batch)?;
            let loss = task.loss(&logits, &batch.labels)?; // L = (1/N) Σᵢ lᵢ over the batch
            let l = loss.item() as f64;
            if !l.is_finite() {
                bail!(
                    "the loss became {l} at step {} (epoch {}, batch {}); stopped without saving — \
                     the last good checkpoint is {}",
                    run.step + 1,
                    run.epoch + 1,
                    run.next_batch + 1,
                    last_dir.display()
                );
            }
            loss.backward(); // ∇L(θ) into every parameter's grad
            if let Some(c) = r.clip {
                clip_grad_norm(opt.trainable_params().iter(), c);
            }
            opt.set_lr_factor(schedule.lr_factor(run.step));
            opt.step(); // θ ← θ − η·d(∇L)
            opt.zero_grad();

            let probs = task.positive_probability(&logits);
            let correct = probs.iter().zip(&batch.labels).filter(|(p, &y)| (**p > 0.5) == (y == 1)).count();
            run.step += 1;
            run.next_batch += 1;
            run.epoch_loss_sum += l * batch.batch_size as f64;
            run.epoch_correct += correct;
            run.epoch_seen += batch.batch_size;
            let secs = run.epoch_seconds + t_epoch.elapsed().as_secs_f64();
            bar.set_message(format!(
                "loss {:.4} acc {:.3} {:.0} reviews/s",
                run.epoch_loss_sum / run.epoch_seen as f64,
                run.epoch_correct as f64 / run.epoch_seen as f64,
                run.epoch_seen as f64 / secs.max(1e-9)
            ));
            bar.inc(1);
            if plain_progress
                && ((run.next_batch as u64).is_multiple_of(plain_every) || run.next_batch as u64 == per_epoch)
            {
                // No terminal to draw the bar on (a log file, nohup): a line every ~5 %.
                let left = secs / run.next_batch.max(1) as f64 * (per_epoch as f64 - run.next_batch as f64);
                eprintln!(
                    "epoch {}/{}: batch {}/{per_epoch}, {}, ETA {:.0}s",
                    run.epoch + 1,
                    r.epochs,
                    run.next_batch,
                    bar.message(),
                    left.max(0.0)
                );
            }
            let hit_max = args.max_steps.is_some_and(|m| run.step >= m);
            if stop.load(Ordering::SeqCst) || hit_max {
                run.epoch_seconds = secs;
                bar.abandon();
                save(&last_dir, &task, &opt, &run)?;
                say(format!(
                    "stopped after step {}; saved {} (continue with --resume)",
                    run.step,
                    last_dir.display()
                ));
                interrupted = true;
                break 'epochs;
            }
        }
        bar.finish_and_clear();

        // End of epoch: validate, log, keep the best, maybe stop early.
        let seconds = run.epoch_seconds + t_epoch.elapsed().as_secs_f64();
        task.set_training(false);
        let v = evaluate(&task, &valid, r.batch_size, max_len)?;
        let m = EpochMetrics {
            epoch: run.epoch + 1,
            train_loss: run.epoch_loss_sum / run.epoch_seen.max(1) as f64,
            train_accuracy: run.epoch_correct as f64 / run.epoch_seen.max(1) as f64,
            valid_loss: v.loss,
            valid_accuracy: v.accuracy,
            seconds,
            reviews_per_second: run.epoch_seen as f64 / seconds.max(1e-9),
        };
        log.append(&m)?;
        say(format!(
            "epoch {}: train loss {:.4} acc {:.4} | valid loss {:.4} acc {:.4} | {:.0}s, {:.0} reviews/s",
            m.epoch,
            m.train_loss,
            m.train_accuracy,
            m.valid_loss,
            m.valid_accuracy,
            m.seconds,
            m.reviews_per_second
        ));
        run.history.push(m);
        std::fs::write(args.out.join("curves.svg"), curves_svg(&run.history))?;
        run.epoch += 1;
        run.next_batch = 0;
        (run.epoch_loss_sum, run.epoch_correct, run.epoch_seen, run.epoch_seconds) = (0.0, 0, 0, 0.0);
        let improved = v.loss < run.best_valid_loss;
        if improved {
            run.best_valid_loss = v.loss;
            run.epochs_without_improvement = 0;
        } else {
            run.epochs_without_improvement += 1;
        }
        if args.patience.is_some_and(|p| run.epochs_without_improvement >= p) {
            say(format!(
                "early stop: no better validation loss for {} epochs",
                run.epochs_without_improvement
            ));
            run.finished = true;
        }
        if improved {
            save(&best_dir, &task, &opt, &run)?;
        }
        save(&last_dir, &task, &opt, &run)?;
    }
    if interrupted {
        return Ok(Outcome { test_accuracy: None, test_reviews: 0, interrupted: true });
    }

    // Test accuracy of the best checkpoint.
    if best_dir.join(MODEL_FILE).exists() {
        load_weights(&task, &best_dir.join(MODEL_FILE))?;
    }
    task.set_training(false);
    let t = evaluate(&task, &test, r.batch_size, max_len)?;
    if !args.quiet {
        eprintln!("\n{}", summary_table(&run.history));
        eprintln!("test: loss {:.4}, accuracy {:.4} on {} reviews", t.loss, t.accuracy, t.count);
    }
    Ok(Outcome { test_accuracy: Some(t.accuracy), test_reviews: t.count, interrupted: false })
}

/// A fresh model: the BiLSTM over a vocabulary of the training split with GloVe
/// vectors, or a pretrained BERT.
fn build_task(
    args: &TrainArgs,
    train: &[Review],
    rng: &mut rand_chacha::ChaCha8Rng,
    say: &dyn Fn(String),
) -> Result<(Task, ModelSpec)> {
    match args.model {
        ModelKind::Bilstm => {
            let t = Instant::now();
            let opts = VocabOptions { max_size: Some(args.max_vocab), min_freq: args.min_freq };
            let vocab = Vocab::build(train.iter().map(|r| r.text.as_str()), &opts);
            let (dim, vectors) = match &args.embeddings {
                Some(path) => {
                    let (glove, status) = Glove::load_cached(path, &args.cache, None)?;
                    let m = glove.embedding_matrix(&vocab, args.seed);
                    say(format!(
                        "embeddings: {} ({status:?}), {} of {} words found ({:.1}s)",
                        path.display(),
                        m.found,
                        vocab.len(),
                        t.elapsed().as_secs_f64()
                    ));
                    (m.dim, Some(m.data))
                }
                None => (100, None),
            };
            let spec = ModelSpec {
                kind: "bilstm".into(),
                embedding_dim: dim,
                hidden: args.hidden,
                layers: args.layers,
                dropout: args.dropout,
                max_len: None,
            };
            let task = Task::bilstm(vocab, &spec, vectors, args.freeze_embeddings, rng);
            Ok((task, spec))
        }
        ModelKind::Bert => {
            let Some(dir) = &args.pretrained else {
                bail!("--model bert needs --pretrained DIR (a folder with config.json, model.safetensors, tokenizer.json)");
            };
            let max_len = args.max_len.unwrap_or(256);
            let t = Instant::now();
            let task = Task::bert(dir, max_len, args.seed)?;
            say(format!("pretrained: {} loaded in {:.0} ms", dir.display(), t.elapsed().as_secs_f64() * 1e3));
            let spec = ModelSpec {
                kind: "bert".into(),
                embedding_dim: 0,
                hidden: 0,
                layers: 0,
                dropout: 0.0,
                max_len: Some(max_len),
            };
            Ok((task, spec))
        }
    }
}

/// Loads weights saved by a run into the task's parameters (names and shapes checked).
pub fn load_weights(task: &Task, path: &Path) -> Result<()> {
    let params = task.module().named_parameters();
    tapegrad_optim::load_checkpoint::<f32>(path, &params, None)
        .with_context(|| format!("loading weights from {}", path.display()))
}

fn progress_bar(len: u64, pos: u64, epoch: usize, epochs: usize, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len).with_position(pos);
    let style = ProgressStyle::with_template(&format!(
        "epoch {epoch}/{epochs} [{{bar:30}}] {{pos}}/{{len}} {{msg}} ETA {{eta}}"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}
