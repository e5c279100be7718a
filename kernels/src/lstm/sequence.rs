//! The LSTM recurrence over a packed batch, forward and backward (through time).
//!
//! Layout (PyTorch's `PackedSequence`): sequences sorted by length, descending; step `t`
//! holds the `batch_sizes[t]` sequences still running, as rows `offset_t..offset_t +
//! batch_sizes[t]` of `[N, ·]` buffers, `N = Σ batch_sizes`.
//!
//! Per step the only product is `h_{t−1}·W_hhᵀ` on at most B (≤ 64) rows, and going back
//! `dz_t·W_hh`: small GEMMs against the same weight, hundreds of times. So in f32 the
//! weight is packed once per sequence ([`PackedB`]) and each step multiplies on one
//! thread; the two directions of a bidirectional layer run at the same time, one per
//! core ([`sequences_forward`], [`sequences_backward`]), with no synchronisation per step.

use super::{cell_backward, cell_forward, CellBackwardIn, CellGrads};
use crate::gemm::{gemm, Dims, MatMut, MatRef};
use crate::sgemm::{sgemm_prepacked, PackedB};
use crate::{as_f32, as_f32_mut, threads, Float};

/// One direction's buffers for [`sequences_forward`] (shapes in its doc).
pub struct ForwardDir<'a, T> {
    /// `[N, 4H]`: each step's input projection `x_t·W_ihᵀ + b_ih + b_hh`.
    pub xproj: &'a [T],
    /// `[N, 4H]`, written: the activated gates (saved for backward).
    pub gates: &'a mut [T],
    /// `[4H, H]` (PyTorch's layout).
    pub w_hh: &'a [T],
    /// Run from the last step to the first.
    pub reverse: bool,
    /// `[N, H]` each.
    pub h: &'a mut [T],
    pub c: &'a mut [T],
    pub tanh_c: &'a mut [T],
    /// `[B, H]` each: the state after each sequence's last processed step.
    pub h_n: &'a mut [T],
    pub c_n: &'a mut [T],
}

/// One direction's buffers for [`sequences_backward`].
pub struct BackwardDir<'a, T> {
    /// What the forward saved: activated gates `[N, 4H]`, `h` (N rows of H, `stride`
    /// apart), `c`, `tanh_c` `[N, H]`.
    pub act: &'a [T],
    pub w_hh: &'a [T],
    pub reverse: bool,
    pub h: &'a [T],
    pub c: &'a [T],
    pub tanh_c: &'a [T],
    /// Row stride of `h` and `d_h`: H when they are the direction's own `[N, H]`, D·H when
    /// they are its columns of a layer's output `[N, D·H]` (the slices then start at the
    /// direction's first column).
    pub stride: usize,
    /// Output gradients: `d_h` (N rows of H, `stride` apart), `d_h_n`, `d_c_n` `[B, H]`.
    pub d_h: &'a [T],
    pub d_h_n: &'a [T],
    pub d_c_n: &'a [T],
    /// Written: dL/d input projections `[N, 4H]`.
    pub d_gates: &'a mut [T],
    /// Accumulated into when given: dL/dW_hh `[4H, H]`.
    pub d_w_hh: Option<&'a mut [T]>,
}

/// Start row of each step's block in the packed layout (`offsets[t] = Σ_{s<t} batch_sizes[s]`).
pub fn packed_offsets(batch_sizes: &[usize]) -> Vec<usize> {
    let mut acc = 0;
    batch_sizes
        .iter()
        .map(|&b| {
            let o = acc;
            acc += b;
            o
        })
        .collect()
}

/// Checks a packed layout: non-increasing, non-zero batch sizes. Returns (N, B).
pub fn check_batch_sizes(batch_sizes: &[usize]) -> (usize, usize) {
    assert!(
        batch_sizes.windows(2).all(|w| w[0] >= w[1]) && batch_sizes.iter().all(|&b| b > 0),
        "lstm: batch_sizes {batch_sizes:?} must be non-zero and non-increasing (sequences sorted by length)"
    );
    (batch_sizes.iter().sum(), batch_sizes.first().copied().unwrap_or(0))
}

