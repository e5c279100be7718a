//! burn's side of the MiniLM rows of `benches/peers.sh`: all-MiniLM-L6-v2 with a 2-class head
//! (pooler, then a linear layer, as `BertForSequenceClassification`), built here from burn-nn's
//! modules because burn ships no BERT, on burn's pure-Rust CPU backend (Flex, with its `simd`
//! and `rayon` features), timed as `cargo run --release --example minilm_forward` times ours:
//!
//! - evaluation forwards on the plain Flex device (no graph; dropout is the identity there),
//!   the whole encoder at every position;
//! - training steps on the autodiff device: the forward with dropout where BERT has it (as
//!   ours), cross-entropy, `backward()`; each step checks that every weight got its gradient.
//!
//! ```text
//! x = dropout(LayerNorm(word[ids] + token_type[types] + position[0..T]))   (B, T, H)
//! per layer (post-norm, burn-nn's MultiHeadAttention with its output dense and its dropout
//! on the attention probabilities; padded keys masked):
//!   a = LayerNorm(x + dropout(MultiHeadAttention(x)))
//!   x = LayerNorm(a + dropout(down(gelu(up(a)))))                          gelu with erf
//! logits = head(dropout(tanh(pooler(x[:, 0]))))                          (B, 2)
//! ```
//!
//! Before anything is timed the model is checked against PyTorch on the project's fixture
//! (`minilm_reference.safetensors`, read from `$TAPEGRAD_FIXTURES`, by default the
//! `shared/fixtures` folder beside the repository): the evaluation logits, and with dropout
//! off the training loss and the gradients the fixture holds. The fixture's classifier
//! weights are the head's.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release --bin burn_minilm -- MODEL_DIR [BATCH [SEQ_LEN [STEPS]]]
//! ```
//! It prints lines in `minilm_forward`'s format, so `benches/peers.sh` reads both alike.

use burn::module::{Module, Param};
use burn::nn::attention::{MhaInput, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig,
};
use burn::prelude::*;
use burn::tensor::activation::gelu;
use burn::tensor::{Gradients, TensorData};
use safetensors::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tapegrad_peers::{burn_weights_without_gradient, exit_on_error, MinilmArgs, Res};

/// The fields of the model's `config.json` this binary reads.
#[derive(serde::Deserialize)]
struct Config {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    type_vocab_size: usize,
    layer_norm_eps: f64,
    hidden_dropout_prob: f64,
}

/// One BERT layer, x (B, T, H) -> (B, T, H).
#[derive(Module, Debug)]
struct Layer {
    attention: MultiHeadAttention,
    attention_norm: LayerNorm,
    up: Linear,
    down: Linear,
    output_norm: LayerNorm,
    dropout: Dropout,
}

impl Layer {
    /// x (B, T, H); padded (B, T), true at the keys to mask
    fn forward(&self, x: Tensor<3>, padded: Tensor<2, Bool>) -> Tensor<3> {
        let attended = self.attention.forward(MhaInput::self_attn(x.clone()).mask_pad(padded)).context;
        let a = self.attention_norm.forward(x + self.dropout.forward(attended));
        let f = self.down.forward(gelu(self.up.forward(a.clone())));
        self.output_norm.forward(a + self.dropout.forward(f))
    }
}

#[derive(Module, Debug)]
struct Classifier {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    pooler: Linear,
    head: Linear,
    dropout: Dropout,
}

impl Classifier {
    /// ids, types (B, T); padded (B, T), true at padding -> logits (B, 2)
    fn forward(&self, ids: Tensor<2, Int>, types: Tensor<2, Int>, padded: Tensor<2, Bool>) -> Tensor<2> {
        let [b, t] = ids.dims();
        let positions = Tensor::<1, Int>::arange(0..t as i64, &ids.device()).reshape([1, t]);
        let x = self.word.forward(ids) + self.token_type.forward(types) + self.position.forward(positions);
        let mut x = self.dropout.forward(self.embedding_norm.forward(x));
        for layer in &self.layers {
            x = layer.forward(x, padded.clone());
        }
        let h = x.dims()[2];
        let cls = x.narrow(1, 0, 1).reshape([b, h]); // (B, H)
        let pooled = self.pooler.forward(cls).tanh();
        self.head.forward(self.dropout.forward(pooled))
    }

    /// Every dropout of the model at probability p.
    fn set_dropout(&mut self, p: f64) {
        self.dropout.prob = p;
        for layer in &mut self.layers {
            layer.dropout.prob = p;
            layer.attention.dropout.prob = p;
        }
    }

