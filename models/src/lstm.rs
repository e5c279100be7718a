//! A multi-layer, optionally bidirectional LSTM over padded, variable-length
//! batches, with the semantics of PyTorch's `nn.LSTM(batch_first=True)` fed by
//! `pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)`.
//!
//! How a batch runs:
//! - sequences are sorted by length, descending (stable), so the sequences still
//!   running at step t are a prefix of the batch, of size `batch_sizes[t]`;
//! - the padded input `[B, T, in]` is gathered once into the packed layout `[N, in]`
//!   (N = Σ lengths; step t's rows follow step t−1's), so padded positions never
//!   enter the computation, and receive a zero gradient;
//! - per layer and direction, ONE product computes every step's input projection
//!   `X·W_ihᵀ + b_ih + b_hh` `[N, 4H]`; the recurrence ([`Tensor::lstm_packed`]) then
//!   does per step only `h_{t−1}·W_hhᵀ` on the running rows and the fused cell;
//! - the reverse direction runs the steps backwards, each sequence starting from
//!   the zero state at its own last token;
//! - a layer's packed output `[N, D·H]` is the next layer's packed input (with
//!   dropout between layers in training); the final states are put back in the
//!   caller's batch order, and the last layer's output is scattered back to
//!   `[B, T, D·H]` with zeros at padded positions when asked for
//!   ([`LstmOutput::output`]: a classifier reading only the final states skips it).

use crate::layers::{uniform, Dropout};
use crate::module::{join, Module};
use rand::{Rng, RngExt};
use tapegrad_autograd::{Float, Tensor};

/// The four tensors of one layer and direction, PyTorch's layout.
pub struct LstmWeights<T: Float = f32> {
    /// `[4H, in]`, gates stacked i, f, g, o.
    pub weight_ih: Tensor<T>,
    /// `[4H, H]`.
    pub weight_hh: Tensor<T>,
    /// `[4H]`.
    pub bias_ih: Tensor<T>,
    /// `[4H]`.
    pub bias_hh: Tensor<T>,
}

/// What [`Lstm::forward`] returns.
pub struct LstmOutput<T: Float = f32> {
    /// `[layers·D, B, H]`: each sequence's final hidden state, taken at its own
    /// length (PyTorch's order: l0 fwd, l0 bwd, l1 fwd, …).
    pub h_n: Tensor<T>,
    /// `[layers·D, B, H]`: the final cell states, same order.
    pub c_n: Tensor<T>,
    sequence: Sequence<T>,
}

/// The last layer's outputs as [`Lstm::forward`] leaves them (packed `[N, D·H]`, with how to
/// put them back), or already padded (the slow twin, [`lstm_reference`]).
enum Sequence<T: Float> {
    Packed { packed: Tensor<T>, packing: Packing, lengths: Vec<usize>, max_t: usize },
    Padded(Tensor<T>),
}

impl<T: Float> LstmOutput<T> {
    /// `[B, T, D·H]`: the last layer's outputs (forward then backward direction),
    /// zero at padded positions (`pad_packed_sequence(..., total_length=T)`).
    ///
    /// Scattered from the packed rows when called (and recorded on the tape then): a
    /// caller that reads only the final states, as the classifier does, never builds
    /// this `[B, T, D·H]` copy.
    pub fn output(&self) -> Tensor<T> {
        match &self.sequence {
            Sequence::Packed { packed, packing, lengths, max_t } => {
                let width = packed.shape()[1];
                let zero_row = Tensor::full_on(&[1, width], T::ZERO, packed.device());
                Tensor::concat(&[packed, &zero_row], 0)
                    .index_select(0, &packing.scatter_index(lengths, *max_t))
                    .reshape(&[lengths.len(), *max_t, width])
            }
            Sequence::Padded(output) => output.clone(),
        }
    }
}

/// A multi-layer (bi)LSTM, `batch_first`, with `weight_ih_l{k}`, `weight_hh_l{k}`,
/// `bias_ih_l{k}`, `bias_hh_l{k}` (suffix `_reverse` for the backward direction).
pub struct Lstm<T: Float = f32> {
    pub input_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub bidirectional: bool,
    /// `layers[k][d]`: layer k, direction d (0 forward, 1 backward).
    pub layers: Vec<Vec<LstmWeights<T>>>,
    /// Dropout on every layer's output but the last, in training only.
    pub dropout: Dropout,
}

