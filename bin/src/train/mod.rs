//! The fine-tuning procedure: load pretrained weights, load and preprocess the
//! data, choose the loss and the optimizer with its learning rate, train,
//! evaluate. Each step is the tutorial's: L = (1/N) Σᵢ l(f(xᵢ; θ), yᵢ) on a batch,
//! backward for ∇L(θ), then the optimizer's update of θ.

pub mod checkpoint;
pub mod evaluate;
mod interrupt;
pub mod lr_find;
mod recipe;
pub mod run_dir;
pub mod task;
pub mod validate;

use crate::cli::{ModelKind, TrainArgs};
use crate::data::batch::{BatchConfig, Batcher};
use crate::data::glove::Glove;
use crate::data::imdb::{read_imdb, Review, Split};
use crate::data::seed::{self, Purpose};
use crate::data::tokenize::{Vocab, VocabOptions};
use crate::report::{
    curves_svg, summary_table, write_json_lines, EpochMetrics, MetricsLog, StepMetrics, CURVES_FILE,
    METRICS_FILE, STEPS_FILE,
};
use anyhow::{bail, Context, Result};
use checkpoint::{Best, RunState, MODEL_FILE, OPTIMIZER_FILE, RUN_FILE};
use evaluate::{evaluate_until, Encoded, EvalResult};
use indicatif::{ProgressBar, ProgressStyle};
use interrupt::pause_point;
pub use interrupt::Interrupt;
use recipe::{lr_factor, run_recipe};
pub(crate) use recipe::{recipe, with_defaults};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tapegrad_optim::{clip_grad_norm, Adam, AdamConfig, Optimizer, ParamGroup};
use task::{ModelSpec, Task};

/// How a training run ended.
#[derive(Debug)]
pub struct Outcome {
    /// Test accuracy of the best checkpoint, when the run went to the end.
    pub test_accuracy: Option<f64>,
    pub test_reviews: usize,
    /// Stopped early by Ctrl-C or `--max-steps` (a `last` checkpoint was saved).
    pub interrupted: bool,
    /// Stopped by Ctrl-C (exit code 130).
    pub ctrl_c: bool,
}

impl Outcome {
    fn stopped(ctrl_c: bool) -> Self {
        Outcome { test_accuracy: None, test_reviews: 0, interrupted: true, ctrl_c }
    }
}