    /// The encoder and pooler from `weights` (the model's names, no `bert.` prefix), the head
    /// from `fixture`'s `param.classifier.*`.
    fn load(weights: &File, fixture: &File, c: &Config, device: &Device) -> Res<Self> {
        let (h, f) = (c.hidden_size, c.intermediate_size);
        let w = Loader { file: weights, device, eps: c.layer_norm_eps };
        let layer = |i: usize| -> Res<Layer> {
            let at = format!("encoder.layer.{i}.attention");
            let mut attention = MultiHeadAttentionConfig::new(h, c.num_attention_heads).init(device);
            attention.query = w.linear(&format!("{at}.self.query"), h, h)?;
            attention.key = w.linear(&format!("{at}.self.key"), h, h)?;
            attention.value = w.linear(&format!("{at}.self.value"), h, h)?;
            attention.output = w.linear(&format!("{at}.output.dense"), h, h)?;
            Ok(Layer {
                attention,
                attention_norm: w.norm(&format!("{at}.output.LayerNorm"), h)?,
                up: w.linear(&format!("encoder.layer.{i}.intermediate.dense"), h, f)?,
                down: w.linear(&format!("encoder.layer.{i}.output.dense"), f, h)?,
                output_norm: w.norm(&format!("encoder.layer.{i}.output.LayerNorm"), h)?,
                dropout: DropoutConfig::new(0.0).init(),
            })
        };
        let mut model = Self {
            word: w.embedding("embeddings.word_embeddings.weight", c.vocab_size, h)?,
            position: w.embedding("embeddings.position_embeddings.weight", c.max_position_embeddings, h)?,
            token_type: w.embedding("embeddings.token_type_embeddings.weight", c.type_vocab_size, h)?,
            embedding_norm: w.norm("embeddings.LayerNorm", h)?,
            layers: (0..c.num_hidden_layers).map(layer).collect::<Res<_>>()?,
            pooler: w.linear("pooler.dense", h, h)?,
            head: Loader { file: fixture, ..w }.linear("param.classifier", h, 2)?,
            dropout: DropoutConfig::new(0.0).init(),
        };
        model.set_dropout(c.hidden_dropout_prob);
        Ok(model)
    }
}

/// A safetensors file read whole, its tensors fetched by name with their shape checked.
struct File<'a> {
    path: &'a Path,
    tensors: SafeTensors<'a>,
}

impl<'a> File<'a> {
    fn new(path: &'a Path, bytes: &'a [u8]) -> Res<Self> {
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self { path, tensors })
    }

    /// The bytes of `name`, which must be a `dtype` tensor of `shape` (any shape if None).
    fn bytes(&self, name: &str, dtype: Dtype, shape: Option<&[usize]>) -> Res<(&'a [u8], Vec<usize>)> {
        let t = self.tensors.tensor(name).map_err(|e| format!("{}: {name}: {e}", self.path.display()))?;
        if t.dtype() != dtype || shape.is_some_and(|s| s != t.shape()) {
            let (got, want) = (t.shape(), shape.map_or("any shape".into(), |s| format!("{s:?}")));
            return Err(format!(
                "{}: {name} is {:?} {got:?}, want {dtype:?} {want}",
                self.path.display(),
                t.dtype()
            )
            .into());
        }
        Ok((t.data(), t.shape().to_vec()))
    }

    fn f32(&self, name: &str, shape: &[usize]) -> Res<Vec<f32>> {
        let (bytes, _) = self.bytes(name, Dtype::F32, Some(shape))?;
        Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }

    fn i64(&self, name: &str, shape: Option<&[usize]>) -> Res<(Vec<i64>, Vec<usize>)> {
        let (bytes, shape) = self.bytes(name, Dtype::I64, shape)?;
        let values =
            bytes.chunks_exact(8).map(|b| i64::from_le_bytes(std::array::from_fn(|i| b[i]))).collect();
        Ok((values, shape))
    }
}

/// Builds burn-nn's modules with a file's weights (PyTorch's names and layouts).
#[derive(Clone, Copy)]
struct Loader<'a> {
    file: &'a File<'a>,
    device: &'a Device,
    eps: f64,
}

impl Loader<'_> {
    fn vector(&self, name: &str, n: usize) -> Res<Param<Tensor<1>>> {
        Ok(Param::from_data(TensorData::new(self.file.f32(name, &[n])?, [n]), self.device))
    }

    /// `prefix.weight` (out, in) in PyTorch, stored (in, out) as burn's `Linear` holds it.
    fn linear(&self, prefix: &str, d_in: usize, d_out: usize) -> Res<Linear> {
        let weight = transposed(&self.file.f32(&format!("{prefix}.weight"), &[d_out, d_in])?, d_out, d_in);
        let mut linear = LinearConfig::new(d_in, d_out).init(self.device);
        linear.weight = Param::from_data(TensorData::new(weight, [d_in, d_out]), self.device);
        linear.bias = Some(self.vector(&format!("{prefix}.bias"), d_out)?);
        Ok(linear)
    }

    fn norm(&self, prefix: &str, h: usize) -> Res<LayerNorm> {
        let mut norm = LayerNormConfig::new(h).with_epsilon(self.eps).init(self.device);
        norm.gamma = self.vector(&format!("{prefix}.weight"), h)?;
        norm.beta = Some(self.vector(&format!("{prefix}.bias"), h)?);
        Ok(norm)
    }

    fn embedding(&self, name: &str, n: usize, h: usize) -> Res<Embedding> {
        let mut embedding = EmbeddingConfig::new(n, h).init(self.device);
        embedding.weight =
            Param::from_data(TensorData::new(self.file.f32(name, &[n, h])?, [n, h]), self.device);
        Ok(embedding)
    }
}

