//! The tutorial's sentiment classifier (pytorch-sentiment-analysis, "Upgraded
//! Sentiment Analysis"):
//!
//! ```text
//! embedded = dropout(embedding(text))              [B, T, E]   (padding_idx row: no gradient)
//! output, (h_n, c_n) = rnn(pack(embedded, lengths)) (multi-layer BiLSTM, dropout between layers)
//! hidden = dropout(cat(h_n[-2], h_n[-1]))           [B, 2H]     (last layer's final fwd and bwd states)
//! logits = fc(hidden)                               [B, output_dim]
//! ```
//!
//! Parameter names as PyTorch's `named_parameters()`: `embedding.weight`,
//! `rnn.weight_ih_l0`, …, `rnn.bias_hh_l1_reverse`, `fc.weight`, `fc.bias`.

use crate::layers::{Dropout, Embedding, Linear};
use crate::lstm::{Lstm, LstmOutput};
use crate::module::{join, Module};
use rand::{Rng, RngExt};
use tapegrad_autograd::{Float, Tensor};

/// The classifier's shape (the fixture's `config` metadata has the same fields).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BiLstmConfig {
    pub vocab: usize,
    pub embedding_dim: usize,
    pub hidden: usize,
    pub layers: usize,
    pub bidirectional: bool,
    pub pad_index: usize,
    pub output_dim: usize,
    /// Dropout probability (embeddings, between LSTM layers, before `fc`).
    pub dropout: f64,
}

impl BiLstmConfig {
    /// The number of parameters a classifier of this shape holds (`None` if it
    /// overflows), computed without building it: a reader can check a declared
    /// shape against the size of the weights before allocating anything.
    pub fn parameter_count(&self) -> Option<usize> {
        let dirs = if self.bidirectional { 2 } else { 1 };
        let (e, h) = (self.embedding_dim, self.hidden);
        let gates = h.checked_mul(4)?;
        let n = self.vocab.checked_mul(e)?;
        // Per layer and direction: weight_ih [4H, in], weight_hh [4H, H], bias_ih
        // and bias_hh [4H]; `in` is E for the first layer, D·H for the others.
        let per_dir =
            |input: usize| -> Option<usize> { gates.checked_mul(input.checked_add(h)?.checked_add(2)?) };
        let first = per_dir(e)?.checked_mul(dirs)?;
        let later =
            per_dir(h.checked_mul(dirs)?)?.checked_mul(dirs)?.checked_mul(self.layers.saturating_sub(1))?;
        let n = if self.layers == 0 { n } else { n.checked_add(first)?.checked_add(later)? };
        // fc: [out, D·H] and [out]
        n.checked_add(self.output_dim.checked_mul(h.checked_mul(dirs)?.checked_add(1)?)?)
    }
}

/// What [`BiLstmClassifier::forward`] returns.
pub struct ClassifierOutput<T: Float = f32> {
    /// `[B, output_dim]`.
    pub logits: Tensor<T>,
    /// `[layers·D, B, H]` final hidden and cell states.
    pub h_n: Tensor<T>,
    pub c_n: Tensor<T>,
    rnn: LstmOutput<T>,
}

impl<T: Float> ClassifierOutput<T> {
    /// `[B, T, D·H]`: the last LSTM layer's outputs, zero past each length (built when
    /// asked for: the logits do not need it; see [`LstmOutput::output`]).
    pub fn sequence(&self) -> Tensor<T> {
        self.rnn.output()
    }
}

pub struct BiLstmClassifier<T: Float = f32> {
    pub config: BiLstmConfig,
    pub embedding: Embedding<T>,
    pub rnn: Lstm<T>,
    pub dropout: Dropout,
    pub fc: Linear<T>,
}

impl<T: Float> BiLstmClassifier<T> {
    /// Random init as PyTorch's defaults (embedding N(0,1) with a zero padding row,
    /// LSTM and Linear uniform).
    pub fn new(config: BiLstmConfig, rng: &mut impl Rng) -> Self {
        let c = &config;
        let embedding = Embedding::new(c.vocab, c.embedding_dim, Some(c.pad_index), rng);
        let rnn = Lstm::new(c.embedding_dim, c.hidden, c.layers, c.bidirectional, c.dropout, rng);
        let dirs = rnn.directions();
        let fc = Linear::new(dirs * c.hidden, c.output_dim, true, rng);
        let dropout = Dropout::new(c.dropout, rng.random());
        BiLstmClassifier { config, embedding, rnn, dropout, fc }
    }

