//! BERT (Devlin et al. 2019) as Hugging Face `transformers` builds it, with its
//! parameter names, so pretrained `model.safetensors` files load as they are.
//!
//! - [`config`]: `BertConfig` from `config.json`
//! - [`embeddings`]: word + position + token-type embeddings, LayerNorm, dropout
//! - [`attention`]: multi-head self-attention with its output projection
//! - [`encoder`]: the feed-forward block, layers, the encoder stack
//! - [`model`]: `BertModel` (with pooler) and `BertForSequenceClassification`

pub mod attention;
pub mod config;
pub mod embeddings;
pub mod encoder;
pub mod model;

pub use config::{Activation, BertConfig};
pub use encoder::Positions;
pub use model::{BertClassifierOutput, BertForSequenceClassification, BertInput, BertModel, BertModelOutput};

use crate::layers::{standard_normal, Linear};
use crate::safetensors_io::SafetensorsError;
use rand::Rng;
use std::path::PathBuf;
use tapegrad_autograd::{numel, Float, Tensor};

/// Errors of building or loading a BERT model.
#[derive(Debug, thiserror::Error)]
pub enum BertError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {msg}")]
    Config { path: PathBuf, msg: String },
    #[error(transparent)]
    Safetensors(#[from] SafetensorsError),
    #[error("{0}")]
    Input(String),
}

/// How new parameters are filled: zeros (placeholders about to be overwritten by
/// pretrained weights, so building costs no random numbers), or transformers'
/// init: weights N(0, std), biases 0, LayerNorm 1 and 0.
pub enum Init<'a, R: Rng> {
    Zeros,
    Normal { std: f64, rng: &'a mut R },
}

impl<R: Rng> Init<'_, R> {
    pub(crate) fn weight<T: Float>(&mut self, shape: &[usize]) -> Tensor<T> {
        match self {
            Init::Zeros => Tensor::zeros(shape).requires_grad(true),
            Init::Normal { std, rng } => {
                let v = (0..numel(shape)).map(|_| T::from_f64(*std * standard_normal(&mut **rng))).collect();
                Tensor::param(v, shape)
            }
        }
    }

    /// A Linear `[out, in]` with a zero bias.
    pub(crate) fn linear<T: Float>(&mut self, in_features: usize, out_features: usize) -> Linear<T> {
        let w = self.weight(&[out_features, in_features]);
        Linear::from_weights(w, Some(Tensor::zeros(&[out_features]).requires_grad(true)))
    }
}

#[cfg(test)]
mod tests;