/// The time steps in processing order.
fn steps(n_steps: usize, reverse: bool) -> Vec<usize> {
    if reverse {
        (0..n_steps).rev().collect()
    } else {
        (0..n_steps).collect()
    }
}

/// Rows `a` (read) and `b` (written) of a buffer of `width`-wide rows; the ranges must not overlap.
fn read_write<T>(buf: &mut [T], a: (usize, usize), b: (usize, usize), width: usize) -> (&[T], &mut [T]) {
    let (a0, a1, b0, b1) = (a.0 * width, (a.0 + a.1) * width, b.0 * width, (b.0 + b.1) * width);
    if a1 <= b0 {
        let (lo, hi) = buf.split_at_mut(b0);
        (&lo[a0..a1], &mut hi[..b1 - b0])
    } else {
        assert!(b1 <= a0, "overlapping blocks");
        let (lo, hi) = buf.split_at_mut(a0);
        (&hi[..a1 - a0], &mut lo[b0..b1])
    }
}

/// The recurrent weight as the steps multiply it: `B (k × n)`, any strides.
/// In f32 with `prepack`, packed once and multiplied on the calling thread; otherwise each
/// step calls the general GEMM (which packs B again and may use the pool).
struct StepWeight<'a, T> {
    w: MatRef<'a, T>,
    k: usize,
    n: usize,
    packed: Option<PackedB>,
}

impl<'a, T: Float> StepWeight<'a, T> {
    fn new(w: MatRef<'a, T>, k: usize, n: usize, prepack: bool) -> Self {
        let packed = if prepack { w.as_f32().map(|w| PackedB::new(k, n, w)) } else { None };
        StepWeight { w, k, n, packed }
    }

    /// `c [m, n] = beta·c + a [m, k] · B`, `beta` 0 or 1.
    fn mul(&self, m: usize, a: &[T], beta: T, c: &mut [T]) {
        let (k, n) = (self.k, self.n);
        if let (Some(pb), Some(a), Some(c)) = (&self.packed, as_f32(a), as_f32_mut(&mut *c)) {
            sgemm_prepacked(m, MatRef::rows(a, k), pb, beta.to_f64() as f32, MatMut::rows(c, n));
            return;
        }
        gemm(Dims::new(m, n, k), MatRef::rows(a, k), self.w, beta, MatMut::rows(c, n));
    }
}

/// Whether a direction run on its own should prepack its weight and multiply on one
/// thread: only when one thread is all it may use anyway (otherwise each step's product is
/// split over the pool). Directions run in parallel always prepack.
fn prepack_alone() -> bool {
    threads::num_threads() == 1
}

/// LSTM recurrence over a packed batch, zero initial state, for each direction in `dirs`
/// (one, or two: a bidirectional layer's, run concurrently, one per thread).
///
/// Per step: z_t = xproj_t + h_{t−1}·W_hhᵀ on the running rows, then the fused cell.
/// With `reverse` the steps run from the last to the first; each sequence then starts
/// (from zero) at its own last step. See [`ForwardDir`] for the buffers.
pub fn sequences_forward<T: Float>(dirs: Vec<ForwardDir<'_, T>>, batch_sizes: &[usize], hidden: usize) {
    for_each_dir(dirs, |d, prepack| forward_one(d, batch_sizes, hidden, prepack));
}

/// Runs `run(dir, prepack)` for every direction: two at the same time, one per thread, each
/// with its weight prepacked and every product in it on its own thread ([`threads::alone`]);
/// otherwise one after another.
fn for_each_dir<D: Send>(dirs: Vec<D>, run: impl Fn(D, bool) + Sync) {
    if dirs.len() == 2 && threads::num_threads() > 1 {
        let mut dirs = dirs.into_iter();
        let (a, b) = (dirs.next().expect("two"), dirs.next().expect("two"));
        threads::join(|| threads::alone(|| run(a, true)), || threads::alone(|| run(b, true)));
    } else {
        dirs.into_iter().for_each(|d| run(d, prepack_alone()));
    }
}