/// How a padded batch maps to the packed layout.
struct Packing {
    /// `order[j]`: the caller's index of the j-th longest sequence.
    order: Vec<usize>,
    /// `batch_sizes[t]`: sequences running at step t.
    batch_sizes: Vec<usize>,
    /// Start of step t's rows.
    offsets: Vec<usize>,
    /// Σ lengths.
    n: usize,
}

impl Packing {
    fn new(lengths: &[usize], max_t: usize) -> Self {
        let b = lengths.len();
        assert!(b > 0, "lstm: empty batch");
        if let Some(&bad) = lengths.iter().find(|&&l| l == 0 || l > max_t) {
            panic!("lstm: length {bad} is out of range 1..={max_t} (the padded time dim)");
        }
        let mut order: Vec<usize> = (0..b).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(lengths[i])); // stable
        let longest = lengths[order[0]];
        let batch_sizes: Vec<usize> =
            (0..longest).map(|t| lengths.iter().filter(|&&l| l > t).count()).collect();
        let offsets = tapegrad_kernels::lstm::packed_offsets(&batch_sizes);
        let n = batch_sizes.iter().sum();
        Packing { order, batch_sizes, offsets, n }
    }

    /// Row of `[B·T, ·]` for each packed row: `(order[j], t)` for t, then `j < batch_sizes[t]`.
    fn gather_index(&self, max_t: usize) -> Vec<usize> {
        let mut idx = Vec::with_capacity(self.n);
        for (t, &bt) in self.batch_sizes.iter().enumerate() {
            idx.extend(self.order[..bt].iter().map(|&i| i * max_t + t));
        }
        idx
    }

    /// Packed row of each padded position `(i, t)` of `[B, T]`, or `n` (a zero row)
    /// at padded positions.
    fn scatter_index(&self, lengths: &[usize], max_t: usize) -> Vec<usize> {
        let pos = self.position();
        let mut idx = vec![self.n; lengths.len() * max_t];
        for (i, &len) in lengths.iter().enumerate() {
            for t in 0..len {
                idx[i * max_t + t] = self.offsets[t] + pos[i];
            }
        }
        idx
    }

    /// `position()[i]`: where the caller's sequence i sits in the sorted batch.
    fn position(&self) -> Vec<usize> {
        let mut pos = vec![0; self.order.len()];
        self.order.iter().enumerate().for_each(|(j, &i)| pos[i] = j);
        pos
    }
}

impl<T: Float> Lstm<T> {
    /// PyTorch's init: every weight and bias ~ U(−1/√H, 1/√H), drawn in the order of
    /// the parameter names. `dropout` is the probability between layers.
    pub fn new(
        input_size: usize,
        hidden_size: usize,
        num_layers: usize,
        bidirectional: bool,
        dropout: f64,
        rng: &mut impl Rng,
    ) -> Self {
        assert!(num_layers > 0 && hidden_size > 0, "lstm: need at least one layer and a hidden size");
        let bound = 1.0 / (hidden_size as f64).sqrt();
        let dirs = if bidirectional { 2 } else { 1 };
        let g4 = 4 * hidden_size;
        let layers = (0..num_layers)
            .map(|k| {
                let in_k = if k == 0 { input_size } else { dirs * hidden_size };
                (0..dirs)
                    .map(|_| LstmWeights {
                        weight_ih: Tensor::param(uniform(g4 * in_k, bound, rng), &[g4, in_k]),
                        weight_hh: Tensor::param(uniform(g4 * hidden_size, bound, rng), &[g4, hidden_size]),
                        bias_ih: Tensor::param(uniform(g4, bound, rng), &[g4]),
                        bias_hh: Tensor::param(uniform(g4, bound, rng), &[g4]),
                    })
                    .collect()
            })
            .collect();
        let seed = rng.random();
        Lstm {
            input_size,
            hidden_size,
            num_layers,
            bidirectional,
            layers,
            dropout: Dropout::new(dropout, seed),
        }
    }

