//! The embedding layer: word + position + token-type vectors, then LayerNorm and dropout.

use super::{BertConfig, Init};
use crate::layers::{Dropout, Embedding, LayerNorm};
use crate::module::{join, Module};
use rand::Rng;
use tapegrad_autograd::{Float, Tensor};

pub struct BertEmbeddings<T: Float = f32> {
    pub word_embeddings: Embedding<T>,
    pub position_embeddings: Embedding<T>,
    pub token_type_embeddings: Embedding<T>,
    pub layer_norm: LayerNorm<T>,
    pub dropout: Dropout,
}

impl<T: Float> BertEmbeddings<T> {
    pub fn new(c: &BertConfig, init: &mut Init<impl Rng>, seed: u64) -> Self {
        let h = c.hidden_size;
        let mut table = |n: usize, pad: Option<usize>| {
            let w = init.weight::<T>(&[n, h]);
            if let Some(p) = pad.filter(|&p| p < n) {
                w.data_mut()[p * h..(p + 1) * h].fill(T::ZERO); // transformers zeroes the padding row
            }
            Embedding::from_pretrained(w, pad, false)
        };
        BertEmbeddings {
            word_embeddings: table(c.vocab_size, Some(c.pad_token_id)),
            position_embeddings: table(c.max_position_embeddings, None),
            token_type_embeddings: table(c.type_vocab_size, None),
            layer_norm: LayerNorm::new(h, c.layer_norm_eps),
            dropout: Dropout::new(c.hidden_dropout_prob, seed),
        }
    }

    /// ids and token types `[B, T]` (flat) → `[B, T, H]`:
    /// `LayerNorm(W_word[id] + W_pos[t] + W_type[type])`, then dropout.
    /// Positions are 0..T (the same for every sequence), so the position rows are
    /// looked up once as `[T, H]` and broadcast over the batch.
    pub fn forward(&self, input_ids: &[usize], token_type_ids: &[usize], shape: [usize; 2]) -> Tensor<T> {
        let [_, t] = shape;
        let positions: Vec<usize> = (0..t).collect();
        let x = self
            .word_embeddings
            .forward(input_ids, &shape)
            .add(&self.position_embeddings.forward(&positions, &[t]))
            .add(&self.token_type_embeddings.forward(token_type_ids, &shape));
        self.dropout.forward(&self.layer_norm.forward(&x))
    }
}

impl<T: Float> Module<T> for BertEmbeddings<T> {
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor<T>)) {
        self.word_embeddings.visit_params(&join(prefix, "word_embeddings"), f);
        self.position_embeddings.visit_params(&join(prefix, "position_embeddings"), f);
        self.token_type_embeddings.visit_params(&join(prefix, "token_type_embeddings"), f);
        self.layer_norm.visit_params(&join(prefix, "LayerNorm"), f);
    }
    fn set_training(&mut self, training: bool) {
        self.dropout.training = training;
    }

    fn visit_dropout(&self, f: &mut dyn FnMut(&Dropout)) {
        f(&self.dropout);
    }
}
