//! The fused LSTM cell, and the LSTM recurrence over a packed batch.
//!
//! Cell, with the pre-activation gates z = [z_i | z_f | z_g | z_o] (PyTorch's order,
//! z = x·W_ihᵀ + b_ih + h_prev·W_hhᵀ + b_hh):
//!
//! ```text
//! i = σ(z_i),  f = σ(z_f),  g = tanh(z_g),  o = σ(z_o)
//! c = f⊙c_prev + i⊙g,       h = o⊙tanh(c)
//! ```
//!
//! Backward, with dh = dL/dh and dc = dL/dc:
//!
//! ```text
//! dc_tot  = dc + dh⊙o⊙(1 − tanh²c)
//! dz_i = dc_tot⊙g⊙i(1−i)    dz_f = dc_tot⊙c_prev⊙f(1−f)
//! dz_g = dc_tot⊙i⊙(1−g²)    dz_o = dh⊙tanh(c)⊙o(1−o)
//! dc_prev = dc_tot⊙f
//! ```
//!
//! The cell produces a single tensor `[h | c]` (so one backward sees both gradients at
//! once) and hands out `narrow`s of it; the packed layer, see [`Tensor::lstm_packed_dirs`].

use crate::backend::{Backend, LstmGrads, LstmLayer, LstmSaved};
use crate::{Storage, Tensor};
use std::rc::Rc;
use tapegrad_kernels::lstm as k;
use tapegrad_kernels::Float;

impl<T: Float> Tensor<T> {
    /// The fused LSTM cell: self = gates `[B, 4H]` (pre-activations, order i, f, g, o),
    /// `c_prev` `[B, H]` → `(h, c)`, each `[B, H]` (math in the module doc).
    ///
    /// One op computes `[h | c]` `[B, 2H]` and its backward (dL/dgates, dL/dc_prev)
    /// in one pass from the saved activations; `h` and `c` are narrows of it.
    pub fn lstm_cell(&self, c_prev: &Tensor<T>) -> (Tensor<T>, Tensor<T>) {
        let hc = self.lstm_cell_fused(c_prev);
        let hh = c_prev.shape()[1];
        (hc.narrow(1, 0, hh), hc.narrow(1, hh, hh))
    }

    /// The fused cell's single output `[h | c]` `[B, 2H]`.
    pub fn lstm_cell_fused(&self, c_prev: &Tensor<T>) -> Tensor<T> {
        assert!(
            self.rank() == 2 && c_prev.rank() == 2,
            "lstm_cell: gates must be [B, 4H] and c_prev [B, H], got {:?} and {:?}",
            self.shape(),
            c_prev.shape()
        );
        let (b, hh) = (c_prev.shape()[0], c_prev.shape()[1]);
        assert_eq!(
            self.shape(),
            &[b, 4 * hh],
            "lstm_cell: gates {:?} do not match c_prev {:?} (expected [B, 4H])",
            self.shape(),
            c_prev.shape()
        );
        super::same_device("lstm_cell", &[self, c_prev]);
        let cp = c_prev.detach();
        // [h | c] per row, and the activated gates and tanh(c) for the backward
        let (hc, act, tc) = self.storage().lstm_cell(&cp.storage(), hh);
        let (z, c_in) = (self.clone(), c_prev.clone());
        Tensor::from_op("lstm_cell", Tensor::from_storage(hc, &[b, 2 * hh]), &[self, c_prev], move |g| {
            let (dz, dcp) = act.lstm_cell_backward(&cp.storage(), &tc, &g.storage(), hh);
            z.accumulate_grad(|| Tensor::from_storage(dz, &[b, 4 * hh]));
            c_in.accumulate_grad(|| Tensor::from_storage(dcp, &[b, hh]));
        })
    }

