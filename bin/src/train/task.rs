//! The two fine-tuning tasks behind one interface: how a model turns a batch of
//! token ids into logits, which loss it trains with, and how it is saved.
//!
//! - BiLSTM: one logit per review, L = (1/N) Σᵢ BCE(σ(zᵢ), yᵢ)  (the tutorial's).
//! - BERT: two logits per review, `L = (1/N) Σᵢ −log softmax(zᵢ)[yᵢ]`.

use crate::data::batch::Batch;
use crate::data::tokenize::{Vocab, PAD_ID};
use anyhow::{bail, Context, Result};
use rand::Rng;
use std::path::Path;
use tapegrad_autograd::Tensor;
use tapegrad_models::bert::{BertForSequenceClassification, BertInput};
use tapegrad_models::bilstm::{BiLstmClassifier, BiLstmConfig};
use tapegrad_models::layers::Dropout;
use tapegrad_models::safetensors_io::{load_into, LoadOptions, SafeTensorsFile};
use tapegrad_models::tokenizer::Tokenizer;
use tapegrad_models::Module;

/// A model being fine-tuned, with what it needs to read text.
pub enum Task {
    Bilstm {
        model: Box<BiLstmClassifier>,
        vocab: Vocab,
    },
    /// `assets`: the tokenizer files every checkpoint carries, read once when the
    /// model was loaded (a checkpoint folder may be replaced while the run goes on).
    Bert {
        model: Box<BertForSequenceClassification>,
        tokenizer: Box<Tokenizer>,
        assets: Vec<(&'static str, Vec<u8>)>,
    },
}

/// Tokenizer files copied into a BERT checkpoint (`tokenizer.json` must exist; the
/// others are copied when present).
const BERT_ASSETS: [&str; 4] =
    ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"];

/// The BiLSTM's vocabulary in a checkpoint: `{"itos": [...]}`.
const VOCAB_FILE: &str = "vocab.json";

impl Task {
    /// The tutorial's classifier over `vocab`, shaped by `spec`, with embeddings
    /// from `pretrained` `[V, E]` if given.
    pub fn bilstm(
        vocab: Vocab,
        spec: &ModelSpec,
        pretrained: Option<Vec<f32>>,
        freeze_embeddings: bool,
        rng: &mut impl Rng,
    ) -> Task {
        let mut model = BiLstmClassifier::new(bilstm_config(vocab.len(), spec), rng);
        if let Some(w) = pretrained {
            let table = Tensor::param(w, &[vocab.len(), spec.embedding_dim]);
            model = model.with_pretrained_embeddings(table, freeze_embeddings);
        }
        Task::Bilstm { model: Box::new(model), vocab }
    }

    /// A pretrained BERT-family model from `dir` (config.json, model.safetensors,
    /// tokenizer.json) with a 2-class head; reviews truncated to `max_len` tokens.
    pub fn bert(dir: &Path, max_len: usize, seed: u64) -> Result<Task> {
        let model = BertForSequenceClassification::from_pretrained(dir, 2, seed)
            .with_context(|| format!("loading the pretrained model in {}", dir.display()))?;
        let tokenizer = Tokenizer::from_dir(dir, max_len)
            .with_context(|| format!("loading the tokenizer in {}", dir.display()))?;
        // Checked here, before the data is tokenized: an id past the embedding table would
        // fail only at the first forward.
        let rows = model.bert.config.vocab_size;
        if let Some(id) = tokenizer.max_id().filter(|&id| id as usize >= rows) {
            bail!(
                "{}: gives token ids up to {id}, but {}'s `vocab_size` is {rows}: not that model's tokenizer",
                dir.join("tokenizer.json").display(),
                dir.join("config.json").display()
            );
        }
        let mut assets = Vec::new();
        for f in BERT_ASSETS {
            let path = dir.join(f);
            if f == BERT_ASSETS[0] || path.exists() {
                let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                assets.push((f, bytes));
            }
        }
        Ok(Task::Bert { model: Box::new(model), tokenizer: Box::new(tokenizer), assets })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Task::Bilstm { .. } => "bilstm",
            Task::Bert { .. } => "bert",
        }
    }

    /// Token ids of each text (BERT's with `[CLS]`…`[SEP]`, truncated by its
    /// tokenizer; the BiLSTM's untruncated).
    pub fn encode_all(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        match self {
            Task::Bilstm { vocab, .. } => Ok(texts.iter().map(|t| vocab.encode_text(t)).collect()),
            Task::Bert { tokenizer, .. } => {
                let mut out = Vec::with_capacity(texts.len());
                for chunk in texts.chunks(256) {
                    let enc = tokenizer.encode_batch(chunk).context("tokenizing reviews")?;
                    let t = enc.shape[1];
                    for r in 0..enc.shape[0] {
                        let row = r * t..(r + 1) * t;
                        let len = enc.attention_mask[row.clone()].iter().filter(|&&m| m != 0).count();
                        out.push(enc.input_ids[row][..len].iter().map(|&i| i as u32).collect());
                    }
                }
                Ok(out)
            }
        }
    }