fn forward_one<T: Float>(d: ForwardDir<'_, T>, batch_sizes: &[usize], hidden: usize, prepack: bool) {
    threads::ensure_ftz();
    let (n, b) = check_batch_sizes(batch_sizes);
    let (hh, g4) = (hidden, 4 * hidden);
    let ForwardDir { xproj, gates, w_hh, reverse, h, c, tanh_c, h_n, c_n } = d;
    assert!(xproj.len() == n * g4 && gates.len() == n * g4 && w_hh.len() == g4 * hh);
    assert!(h.len() == n * hh && c.len() == n * hh && tanh_c.len() == n * hh);
    assert!(h_n.len() == b * hh && c_n.len() == b * hh);
    // B = W_hhᵀ [H, 4H]: B(p, j) = w_hh[j*H + p].
    let w = StepWeight::new(MatRef::cols(w_hh, hh), hh, g4, prepack);
    let offs = packed_offsets(batch_sizes);
    let order = steps(batch_sizes.len(), reverse);
    for (k, &t) in order.iter().enumerate() {
        let (bt, off) = (batch_sizes[t], offs[t]);
        // z = xproj_t, copied here (on this direction's thread, just before the product
        // reads it) rather than all N rows up front
        let z = &mut gates[off * g4..(off + bt) * g4];
        z.copy_from_slice(&xproj[off * g4..(off + bt) * g4]);
        let prev = k.checked_sub(1).map(|k| order[k]);
        let p = prev.map_or(0, |tp| batch_sizes[tp].min(bt));
        let prev_off = prev.map_or(0, |tp| offs[tp]);
        if p > 0 {
            // z[0..p] += h_prev · W_hhᵀ  (rows p.. start from h_prev = 0)
            w.mul(p, &h[prev_off * hh..(prev_off + p) * hh], T::ONE, &mut z[..p * g4]);
        }
        let (c_prev, c_cur) = read_write(c, (prev_off, p), (off, bt), hh);
        let (tc, hc) = (&mut tanh_c[off * hh..(off + bt) * hh], &mut h[off * hh..(off + bt) * hh]);
        cell_forward(z, c_prev, hh, c_cur, tc, hc);
        // Rows not running at the next step end here: their final state.
        let next_b = order.get(k + 1).map_or(0, |&tn| batch_sizes[tn].min(bt));
        h_n[next_b * hh..bt * hh].copy_from_slice(&hc[next_b * hh..]);
        c_n[next_b * hh..bt * hh].copy_from_slice(&c_cur[next_b * hh..]);
    }
}

/// Backward of [`sequences_forward`] (backpropagation through time), for each direction
/// (two run concurrently, one per thread).
///
/// Writes `d_gates` (dL/d input projection) and adds dL/dW_hh to `d_w_hh` when given:
///   dL/dxproj_t = dz_t,   dL/dh_{t−1} = dz_t·W_hh,   dW_hh = Σ_t dz_tᵀ · h_{t−1}.
pub fn sequences_backward<T: Float>(dirs: Vec<BackwardDir<'_, T>>, batch_sizes: &[usize], hidden: usize) {
    for_each_dir(dirs, |d, prepack| backward_one(d, batch_sizes, hidden, prepack));
}