    /// The LSTM recurrence over a packed batch (PyTorch's `PackedSequence` layout),
    /// zero initial state: self = the input projections `[N, 4H]`
    /// (x_t·W_ihᵀ + b_ih + b_hh for every step, computed beforehand in one product),
    /// `w_hh` `[4H, H]`, `batch_sizes[t]` = number of sequences running at step t
    /// (non-increasing: sequences sorted by length, descending; N = Σ batch_sizes,
    /// B = `batch_sizes[0]`). Step t's rows are `offset_t..offset_t + batch_sizes[t]`.
    ///
    /// Per step: z_t = xproj_t + h_{t−1}·W_hhᵀ on the running rows, then the cell.
    /// With `reverse` the steps run from last to first, and each sequence starts from
    /// the zero state at its own last step.
    ///
    /// Returns `(h, h_n, c_n)`: every step's `h` `[N, H]` (packed like the input) and
    /// each sequence's final state `[B, H]` (after its last processed step).
    /// Backward is backpropagation through time with the fused cell backward:
    ///   dL/dxproj_t = dz_t,   dL/dW_hh = Σ_t dz_tᵀ·h_{t−1},   dL/dh_{t−1} = dz_t·W_hh.
    pub fn lstm_packed(
        &self,
        w_hh: &Tensor<T>,
        batch_sizes: &[usize],
        reverse: bool,
    ) -> (Tensor<T>, Tensor<T>, Tensor<T>) {
        let LstmLayerOut { out, mut h_n, mut c_n } =
            Tensor::lstm_packed_dirs(&[(self, w_hh, reverse)], batch_sizes);
        (out, h_n.pop().expect("one direction"), c_n.pop().expect("one direction"))
    }

    /// Several directions of an LSTM layer over the same packed batch as ONE op:
    /// `dirs[d] = (xproj_d [N, 4H], w_hh_d [4H, H], reverse_d)`, each as in
    /// [`Tensor::lstm_packed`]. A bidirectional layer's two directions are independent,
    /// so forward and backward run them at the same time, one per core
    /// ([`k::sequences_forward`], [`k::sequences_backward`]).
    ///
    /// Returns the layer's output `[N, D·H]`, every step's h with the directions side by
    /// side (the next layer's input, as the recurrence leaves it), and per direction its
    /// final states `(h_n, c_n)`, each `[B, H]`. h_n is a row of the output (a sequence's
    /// last step; step 0 in reverse), selected from it, so its gradient reaches the
    /// recurrence through the output's. c_n is a second node on the tape over the same
    /// inputs: its backward is the recurrence's backward with the output's gradient zero,
    /// and the output's has c_n's zero; by linearity the two add up to the whole backward,
    /// and a model that never reads c_n (a classifier) runs it once.
    pub fn lstm_packed_dirs(
        dirs: &[(&Tensor<T>, &Tensor<T>, bool)],
        batch_sizes: &[usize],
    ) -> LstmLayerOut<T> {
        let (n, b) = k::check_batch_sizes(batch_sizes);
        assert!(!dirs.is_empty(), "lstm_packed: no direction given");
        let hh = dirs[0].1.shape().get(1).copied().unwrap_or(0);
        for (d, (x, w, _)) in dirs.iter().enumerate() {
            assert!(
                w.rank() == 2 && w.shape() == [4 * hh, hh],
                "lstm_packed: direction {d}: w_hh must be [4H, H] with H = {hh}, got {:?}",
                w.shape()
            );
            assert_eq!(
                x.shape(),
                &[n, 4 * hh],
                "lstm_packed: direction {d}: input projections must be [N = Σ batch_sizes, 4H]"
            );
        }
        let nd = dirs.len();
        let all_inputs: Vec<&Tensor<T>> = dirs.iter().flat_map(|(x, w, _)| [*x, *w]).collect();
        super::same_device("lstm_packed", &all_inputs);
        let layer = LstmLayer {
            batch_sizes: batch_sizes.to_vec(),
            hidden: hh,
            reverse: dirs.iter().map(|d| d.2).collect(),
        };
        let wvs: Vec<Tensor<T>> = dirs.iter().map(|(_, w, _)| w.detach()).collect();
        // the output [N, D·H], the final cell states [D·B, H], and what the backward needs
        // (activated gates, c, tanh c)
        let (out, c_n, saved) = {
            let sts: Vec<_> =
                dirs.iter().map(|(x, _, _)| x.storage()).zip(wvs.iter().map(|w| w.storage())).collect();
            let pairs: Vec<(&Storage<T>, &Storage<T>)> = sts.iter().map(|(x, w)| (&**x, &**w)).collect();
            Storage::lstm_layer(&pairs, &layer)
        };
        let out = Tensor::from_storage(out, &[n, nd * hh]);
        let bw = Rc::new(LayerBackward {
            out: out.clone(), // the h rows the backward reads: captured, not copied
            saved,
            xs: dirs.iter().map(|(x, _, _)| (*x).clone()).collect(),
            ws: dirs.iter().map(|(_, w, _)| (*w).clone()).collect(),
            wvs,
            layer,
        });
        // The output's node owns the saved state, so that its backward frees it (as the tape
        // frees every op's); c_n's node reaches it through the output (one of its inputs,
        // which it sends no gradient) and runs first, being newer.
        let weak = Rc::downgrade(&bw);
        let out = Tensor::from_op("lstm_packed", out, &all_inputs, move |g| bw.run(Some(&g.storage()), None));
        let c_n = Tensor::from_storage(c_n, &[nd * b, hh]);
        let c_n_inputs: Vec<&Tensor<T>> = all_inputs.iter().copied().chain([&out]).collect();
        let c_n = Tensor::from_op("lstm_packed", c_n, &c_n_inputs, move |g| {
            let bw = weak.upgrade().expect(
                "backward(): the graph through `lstm_packed` was already freed by an earlier backward",
            );
            bw.run(None, Some(&g.storage()))
        });
        // every direction's final rows in one selection [D·B, D·H] (one gradient scattered
        // back into the output's, not one per direction added up)
        let rows: Vec<usize> = dirs.iter().flat_map(|d| final_rows(batch_sizes, d.2)).collect();
        let last = out.index_select(0, &rows);
        let h_n = (0..nd).map(|d| last.narrow(0, d * b, b).narrow(1, d * hh, hh)).collect();
        let c_n = (0..nd).map(|d| c_n.narrow(0, d * b, b)).collect();
        LstmLayerOut { out, h_n, c_n }
    }
}