    /// Adds `b` to every forget gate's input bias (`bias_ih[H..2H]`; gates i, f, g, o),
    /// so that a new cell starts out keeping more of its state: f = σ(b + …). PyTorch's
    /// init (and the tutorial's) is `b = 0`; `b = 1` is the usual remedy for an LSTM that
    /// learns long dependencies slowly (Gers et al. 2000; Jozefowicz et al. 2015). An
    /// initialisation, applied once to a new model: not an op, nothing is recorded.
    pub fn add_forget_bias(&self, b: T) {
        let h = self.hidden_size;
        for w in self.layers.iter().flatten() {
            let mut bias = w.bias_ih.to_vec();
            for x in &mut bias[h..2 * h] {
                *x += b;
            }
            w.bias_ih.set_data(&Tensor::from_vec(bias, &[4 * h]));
        }
    }

    /// Number of directions (1 or 2).
    pub fn directions(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }

    /// x `[B, T, in]` (padded, batch first), `lengths[i]` ∈ 1..=T the number of real
    /// steps of sequence i (any order). See the module doc.
    pub fn forward(&self, x: &Tensor<T>, lengths: &[usize]) -> LstmOutput<T> {
        assert_eq!(x.rank(), 3, "lstm: input must be [B, T, in], got {:?}", x.shape());
        let (b, max_t, inp) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        assert_eq!(inp, self.input_size, "lstm: input size {inp}, expected {}", self.input_size);
        assert_eq!(lengths.len(), b, "lstm: {} lengths for a batch of {b}", lengths.len());
        let pk = Packing::new(lengths, max_t);
        let mut input = x.reshape(&[b * max_t, inp]).index_select(0, &pk.gather_index(max_t));
        let (mut hs, mut cs) = (Vec::new(), Vec::new());
        for (k, layer) in self.layers.iter().enumerate() {
            let xprojs: Vec<Tensor<T>> =
                layer.iter().map(|w| input.linear(&w.weight_ih, Some(&w.bias_ih.add(&w.bias_hh)))).collect();
            // Both directions in one op: they run concurrently, one per core.
            let dirs: Vec<_> =
                xprojs.iter().zip(layer).enumerate().map(|(d, (x, w))| (x, &w.weight_hh, d == 1)).collect();
            // out [N, D·H]: the directions side by side, as the next layer reads them
            let layer_out = Tensor::lstm_packed_dirs(&dirs, &pk.batch_sizes);
            hs.extend(layer_out.h_n);
            cs.extend(layer_out.c_n);
            let out = layer_out.out;
            input = if k + 1 < self.layers.len() { self.dropout.forward(&out) } else { out };
        }
        // final states: stacked in PyTorch's order, then un-sorted along the batch dim
        let pos = pk.position();
        let unsort =
            |v: Vec<Tensor<T>>| Tensor::stack(&v.iter().collect::<Vec<_>>(), 0).index_select(1, &pos);
        let (h_n, c_n) = (unsort(hs), unsort(cs));
        let sequence = Sequence::Packed { packed: input, packing: pk, lengths: lengths.to_vec(), max_t };
        LstmOutput { h_n, c_n, sequence }
    }
}

impl<T: Float> Module<T> for Lstm<T> {
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor<T>)) {
        for (k, layer) in self.layers.iter().enumerate() {
            for (d, w) in layer.iter().enumerate() {
                let sfx = if d == 1 { "_reverse" } else { "" };
                f(&join(prefix, &format!("weight_ih_l{k}{sfx}")), &w.weight_ih);
                f(&join(prefix, &format!("weight_hh_l{k}{sfx}")), &w.weight_hh);
                f(&join(prefix, &format!("bias_ih_l{k}{sfx}")), &w.bias_ih);
                f(&join(prefix, &format!("bias_hh_l{k}{sfx}")), &w.bias_hh);
            }
        }
    }

    fn set_training(&mut self, training: bool) {
        self.dropout.training = training;
    }

    fn visit_dropout(&self, f: &mut dyn FnMut(&Dropout)) {
        f(&self.dropout);
    }
}

