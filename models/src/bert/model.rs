//! `BertModel` (embeddings, encoder, pooler) and `BertForSequenceClassification`.

use super::embeddings::BertEmbeddings;
use super::encoder::{BertEncoder, Positions};
use super::{attention::additive_mask, BertConfig, BertError, Init};
use crate::layers::{Dropout, Linear};
use crate::module::{join, Module};
use crate::safetensors_io::{self, LoadOptions, LoadReport, SafeTensorsFile};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::Path;
use tapegrad_autograd::{Float, Tensor};

/// A tokenized batch: flat row-major `[B, T]` ids, mask (1 = real token, 0 =
/// padding) and token types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BertInput {
    pub input_ids: Vec<usize>,
    pub attention_mask: Vec<usize>,
    pub token_type_ids: Vec<usize>,
    /// `[B, T]`.
    pub shape: [usize; 2],
}

/// The encoder's outputs.
pub struct BertModelOutput<T: Float = f32> {
    /// The embedding layer's output (after its LayerNorm and dropout) `[B, T, H]`.
    pub embeddings: Tensor<T>,
    /// The last layer's output `[B, T, H]`, or `[B, 1, H]` where the last layer computed
    /// the first position only ([`Positions::First`]).
    pub last_hidden_state: Tensor<T>,
    /// tanh(dense(first token's state)) `[B, H]`.
    pub pooled: Tensor<T>,
}

/// The BERT encoder with its pooler (transformers' `BertModel`).
pub struct BertModel<T: Float = f32> {
    pub config: BertConfig,
    pub embeddings: BertEmbeddings<T>,
    pub encoder: BertEncoder<T>,
    pub pooler: Linear<T>,
}

impl<T: Float> BertModel<T> {
    pub fn new(config: &BertConfig, init: &mut Init<impl Rng>, seed: u64) -> Self {
        BertModel {
            config: config.clone(),
            embeddings: BertEmbeddings::new(config, init, seed),
            encoder: BertEncoder::new(config, init, seed.wrapping_add(1000)),
            pooler: init.linear(config.hidden_size, config.hidden_size),
        }
    }

    /// Checks that the input fits the model (ids in the vocabulary, T within the
    /// position table), so that a bad batch is an error rather than a panic.
    pub fn check_input(&self, x: &BertInput) -> Result<(), BertError> {
        let c = &self.config;
        let [b, t] = x.shape;
        let err = |m: String| Err(BertError::Input(m));
        for (what, v) in [
            ("input_ids", &x.input_ids),
            ("attention_mask", &x.attention_mask),
            ("token_type_ids", &x.token_type_ids),
        ] {
            if v.len() != b * t {
                return err(format!("{what} has {} values for shape [{b}, {t}]", v.len()));
            }
        }
        if b == 0 || t == 0 {
            return err(format!("empty batch [{b}, {t}]"));
        }
        if t > c.max_position_embeddings {
            return err(format!("{t} tokens exceed max_position_embeddings {}", c.max_position_embeddings));
        }
        if let Some(id) = x.input_ids.iter().find(|&&i| i >= c.vocab_size) {
            return err(format!("token id {id} is outside the vocabulary of {}", c.vocab_size));
        }
        if let Some(tt) = x.token_type_ids.iter().find(|&&i| i >= c.type_vocab_size) {
            return err(format!("token type {tt} is outside type_vocab_size {}", c.type_vocab_size));
        }
        Ok(())
    }

    /// Every layer at every position (transformers' `BertModel.forward`).
    pub fn forward(&self, x: &BertInput) -> Result<BertModelOutput<T>, BertError> {
        self.forward_at(x, Positions::All)
    }

    /// The same with the last layer computed at the positions `last` only: with
    /// [`Positions::First`], `pooled` is the same (up to rounding) for less work.
    pub fn forward_at(&self, x: &BertInput, last: Positions) -> Result<BertModelOutput<T>, BertError> {
        self.check_input(x)?;
        let [b, _] = x.shape;
        let h = self.config.hidden_size;
        let embeddings = self.embeddings.forward(&x.input_ids, &x.token_type_ids, x.shape);
        let mask = additive_mask::<T>(&x.attention_mask, x.shape).to(embeddings.device()); // on the model's device
        let last_hidden_state = self.encoder.forward(&embeddings, &mask, last);
        // the pooler runs where its parameters are (see `BertEncoder::forward`)
        let first = last_hidden_state.narrow(1, 0, 1).reshape(&[b, h]).to(self.pooler.device());
        let pooled = self.pooler.forward(&first).tanh();
        Ok(BertModelOutput { embeddings, last_hidden_state, pooled })
    }
}