    /// Special tokens [`Task::encode_all`] adds to each text: BERT's `[CLS]` and `[SEP]`.
    pub fn special_tokens_per_text(&self) -> usize {
        match self {
            Task::Bilstm { .. } => 0,
            Task::Bert { .. } => 2,
        }
    }

    pub fn pad_id(&self) -> u32 {
        match self {
            Task::Bilstm { .. } => PAD_ID,
            Task::Bert { tokenizer, .. } => tokenizer.pad_id() as u32,
        }
    }

    /// Whether batches may truncate: BERT's tokenizer already truncated (keeping
    /// `[SEP]` last), so its batches must not cut again.
    pub fn batch_max_len(&self, max_len: Option<usize>) -> Option<usize> {
        match self {
            Task::Bilstm { .. } => max_len,
            Task::Bert { .. } => None,
        }
    }

    /// Logits of a batch: `[B]` (BiLSTM) or `[B, 2]` (BERT).
    pub fn logits(&self, batch: &Batch) -> Result<Tensor> {
        let ids: Vec<usize> = batch.ids.iter().map(|&i| i as usize).collect();
        let (b, t) = (batch.batch_size, batch.max_len);
        match self {
            Task::Bilstm { model, .. } => {
                Ok(model.forward(&ids, &[b, t], &batch.lengths).logits.reshape(&[b]))
            }
            Task::Bert { model, .. } => {
                // attention mask: 1 on each review's tokens, 0 on padding
                let mask = (0..b * t).map(|k| usize::from(k % t < batch.lengths[k / t])).collect();
                let input = BertInput {
                    input_ids: ids,
                    attention_mask: mask,
                    token_type_ids: vec![0; b * t],
                    shape: [b, t],
                };
                Ok(model.logits(&input)?)
            }
        }
    }

    /// The mean loss over the batch, L = (1/N) Σᵢ l(zᵢ, yᵢ).
    pub fn loss(&self, logits: &Tensor, labels: &[u8]) -> Result<Tensor> {
        match self {
            Task::Bilstm { .. } => {
                let y = Tensor::from_vec(labels.iter().map(|&l| l as f32).collect(), &[labels.len()]);
                let y = y.to(logits.device());
                Ok(logits.binary_cross_entropy_with_logits(&y))
            }
            Task::Bert { model, .. } => {
                let y: Vec<usize> = labels.iter().map(|&l| l as usize).collect();
                Ok(model.loss(logits, &y)?)
            }
        }
    }

    /// P(positive) for each review of the batch.
    pub fn positive_probability(&self, logits: &Tensor) -> Vec<f32> {
        match self {
            Task::Bilstm { .. } => logits.sigmoid().to_vec(),
            Task::Bert { .. } => logits.softmax(-1).narrow(1, 1, 1).to_vec(),
        }
    }

    pub fn module(&self) -> &dyn Module {
        match self {
            Task::Bilstm { model, .. } => model.as_ref(),
            Task::Bert { model, .. } => model.as_ref(),
        }
    }

    pub fn set_training(&mut self, training: bool) {
        match self {
            Task::Bilstm { model, .. } => model.set_training(training),
            Task::Bert { model, .. } => model.set_training(training),
        }
    }

    /// Reseeds every dropout layer (once per step, from the step number).
    pub fn reseed_dropout(&self, seed: u64) {
        let mut i = 0u64;
        self.module().visit_dropout(&mut |d: &Dropout| {
            d.reseed(seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
            i += 1;
        });
    }

    /// Parameters that get no weight decay: biases and LayerNorm weights.
    pub fn no_decay(name: &str) -> bool {
        name.ends_with("bias") || name.contains("LayerNorm") || name.contains("layer_norm")
    }

    /// Writes the weights and what the model needs to read text into `dir`:
    /// BiLSTM weights under PyTorch's names plus `vocab.json`; BERT as a folder
    /// transformers loads (`model.safetensors`, `config.json`, tokenizer files).
    pub fn save_model(&self, dir: &Path) -> Result<()> {
        match self {
            Task::Bilstm { model, vocab } => {
                model.save(dir.join(super::checkpoint::MODEL_FILE))?;
                let path = dir.join(VOCAB_FILE);
                std::fs::write(&path, vocab.to_json()).with_context(|| format!("writing {}", path.display()))
            }
            Task::Bert { model, assets, .. } => {
                model.save_pretrained(dir)?;
                for (f, bytes) in assets {
                    let path = dir.join(f);
                    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
                }
                Ok(())
            }
        }
    }
}

/// The hyperparameters that shape a model, as stored in a checkpoint.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ModelSpec {
    pub kind: String,
    pub embedding_dim: usize,
    pub hidden: usize,
    pub layers: usize,
    pub dropout: f64,
    /// BERT's tokenizer truncation.
    #[serde(default)]
    pub max_len: Option<usize>,
}

/// The classifier's shape for a vocabulary of `vocab` words.
fn bilstm_config(vocab: usize, spec: &ModelSpec) -> BiLstmConfig {
    BiLstmConfig {
        vocab,
        embedding_dim: spec.embedding_dim,
        hidden: spec.hidden,
        layers: spec.layers,
        bidirectional: true,
        pad_index: PAD_ID as usize,
        output_dim: 1,
        dropout: spec.dropout,
    }
}

