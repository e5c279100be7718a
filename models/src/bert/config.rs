//! `BertConfig`: the hyper-parameters of a Hugging Face `config.json`.

use super::BertError;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The feed-forward activation (`hidden_act`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// `gelu`: the exact, erf form.
    #[serde(rename = "gelu")]
    Gelu,
    /// `gelu_new` / `gelu_pytorch_tanh`: the tanh approximation.
    #[serde(rename = "gelu_new", alias = "gelu_pytorch_tanh")]
    GeluTanh,
    #[serde(rename = "relu")]
    Relu,
}

/// BERT's hyper-parameters, spelled as in `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: Activation,
    pub hidden_dropout_prob: f64,
    pub attention_probs_dropout_prob: f64,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub pad_token_id: usize,
    /// Std of the normal init of new weights (transformers' default 0.02).
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
}

fn default_init_range() -> f64 {
    0.02
}

/// Keys that must be present (the others have transformers' defaults).
const REQUIRED: &[&str] = &[
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "layer_norm_eps",
    "pad_token_id",
];

impl BertConfig {
    /// Reads a `config.json`; a missing key or a bad value is an error naming the
    /// file and the key.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, BertError> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|e| BertError::Io { path: path.into(), source: e })?;
        Self::from_json(&text).map_err(|msg| BertError::Config { path: path.into(), msg })
    }

    /// Parses the JSON text of a config; the error says which key is wrong.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        let obj = value.as_object().ok_or("the JSON is not an object")?;
        if let Some(key) = REQUIRED.iter().find(|k| !obj.contains_key(**k)) {
            return Err(format!("missing key `{key}`"));
        }
        let config: BertConfig = serde_json::from_value(value).map_err(|e| format!("bad value: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.num_attention_heads == 0 || !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "`hidden_size` {} is not a multiple of `num_attention_heads` {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        for (key, n) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ] {
            if n == 0 {
                return Err(format!("`{key}` is 0"));
            }
        }
        if self.pad_token_id >= self.vocab_size {
            return Err(format!(
                "`pad_token_id` {} is past the vocabulary of `vocab_size` {}",
                self.pad_token_id, self.vocab_size
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(format!("`layer_norm_eps` = {} is not a positive number", self.layer_norm_eps));
        }
        if !(self.initializer_range.is_finite() && self.initializer_range >= 0.0) {
            return Err(format!(
                "`initializer_range` = {} is not a standard deviation",
                self.initializer_range
            ));
        }
        for (key, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            ("attention_probs_dropout_prob", self.attention_probs_dropout_prob),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("`{key}` = {p} is not a probability"));
            }
        }
        Ok(())
    }

    /// How many numbers the encoder's weights hold (embeddings and layers; the pooler
    /// and a head left out): what a weights file for this config must at least contain.
    pub fn encoder_weights(&self) -> u128 {
        let (v, h, i) = (self.vocab_size as u128, self.hidden_size as u128, self.intermediate_size as u128);
        let (p, t) = (self.max_position_embeddings as u128, self.type_vocab_size as u128);
        let embeddings = (v + p + t) * h + 2 * h;
        // Q, K, V and the output projection; two LayerNorms; the feed-forward block
        let layer = 4 * (h * h + h) + 2 * 2 * h + (h * i + i) + (i * h + h);
        embeddings + self.num_hidden_layers as u128 * layer
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// The config as JSON (what checkpoints store as `config` metadata).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a config serialises")
    }

    /// A tiny config for tests.
    pub fn tiny() -> Self {
        BertConfig {
            vocab_size: 50,
            hidden_size: 8,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            intermediate_size: 16,
            hidden_act: Activation::Gelu,
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 16,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            pad_token_id: 0,
            initializer_range: 0.02,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BertConfig;

    /// all-MiniLM-L6-v2's config.json, as the model ships it.
    const MINILM: &str = r#"{"vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
        "num_attention_heads": 12, "intermediate_size": 1536, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
        "pad_token_id": 0, "initializer_range": 0.02}"#;

    /// The encoder's count is MiniLM's 22,713,986 parameters less its pooler (384² + 384)
    /// and 2-class head (2·384 + 2), as `minilm_forward` counts them.
    #[test]
    fn encoder_weights_count_minilm() {
        let c = BertConfig::from_json(MINILM).unwrap();
        assert_eq!(c.encoder_weights(), 22_713_986 - (384 * 384 + 384) - (2 * 384 + 2));
    }

    /// Values no model has are refused, naming the key.
    #[test]
    fn impossible_values_are_refused_by_key() {
        for (key, value) in [
            ("layer_norm_eps", "-1"),
            ("layer_norm_eps", "0"),
            ("hidden_size", "0"),
            ("vocab_size", "0"),
            ("intermediate_size", "0"),
            ("initializer_range", "-0.5"),
            ("pad_token_id", "30522"),
        ] {
            let text =
                MINILM.replacen(&format!("\"{key}\": "), &format!("\"{key}\": {value}, \"_was\": "), 1);
            let e = BertConfig::from_json(&text).unwrap_err();
            assert!(e.contains(key), "{key} = {value}: {e}");
        }
    }
}