/// The same LSTM built step by step from plain tape ops (narrow, matmul, add,
/// sigmoid, tanh, mul), one sequence at a time, with no packing: the slow, obvious
/// twin [`Lstm::forward`] is tested against. Evaluation semantics (no dropout).
pub fn lstm_reference<T: Float>(lstm: &Lstm<T>, x: &Tensor<T>, lengths: &[usize]) -> LstmOutput<T> {
    let max_t = x.shape()[1];
    let hh = lstm.hidden_size;
    let dirs = lstm.directions();
    let cell = |z: &Tensor<T>, c: &Tensor<T>| -> (Tensor<T>, Tensor<T>) {
        let i = z.narrow(1, 0, hh).sigmoid();
        let f = z.narrow(1, hh, hh).sigmoid();
        let g = z.narrow(1, 2 * hh, hh).tanh();
        let o = z.narrow(1, 3 * hh, hh).sigmoid();
        let c = f.mul(c).add(&i.mul(&g));
        (o.mul(&c.tanh()), c)
    };
    let mut outputs = Vec::new();
    let (mut h_n, mut c_n) =
        (vec![Vec::new(); lstm.num_layers * dirs], vec![Vec::new(); lstm.num_layers * dirs]);
    for (s, &len) in lengths.iter().enumerate() {
        // this sequence's real steps: [len, in]
        let mut input = x.narrow(0, s, 1).reshape(&[max_t, x.shape()[2]]).narrow(0, 0, len);
        for (k, layer) in lstm.layers.iter().enumerate() {
            let mut outs = Vec::new();
            for (d, w) in layer.iter().enumerate() {
                let (mut h, mut c) = (Tensor::zeros(&[1, hh]), Tensor::zeros(&[1, hh]));
                let mut hs = vec![None; len];
                let ts: Vec<usize> = if d == 1 { (0..len).rev().collect() } else { (0..len).collect() };
                for t in ts {
                    let xt = input.narrow(0, t, 1);
                    let z = xt
                        .matmul(&w.weight_ih.transpose(0, 1))
                        .add(&w.bias_ih)
                        .add(&h.matmul(&w.weight_hh.transpose(0, 1)))
                        .add(&w.bias_hh);
                    (h, c) = cell(&z, &c);
                    hs[t] = Some(h.clone());
                }
                let hs: Vec<Tensor<T>> = hs.into_iter().map(|h| h.expect("every step ran")).collect();
                outs.push(Tensor::concat(&hs.iter().collect::<Vec<_>>(), 0));
                h_n[k * dirs + d].push(h);
                c_n[k * dirs + d].push(c);
            }
            input = Tensor::concat(&outs.iter().collect::<Vec<_>>(), 1);
        }
        let width = input.shape()[1];
        let padded = if len < max_t {
            Tensor::concat(&[&input, &Tensor::zeros(&[max_t - len, width])], 0)
        } else {
            input
        };
        outputs.push(padded.unsqueeze(0));
    }
    let stack = |v: Vec<Vec<Tensor<T>>>| {
        let per_layer: Vec<Tensor<T>> =
            v.iter().map(|hs| Tensor::concat(&hs.iter().collect::<Vec<_>>(), 0)).collect();
        Tensor::stack(&per_layer.iter().collect::<Vec<_>>(), 0)
    };
    LstmOutput {
        h_n: stack(h_n),
        c_n: stack(c_n),
        sequence: Sequence::Padded(Tensor::concat(&outputs.iter().collect::<Vec<_>>(), 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    type T64 = Tensor<f64>;

    /// The forget-gate bias is added to `bias_ih[H..2H]` of every layer and direction,
    /// and nowhere else.
    #[test]
    fn forget_bias_moves_only_the_forget_gates() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let lstm = Lstm::<f64>::new(3, 4, 2, true, 0.0, &mut rng);
        let before: Vec<(Vec<f64>, Vec<f64>)> =
            lstm.layers.iter().flatten().map(|w| (w.bias_ih.to_vec(), w.bias_hh.to_vec())).collect();
        lstm.add_forget_bias(1.0);
        for (w, (ih, hh)) in lstm.layers.iter().flatten().zip(&before) {
            let moved: Vec<f64> = w.bias_ih.to_vec().iter().zip(ih).map(|(a, b)| a - b).collect();
            let want: Vec<f64> = (0..16).map(|i| if (4..8).contains(&i) { 1.0 } else { 0.0 }).collect();
            assert!(moved.iter().zip(&want).all(|(m, w)| (m - w).abs() < 1e-12), "{moved:?}");
            assert_eq!(&w.bias_hh.to_vec(), hh);
            assert!(w.bias_ih.tracks_grad(), "still a trained parameter");
        }
    }

    fn rand_tensor(shape: &[usize], rng: &mut impl Rng) -> T64 {
        T64::param(uniform(shape.iter().product(), 1.5, rng), shape)
    }

    fn max_diff(a: &T64, b: &T64) -> f64 {
        assert_eq!(a.shape(), b.shape());
        a.data().iter().zip(b.data().iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
    }

    /// Σ of fixed random weightings of output, h_n and c_n: every output matters.
    fn weighted_loss(out: &LstmOutput<f64>, seed: u64) -> T64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut w = |t: &T64| T64::from_vec(uniform(t.numel(), 1.0, &mut rng), t.shape());
        let (wo, wh, wc) = (w(&out.output()), w(&out.h_n), w(&out.c_n));
        out.output().mul(&wo).sum().add(&out.h_n.mul(&wh).sum()).add(&out.c_n.mul(&wc).sum())
    }

    /// Runs `f`, backward of its weighted loss; returns outputs and every gradient
    /// (parameters in name order, then x), clearing them.
    fn run(
        lstm: &Lstm<f64>,
        x: &T64,
        f: impl Fn(&Lstm<f64>, &T64) -> LstmOutput<f64>,
    ) -> (LstmOutput<f64>, Vec<T64>) {
        let out = f(lstm, x);
        weighted_loss(&out, 99).backward();
        let mut grads: Vec<T64> =
            lstm.named_parameters().iter().map(|(_, p)| p.grad().expect("grad")).collect();
        grads.push(x.grad().expect("x grad"));
        lstm.zero_grad();
        x.zero_grad();
        (out, grads)
    }

    fn check_against_reference(lengths: &[usize], max_t: usize, layers: usize, bidirectional: bool) {
        let mut rng = ChaCha8Rng::seed_from_u64(lengths.iter().sum::<usize>() as u64);
        let lstm = Lstm::<f64>::new(3, 4, layers, bidirectional, 0.0, &mut rng);
        let x = rand_tensor(&[lengths.len(), max_t, 3], &mut rng);
        let (fast, gf) = run(&lstm, &x, |l, x| l.forward(x, lengths));
        let (slow, gs) = run(&lstm, &x, |l, x| lstm_reference(l, x, lengths));
        assert!(max_diff(&fast.output(), &slow.output()) < 1e-12, "output");
        assert!(max_diff(&fast.h_n, &slow.h_n) < 1e-12, "h_n");
        assert!(max_diff(&fast.c_n, &slow.c_n) < 1e-12, "c_n");
        for ((name, _), (a, b)) in lstm.named_parameters().iter().zip(gf.iter().zip(&gs)) {
            assert!(max_diff(a, b) < 1e-12, "grad {name} differs by {}", max_diff(a, b));
        }
        assert!(max_diff(&gf[gf.len() - 1], &gs[gs.len() - 1]) < 1e-12, "grad x");
    }

    #[test]
    fn packed_lstm_equals_stepped_reference() {
        check_against_reference(&[3, 5, 1, 5, 2], 6, 2, true);
        check_against_reference(&[2, 4, 3], 4, 1, false);
        check_against_reference(&[2, 4, 3], 5, 3, true);
    }

    #[test]
    fn lengths_of_one() {
        check_against_reference(&[1, 1, 1], 1, 2, true);
        check_against_reference(&[1, 3, 1], 3, 2, true);
    }

    #[test]
    fn all_lengths_equal() {
        check_against_reference(&[4, 4, 4, 4], 4, 2, true);
        check_against_reference(&[3, 3], 5, 1, true); // equal, with trailing padding
    }

    /// Changing the input at padded positions changes nothing: outputs, states and
    /// gradients are bit-for-bit the same, and padded positions get a zero gradient.
    #[test]
    fn padding_never_leaks() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let lengths = [2usize, 5, 3];
        let lstm = Lstm::<f64>::new(3, 4, 2, true, 0.0, &mut rng);
        let x1 = rand_tensor(&[3, 5, 3], &mut rng);
        let mut v = x1.to_vec();
        for (i, &len) in lengths.iter().enumerate() {
            for t in len..5 {
                v[(i * 5 + t) * 3..(i * 5 + t + 1) * 3].fill(1e3 * (t as f64 + 1.0));
            }
        }
        let x2 = T64::param(v, &[3, 5, 3]);
        let (o1, g1) = run(&lstm, &x1, |l, x| l.forward(x, &lengths));
        let (o2, g2) = run(&lstm, &x2, |l, x| l.forward(x, &lengths));
        assert_eq!(o1.output().to_vec(), o2.output().to_vec());
        assert_eq!(o1.h_n.to_vec(), o2.h_n.to_vec());
        assert_eq!(o1.c_n.to_vec(), o2.c_n.to_vec());
        for (a, b) in g1.iter().zip(&g2) {
            assert_eq!(a.to_vec(), b.to_vec());
        }
        let (out, gx) = (o1.output().to_vec(), g1[g1.len() - 1].to_vec());
        for (i, &len) in lengths.iter().enumerate() {
            for t in len..5 {
                assert!(
                    out[(i * 5 + t) * 8..(i * 5 + t + 1) * 8].iter().all(|&v| v == 0.0),
                    "output at padding"
                );
                assert!(
                    gx[(i * 5 + t) * 3..(i * 5 + t + 1) * 3].iter().all(|&v| v == 0.0),
                    "grad at padding"
                );
            }
        }
    }

    /// Each sequence, run alone with no padding, gives the same outputs and final
    /// states as inside a padded, unsorted batch: in particular the reverse
    /// direction starts at the sequence's own last token.
    #[test]
    fn sequence_alone_equals_sequence_in_batch() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let lengths = [3usize, 6, 1, 4];
        let lstm = Lstm::<f64>::new(3, 4, 2, true, 0.0, &mut rng);
        let x = rand_tensor(&[4, 6, 3], &mut rng);
        let batch = lstm.forward(&x, &lengths);
        for (i, &len) in lengths.iter().enumerate() {
            let xi = x.narrow(0, i, 1).narrow(1, 0, len);
            let alone = lstm.forward(&xi, &[len]);
            let in_batch = batch.output().narrow(0, i, 1).narrow(1, 0, len);
            assert!(max_diff(&alone.output(), &in_batch) < 1e-13, "sequence {i}");
            assert!(max_diff(&alone.h_n, &batch.h_n.narrow(1, i, 1)) < 1e-13, "h_n {i}");
            assert!(max_diff(&alone.c_n, &batch.c_n.narrow(1, i, 1)) < 1e-13, "c_n {i}");
        }
    }

    /// Dropout acts between layers, in training only, never after the last layer.
    #[test]
    fn dropout_between_layers_only_in_training() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut two = Lstm::<f64>::new(3, 4, 2, true, 0.5, &mut rng);
        let x = rand_tensor(&[2, 3, 3], &mut rng);
        two.set_training(false);
        let eval = two.forward(&x, &[3, 2]).output().to_vec();
        assert_eq!(eval, two.forward(&x, &[3, 2]).output().to_vec());
        two.set_training(true);
        assert_ne!(eval, two.forward(&x, &[3, 2]).output().to_vec());
        let mut one = Lstm::<f64>::new(3, 4, 1, true, 0.5, &mut rng);
        one.set_training(false);
        let eval = one.forward(&x, &[3, 2]).output().to_vec();
        one.set_training(true);
        assert_eq!(eval, one.forward(&x, &[3, 2]).output().to_vec());
    }

    #[test]
    fn parameter_names_and_shapes_as_pytorch() {
        let lstm = Lstm::<f32>::new(16, 24, 2, true, 0.0, &mut ChaCha8Rng::seed_from_u64(0));
        let got: Vec<(String, Vec<usize>)> =
            lstm.named_parameters().into_iter().map(|(n, p)| (n, p.shape().to_vec())).collect();
        let mut want = Vec::new();
        for k in 0..2 {
            for sfx in ["", "_reverse"] {
                let inp = if k == 0 { 16 } else { 48 };
                want.push((format!("weight_ih_l{k}{sfx}"), vec![96, inp]));
                want.push((format!("weight_hh_l{k}{sfx}"), vec![96, 24]));
                want.push((format!("bias_ih_l{k}{sfx}"), vec![96]));
                want.push((format!("bias_hh_l{k}{sfx}"), vec![96]));
            }
        }
        assert_eq!(got, want);
        let bound = 1.0 / 24f32.sqrt();
        assert!(lstm.named_parameters().iter().all(|(_, p)| p.data().iter().all(|v| v.abs() <= bound)));
    }
}