fn backward_one<T: Float>(d: BackwardDir<'_, T>, batch_sizes: &[usize], hidden: usize, prepack: bool) {
    threads::ensure_ftz();
    let (n, b) = check_batch_sizes(batch_sizes);
    let (hh, g4) = (hidden, 4 * hidden);
    let BackwardDir { act, w_hh, reverse, h, c, tanh_c, stride, d_h, d_h_n, d_c_n, d_gates, d_w_hh } = d;
    assert!(act.len() == n * g4 && d_gates.len() == n * g4 && w_hh.len() == g4 * hh);
    assert!(c.len() == n * hh && tanh_c.len() == n * hh);
    // h and d_h: N rows of H, `stride` apart (the last row need not be followed by a gap)
    let rows_len = if n == 0 { 0 } else { (n - 1) * stride + hh };
    assert!(
        stride >= hh && h.len() >= rows_len && d_h.len() >= rows_len,
        "lstm backward: h or d_h too short"
    );
    // row r of h or d_h
    fn row<T>(buf: &[T], r: usize, stride: usize, hh: usize) -> &[T] {
        &buf[r * stride..r * stride + hh]
    }
    assert!(d_h_n.len() == b * hh && d_c_n.len() == b * hh);
    // B = W_hh [4H, H], row-major.
    let w = StepWeight::new(MatRef::rows(w_hh, hh), g4, hh, prepack);
    let offs = packed_offsets(batch_sizes);
    let order = steps(batch_sizes.len(), reverse);
    // Gradients flowing into each running sequence's (h, c) from later steps; a
    // sequence's first backward step (its last forward step) starts from d h_n, d c_n.
    let mut carry_h = d_h_n.to_vec();
    let mut carry_c = d_c_n.to_vec();
    let mut dh = vec![T::ZERO; b * hh];
    let mut dc_prev = vec![T::ZERO; b * hh];
    for (k, &t) in order.iter().enumerate().rev() {
        let (bt, off) = (batch_sizes[t], offs[t]);
        let prev = k.checked_sub(1).map(|k| order[k]);
        let p = prev.map_or(0, |tp| batch_sizes[tp].min(bt));
        let prev_off = prev.map_or(0, |tp| offs[tp]);
        // dL/dh_t = the output's gradient + what step t+1 sent back
        for (j, (dh_row, ch_row)) in
            dh[..bt * hh].chunks_exact_mut(hh).zip(carry_h.chunks_exact(hh)).enumerate()
        {
            for ((d, &g), &ch) in dh_row.iter_mut().zip(row(d_h, off + j, stride, hh)).zip(ch_row) {
                *d = g + ch;
            }
        }
        let dz = &mut d_gates[off * g4..(off + bt) * g4];
        let x = CellBackwardIn {
            act: &act[off * g4..(off + bt) * g4],
            c_prev: &c[prev_off * hh..(prev_off + p) * hh],
            tanh_c: &tanh_c[off * hh..(off + bt) * hh],
            dh: &dh[..bt * hh],
            dc: &carry_c[..bt * hh],
            hidden: hh,
        };
        cell_backward(x, CellGrads { d_gates: dz, dc_prev: &mut dc_prev[..p * hh] });
        if p == 0 {
            continue;
        }
        carry_c[..p * hh].copy_from_slice(&dc_prev[..p * hh]);
        // d h_prev = dz[0..p] · W_hh
        w.mul(p, &dz[..p * g4], T::ZERO, &mut carry_h[..p * hh]);
    }
    if let Some(dw) = d_w_hh {
        // dW_hh += Σ_t dz_tᵀ · h_prev(t), as ONE product over all steps: row i of
        // `h_prev` is the previous step's h of the sequence in packed row i (zero
        // where a sequence starts), so dW_hh += d_gatesᵀ [4H, N] · h_prev [N, H].
        let mut h_prev = vec![T::ZERO; n * hh];
        for (k, &t) in order.iter().enumerate().skip(1) {
            let tp = order[k - 1];
            let p = batch_sizes[tp].min(batch_sizes[t]);
            for j in 0..p {
                h_prev[(offs[t] + j) * hh..(offs[t] + j + 1) * hh].copy_from_slice(row(
                    h,
                    offs[tp] + j,
                    stride,
                    hh,
                ));
            }
        }
        let (dz_t, h_prev) = (MatRef::cols(d_gates, g4), MatRef::rows(&h_prev, hh));
        gemm(Dims::new(g4, hh, n), dz_t, h_prev, T::ONE, MatMut::rows(dw, hh));
    }
}

#[cfg(test)]
mod tests {
    use super::super::cell_forward_reference;
    use super::super::tests::{max_diff, rand_vec};
    use super::*;
    use rand::SeedableRng;