/// What [`Tensor::lstm_packed_dirs`] returns.
pub struct LstmLayerOut<T: Float> {
    /// `[N, D·H]`: every step's h, the directions side by side.
    pub out: Tensor<T>,
    /// Per direction, each sequence's final hidden and cell state `[B, H]`.
    pub h_n: Vec<Tensor<T>>,
    pub c_n: Vec<Tensor<T>>,
}

/// Row of each sequence's final step in the packed layout (sorted sequence j runs while
/// `batch_sizes[t] > j`): its last step forward, step 0 in reverse.
fn final_rows(batch_sizes: &[usize], reverse: bool) -> Vec<usize> {
    let offsets = k::packed_offsets(batch_sizes);
    let b = batch_sizes.first().copied().unwrap_or(0);
    (0..b)
        .map(|j| if reverse { j } else { offsets[batch_sizes.iter().filter(|&&bt| bt > j).count() - 1] + j })
        .collect()
}

/// What both tape nodes of a packed LSTM layer (the output, c_n) need for their backward.
struct LayerBackward<T: Float> {
    out: Tensor<T>,
    saved: Vec<LstmSaved<Storage<T>>>,
    xs: Vec<Tensor<T>>,
    ws: Vec<Tensor<T>>,
    /// w_hh as of the forward.
    wvs: Vec<Tensor<T>>,
    layer: LstmLayer,
}