impl<T: Float> Module<T> for BertModel<T> {
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor<T>)) {
        self.embeddings.visit_params(&join(prefix, "embeddings"), f);
        self.encoder.visit_params(&join(prefix, "encoder"), f);
        self.pooler.visit_params(&join(prefix, "pooler.dense"), f);
    }
    fn set_training(&mut self, training: bool) {
        self.embeddings.set_training(training);
        self.encoder.set_training(training);
    }

    fn visit_dropout(&self, f: &mut dyn FnMut(&Dropout)) {
        self.embeddings.visit_dropout(f);
        self.encoder.visit_dropout(f);
    }
}

/// Logits and the intermediate states a parity check compares.
pub struct BertClassifierOutput<T: Float = f32> {
    /// `[B, num_labels]`.
    pub logits: Tensor<T>,
    pub embeddings: Tensor<T>,
    pub last_hidden_state: Tensor<T>,
    pub pooled: Tensor<T>,
}

/// transformers' `BertForSequenceClassification`: dropout and a Linear head on
/// the pooled output. Parameter names are transformers' (`bert.…`, `classifier.…`).
pub struct BertForSequenceClassification<T: Float = f32> {
    pub bert: BertModel<T>,
    pub dropout: Dropout,
    pub classifier: Linear<T>,
    pub num_labels: usize,
}

/// Tensors in Hugging Face files that are not parameters (buffers, pre-training heads).
const IGNORED: &[&str] = &[".position_ids", "cls."];

impl<T: Float> BertForSequenceClassification<T> {
    /// A freshly initialised model (transformers' init: N(0, initializer_range)
    /// weights, zero biases, LayerNorm 1/0), in training mode.
    pub fn new(config: &BertConfig, num_labels: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let bert =
            BertModel::new(config, &mut Init::Normal { std: config.initializer_range, rng: &mut rng }, seed);
        Self::with_head(bert, num_labels, &mut rng, seed)
    }

    fn with_head(bert: BertModel<T>, num_labels: usize, rng: &mut ChaCha8Rng, seed: u64) -> Self {
        let c = &bert.config;
        let classifier = Init::Normal { std: c.initializer_range, rng }.linear(c.hidden_size, num_labels);
        let dropout = Dropout::new(c.hidden_dropout_prob, seed.wrapping_add(999));
        BertForSequenceClassification { bert, dropout, classifier, num_labels }
    }