/// w (rows, cols) row-major -> wᵀ (cols, rows) row-major
fn transposed(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols * rows).map(|i| w[(i % rows) * cols + i / rows]).collect()
}

/// A batch's inputs on a device: ids, token types (B, T) and the padding (B, T), true at padding.
struct Batch {
    ids: Tensor<2, Int>,
    types: Tensor<2, Int>,
    padded: Tensor<2, Bool>,
}

impl Batch {
    fn new(ids: Vec<i64>, types: Vec<i64>, mask: Vec<i64>, [b, t]: [usize; 2], device: &Device) -> Self {
        let int = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [b, t]), device);
        Self { ids: int(ids), types: int(types), padded: int(mask).equal_elem(0) }
    }

    fn logits(&self, model: &Classifier) -> Tensor<2> {
        model.forward(self.ids.clone(), self.types.clone(), self.padded.clone())
    }
}

fn values<const D: usize>(t: Tensor<D>) -> Res<Vec<f32>> {
    t.into_data().try_to_vec::<f32>().map_err(|e| format!("{e:?}").into())
}

/// The largest |got - want| over max |want|: an error naming `what` if over `tolerance`.
fn check(what: &str, got: &[f32], want: &[f32], tolerance: f32) -> Res<f32> {
    let scale = want.iter().fold(0f32, |m, w| m.max(w.abs())).max(1e-6);
    let gap = got.iter().zip(want).fold(0f32, |m, (g, w)| m.max((g - w).abs())) / scale;
    if got.len() != want.len() || gap.is_nan() || gap > tolerance {
        return Err(format!("{what}: burn's and PyTorch's differ by {gap:.2e} of the largest value").into());
    }
    Ok(gap)
}

fn main() {
    exit_on_error(run)
}