/// A checkpoint's `run.json` shape, checked before a model is built from it: sizes
/// at least 1, a dropout probability, and no more parameters than the weights file
/// holds (so a damaged `run.json` or `vocab.json` cannot make us allocate without
/// bound). The weights file is opened first: a damaged one is an error naming it.
fn check_bilstm_spec(spec: &ModelSpec, vocab: usize, weights: &Path) -> Result<()> {
    let file = open_weights(weights)?;
    let run_json = weights.with_file_name(super::checkpoint::RUN_FILE);
    let (e, h, l, p) = (spec.embedding_dim, spec.hidden, spec.layers, spec.dropout);
    if e == 0 || h == 0 || l == 0 || !(0.0..=1.0).contains(&p) {
        bail!(
            "{}: the model's embedding_dim {e}, hidden {h} and layers {l} must be at least 1 and its \
             dropout {p} in [0, 1]",
            run_json.display()
        );
    }
    let held = file.numel();
    let needed = bilstm_config(vocab, spec).parameter_count();
    if needed.is_none_or(|n| n as u128 > held) {
        bail!(
            "{} and {} describe a model (vocabulary {vocab}, embedding_dim {e}, hidden {h}, layers {l}) \
             of {} weights, but {} holds {held}: they do not belong together",
            run_json.display(),
            weights.with_file_name(VOCAB_FILE).display(),
            needed.map_or("more than 2^64".into(), |n| n.to_string()),
            weights.display()
        );
    }
    Ok(())
}

/// Rebuilds a model, weights included, from a checkpoint folder written by
/// [`Task::save_model`]. Every parameter must be in the weights file, and every
/// tensor of the file must be a parameter (BERT's head included).
pub fn load_task(spec: &ModelSpec, dir: &Path, rng: &mut impl Rng) -> Result<Task> {
    let weights = dir.join(super::checkpoint::MODEL_FILE);
    // The files that mark each kind's checkpoint: a run.json naming the other kind is
    // the mismatch, not a missing file.
    let (bilstm_files, bert_files) = (dir.join(VOCAB_FILE).is_file(), dir.join("config.json").is_file());
    let other = match spec.kind.as_str() {
        "bilstm" if !bilstm_files && bert_files => Some("a BERT checkpoint (config.json, no vocab.json)"),
        "bert" if !bert_files && bilstm_files => Some("a BiLSTM checkpoint (vocab.json, no config.json)"),
        _ => None,
    };
    if let Some(other) = other {
        bail!(
            "{}: says the model is `{}`, but {} holds {other}",
            dir.join(super::checkpoint::RUN_FILE).display(),
            spec.kind,
            dir.display()
        );
    }
    match spec.kind.as_str() {
        "bilstm" => {
            let path = dir.join(VOCAB_FILE);
            let vocab =
                Vocab::load(&path).with_context(|| format!("reading the vocabulary {}", path.display()))?;
            check_bilstm_spec(spec, vocab.len(), &weights)?;
            let task = Task::bilstm(vocab, spec, None, false, rng);
            task.load_weights(&weights)?;
            Ok(task)
        }
        "bert" => {
            let file = open_weights(&weights)?;
            let head: Vec<&str> = file.names().filter(|n| n.starts_with("classifier.")).collect();
            if head.len() < 2 {
                bail!(
                    "{}: the classification head (classifier.weight, classifier.bias) is missing; \
                     a checkpoint must hold the trained head, not a pretrained model",
                    weights.display()
                );
            }
            let task = Task::bert(dir, spec.max_len.unwrap_or(256), 0)?;
            let params: std::collections::HashSet<String> =
                task.module().named_parameters().into_iter().map(|(n, _)| n).collect();
            let extra: Vec<&str> = file.names().filter(|n| !params.contains(*n)).collect();
            if !extra.is_empty() {
                bail!(
                    "{}: tensors that are not parameters of the model: {}",
                    weights.display(),
                    extra.join(", ")
                );
            }
            Ok(task)
        }
        other => bail!("{}: unknown model kind `{other}`", dir.display()),
    }
}

/// Memory-maps a weights file, with a plain message for a folder in its place.
fn open_weights(path: &Path) -> Result<SafeTensorsFile> {
    if path.is_dir() {
        bail!("{}: a folder, not a weights file", path.display());
    }
    Ok(SafeTensorsFile::open(path)?)
}

impl Task {
    /// Loads weights saved by a run into the parameters: every parameter must be
    /// in the file with its shape, and every tensor of the file must be a parameter.
    pub fn load_weights(&self, path: &Path) -> Result<()> {
        let file = open_weights(path)?;
        let opts = match self {
            Task::Bilstm { .. } => LoadOptions::default(),
            Task::Bert { .. } => {
                LoadOptions { optional_prefix: Some("bert.".into()), ..LoadOptions::default() }
            }
        };
        load_into(self.module(), &file, &opts)?;
        Ok(())
    }
}
