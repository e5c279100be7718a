//! The two fine-tuning tasks behind one interface: how a model turns a batch of
//! token ids into logits, which loss it trains with, and how it is saved.
//!
//! - BiLSTM: one logit per review, L = (1/N) Σᵢ BCE(σ(zᵢ), yᵢ)  (the tutorial's).
//! - BERT: two logits per review, L = (1/N) Σᵢ −log softmax(zᵢ)[yᵢ].

use crate::data::batch::Batch;
use crate::data::tokenize::{Vocab, PAD_ID};
use anyhow::{bail, Context, Result};
use rand::Rng;
use std::path::Path;
use tapegrad_autograd::Tensor;
use tapegrad_models::bilstm::{BiLstmClassifier, BiLstmConfig};
use tapegrad_models::layers::Dropout;
use tapegrad_models::Module;

/// A model being fine-tuned, with what it needs to read text.
pub enum Task {
    Bilstm { model: BiLstmClassifier, vocab: Vocab },
}

impl Task {
    /// The tutorial's classifier over `vocab`, embeddings from `pretrained` `[V, E]` if given.
    pub fn bilstm(
        vocab: Vocab,
        embedding_dim: usize,
        hidden: usize,
        layers: usize,
        dropout: f64,
        pretrained: Option<Vec<f32>>,
        freeze_embeddings: bool,
        rng: &mut impl Rng,
    ) -> Task {
        let config = BiLstmConfig {
            vocab: vocab.len(),
            embedding_dim,
            hidden,
            layers,
            bidirectional: true,
            pad_index: PAD_ID as usize,
            output_dim: 1,
            dropout,
        };
        let mut model = BiLstmClassifier::new(config, rng);
        if let Some(w) = pretrained {
            model = model.with_pretrained_embeddings(
                Tensor::param(w, &[vocab.len(), embedding_dim]),
                freeze_embeddings,
            );
        }
        Task::Bilstm { model, vocab }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Task::Bilstm { .. } => "bilstm",
        }
    }

    /// Token ids of a review (not yet truncated or padded).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        match self {
            Task::Bilstm { vocab, .. } => vocab.encode_text(text),
        }
    }

    pub fn pad_id(&self) -> u32 {
        match self {
            Task::Bilstm { .. } => PAD_ID,
        }
    }

    /// Logits of a batch: `[B]` (BiLSTM) or `[B, 2]` (BERT).
    pub fn logits(&self, batch: &Batch) -> Tensor {
        let ids: Vec<usize> = batch.ids.iter().map(|&i| i as usize).collect();
        let shape = [batch.batch_size, batch.max_len];
        match self {
            Task::Bilstm { model, .. } => {
                model.forward(&ids, &shape, &batch.lengths).logits.reshape(&[batch.batch_size])
            }
        }
    }

    /// The mean loss over the batch, L = (1/N) Σᵢ l(zᵢ, yᵢ).
    pub fn loss(&self, logits: &Tensor, labels: &[u8]) -> Tensor {
        match self {
            Task::Bilstm { .. } => {
                let y = Tensor::from_vec(labels.iter().map(|&l| l as f32).collect(), &[labels.len()]);
                logits.binary_cross_entropy_with_logits(&y)
            }
        }
    }

    /// P(positive) for each review of the batch.
    pub fn positive_probability(&self, logits: &Tensor) -> Vec<f32> {
        match self {
            Task::Bilstm { .. } => logits.sigmoid().to_vec(),
        }
    }

    pub fn module(&self) -> &dyn Module {
        match self {
            Task::Bilstm { model, .. } => model,
        }
    }

    pub fn set_training(&mut self, training: bool) {
        match self {
            Task::Bilstm { model, .. } => model.set_training(training),
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

    /// Writes what the model needs besides its weights (vocabulary, tokenizer).
    pub fn save_assets(&self, dir: &Path) -> Result<()> {
        match self {
            Task::Bilstm { vocab, .. } => {
                vocab.save(&dir.join("vocab.json")).with_context(|| format!("writing {}", dir.display()))
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
}

/// Rebuilds a model from a checkpoint folder's spec and assets (weights loaded after).
pub fn task_from_assets(spec: &ModelSpec, dir: &Path, rng: &mut impl Rng) -> Result<Task> {
    match spec.kind.as_str() {
        "bilstm" => {
            let path = dir.join("vocab.json");
            let vocab =
                Vocab::load(&path).with_context(|| format!("reading the vocabulary {}", path.display()))?;
            Ok(Task::bilstm(
                vocab,
                spec.embedding_dim,
                spec.hidden,
                spec.layers,
                spec.dropout,
                None,
                false,
                rng,
            ))
        }
        other => bail!("{}: unknown model kind `{other}`", dir.display()),
    }
}
