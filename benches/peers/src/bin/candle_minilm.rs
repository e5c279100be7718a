//! candle's side of `benches/peers.sh`: all-MiniLM-L6-v2 with a 2-class head (pooler, then a
//! linear layer, as `BertForSequenceClassification`), timed as
//! `cargo run --release --example minilm_forward` times ours:
//!
//! - evaluation forwards: the weights as plain tensors (candle records no graph for them),
//!   the whole encoder at every position (candle's `BertModel` has no first-position mode);
//! - training steps: every weight a `Var`, forward + cross-entropy + `backward()`, which
//!   computes the gradient of every weight (checked), on `tapegrad_peers::trainable_bert`:
//!   candle-transformers' BERT with candle's differentiable LayerNorm, because the fused one
//!   it takes has no backward (see that module). candle's BERT has no dropout (its `Dropout`
//!   is the identity), so its steps skip the masks ours draw.
//!
//! The batch is BATCH sequences of SEQ_LEN token ids (`MinilmArgs::ids`) with a full attention
//! mask.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release --bin candle_minilm -- MODEL_DIR [BATCH [SEQ_LEN [STEPS]]]
//! ```
//! It prints lines in `minilm_forward`'s format, so `benches/peers.sh` reads both alike.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Linear, Module, VarBuilder};
use candle_transformers::models::bert::{BertModel, Config};
use std::collections::HashMap;
use std::time::Instant;
use tapegrad_peers::trainable_bert::TrainableBert;
use tapegrad_peers::{exit_on_error, MinilmArgs, Res};

fn main() {
    exit_on_error(run)
}

/// An encoder: ids, token types and mask (B, T) to states (B, T, H).
trait Encoder: Sized {
    fn load(vb: VarBuilder, config: &Config) -> candle_core::Result<Self>;
    fn states(&self, ids: &Tensor, types: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor>;
}

impl Encoder for BertModel {
    fn load(vb: VarBuilder, config: &Config) -> candle_core::Result<Self> {
        BertModel::load(vb, config)
    }
    fn states(&self, ids: &Tensor, types: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        self.forward(ids, types, Some(mask))
    }
}

impl Encoder for TrainableBert {
    fn load(vb: VarBuilder, config: &Config) -> candle_core::Result<Self> {
        TrainableBert::load(vb, config)
    }
    fn states(&self, ids: &Tensor, types: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        self.forward(ids, types, mask)
    }
}

/// `BertForSequenceClassification` on an encoder: [CLS]'s state through the pooler (dense,
/// tanh) and the classifier.
struct Classifier<E> {
    bert: E,
    pooler: Linear,
    head: Linear,
}

impl<E: Encoder> Classifier<E> {
    fn load(vb: VarBuilder, head: VarBuilder, config: &Config) -> Res<Self> {
        let h = config.hidden_size;
        Ok(Self {
            bert: E::load(vb.clone(), config)?,
            pooler: candle_nn::linear(h, h, vb.pp("pooler.dense"))?,
            head: candle_nn::linear(h, 2, head)?,
        })
    }

    /// logits (B, 2) of ids (B, T)
    fn forward(&self, ids: &Tensor, types: &Tensor, mask: &Tensor) -> Res<Tensor> {
        let states = self.bert.states(ids, types, mask)?; // (B, T, H)
        let cls = states.narrow(1, 0, 1)?.squeeze(1)?; // (B, H)
        let pooled = self.pooler.forward(&cls)?.tanh()?;
        Ok(self.head.forward(&pooled)?)
    }
}

fn run() -> Res<()> {
    let args = MinilmArgs::parse("usage: candle_minilm MODEL_DIR [BATCH [SEQ_LEN [STEPS]]]")?;
    let (batch, seq_len, steps) = (args.batch, args.seq_len, args.steps);
    let dev = Device::Cpu;
    let config: Config = args.config()?;
    let weights = args.dir.join("model.safetensors");
    let ids = args.ids(config.vocab_size)?;
    let ids = Tensor::from_vec(ids, (batch, seq_len), &dev)?;
    let types = ids.zeros_like()?;
    let mask = ids.ones_like()?;
    let labels = Tensor::from_vec((0..batch as u32).map(|i| i % 2).collect::<Vec<_>>(), batch, &dev)?;
    let threads = candle_core::utils::get_num_threads();
    println!("candle 0.11, {threads} threads, batch ({batch}, {seq_len}), every position");

    // Evaluation: plain tensors, memory-mapped; the head's weights random (as ours).
    let t0 = Instant::now();
    // SAFETY: the file is not modified while mapped (a benchmark's input).
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &dev)? };
    let head_vars = candle_nn::VarMap::new();
    let head_vb = VarBuilder::from_varmap(&head_vars, DType::F32, &dev);
    let model = Classifier::<BertModel>::load(vb, head_vb.pp("classifier"), &config)?;
    println!("load: {:.1} ms", t0.elapsed().as_secs_f64() * 1e3);
    let mut eval_logits = None;
    for i in 0..steps.max(2) {
        let t0 = Instant::now();
        let logits = model.forward(&ids, &types, &mask)?;
        let secs = t0.elapsed().as_secs_f64();
        let row: Vec<f32> = logits.get(0)?.to_vec1()?;
        println!("forward {i} (no_grad): {secs:.3} s   logits[0] = {row:?}");
        eval_logits = Some(logits);
    }

    // Training: every float weight a Var (its gradient computed), the head's too.
    let tensors = candle_core::safetensors::load(&weights, &dev)?;
    let vars: HashMap<String, Tensor> = tensors
        .into_iter()
        .filter(|(_, t)| t.dtype() == DType::F32)
        .map(|(name, t)| Ok((name, Var::from_tensor(&t)?.as_tensor().clone())))
        .collect::<candle_core::Result<_>>()?;
    let n_vars = vars.len() + head_vars.all_vars().len();
    let word =
        vars.get("embeddings.word_embeddings.weight").ok_or("no embeddings.word_embeddings.weight")?.clone();
    let mut all: Vec<(String, Tensor)> = vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let vb = VarBuilder::from_tensors(vars, DType::F32, &dev);
    let model = Classifier::<TrainableBert>::load(vb, head_vb.pp("classifier"), &config)?;
    all.extend(
        head_vars.all_vars().iter().map(|v| ("the classifier head".to_string(), v.as_tensor().clone())),
    );
    // the trainable copy computes candle-transformers' forward
    let theirs = eval_logits.ok_or("no evaluation forward ran")?;
    let gap = (model.forward(&ids, &types, &mask)? - &theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
    let scale = theirs.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
    if gap > 1e-4 * scale {
        return Err(format!("the trainable BERT's logits differ from candle-transformers' by {gap}").into());
    }
    println!("training: {n_vars} weight tensors as Vars; logits as candle-transformers' (max gap {gap:.1e})");
    for step in 0..steps {
        let t0 = Instant::now();
        let logits = model.forward(&ids, &types, &mask)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let t2 = Instant::now();
        // every weight got its gradient (the check that the timed backward did the whole job)
        if let Some((name, _)) = all.iter().find(|(_, v)| grads.get(v).is_none()) {
            return Err(format!("the backward left {name} without a gradient").into());
        }
        let word = grads.get(&word).ok_or("no gradient for the word embeddings")?;
        let word = word.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
        println!(
            "training step {step} (dropout off): forward {:.3} s + backward {:.3} s = {:.3} s   loss = {:.4}   |grad word_embeddings| = {word:.3e}",
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            (t2 - t0).as_secs_f64(),
            loss.to_scalar::<f32>()?
        );
    }
    Ok(())
}