/// An error's chain as one line, each cause once: `{:#}` repeats an OS error that
/// a message already quotes (`reading x: No such file…: No such file…`).
pub fn describe_error(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

/// The `--device` of a command, checked before any work: a missing driver or GPU is an
/// error here (every command that runs the model calls it first).
pub fn open_device(name: &str) -> Result<tapegrad_autograd::Device> {
    let device: tapegrad_autograd::Device = name.parse()?;
    tapegrad_autograd::storage::check_device(device)
        .map_err(|e| anyhow::anyhow!("--device {device}: {e}; use --device cpu"))?;
    Ok(device)
}

/// Runs `train` as the command line asked; `interrupt` is raised by Ctrl-C.
pub fn train(given: TrainArgs, interrupt: Arc<Interrupt>) -> Result<Outcome> {
    let device = open_device(&given.device)?;
    // Until the training loop, nothing is worth saving: Ctrl-C exits at once.
    interrupt.exit_at_once(true);
    // Stale temporaries first: a checkpoint only left as `.last.old` is put back.
    if given.out.exists() {
        run_dir::recover(&given.out)?;
    }
    // A resumed run continues with the arguments it was started with.
    let (args, resumed) = match &given.resume {
        Some(dir) => {
            let dir = checkpoint::resolve(dir)?;
            let run = checkpoint::read_run(&dir)?;
            validate::check_resume_flags(&given, &run)?;
            let mut a = run.args.clone();
            (a.out, a.cache, a.quiet, a.max_steps, a.threads, a.overwrite, a.device) = (
                given.out.clone(),
                given.cache.clone(),
                given.quiet,
                given.max_steps,
                given.threads,
                given.overwrite,
                given.device.clone(),
            );
            a.data = given.data.clone().or(a.data);
            if let Some(d) = a.data.as_ref().filter(|d| !d.exists()) {
                bail!("--data {}: no such file or folder", d.display());
            }
            // the stored arguments too: run.json is a file a person can edit; and a bf16 run
            // resumes on the CPU only (its --device may be a new one)
            let mut bad = validate::number_problems(&a);
            if let Err(e) = tapegrad_autograd::precision::check_device(a.precision.into(), device) {
                bad.push(e);
            }
            if !bad.is_empty() {
                bail!(
                    "{}: the run's arguments with the flags given now are invalid:\n  {}",
                    dir.join(checkpoint::RUN_FILE).display(),
                    bad.join("\n  ")
                );
            }
            (a, Some((dir, run)))
        }
        None => {
            let a = with_defaults(given.clone());
            validate::check_args(&a, bert_positions(&a)?)?;
            (a, None)
        }
    };
    // the linear layers and attention compute in the run's precision for the whole run (bf16
    // on the CPU only, checked above with the other arguments)
    let precision = args.precision.into();
    let _precision = tapegrad_autograd::precision::set_product_precision(precision);
    if let Some(note) = tapegrad_autograd::precision::cpu_speed_note(precision).filter(|_| !args.quiet) {
        eprintln!("note: {note}");
    }
    let data_path = args.data.clone().context("--data is required")?;
    if let Some(t) = args.threads {
        tapegrad_kernels::threads::set_num_threads(t);
    }
    let r = run_recipe(&args, resumed.is_some());
    let say = |msg: String| {
        if !args.quiet {
            eprintln!("{msg}");
        }
    };
    if args.model == ModelKind::Bilstm && args.embeddings.is_none() && resumed.is_none() {
        eprintln!("warning: no --embeddings: the BiLSTM starts from random 100-d word vectors, not GloVe");
    }

    // The run folder: one run, no stale temporaries.
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let run_id = resumed.as_ref().map_or_else(run_dir::new_run_id, |(_, run)| run.run_id.clone());
    let claim = run_dir::claim(&args.out, resumed.as_ref().map(|_| run_id.as_str()), args.overwrite)?;

    // The data: train (minus a validation split) and test.
    let t0 = Instant::now();
    pause_point("loading");
    let data = read_imdb(&data_path, &[Split::Train, Split::Test])?;
    if data.train.is_empty() {
        bail!("{}: no training reviews (expected train/pos and train/neg)", data_path.display());
    }
    let fingerprint = validate::fingerprint(&data);
    if let Some((_, run)) = resumed.as_ref().filter(|(_, run)| !run.data_fingerprint.is_empty()) {
        if run.data_fingerprint != fingerprint {
            bail!(
                "{}: not the data set this run started on (fingerprint {} there, {} here)",
                data_path.display(),
                &run.data_fingerprint[..12],
                &fingerprint[..12]
            );
        }
    }
    for warning in data.stats.warnings(&data_path) {
        eprintln!("{warning}");
    }
    if data.train.iter().all(|r| r.text.trim().is_empty()) {
        bail!("{}: every training review is empty: there is nothing to learn from", data_path.display());
    }
    let evaluate::RunSplits { train: train_reviews, valid: valid_reviews, test: test_reviews } =
        evaluate::run_splits(data.train, data.test, &args)?;
    validate::check_sizes(&args, train_reviews.len(), valid_reviews.len(), test_reviews.len())?;
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
    task.module().to(device); // every parameter; the optimizer's state follows them

    let t0 = Instant::now();
    let encode = |reviews: &[Review]| Encoded::new(&task, reviews);
    let (train, valid, test) = (encode(&train_reviews)?, encode(&valid_reviews)?, encode(&test_reviews)?);
    say(format!("tokenized in {:.1}s", t0.elapsed().as_secs_f64()));
    let max_len = task.batch_max_len(Some(r.max_len));
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
    let warmup = (r.warmup * total_steps as f64).round() as u64;

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
        None => RunState::new(run_id, args.clone(), spec, fingerprint, total_steps),
    };

    // Data, model and optimizer are ready: only now does --overwrite remove the old run.
    claim.take()?;
    // The folder's logs are the run's: rewritten from the checkpoint (a resume
    // after a crash drops the lines of steps that were not saved).
    let file = |name: &str| args.out.join(name);
    write_json_lines(&file(METRICS_FILE), &run.history).context("writing metrics.jsonl")?;
    write_json_lines(&file(STEPS_FILE), &run.steps).context("writing steps.jsonl")?;
    let step_log = MetricsLog::new(&file(STEPS_FILE));
    let (last_dir, best_dir) = (args.out.join("last"), args.out.join("best"));
    let save = |dir: &Path, task: &Task, opt: &Adam<f32>, run: &RunState| -> Result<()> {
        checkpoint::write_atomically(dir, |tmp| {
            task.save_model(tmp)?;
            pause_point("save");
            tapegrad_optim::save_checkpoint::<f32>(tmp.join(OPTIMIZER_FILE), &[], Some(&opt.state()))?;
            checkpoint::write_json(&tmp.join(RUN_FILE), run)
        })
    };
    let stopped = |run: &RunState, what: &str| {
        say(format!(
            "stopped {what} (step {}); saved {} (continue with --resume)",
            run.step,
            last_dir.display()
        ))
    };

    let plain_progress = !args.quiet && !std::io::stderr().is_terminal();
    let plain_every = (per_epoch / 20).max(1);
    interrupt.exit_at_once(false);
    while run.epoch < r.epochs && !run.finished {
        let bar = progress_bar(per_epoch, run.next_batch as u64, run.epoch + 1, r.epochs, args.quiet);
        task.set_training(true);
        let t_epoch = Instant::now();
        for batch in batcher.batches_from(run.epoch as u64, run.next_batch) {
            pause_point("step");
            task.reseed_dropout(rand::Rng::next_u64(&mut seed::rng(args.seed, Purpose::Dropout, run.step)));
            let logits = task.logits(&batch)?;
            let loss = task.loss(&logits, &batch.labels)?; // L = (1/N) Σᵢ lᵢ over the batch
            let l = loss.item() as f64;
            if !l.is_finite() {
                bail!(
                    "the loss became {l} at step {} (epoch {}, batch {}); stopped without saving; {}",
                    run.step + 1,
                    run.epoch + 1,
                    run.next_batch + 1,
                    saved_note(&last_dir)
                );
            }
            loss.backward(); // ∇L(θ) into every parameter's grad
            if let Some(c) = r.clip {
                clip_grad_norm(opt.trainable_params().iter(), c);
            }
            let factor = lr_factor(r.schedule, warmup, total_steps, run.step);
            opt.set_lr_factor(factor);
            opt.step(); // θ ← θ − η·d(∇L)
            opt.zero_grad();

            let probs = task.positive_probability(&logits);
            let correct = probs.iter().zip(&batch.labels).filter(|(p, &y)| (**p > 0.5) == (y == 1)).count();
            run.step += 1;
            run.next_batch += 1;
            run.epoch_loss_sum += l * batch.batch_size as f64;
            run.epoch_correct += correct;
            run.epoch_seen += batch.batch_size;
            let step = StepMetrics {
                step: run.step,
                epoch: run.epoch + 1,
                loss: l,
                accuracy: correct as f64 / batch.batch_size as f64,
                lr: r.lr * factor,
            };
            step_log.append(&step).context("appending to steps.jsonl")?;
            run.steps.push(step);
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
            if interrupt.requested() || hit_max {
                run.epoch_seconds = secs;
                bar.abandon();
                save(&last_dir, &task, &opt, &run)?;
                stopped(&run, "after a training step");
                return Ok(Outcome::stopped(interrupt.requested()));
            }
        }
        bar.finish_and_clear();

        // End of epoch: validate, log, keep the best, maybe stop early.
        let seconds = run.epoch_seconds + t_epoch.elapsed().as_secs_f64();
        task.set_training(false);
        let v = if valid.is_empty() {
            None
        } else {
            let stop = || {
                pause_point("valid-batch");
                interrupt.requested()
            };
            match evaluate_until(&task, &valid, r.batch_size, max_len, &stop)? {
                Some(v) => Some(v),
                None => {
                    // Saved at the end of the epoch's batches: a resume validates again.
                    run.epoch_seconds = seconds;
                    save(&last_dir, &task, &opt, &run)?;
                    stopped(&run, "during validation");
                    return Ok(Outcome::stopped(true));
                }
            }
        };
        if let Some(v) = v.filter(|v| !v.loss.is_finite()) {
            bail!(
                "the loss became {} on the validation set at step {} (end of epoch {}); stopped without \
                 saving; {}",
                v.loss,
                run.step,
                run.epoch + 1,
                saved_note(&last_dir)
            );
        }
        let m = EpochMetrics {
            epoch: run.epoch + 1,
            step: run.step,
            train_loss: run.epoch_loss_sum / run.epoch_seen.max(1) as f64,
            train_accuracy: run.epoch_correct as f64 / run.epoch_seen.max(1) as f64,
            valid_loss: v.map(|v| v.loss),
            valid_accuracy: v.map(|v| v.accuracy),
            seconds,
            reviews_per_second: run.epoch_seen as f64 / seconds.max(1e-9),
        };
        say(format!(
            "epoch {}: train loss {:.4} acc {:.4} | valid loss {} acc {} | {:.0}s, {:.0} reviews/s",
            m.epoch,
            m.train_loss,
            m.train_accuracy,
            m.valid_loss.map_or("-".into(), |v| format!("{v:.4}")),
            m.valid_accuracy.map_or("-".into(), |v| format!("{v:.4}")),
            m.seconds,
            m.reviews_per_second
        ));
        run.history.push(m);
        run.epoch += 1;
        run.next_batch = 0;
        (run.epoch_loss_sum, run.epoch_correct, run.epoch_seen, run.epoch_seconds) = (0.0, 0, 0, 0.0);
        let best_loss = match run.best {
            Best::Epoch { valid_loss, .. } => Some(valid_loss),
            Best::NoValidationYet | Best::Unvalidated { .. } => None,
        };
        let improved = match v {
            None => {
                run.best = Best::Unvalidated { epoch: run.epoch };
                true
            }
            Some(v) if best_loss.is_some_and(|b| v.loss >= b) => false,
            Some(v) => {
                run.best = Best::Epoch { epoch: run.epoch, valid_loss: v.loss };
                true
            }
        };
        run.epochs_without_improvement = if improved { 0 } else { run.epochs_without_improvement + 1 };
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
        if args.keep_epochs {
            save(&args.out.join(run_dir::epoch_dir(run.epoch)), &task, &opt, &run)?;
        }
        save(&last_dir, &task, &opt, &run)?;
        write_json_lines(&file(METRICS_FILE), &run.history).context("writing metrics.jsonl")?;
        tapegrad_fsio::write_bytes(&file(CURVES_FILE), curves_svg(&run.history, &run.steps).as_bytes())
            .context("writing curves.svg")?;
    }

    // Test accuracy of the best checkpoint.
    if best_dir.join(MODEL_FILE).exists() {
        task.load_weights(&best_dir.join(MODEL_FILE))?;
    }
    task.set_training(false);
    let stop = || {
        pause_point("test-batch");
        interrupt.requested()
    };
    let Some(t): Option<EvalResult> = evaluate_until(&task, &test, r.batch_size, max_len, &stop)? else {
        say(format!(
            "stopped during the test evaluation; the training is complete: `finetune-imdb eval --checkpoint {}` \
             or --resume {} runs the test",
            best_dir.display(),
            last_dir.display()
        ));
        return Ok(Outcome::stopped(true));
    };
    if !args.quiet {
        eprintln!("\n{}", summary_table(&run.history));
        eprintln!("test: loss {:.4}, accuracy {:.4} on {} reviews", t.loss, t.accuracy, t.count);
    }
    Ok(Outcome { test_accuracy: Some(t.accuracy), test_reviews: t.count, interrupted: false, ctrl_c: false })
}

