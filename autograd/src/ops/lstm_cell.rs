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
//! Both ops produce a single tensor holding every output (so one backward sees
//! all the output gradients at once) and hand out `narrow` views of it.

use crate::Tensor;
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
        let mut act = self.to_vec(); // pre-activations → activations, in place
        let (mut h, mut c, mut tc) = (vec![T::ZERO; b * hh], vec![T::ZERO; b * hh], vec![T::ZERO; b * hh]);
        let cp = c_prev.detach();
        k::cell_forward(&mut act, &cp.data(), hh, &mut c, &mut tc, &mut h);
        let mut out = Vec::with_capacity(b * 2 * hh);
        for r in 0..b {
            out.extend_from_slice(&h[r * hh..(r + 1) * hh]);
            out.extend_from_slice(&c[r * hh..(r + 1) * hh]);
        }
        let (z, c_in) = (self.clone(), c_prev.clone());
        Tensor::from_op("lstm_cell", Tensor::from_vec(out, &[b, 2 * hh]), &[self, c_prev], move |g| {
            let gd = g.data();
            let (mut dh, mut dc) = (Vec::with_capacity(b * hh), Vec::with_capacity(b * hh));
            for row in gd.chunks(2 * hh) {
                dh.extend_from_slice(&row[..hh]);
                dc.extend_from_slice(&row[hh..]);
            }
            let (mut dz, mut dcp) = (vec![T::ZERO; b * 4 * hh], vec![T::ZERO; b * hh]);
            k::cell_backward(&act, &cp.data(), &tc, &dh, &dc, hh, &mut dz, &mut dcp);
            z.accumulate_grad(|| Tensor::from_vec(dz, &[b, 4 * hh]));
            c_in.accumulate_grad(|| Tensor::from_vec(dcp, &[b, hh]));
        })
    }

    /// The LSTM recurrence over a packed batch (PyTorch's `PackedSequence` layout),
    /// zero initial state: self = the input projections `[N, 4H]`
    /// (x_t·W_ihᵀ + b_ih + b_hh for every step, computed beforehand in one product),
    /// `w_hh` `[4H, H]`, `batch_sizes[t]` = number of sequences running at step t
    /// (non-increasing: sequences sorted by length, descending; N = Σ batch_sizes,
    /// B = batch_sizes[0]). Step t's rows are `offset_t..offset_t + batch_sizes[t]`.
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
        let (n, b) = k::check_batch_sizes(batch_sizes);
        assert!(
            w_hh.rank() == 2 && w_hh.shape()[0] == 4 * w_hh.shape()[1],
            "lstm_packed: w_hh must be [4H, H], got {:?}",
            w_hh.shape()
        );
        let hh = w_hh.shape()[1];
        assert_eq!(
            self.shape(),
            &[n, 4 * hh],
            "lstm_packed: input projections must be [N = Σ batch_sizes, 4H]"
        );
        let mut act = self.to_vec();
        let (mut c, mut tc) = (vec![T::ZERO; n * hh], vec![T::ZERO; n * hh]);
        // One output buffer: [h (N rows) | h_n (B rows) | c_n (B rows)] × H.
        let mut out = vec![T::ZERO; (n + 2 * b) * hh];
        let (h, rest) = out.split_at_mut(n * hh);
        let (h_n, c_n) = rest.split_at_mut(b * hh);
        let wv = w_hh.detach();
        k::sequence_forward(&mut act, &wv.data(), batch_sizes, hh, reverse, h, &mut c, &mut tc, h_n, c_n);
        let value = Tensor::from_vec(out, &[n + 2 * b, hh]);
        let saved_h = value.clone(); // the h rows of the output: captured, not copied
        let (x, w, bs) = (self.clone(), w_hh.clone(), batch_sizes.to_vec());
        let all = Tensor::from_op("lstm_packed", value, &[self, w_hh], move |g| {
            let gd = g.data();
            let (d_h, rest) = gd.split_at(n * hh);
            let (d_h_n, d_c_n) = rest.split_at(b * hh);
            let mut dz = vec![T::ZERO; n * 4 * hh];
            let mut dw = w.tracks_grad().then(|| vec![T::ZERO; 4 * hh * hh]);
            let sh = saved_h.data();
            k::sequence_backward(
                &act,
                &wv.data(),
                &bs,
                hh,
                reverse,
                &sh[..n * hh],
                &c,
                &tc,
                d_h,
                d_h_n,
                d_c_n,
                &mut dz,
                dw.as_deref_mut(),
            );
            x.accumulate_grad(|| Tensor::from_vec(dz, &[n, 4 * hh]));
            if let Some(dw) = dw {
                w.accumulate_grad(|| Tensor::from_vec(dw, &[4 * hh, hh]));
            }
        });
        (all.narrow(0, 0, n), all.narrow(0, n, b), all.narrow(0, n + b, b))
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;
    use rand::{Rng, SeedableRng};

    type T64 = Tensor<f64>;

    fn param(shape: &[usize], scale: f64, rng: &mut impl Rng) -> T64 {
        T64::param((0..crate::numel(shape)).map(|_| rng.gen_range(-scale..scale)).collect(), shape)
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
}
