//! candle-transformers' BERT (0.11, `models::bert`), op for op, with one change: its
//! LayerNorm is `candle_nn::ops::layer_norm_slow`, candle's differentiable one.
//!
//! candle's `LayerNorm` module takes a fused kernel without a backward
//! (`apply_op3_no_bwd`) whenever its input is contiguous, which in BERT is always: a
//! `backward()` through `candle_transformers::models::bert::BertModel` then returns gradients
//! for the pooler and the head only, every encoder weight silently left out (candle issue
//! #3011, open; `candle_minilm` checks for it). So the training step is timed on this copy.
//! As in candle's, dropout is the identity. Before it times a training step, `candle_minilm`
//! checks that this forward gives candle-transformers' logits and that the backward reaches
//! every weight.

use candle_core::{Result, Tensor, D};
use candle_nn::{embedding, linear, Embedding, Linear, Module, VarBuilder};
use candle_transformers::models::bert::Config;

struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl Norm {
    fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let h = config.hidden_size;
        let eps = config.layer_norm_eps as f32;
        Ok(Self { weight: vb.get(h, "weight")?, bias: vb.get(h, "bias")?, eps })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::layer_norm_slow(x, &self.weight, &self.bias, self.eps)
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    up: Linear,
    down: Linear,
    out_norm: Norm,
    heads: usize,
}

impl Layer {
    fn load(vb: VarBuilder, c: &Config) -> Result<Self> {
        let (h, f) = (c.hidden_size, c.intermediate_size);
        let at = vb.pp("attention");
        Ok(Self {
            query: linear(h, h, at.pp("self.query"))?,
            key: linear(h, h, at.pp("self.key"))?,
            value: linear(h, h, at.pp("self.value"))?,
            attn_out: linear(h, h, at.pp("output.dense"))?,
            attn_norm: Norm::load(at.pp("output.LayerNorm"), c)?,
            up: linear(h, f, vb.pp("intermediate.dense"))?,
            down: linear(f, h, vb.pp("output.dense"))?,
            out_norm: Norm::load(vb.pp("output.LayerNorm"), c)?,
            heads: c.num_attention_heads,
        })
    }

    /// x (B, T, H), mask (B, 1, 1, T) additive
    fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let d = h / self.heads;
        // (B, T, H) -> (B, heads, T, d), as candle-transformers' transpose_for_scores
        let split = |y: Tensor| y.reshape((b, t, self.heads, d))?.transpose(1, 2)?.contiguous();
        let q = split(self.query.forward(x)?)?;
        let k = split(self.key.forward(x)?)?;
        let v = split(self.value.forward(x)?)?;
        let scores = (q.matmul(&k.t()?)? / (d as f64).sqrt())?.broadcast_add(mask)?;
        let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.contiguous()?.flatten_from(D::Minus2)?;
        let a = self.attn_norm.forward(&(self.attn_out.forward(&ctx)? + x)?)?;
        let f = self.up.forward(&a)?.gelu_erf()?;
        self.out_norm.forward(&(self.down.forward(&f)? + a)?)
    }
}

/// BERT's encoder with every weight read through `vb` (Vars, for training).
pub struct TrainableBert {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm: Norm,
    layers: Vec<Layer>,
}

impl TrainableBert {
    pub fn load(vb: VarBuilder, c: &Config) -> Result<Self> {
        let h = c.hidden_size;
        let e = vb.pp("embeddings");
        Ok(Self {
            word: embedding(c.vocab_size, h, e.pp("word_embeddings"))?,
            position: embedding(c.max_position_embeddings, h, e.pp("position_embeddings"))?,
            token_type: embedding(c.type_vocab_size, h, e.pp("token_type_embeddings"))?,
            norm: Norm::load(e.pp("LayerNorm"), c)?,
            layers: (0..c.num_hidden_layers)
                .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), c))
                .collect::<Result<_>>()?,
        })
    }

    /// ids (B, T) u32, types (B, T) u32, mask (B, T) u32 (1 = attend) -> states (B, T, H)
    pub fn forward(&self, ids: &Tensor, types: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let t = ids.dim(1)?;
        let positions = Tensor::arange(0u32, t as u32, ids.device())?;
        let x = (self.word.forward(ids)? + self.token_type.forward(types)?)?
            .broadcast_add(&self.position.forward(&positions)?)?;
        let mut x = self.norm.forward(&x)?;
        // (1 - mask) * f32::MIN, as candle-transformers' get_extended_attention_mask
        let mask = mask.unsqueeze(1)?.unsqueeze(1)?.to_dtype(x.dtype())?;
        let mask = (mask.ones_like()? - &mask)?.affine(f32::MIN as f64, 0.0)?;
        for layer in &self.layers {
            x = layer.forward(&x, &mask)?;
        }
        Ok(x)
    }
}