impl<T: Float> LayerBackward<T> {
    /// Backpropagation through time from the output's and c_n's gradients (None: zero),
    /// accumulated into the input projections and the recurrent weights.
    fn run(&self, d_out: Option<&Storage<T>>, d_c_n: Option<&Storage<T>>) {
        let ((n, _), hh) = (self.layer.n_b(), self.layer.hidden);
        let wsts: Vec<_> = self.wvs.iter().map(|w| w.storage()).collect();
        let w_hh: Vec<&Storage<T>> = wsts.iter().map(|w| &**w).collect();
        let saved: Vec<LstmSaved<&Storage<T>>> =
            self.saved.iter().map(|s| LstmSaved { act: &s.act, c: &s.c, tanh_c: &s.tanh_c }).collect();
        let want: Vec<bool> = self.ws.iter().map(|w| w.tracks_grad()).collect();
        let out = self.out.storage();
        let g = LstmGrads { w_hh: &w_hh, saved: &saved, out: &out, d_out, d_c_n };
        let grads = Storage::lstm_layer_backward(g, &self.layer, &want);
        for ((x, w), (dz, dw)) in self.xs.iter().zip(&self.ws).zip(grads) {
            x.accumulate_grad(|| Tensor::from_storage(dz, &[n, 4 * hh]));
            if let Some(dw) = dw {
                w.accumulate_grad(|| Tensor::from_storage(dw, &[4 * hh, hh]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;
    use rand::{Rng, RngExt, SeedableRng};

    type T64 = Tensor<f64>;

    fn param(shape: &[usize], scale: f64, rng: &mut impl Rng) -> T64 {
        T64::param((0..crate::numel(shape)).map(|_| rng.random_range(-scale..scale)).collect(), shape)
    }

    fn max_diff(a: &T64, b: &T64) -> f64 {
        assert_eq!(a.shape(), b.shape());
        a.data().iter().zip(b.data().iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
    }

    /// The cell from plain ops (narrow, sigmoid, tanh, mul, add): the slow twin.
    fn cell_plain(z: &T64, c_prev: &T64) -> (T64, T64) {
        let hh = c_prev.shape()[1];
        let i = z.narrow(1, 0, hh).sigmoid();
        let f = z.narrow(1, hh, hh).sigmoid();
        let g = z.narrow(1, 2 * hh, hh).tanh();
        let o = z.narrow(1, 3 * hh, hh).sigmoid();
        let c = f.mul(c_prev).add(&i.mul(&g));
        (o.mul(&c.tanh()), c)
    }

    /// Fused and plain cells agree on values and gradients (to 1e-12 in f64),
    /// through two chained steps so that dc flows through c_prev too.
    #[test]
    fn fused_cell_equals_plain_ops() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for &(b, hh) in &[(1, 1), (3, 4), (5, 7)] {
            let (z1, z2, c0) = (
                param(&[b, 4 * hh], 3.0, &mut rng),
                param(&[b, 4 * hh], 3.0, &mut rng),
                param(&[b, hh], 2.0, &mut rng),
            );
            let (wh, wc) = (param(&[b, hh], 1.0, &mut rng).detach(), param(&[b, hh], 1.0, &mut rng).detach());
            let run = |fused: bool| {
                let cell = |z: &T64, c: &T64| if fused { z.lstm_cell(c) } else { cell_plain(z, c) };
                let (_, c1) = cell(&z1, &c0);
                let (h2, c2) = cell(&z2, &c1);
                h2.mul(&wh).add(&c2.mul(&wc)).sum().backward();
                let grads = [&z1, &z2, &c0].map(|t| {
                    let g = t.grad().expect("grad");
                    t.zero_grad();
                    g
                });
                (h2, c2, grads)
            };
            let (hf, cf, gf) = run(true);
            let (hp, cp, gp) = run(false);
            assert!(max_diff(&hf, &hp) < 1e-12 && max_diff(&cf, &cp) < 1e-12);
            for (a, b) in gf.iter().zip(&gp) {
                assert!(max_diff(a, b) < 1e-12, "gradient differs by {}", max_diff(a, b));
            }
        }
    }

    /// The packed recurrence agrees with the fused cell stepped on the tape.
    #[test]
    fn packed_recurrence_equals_stepped_cells() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        let hh = 3;
        let batch_sizes = [3usize, 3, 2, 1];
        let n: usize = batch_sizes.iter().sum();
        let offs = tapegrad_kernels::lstm::packed_offsets(&batch_sizes);
        let xproj = param(&[n, 4 * hh], 2.0, &mut rng);
        let w = param(&[4 * hh, hh], 1.0, &mut rng);
        for reverse in [false, true] {
            let wo = param(&[n, hh], 1.0, &mut rng).detach();
            let (wn, wc) = (param(&[3, hh], 1.0, &mut rng).detach(), param(&[3, hh], 1.0, &mut rng).detach());
            // packed op
            let (h, h_n, c_n) = xproj.lstm_packed(&w, &batch_sizes, reverse);
            h.mul(&wo).sum().add(&h_n.mul(&wn).sum()).add(&c_n.mul(&wc).sum()).backward();
            let (gx, gw) = (xproj.grad().unwrap(), w.grad().unwrap());
            xproj.zero_grad();
            w.zero_grad();
            // stepped: one sequence (row j of every block) at a time
            let mut loss = T64::scalar(0.0);
            let mut hs_all = Vec::new();
            for j in 0..3 {
                let len = batch_sizes.iter().filter(|&&b| b > j).count();
                let (mut hs, mut cs) = (T64::zeros(&[1, hh]), T64::zeros(&[1, hh]));
                let ts: Vec<usize> = if reverse { (0..len).rev().collect() } else { (0..len).collect() };
                for t in ts {
                    let row = offs[t] + j;
                    let z = xproj.narrow(0, row, 1).add(&hs.matmul(&w.transpose(0, 1)));
                    (hs, cs) = z.lstm_cell(&cs);
                    loss = loss.add(&hs.mul(&wo.narrow(0, row, 1)).sum());
                    hs_all.push((row, hs.clone()));
                }
                loss = loss.add(&hs.mul(&wn.narrow(0, j, 1)).sum()).add(&cs.mul(&wc.narrow(0, j, 1)).sum());
                assert!(
                    max_diff(&hs, &h_n.narrow(0, j, 1)) < 1e-12
                        && max_diff(&cs, &c_n.narrow(0, j, 1)) < 1e-12
                );
            }
            for (row, hr) in &hs_all {
                assert!(max_diff(hr, &h.narrow(0, *row, 1)) < 1e-12);
            }
            loss.backward();
            assert!(max_diff(&gx, &xproj.grad().unwrap()) < 1e-12);
            assert!(max_diff(&gw, &w.grad().unwrap()) < 1e-12);
            xproj.zero_grad();
            w.zero_grad();
        }
    }

    /// c_n alone, its layer's output dropped: the same gradients as through the kept
    /// output; and a loss on the output alone does not need c_n's node to be dropped first.
    #[test]
    fn final_cell_states_alone_and_the_output_alone() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
        let hh = 2;
        let batch_sizes = [3usize, 2, 2, 1];
        let n: usize = batch_sizes.iter().sum();
        let xs = [param(&[n, 4 * hh], 2.0, &mut rng), param(&[n, 4 * hh], 2.0, &mut rng)];
        let ws = [param(&[4 * hh, hh], 1.0, &mut rng), param(&[4 * hh, hh], 1.0, &mut rng)];
        let dirs = [(&xs[0], &ws[0], false), (&xs[1], &ws[1], true)];
        let grads = || -> Vec<Vec<f64>> {
            let g = xs.iter().chain(&ws).map(|t| t.grad().expect("a gradient").to_vec()).collect();
            xs.iter().chain(&ws).for_each(|t| t.zero_grad());
            g
        };
        // c_n of the reverse direction, the output and h_n dropped before the backward
        let c_n = Tensor::lstm_packed_dirs(&dirs, &batch_sizes).c_n.pop().expect("two");
        c_n.sum().backward();
        let alone = grads();
        // the same loss with the output kept (a zero-weighted term on it)
        let l = Tensor::lstm_packed_dirs(&dirs, &batch_sizes);
        l.c_n[1].sum().add(&l.out.mul(&T64::scalar(0.0)).sum()).backward();
        assert_eq!(alone, grads());
        // the output alone, with c_n still held
        let l = Tensor::lstm_packed_dirs(&dirs, &batch_sizes);
        l.out.sum().backward();
        assert!(grads().iter().flatten().any(|&v| v != 0.0));
        drop(l);
    }
}