    /// Replaces the embedding table with pretrained vectors `[vocab, E]` (e.g. GloVe);
    /// `freeze` keeps them constant.
    pub fn with_pretrained_embeddings(mut self, weight: Tensor<T>, freeze: bool) -> Self {
        assert_eq!(
            weight.shape(),
            &[self.config.vocab, self.config.embedding_dim],
            "pretrained embeddings must be [vocab, embedding_dim]"
        );
        self.embedding = Embedding::from_pretrained(weight, Some(self.config.pad_index), freeze);
        self
    }

    /// `text` `[B, T]` token ids (row-major, padded with anything — padded positions
    /// are never read), `lengths[i]` ∈ 1..=T.
    pub fn forward(&self, text: &[usize], shape: &[usize], lengths: &[usize]) -> ClassifierOutput<T> {
        assert_eq!(shape.len(), 2, "classifier: text must be [B, T], got {shape:?}");
        let embedded = self.dropout.forward(&self.embedding.forward(text, shape));
        let out = self.rnn.forward(&embedded, lengths);
        let layers_dirs = out.h_n.shape()[0];
        let dirs = self.rnn.directions();
        let (b, hh) = (shape[0], self.config.hidden);
        // last layer's final states, [D, B, H] → [B, D·H] (fwd then bwd per row)
        let last = out.h_n.narrow(0, layers_dirs - dirs, dirs).permute(&[1, 0, 2]).reshape(&[b, dirs * hh]);
        let hidden = self.dropout.forward(&last);
        ClassifierOutput {
            logits: self.fc.forward(&hidden),
            h_n: out.h_n.clone(),
            c_n: out.c_n.clone(),
            rnn: out,
        }
    }
}