fn run() -> Res<()> {
    let args = MinilmArgs::parse("usage: burn_minilm MODEL_DIR [BATCH [SEQ_LEN [STEPS]]]")?;
    let (batch, seq_len, steps) = (args.batch, args.seq_len, args.steps);
    let config: Config = args.config()?;
    let ids: Vec<i64> = args.ids(config.vocab_size)?.into_iter().map(i64::from).collect();
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % 2).collect();

    let weights_path = args.dir.join("model.safetensors");
    let weights_bytes =
        std::fs::read(&weights_path).map_err(|e| format!("{}: {e}", weights_path.display()))?;
    let weights = File::new(&weights_path, &weights_bytes)?;
    let fixtures = std::env::var_os("TAPEGRAD_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"));
    let fixture_path = fixtures.join("minilm_reference.safetensors");
    let fixture_bytes = std::fs::read(&fixture_path).map_err(|e| {
        format!("{}: {e} (PyTorch's values, which burn's BERT must match before it is timed; set TAPEGRAD_FIXTURES)", fixture_path.display())
    })?;
    let fixture = File::new(&fixture_path, &fixture_bytes)?;
    let (ref_ids, shape) = fixture.i64("input.input_ids", None)?;
    let [ref_b, ref_t] = shape[..] else { return Err("the fixture's input.input_ids is not (B, T)".into()) };
    let reference = |device: &Device| -> Res<Batch> {
        let (types, _) = fixture.i64("input.token_type_ids", Some(&shape))?;
        let (mask, _) = fixture.i64("input.attention_mask", Some(&shape))?;
        Ok(Batch::new(ref_ids.clone(), types, mask, [ref_b, ref_t], device))
    };
    println!("burn 0.22 (Flex), batch ({batch}, {seq_len}), every position");

    // Evaluation: the plain device, no graph.
    let device = Device::flex();
    let t0 = Instant::now();
    let model = Classifier::load(&weights, &fixture, &config, &device)?;
    println!("load: {:.1} ms", t0.elapsed().as_secs_f64() * 1e3);
    let got = values(reference(&device)?.logits(&model))?;
    let gap = check("evaluation logits", &got, &fixture.f32("output.logits", &[ref_b, 2])?, 1e-4)?;
    println!(
        "evaluation: logits as PyTorch's on the fixture's {ref_b} reviews (gap {gap:.1e} of the largest)"
    );
    let timed = Batch::new(ids.clone(), vec![0; ids.len()], vec![1; ids.len()], [batch, seq_len], &device);
    for i in 0..steps.max(2) {
        let t0 = Instant::now();
        let logits = values(timed.logits(&model))?; // read back inside the clock: all work done
        let secs = t0.elapsed().as_secs_f64();
        println!("forward {i} (no_grad): {secs:.3} s   logits[0] = {:?}", &logits[..2]);
    }
    drop(model);

    // Training: the autodiff device. First with dropout off, against PyTorch's loss and gradients.
    let device = Device::flex().autodiff();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut model = Classifier::load(&weights, &fixture, &config, &device)?;
    model.set_dropout(0.0);
    let (ref_labels, _) = fixture.i64("input.labels", Some(&[ref_b]))?;
    let ref_labels = Tensor::<1, Int>::from_data(TensorData::new(ref_labels, [ref_b]), &device);
    let loss = loss_fn.forward(reference(&device)?.logits(&model), ref_labels);
    check("loss", &values(loss.clone())?, &fixture.f32("output.loss", &[1])?, 1e-4)?;
    let grads = loss.backward();
    // the fixture's gradients: PyTorch's layout, (out, in) for a Linear's weight
    let grad = |what: &str, p: &Param<Tensor<2>>| -> Res<Vec<f32>> {
        values(p.val().grad(&grads).ok_or(format!("no gradient for {what}"))?)
    };
    let h = config.hidden_size;
    let linear = |what: &str, l: &Linear| -> Res<f32> {
        let [d_in, d_out] = l.weight.val().dims();
        let got = transposed(&grad(what, &l.weight)?, d_in, d_out);
        check(
            &format!("gradient of {what}"),
            &got,
            &fixture.f32(&format!("grad.{what}"), &[d_out, d_in])?,
            1e-3,
        )
    };
    // (the logits matched, so this is MiniLM: 6 layers)
    let last = model.layers.get(5).ok_or("no layer 5")?;
    let gamma =
        model.embedding_norm.gamma.val().grad(&grads).ok_or("no gradient for the embeddings' LayerNorm")?;
    let word = grad("the word embeddings", &model.word.weight)?;
    let (rows, _) = fixture.i64("grad.bert.embeddings.word_embeddings.weight.rows", None)?;
    let mut word_rows = Vec::with_capacity(rows.len() * h);
    for &r in &rows {
        let row = usize::try_from(r).ok().and_then(|r| word.get(r * h..(r + 1) * h));
        word_rows.extend_from_slice(row.ok_or(format!("the fixture's word row {r} is past the vocabulary"))?);
    }
    let gaps = [
        linear("classifier.weight", &model.head)?,
        linear("bert.pooler.dense.weight", &model.pooler)?,
        linear("bert.encoder.layer.5.intermediate.dense.weight", &last.up)?,
        linear("bert.encoder.layer.5.attention.self.key.weight", &last.attention.key)?,
        linear("bert.encoder.layer.0.attention.self.query.weight", &model.layers[0].attention.query)?,
        check(
            "gradient of the embeddings' LayerNorm",
            &values(gamma)?,
            &fixture.f32("grad.bert.embeddings.LayerNorm.weight", &[h])?,
            1e-3,
        )?,
        check(
            "gradient of the word embeddings' rows",
            &word_rows,
            &fixture.f32("grad.bert.embeddings.word_embeddings.weight.values", &[rows.len(), h])?,
            1e-3,
        )?,
    ];
    let worst = gaps.into_iter().fold(0f32, f32::max);
    println!(
        "training: loss and 7 gradients as PyTorch's with dropout off (worst gap {worst:.1e} of the largest)"
    );

    model.set_dropout(config.hidden_dropout_prob);
    let timed = Batch::new(ids.clone(), vec![0; ids.len()], vec![1; ids.len()], [batch, seq_len], &device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &device);
    for step in 0..steps {
        let t0 = Instant::now();
        let loss = loss_fn.forward(timed.logits(&model), labels.clone());
        let loss_value = loss.clone().into_scalar::<f32>();
        let t1 = Instant::now();
        let grads: Gradients = loss.backward();
        let t2 = Instant::now();
        let (weights, missing) = burn_weights_without_gradient(&model, &grads);
        if missing > 0 {
            return Err(format!("the backward left {missing} of {weights} weights without a gradient").into());
        }
        println!(
            "training step {step} (dropout {}): forward {:.3} s + backward {:.3} s = {:.3} s   loss = {loss_value:.4}   ({weights} weight tensors, each with a gradient)",
            config.hidden_dropout_prob,
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            (t2 - t0).as_secs_f64(),
        );
    }
    Ok(())
}