/// Where a stopped run can continue from: the last checkpoint, if there is one.
fn saved_note(last_dir: &Path) -> String {
    match checkpoint::read_run(last_dir) {
        Ok(s) => format!("the last checkpoint is {} (step {})", last_dir.display(), s.step),
        Err(_) => "no checkpoint was saved yet".into(),
    }
}

/// BERT's `max_position_embeddings` from `--pretrained`'s config, to check `--max-len`.
fn bert_positions(a: &TrainArgs) -> Result<Option<usize>> {
    match (&a.model, &a.pretrained) {
        (ModelKind::Bert, Some(dir)) if dir.join("config.json").exists() => {
            let c = tapegrad_models::bert::BertConfig::from_file(dir.join("config.json"))?;
            Ok(Some(c.max_position_embeddings))
        }
        _ => Ok(None),
    }
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
            // <unk> and <pad> alone: every review would read as unknown words
            if vocab.len() <= 2 {
                bail!(
                    "no word of the {} training reviews occurs --min-freq {} times: the vocabulary \
                     would hold only <unk> and <pad>",
                    train.len(),
                    args.min_freq
                );
            }
            let (dim, vectors) = match &args.embeddings {
                Some(path) => {
                    let (glove, status) = Glove::load_cached(path, &args.cache, None)?;
                    if let Some(warning) = glove.notes.warning(path) {
                        eprintln!("{warning}");
                    }
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
            match &task {
                Task::Bilstm { model, .. } if args.forget_bias != 0.0 => {
                    model.rnn.add_forget_bias(args.forget_bias as f32)
                }
                _ => {}
            }
            Ok((task, spec))
        }
        ModelKind::Bert => {
            let Some(dir) = &args.pretrained else {
                bail!("--model bert needs --pretrained DIR (a folder with config.json, model.safetensors, tokenizer.json)");
            };
            let max_len = recipe(args).max_len;
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
