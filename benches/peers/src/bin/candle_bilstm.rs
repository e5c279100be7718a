//! candle's side of the BiLSTM rows of `benches/peers.sh`: the tutorial's classifier (as
//! `models/src/bilstm.rs` and `benches/pytorch_bilstm.py`) on candle-nn's `LSTM`, one
//! training step (forward + cross-entropy + `backward()`, no optimizer) timed as
//! `examples/bilstm_step` times ours:
//!
//! ```text
//! embedded = dropout(embedding(ids))                  (B, T, E)
//! per layer, per direction: candle_nn::rnn::LSTM over T steps (the reverse direction on
//!   the time-reversed input), the two outputs concatenated (B, T, 2H), dropout between layers
//! hidden = dropout(cat(h_T forward, h_1 reverse))     (B, 2H)
//! logits = fc(hidden)                                 (B, 2)
//! ```
//!
//! candle has no packed sequences, so every review has the same length: time ours the same
//! way (`bilstm_step --min-len T --max-len T`). A 2-class head with cross-entropy where ours has
//! the tutorial's one logit (513 weights of 3.46 M). Every weight is a `Var`, and each step
//! checks that the backward reached all of them.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release --bin candle_bilstm -- [STEPS [BATCH [LEN]]]
//! ```
//! Defaults: 3 steps of 64 reviews of 230 tokens; embedding 50, hidden 256, 2 layers, a
//! vocabulary of 25,002, dropout 0.5 (the tutorial's).

use candle_core::{DType, Device, Tensor, D};
use candle_nn::rnn::{Direction, LSTMConfig, LSTM, RNN};
use candle_nn::{Embedding, Linear, Module, VarBuilder, VarMap};
use std::time::Instant;
use tapegrad_peers::{exit_on_error, print_step, Res, StepArgs};

const EMB: usize = 50;
const HIDDEN: usize = 256;
const LAYERS: usize = 2;
const VOCAB: usize = 25_002;
const DROPOUT: f32 = 0.5;

fn main() {
    exit_on_error(run)
}

struct Classifier {
    embedding: Embedding,
    /// per layer: (forward, reverse)
    layers: Vec<(LSTM, LSTM)>,
    fc: Linear,
}

impl Classifier {
    fn new(vb: VarBuilder) -> Res<Self> {
        let embedding = candle_nn::embedding(VOCAB, EMB, vb.pp("embedding"))?;
        let mut layers = Vec::new();
        for l in 0..LAYERS {
            let input = if l == 0 { EMB } else { 2 * HIDDEN };
            let cfg = |direction| LSTMConfig { layer_idx: l, direction, ..LSTMConfig::default() };
            let fwd = candle_nn::lstm(input, HIDDEN, cfg(Direction::Forward), vb.pp("rnn"))?;
            let rev = candle_nn::lstm(input, HIDDEN, cfg(Direction::Backward), vb.pp("rnn"))?;
            layers.push((fwd, rev));
        }
        let fc = candle_nn::linear(2 * HIDDEN, 2, vb.pp("fc"))?;
        Ok(Self { embedding, layers, fc })
    }

    /// logits (B, 2) of ids (B, T)
    fn forward(&self, ids: &Tensor) -> Res<Tensor> {
        let t = ids.dim(1)?;
        let reverse = Tensor::from_vec((0..t as u32).rev().collect::<Vec<_>>(), t, ids.device())?;
        let mut x = candle_nn::ops::dropout(&self.embedding.forward(ids)?, DROPOUT)?; // (B, T, E)
        let mut last = None;
        for (l, (fwd, rev)) in self.layers.iter().enumerate() {
            if l > 0 {
                x = candle_nn::ops::dropout(&x, DROPOUT)?;
            }
            let f = fwd.seq(&x)?;
            let r = rev.seq(&x.index_select(&reverse, 1)?)?;
            let (f_out, r_out) = (fwd.states_to_tensor(&f)?, rev.states_to_tensor(&r)?); // (B, T, H)
            x = Tensor::cat(&[f_out, r_out.index_select(&reverse, 1)?], D::Minus1)?; // (B, T, 2H)
            last = Some(Tensor::cat(&[f[t - 1].h(), r[t - 1].h()], D::Minus1)?);
            // (B, 2H)
        }
        let hidden = candle_nn::ops::dropout(&last.ok_or("no layers")?, DROPOUT)?;
        Ok(self.fc.forward(&hidden)?)
    }
}

fn run() -> Res<()> {
    let StepArgs { steps, batch, len } = StepArgs::parse("usage: candle_bilstm [STEPS [BATCH [LEN]]]")?;
    let dev = Device::Cpu;
    let vars = VarMap::new();
    let model = Classifier::new(VarBuilder::from_varmap(&vars, DType::F32, &dev))?;
    let ids: Vec<u32> = (0..batch * len).map(|i| (2 + (i * 7919) % (VOCAB - 2)) as u32).collect();
    let ids = Tensor::from_vec(ids, (batch, len), &dev)?;
    let labels = Tensor::from_vec((0..batch as u32).map(|i| i % 2).collect::<Vec<_>>(), batch, &dev)?;
    let threads = candle_core::utils::get_num_threads();
    println!(
        "candle 0.11, {threads} threads, batch {batch} x {len} tokens, {} weight tensors",
        vars.all_vars().len()
    );
    for step in 0..steps {
        let t0 = Instant::now();
        let logits = model.forward(&ids)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let t2 = Instant::now();
        if let Some(v) = vars.all_vars().iter().find(|v| grads.get(v.as_tensor()).is_none()) {
            return Err(
                format!("the backward left a weight of shape {:?} without a gradient", v.shape()).into()
            );
        }
        print_step(step, t1 - t0, t2 - t1, batch * len, loss.to_scalar::<f32>()?, "");
    }
    Ok(())
}
