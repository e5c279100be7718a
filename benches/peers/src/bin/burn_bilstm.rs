//! burn's side of the BiLSTM rows of `benches/peers.sh`: the tutorial's classifier (as
//! `models/src/bilstm.rs` and `candle_bilstm`) on burn-nn's `BiLstm`, on burn's pure-Rust CPU
//! backend (Flex, with its `simd` and `rayon` features) under autodiff, one training step
//! (forward + cross-entropy + `backward()`, no optimizer) timed as `examples/bilstm_step`
//! times ours:
//!
//! ```text
//! embedded = dropout(embedding(ids))                  (B, T, E)
//! x = BiLstm(embedded); x = BiLstm(dropout(x))        (B, T, 2H), 2 layers
//! hidden = dropout(cat(h_T forward, h_1 reverse))     (B, 2H)     (the last layer's final states)
//! logits = fc(hidden)                                 (B, 2)
//! ```
//!
//! Equal lengths (burn's `BiLstm` takes no lengths), so ours runs them too. A 2-class head with
//! cross-entropy where ours has the tutorial's one logit (513 weights of 3.46 M). Each step
//! checks that the backward reached every weight.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release --bin burn_bilstm -- [STEPS [BATCH [LEN]]]
//! ```
//! Defaults: 3 steps of 64 reviews of 230 tokens; embedding 50, hidden 256, 2 layers, a
//! vocabulary of 25,002, dropout 0.5 (the tutorial's).

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{
    BiLstm, BiLstmConfig, Dropout, DropoutConfig, Embedding, EmbeddingConfig, Linear, LinearConfig,
};
use burn::prelude::*;
use std::time::Instant;
use tapegrad_peers::{burn_weights_without_gradient, exit_on_error, print_step, Res, StepArgs};

const EMB: usize = 50;
const HIDDEN: usize = 256;
const VOCAB: usize = 25_002;
const DROPOUT: f64 = 0.5;

#[derive(Module, Debug)]
struct Classifier {
    embedding: Embedding,
    layer0: BiLstm,
    layer1: BiLstm,
    dropout: Dropout,
    fc: Linear,
}

impl Classifier {
    fn new(device: &Device) -> Self {
        Self {
            embedding: EmbeddingConfig::new(VOCAB, EMB).init(device),
            layer0: BiLstmConfig::new(EMB, HIDDEN, true).init(device),
            layer1: BiLstmConfig::new(2 * HIDDEN, HIDDEN, true).init(device),
            dropout: DropoutConfig::new(DROPOUT).init(),
            fc: LinearConfig::new(2 * HIDDEN, 2).init(device),
        }
    }

    /// logits (B, 2) of ids (B, T)
    fn forward(&self, ids: Tensor<2, Int>) -> Tensor<2> {
        let [b, _] = ids.dims();
        let x = self.dropout.forward(self.embedding.forward(ids));
        let (x, _) = self.layer0.forward(x, None);
        let (_, state) = self.layer1.forward(self.dropout.forward(x), None);
        // state.hidden (2, B, H): the last layer's final forward and reverse states
        let hidden = state.hidden.swap_dims(0, 1).reshape([b, 2 * HIDDEN]);
        self.fc.forward(self.dropout.forward(hidden))
    }
}

fn main() {
    exit_on_error(run)
}

fn run() -> Res<()> {
    let StepArgs { steps, batch, len } = StepArgs::parse("usage: burn_bilstm [STEPS [BATCH [LEN]]]")?;
    let device = Device::flex().autodiff();
    let model = Classifier::new(&device);
    let ids: Vec<i64> = (0..batch * len).map(|i| (2 + (i * 7919) % (VOCAB - 2)) as i64).collect();
    let ids = Tensor::<1, Int>::from_ints(ids.as_slice(), &device).reshape([batch, len]);
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % 2).collect();
    let labels = Tensor::<1, Int>::from_ints(labels.as_slice(), &device);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    println!("burn 0.22 (Flex), batch {batch} x {len} tokens, {} weights", model.num_params());
    for step in 0..steps {
        let t0 = Instant::now();
        let logits = model.forward(ids.clone());
        let loss = loss_fn.forward(logits, labels.clone());
        let loss_value = loss.clone().into_scalar::<f32>();
        let t1 = Instant::now();
        let grads = loss.backward();
        let t2 = Instant::now();
        let (weights, missing) = burn_weights_without_gradient(&model, &grads);
        if missing > 0 {
            return Err(format!("the backward left {missing} of {weights} weights without a gradient").into());
        }
        let note = format!("   ({weights} weight tensors, each with a gradient)");
        print_step(step, t1 - t0, t2 - t1, batch * len, loss_value, &note);
    }
    Ok(())
}