    /// Loads a Hugging Face model folder: `config.json` and `model.safetensors`
    /// (names with or without the `bert.` prefix). The weights stay memory-mapped
    /// views until an optimizer writes them. A classifier absent from the file is
    /// initialised N(0, initializer_range) with a zero bias from `seed`; a present
    /// one must have `num_labels` rows. The model starts in training mode.
    pub fn from_pretrained(dir: impl AsRef<Path>, num_labels: usize, seed: u64) -> Result<Self, BertError> {
        let dir = dir.as_ref();
        let config = BertConfig::from_file(dir.join("config.json"))?;
        let file = SafeTensorsFile::open(dir.join("model.safetensors"))?;
        // Before anything is allocated: a config that describes more weights than the file
        // holds is not this file's (and a huge one would abort the process at allocation).
        let held = file.numel();
        if config.encoder_weights() > held {
            return Err(BertError::Config {
                path: dir.join("config.json"),
                msg: format!(
                    "describes an encoder of {} weights ({} layers, hidden size {}, a vocabulary of {}), \
                     more than the {held} numbers in {}: not that model's config",
                    config.encoder_weights(),
                    config.num_hidden_layers,
                    config.hidden_size,
                    config.vocab_size,
                    file.path().display()
                ),
            });
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Placeholders: zeros cost no random numbers and are replaced by the file's views.
        let bert = BertModel::new(&config, &mut Init::<ChaCha8Rng>::Zeros, seed);
        let model = Self::with_head(bert, num_labels, &mut rng, seed);
        model.load_weights(&file)?;
        Ok(model)
    }

    /// Loads weights from an open file (every base-model tensor must be there, with
    /// the right shape; the classifier may be absent). See [`safetensors_io::load_into`].
    pub fn load_weights(&self, file: &SafeTensorsFile) -> Result<LoadReport, BertError> {
        let opts = LoadOptions {
            allow_missing: vec!["classifier.".into()],
            ignore_unexpected: IGNORED.iter().map(|s| s.to_string()).collect(),
            optional_prefix: Some("bert.".into()),
        };
        Ok(safetensors_io::load_into(self, file, &opts)?)
    }

    /// Logits with every intermediate state at every position (transformers'
    /// `BertForSequenceClassification.forward`), for inspection and parity checks.
    /// Training and evaluation call [`Self::logits`].
    pub fn forward(&self, x: &BertInput) -> Result<BertClassifierOutput<T>, BertError> {
        self.forward_at(x, Positions::All)
    }

    /// The logits `[B, num_labels]` alone: the same as `forward(x)?.logits` up to rounding,
    /// with the last layer computed at the first position only, the one the pooler reads
    /// ([`Positions::First`]: 14 % of MiniLM's multiply-adds at 256 tokens).
    pub fn logits(&self, x: &BertInput) -> Result<Tensor<T>, BertError> {
        Ok(self.forward_at(x, Positions::First)?.logits)
    }

    /// [`Self::forward`] with the last layer at the positions `last`.
    pub fn forward_at(&self, x: &BertInput, last: Positions) -> Result<BertClassifierOutput<T>, BertError> {
        let out = self.bert.forward_at(x, last)?;
        let pooled = out.pooled.to(self.classifier.device());
        let logits = self.classifier.forward(&self.dropout.forward(&pooled));
        Ok(BertClassifierOutput {
            logits,
            embeddings: out.embeddings,
            last_hidden_state: out.last_hidden_state,
            pooled: out.pooled,
        })
    }

    /// Mean cross-entropy of the logits against class labels.
    pub fn loss(&self, logits: &Tensor<T>, labels: &[usize]) -> Result<Tensor<T>, BertError> {
        if labels.len() != logits.shape()[0] {
            return Err(BertError::Input(format!("{} labels for {} rows", labels.len(), logits.shape()[0])));
        }
        if let Some(l) = labels.iter().find(|&&l| l >= self.num_labels) {
            return Err(BertError::Input(format!("label {l} is outside 0..{}", self.num_labels)));
        }
        Ok(logits.cross_entropy(labels, None))
    }

    /// Writes a folder that transformers' `BertForSequenceClassification.from_pretrained`
    /// loads: `model.safetensors` (names `bert.*`, `classifier.*`; metadata `format`
    /// = `pt` and the `config` JSON) and `config.json`, each written atomically.
    pub fn save_pretrained(&self, dir: impl AsRef<Path>) -> Result<(), BertError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| BertError::Io { path: dir.into(), source: e })?;
        let config = self.hf_config_json();
        let mut meta = BTreeMap::new();
        meta.insert("format".to_string(), "pt".to_string());
        meta.insert("config".to_string(), config.clone());
        safetensors_io::save(dir.join("model.safetensors"), &self.named_parameters(), &meta)?;
        let path = dir.join("config.json");
        tapegrad_fsio::write_bytes(&path, config.as_bytes()).map_err(|e| BertError::Io { path, source: e })
    }

    /// `config.json` as transformers writes it for this model.
    pub fn hf_config_json(&self) -> String {
        let mut v = serde_json::to_value(&self.bert.config).expect("a config serialises");
        let labels = 0..self.num_labels;
        let id2label: serde_json::Map<_, _> =
            labels.clone().map(|i| (i.to_string(), serde_json::Value::from(format!("LABEL_{i}")))).collect();
        let label2id: serde_json::Map<_, _> =
            labels.map(|i| (format!("LABEL_{i}"), serde_json::Value::from(i))).collect();
        let obj = v.as_object_mut().expect("a struct serialises to an object");
        obj.insert("model_type".into(), "bert".into());
        obj.insert("architectures".into(), serde_json::json!(["BertForSequenceClassification"]));
        obj.insert("position_embedding_type".into(), "absolute".into());
        obj.insert("id2label".into(), id2label.into());
        obj.insert("label2id".into(), label2id.into());
        serde_json::to_string_pretty(&v).expect("JSON serialises")
    }
}

impl<T: Float> Module<T> for BertForSequenceClassification<T> {
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor<T>)) {
        self.bert.visit_params(&join(prefix, "bert"), f);
        self.classifier.visit_params(&join(prefix, "classifier"), f);
    }
    fn set_training(&mut self, training: bool) {
        self.bert.set_training(training);
        self.dropout.training = training;
    }

    fn visit_dropout(&self, f: &mut dyn FnMut(&Dropout)) {
        self.bert.visit_dropout(f);
        f(&self.dropout);
    }
}