    /// The packed recurrence against the cell stepped by hand, per sequence.
    #[test]
    fn sequence_matches_per_sequence_loop() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let hh = 3;
        let lens = [4usize, 4, 2, 1];
        let batch_sizes: Vec<usize> = (0..4).map(|t| lens.iter().filter(|&&l| l > t).count()).collect();
        let (n, b) = check_batch_sizes(&batch_sizes);
        let offs = packed_offsets(&batch_sizes);
        let xproj = rand_vec(n * 4 * hh, 2.0, &mut rng);
        let w = rand_vec(4 * hh * hh, 1.0, &mut rng);
        for reverse in [false, true] {
            let mut act = vec![f64::NAN; n * 4 * hh]; // written, never read
            let z = |k| vec![0.0; k * hh];
            let (mut h, mut c, mut tc, mut hn, mut cn) = (z(n), z(n), z(n), z(b), z(b));
            let dir = ForwardDir {
                xproj: &xproj,
                gates: &mut act,
                w_hh: &w,
                reverse,
                h: &mut h,
                c: &mut c,
                tanh_c: &mut tc,
                h_n: &mut hn,
                c_n: &mut cn,
            };
            sequences_forward(vec![dir], &batch_sizes, hh);
            for (j, &len) in lens.iter().enumerate() {
                let (mut hs, mut cs) = (vec![0.0; hh], vec![0.0; hh]);
                let ts: Vec<usize> = if reverse { (0..len).rev().collect() } else { (0..len).collect() };
                for t in ts {
                    let row = offs[t] + j;
                    let mut pre = xproj[row * 4 * hh..(row + 1) * 4 * hh].to_vec();
                    for (q, v) in pre.iter_mut().enumerate() {
                        *v += (0..hh).map(|m| w[q * hh + m] * hs[m]).sum::<f64>();
                    }
                    let (_, c1, _, h1) = cell_forward_reference(&pre, &cs, 1, hh);
                    (hs, cs) = (h1, c1);
                    assert!(max_diff(&hs, &h[row * hh..(row + 1) * hh]) < 1e-14);
                }
                assert!(max_diff(&hs, &hn[j * hh..(j + 1) * hh]) < 1e-14);
                assert!(max_diff(&cs, &cn[j * hh..(j + 1) * hh]) < 1e-14);
            }
        }
    }

    /// Both directions through `sequences_*` (prepacked f32, run concurrently) against each
    /// direction alone through the general path, forward and backward.
    #[test]
    fn parallel_prepacked_directions_match_one_by_one() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let hh = 19;
        let lens = [9usize, 7, 7, 3, 1];
        let bs: Vec<usize> = (0..9).map(|t| lens.iter().filter(|&&l| l > t).count()).collect();
        let (n, b) = check_batch_sizes(&bs);
        let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        let xs = [f(rand_vec(n * 4 * hh, 2.0, &mut rng)), f(rand_vec(n * 4 * hh, 2.0, &mut rng))];
        let ws = [f(rand_vec(4 * hh * hh, 0.5, &mut rng)), f(rand_vec(4 * hh * hh, 0.5, &mut rng))];
        let d_h = f(rand_vec(n * hh, 1.0, &mut rng));
        let (dhn, dcn) = (f(rand_vec(b * hh, 1.0, &mut rng)), f(rand_vec(b * hh, 1.0, &mut rng)));
        type Saved = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);
        // (the gates start as NaN: the forward writes every element)
        let new_saved = || -> Saved {
            let z = |k| vec![0f32; k * hh];
            (vec![f32::NAN; n * 4 * hh], z(n), z(n), z(n), z(b), z(b))
        };
        let (mut s0, mut s1) = (new_saved(), new_saved());
        fn fwd<'a>(s: &'a mut Saved, x: &'a [f32], w: &'a [f32], reverse: bool) -> ForwardDir<'a, f32> {
            let (gates, h, c, tanh_c, h_n, c_n) =
                (&mut s.0, &mut s.1, &mut s.2, &mut s.3, &mut s.4, &mut s.5);
            ForwardDir { xproj: x, gates, w_hh: w, reverse, h, c, tanh_c, h_n, c_n }
        }
        let dirs = vec![fwd(&mut s0, &xs[0], &ws[0], false), fwd(&mut s1, &xs[1], &ws[1], true)];
        sequences_forward(dirs, &bs, hh);
        let mut back = Vec::new();
        let mut grads = [
            (vec![0f32; n * 4 * hh], vec![0f32; 4 * hh * hh]),
            (vec![0f32; n * 4 * hh], vec![0f32; 4 * hh * hh]),
        ];
        {
            let [g0, g1] = &mut grads;
            for ((s, w), (g, r)) in [&s0, &s1].into_iter().zip(&ws).zip([(g0, false), (g1, true)]) {
                back.push(BackwardDir {
                    act: &s.0,
                    w_hh: w,
                    reverse: r,
                    h: &s.1,
                    c: &s.2,
                    tanh_c: &s.3,
                    stride: hh,
                    d_h: &d_h,
                    d_h_n: &dhn,
                    d_c_n: &dcn,
                    d_gates: &mut g.0,
                    d_w_hh: Some(&mut g.1),
                });
            }
        }
        sequences_backward(back, &bs, hh);
        for (d, reverse) in [(0, false), (1, true)] {
            let mut one = new_saved();
            let bufs = fwd(&mut one, &xs[d], &ws[d], reverse);
            forward_one(bufs, &bs, hh, false);
            let s = if d == 0 { &s0 } else { &s1 };
            assert!(
                max_diff(&one.1, &s.1) < 1e-5
                    && max_diff(&one.4, &s.4) < 1e-5
                    && max_diff(&one.5, &s.5) < 1e-5
            );
            let (mut dz, mut dw) = (vec![0f32; n * 4 * hh], vec![0f32; 4 * hh * hh]);
            let bufs = BackwardDir {
                act: &one.0,
                w_hh: &ws[d],
                reverse,
                h: &one.1,
                c: &one.2,
                tanh_c: &one.3,
                stride: hh,
                d_h: &d_h,
                d_h_n: &dhn,
                d_c_n: &dcn,
                d_gates: &mut dz,
                d_w_hh: Some(&mut dw),
            };
            backward_one(bufs, &bs, hh, false);
            assert!(max_diff(&dz, &grads[d].0) < 1e-4, "dz {}", max_diff(&dz, &grads[d].0));
            assert!(max_diff(&dw, &grads[d].1) < 1e-3, "dW {}", max_diff(&dw, &grads[d].1));
        }
    }

    /// h and d_h read as a direction's columns of a wider output (`stride` > H) give the
    /// same bits as the direction's own `[N, H]`.
    #[test]
    fn backward_reads_strided_h_and_d_h() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        let hh = 5;
        let lens = [6usize, 4, 4, 1];
        let bs: Vec<usize> = (0..6).map(|t| lens.iter().filter(|&&l| l > t).count()).collect();
        let (n, b) = check_batch_sizes(&bs);
        let xproj = rand_vec(n * 4 * hh, 2.0, &mut rng);
        let w = rand_vec(4 * hh * hh, 0.5, &mut rng);
        let d_h = rand_vec(n * hh, 1.0, &mut rng);
        let z = |k: usize| vec![0.0; k * hh];
        let (mut act, mut h, mut c, mut tc, mut hn, mut cn) = (z(4 * n), z(n), z(n), z(n), z(b), z(b));
        let dir = ForwardDir {
            xproj: &xproj,
            gates: &mut act,
            w_hh: &w,
            reverse: true,
            h: &mut h,
            c: &mut c,
            tanh_c: &mut tc,
            h_n: &mut hn,
            c_n: &mut cn,
        };
        sequences_forward(vec![dir], &bs, hh);
        // the same rows as columns hh..2hh of [N, 3H] buffers (the rest NaN: never read)
        let wide = |v: &[f64]| {
            let mut o = vec![f64::NAN; n * 3 * hh];
            for (r, row) in v.chunks_exact(hh).enumerate() {
                o[r * 3 * hh + hh..r * 3 * hh + 2 * hh].copy_from_slice(row);
            }
            o
        };
        let (h_wide, d_h_wide) = (wide(&h), wide(&d_h));
        let run = |h: &[f64], d_h: &[f64], stride: usize| {
            let (mut dz, mut dw, zeros) = (z(4 * n), vec![0.0; 4 * hh * hh], vec![0.0; b * hh]);
            let dir = BackwardDir {
                act: &act,
                w_hh: &w,
                reverse: true,
                h,
                c: &c,
                tanh_c: &tc,
                stride,
                d_h,
                d_h_n: &zeros,
                d_c_n: &zeros,
                d_gates: &mut dz,
                d_w_hh: Some(&mut dw),
            };
            sequences_backward(vec![dir], &bs, hh);
            (dz, dw)
        };
        let own = run(&h, &d_h, hh);
        let strided = run(&h_wide[hh..], &d_h_wide[hh..], 3 * hh);
        assert_eq!(own, strided);
        assert!(own.0.iter().chain(&own.1).all(|v| v.is_finite()));
    }
}