impl<T: Float> BiLstmClassifier<T> {
    /// Writes the weights under PyTorch's names to a safetensors file, atomically,
    /// with this configuration as JSON under the metadata key `config`.
    pub fn save(
        &self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<(), crate::safetensors_io::SafetensorsError> {
        let config = serde_json::to_string(&self.config).expect("a config serialises");
        let meta = std::collections::BTreeMap::from([("config".to_string(), config)]);
        crate::safetensors_io::save(path, &self.named_parameters(), &meta)
    }
}

impl<T: Float> Module<T> for BiLstmClassifier<T> {
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor<T>)) {
        self.embedding.visit_params(&join(prefix, "embedding"), f);
        self.rnn.visit_params(&join(prefix, "rnn"), f);
        self.fc.visit_params(&join(prefix, "fc"), f);
    }

    fn set_training(&mut self, training: bool) {
        self.dropout.training = training;
        self.rnn.set_training(training);
    }

    fn visit_dropout(&self, f: &mut dyn FnMut(&Dropout)) {
        f(&self.dropout);
        self.rnn.visit_dropout(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn config() -> BiLstmConfig {
        BiLstmConfig {
            vocab: 20,
            embedding_dim: 5,
            hidden: 4,
            layers: 2,
            bidirectional: true,
            pad_index: 1,
            output_dim: 1,
            dropout: 0.5,
        }
    }

    /// Loss and every parameter gradient (name order), clearing them.
    fn step(m: &BiLstmClassifier<f64>, text: &[usize], lengths: &[usize]) -> (Vec<f64>, Vec<Vec<f64>>) {
        let out = m.forward(text, &[3, 5], lengths);
        let labels = Tensor::from_vec(vec![1.0, 0.0, 1.0], &[3, 1]);
        out.logits.binary_cross_entropy_with_logits(&labels).backward();
        let grads = m
            .named_parameters()
            .iter()
            .map(|(_, p)| p.grad().map(|g| g.to_vec()).unwrap_or_default())
            .collect();
        m.zero_grad();
        (out.logits.to_vec(), grads)
    }

    /// Padded token ids, and the embedding rows only they use, change nothing.
    #[test]
    fn padding_tokens_and_their_embeddings_never_leak() {
        let mut m = BiLstmClassifier::<f64>::new(config(), &mut ChaCha8Rng::seed_from_u64(3));
        m.set_training(false);
        let lengths = [2usize, 5, 3];
        let mut text = vec![1usize; 15];
        for (i, &len) in lengths.iter().enumerate() {
            for t in 0..len {
                text[i * 5 + t] = 2 + (i * 5 + t) % 15; // ids 2..=16
            }
        }
        let (l1, g1) = step(&m, &text, &lengths);
        // other ids at padded positions: 19, used nowhere else
        let mut other = text.clone();
        for (i, &len) in lengths.iter().enumerate() {
            other[i * 5 + len..(i + 1) * 5].fill(19);
        }
        let (l2, g2) = step(&m, &other, &lengths);
        assert_eq!(l1, l2);
        assert_eq!(g1, g2);
        // and row 19's values (read only at padded positions) do not matter either
        m.embedding.weight.data_mut()[19 * 5..20 * 5].fill(7.0);
        let (l3, g3) = step(&m, &other, &lengths);
        assert_eq!(l1, l3);
        assert_eq!(g1, g3);
        assert!(g3[0][19 * 5..20 * 5].iter().all(|&v| v == 0.0));
        assert!(g3[0][5..10].iter().all(|&v| v == 0.0), "the padding row gets no gradient");
    }

    #[test]
    fn parameter_count_matches_the_built_model() {
        for (layers, bidirectional) in [(1, true), (2, true), (3, false)] {
            let c = BiLstmConfig { layers, bidirectional, ..config() };
            let m = BiLstmClassifier::<f32>::new(c.clone(), &mut ChaCha8Rng::seed_from_u64(1));
            let built: usize = m.named_parameters().iter().map(|(_, p)| p.numel()).sum();
            assert_eq!(c.parameter_count(), Some(built), "{c:?}");
        }
        let huge = BiLstmConfig { hidden: usize::MAX / 2, ..config() };
        assert_eq!(huge.parameter_count(), None);
        let many = BiLstmConfig { layers: usize::MAX, ..config() };
        assert_eq!(many.parameter_count(), None);
    }

    #[test]
    fn names_freeze_and_training_switch() {
        let mut m = BiLstmClassifier::<f32>::new(config(), &mut ChaCha8Rng::seed_from_u64(4));
        let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names[0], "embedding.weight");
        assert_eq!(names[1], "rnn.weight_ih_l0");
        assert_eq!(names[16], "rnn.bias_hh_l1_reverse");
        assert_eq!(&names[17..], ["fc.weight", "fc.bias"]);
        let table = Tensor::from_vec(vec![0.5f32; 100], &[20, 5]);
        m = m.with_pretrained_embeddings(table, true);
        assert_eq!(m.trainable_parameters().len(), 18);
        m.set_training(false);
        let text = vec![3usize, 4, 5, 1, 1, 6, 7, 8, 9, 10];
        let a = m.forward(&text, &[2, 5], &[3, 5]).logits.to_vec();
        assert_eq!(a, m.forward(&text, &[2, 5], &[3, 5]).logits.to_vec());
        m.set_training(true);
        assert_ne!(a, m.forward(&text, &[2, 5], &[3, 5]).logits.to_vec());
    }

    /// A checkpoint has PyTorch's names, the same numbers, and the config in its metadata.
    #[test]
    fn save_writes_names_values_and_config() {
        let m = BiLstmClassifier::<f32>::new(config(), &mut ChaCha8Rng::seed_from_u64(3));
        let path = std::env::temp_dir().join(format!("tapegrad-bilstm-{}.safetensors", std::process::id()));
        m.save(&path).unwrap();
        let file = crate::safetensors_io::SafeTensorsFile::open(&path).unwrap();
        let back: BiLstmConfig = serde_json::from_str(&file.metadata()["config"]).unwrap();
        assert_eq!(back, config());
        for (name, p) in m.named_parameters() {
            assert_eq!(file.tensor::<f32>(&name).unwrap().to_vec(), p.to_vec(), "{name}");
        }
        assert!(file.names().any(|n| n == "rnn.weight_hh_l1_reverse"));
        std::fs::remove_file(path).ok();
    }
}
