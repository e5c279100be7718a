//! The LSTM cell, fused, and the LSTM recurrence over a packed batch.
//!
//! # The cell
//! With the pre-activation gates `z = x·W_ihᵀ + b_ih + h_prev·W_hhᵀ + b_hh`, a row
//! `[4H]` split in PyTorch's order `z = [z_i | z_f | z_g | z_o]`:
//!
//! ```text
//! i = σ(z_i)   f = σ(z_f)   g = tanh(z_g)   o = σ(z_o)
//! c = f⊙c_prev + i⊙g
//! h = o⊙tanh(c)
//! ```
//!
//! Backward, given dL/dh = dh and dL/dc = dc (the gradient reaching c directly,
//! e.g. from the next step):
//!
//! ```text
//! dc_tot  = dc + dh⊙o⊙(1 − tanh²c)
//! dz_i    = dc_tot⊙g⊙i(1 − i)
//! dz_f    = dc_tot⊙c_prev⊙f(1 − f)
//! dz_g    = dc_tot⊙i⊙(1 − g²)
//! dz_o    = dh⊙tanh(c)⊙o(1 − o)
//! dc_prev = dc_tot⊙f
//! ```
//!
//! The forward saves the activated gates `[i|f|g|o]` (in place of the
//! pre-activations) and `tanh(c)`; with `c_prev` that is all backward needs.
//!
//! A missing previous state is zero: `c_prev` may hold fewer rows than the batch
//! (`p ≤ rows`), and rows `p..rows` start from c_prev = 0. This is how a packed
//! batch's reverse direction starts the sequences that join the batch at a step.
//!
//! # Packed recurrence
//! [`sequences_forward`] / [`sequences_backward`] run the cell over a packed batch
//! (PyTorch's `PackedSequence` layout): sequences sorted by length, descending;
//! step `t` holds the `batch_sizes[t]` sequences still running, as rows
//! `offset_t..offset_t + batch_sizes[t]` of `[N, ·]` buffers, `N = Σ batch_sizes`.
//! The input projection for every step is computed beforehand by one GEMM; per
//! step only `h_prev·W_hhᵀ` (on the active rows) and the cell remain. See `sequence.rs`.

mod sequence;
pub use sequence::*;

use crate::activation::sigmoid;
use crate::layernorm::Len;
use crate::vecmath;
use crate::Float;

/// Fused cell forward for `rows = gates.len() / 4H` rows, one pass per row.
///
/// `gates` `[rows, 4H]`: in, the pre-activations; out, the activations
/// `[i|f|g|o]`. `c_prev` `[p, H]` with `p ≤ rows` (missing rows are zero).
/// Writes `c`, `tanh_c` and `h`, each `[rows, H]`.
pub fn cell_forward<T: Float>(
    gates: &mut [T],
    c_prev: &[T],
    hidden: usize,
    c: &mut [T],
    tanh_c: &mut [T],
    h: &mut [T],
) {
    let hh = hidden;
    if hh == 0 {
        return;
    }
    let rows = gates.len() / (4 * hh);
    assert_eq!(gates.len(), rows * 4 * hh, "lstm cell: gates must be [rows, 4H]");
    assert!(c.len() == rows * hh && tanh_c.len() == rows * hh && h.len() == rows * hh);
    assert!(
        c_prev.len().is_multiple_of(hh) && c_prev.len() <= rows * hh,
        "lstm cell: c_prev must be [p ≤ rows, H]"
    );
    let p = c_prev.len() / hh;
    if let (true, Some(g32), Some(cp32)) = (
        crate::elementwise::simd_path::<T>(crate::isa::Family::Lstm, true),
        crate::as_f32_mut(gates),
        crate::as_f32(c_prev),
    ) {
        let (c32, t32, h32) = (
            crate::as_f32_mut(c).expect("same type"),
            crate::as_f32_mut(tanh_c).expect("same type"),
            crate::as_f32_mut(h).expect("same type"),
        );
        for r in 0..rows {
            let cp = if r < p { Some(&cp32[r * hh..(r + 1) * hh]) } else { None };
            // SAFETY: AVX2 and FMA are present (checked above).
            unsafe {
                cell_row_f32(
                    &mut g32[r * 4 * hh..(r + 1) * 4 * hh],
                    cp,
                    &mut c32[r * hh..],
                    &mut t32[r * hh..],
                    &mut h32[r * hh..],
                    hh,
                )
            };
        }
        return;
    }
    for r in 0..rows {
        let z = &mut gates[r * 4 * hh..(r + 1) * 4 * hh];
        let (zi, rest) = z.split_at_mut(hh);
        let (zf, rest) = rest.split_at_mut(hh);
        let (zg, zo) = rest.split_at_mut(hh);
        for j in 0..hh {
            let i = sigmoid(zi[j]);
            let f = sigmoid(zf[j]);
            let g = zg[j].tanh();
            let o = sigmoid(zo[j]);
            let cp = if r < p { c_prev[r * hh + j] } else { T::ZERO };
            let cv = f * cp + i * g;
            let tc = cv.tanh();
            (zi[j], zf[j], zg[j], zo[j]) = (i, f, g, o);
            c[r * hh + j] = cv;
            tanh_c[r * hh + j] = tc;
            h[r * hh + j] = o * tc;
        }
    }
}

/// One row of the f32 cell, with the vectorisable [`vecmath::sigmoid`] / [`vecmath::tanh`]
/// (tested in `vecmath`), compiled for AVX2+FMA.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
unsafe fn cell_row_f32(
    z: &mut [f32],
    c_prev: Option<&[f32]>,
    c: &mut [f32],
    tc: &mut [f32],
    h: &mut [f32],
    hh: usize,
) {
    let (zi, rest) = z.split_at_mut(hh);
    let (zf, rest) = rest.split_at_mut(hh);
    let (zg, zo) = rest.split_at_mut(hh);
    let (c, tc, h) = (&mut c[..hh], &mut tc[..hh], &mut h[..hh]);
    for j in 0..hh {
        zi[j] = vecmath::sigmoid(zi[j]);
        zf[j] = vecmath::sigmoid(zf[j]);
        zg[j] = vecmath::tanh(zg[j]);
        zo[j] = vecmath::sigmoid(zo[j]);
    }
    match c_prev {
        Some(cp) => {
            for j in 0..hh {
                c[j] = zf[j] * cp[j] + zi[j] * zg[j];
            }
        }
        None => {
            for j in 0..hh {
                c[j] = zi[j] * zg[j];
            }
        }
    }
    for j in 0..hh {
        tc[j] = vecmath::tanh(c[j]);
        h[j] = zo[j] * tc[j];
    }
}

/// The fused cell backward's inputs on either device (`B` = `[T]` here, a `GpuBuffer<T>` in
/// `gpu::lstm`): what the forward saved and the incoming gradients.
///
/// ```text
/// act (rows, 4H)   the gate activations [i | f | g | o] the forward saved
/// c_prev (p, H)    the previous cell state (rows p.. had none: zero)
/// tanh_c (rows, H) dh (rows, H) dc (rows, H)
/// ```
pub struct CellBackwardIn<'a, B: ?Sized> {
    pub act: &'a B,
    pub c_prev: &'a B,
    pub tanh_c: &'a B,
    pub dh: &'a B,
    pub dc: &'a B,
    pub hidden: usize,
}

impl<B: ?Sized> Clone for CellBackwardIn<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: ?Sized> Copy for CellBackwardIn<'_, B> {}

/// What the cell backward writes: `d_gates (rows, 4H)` (dL/d pre-activations) and
/// `dc_prev (p, H)`.
pub struct CellGrads<'a, B: ?Sized> {
    pub d_gates: &'a mut B,
    pub dc_prev: &'a mut B,
}

impl<B: ?Sized + Len> CellBackwardIn<'_, B> {
    /// Checks every length against the rows `act` holds (one message for both devices) and
    /// returns `(rows, p)`.
    pub(crate) fn check(&self, out: &CellGrads<'_, B>) -> (usize, usize) {
        let hh = self.hidden.max(1);
        let rows = self.act.len() / (4 * hh);
        let want = |what: &str, len: usize, need: usize| {
            assert!(
                len == need,
                "lstm cell backward [{rows} rows, H {hh}]: {what} has {len} elements, needs {need}"
            )
        };
        want("act", self.act.len(), rows * 4 * hh);
        want("d_gates", out.d_gates.len(), rows * 4 * hh);
        for (what, len) in [("tanh_c", self.tanh_c.len()), ("dh", self.dh.len()), ("dc", self.dc.len())] {
            want(what, len, rows * hh);
        }
        let p = self.c_prev.len() / hh;
        assert!(p <= rows, "lstm cell backward: c_prev has {p} rows, more than the {rows} of act");
        want("c_prev", self.c_prev.len(), p * hh);
        want("dc_prev", out.dc_prev.len(), p * hh);
        (rows, p)
    }
}

/// Fused cell backward (see the module doc for the math): reads `x`, writes `out`.
/// In f32 with AVX2 the rows run through the same loop compiled for AVX2+FMA (8 lanes).
pub fn cell_backward<T: Float>(x: CellBackwardIn<'_, [T]>, out: CellGrads<'_, [T]>) {
    let hh = x.hidden;
    if hh == 0 {
        return;
    }
    let (rows, p) = x.check(&out);
    let CellBackwardIn { act, c_prev, tanh_c, dh, dc, .. } = x;
    let CellGrads { d_gates, dc_prev } = out;
    let simd = crate::elementwise::simd_path::<T>(crate::isa::Family::Lstm, true);
    // Rows p.. have no previous state: c_prev = 0, and their dc_prev goes nowhere.
    let (zeros, mut sink) =
        if p < rows { (vec![T::ZERO; hh], vec![T::ZERO; hh]) } else { (Vec::new(), Vec::new()) };
    for r in 0..rows {
        let (cp, dcp) = if r < p {
            (&c_prev[r * hh..(r + 1) * hh], &mut dc_prev[r * hh..(r + 1) * hh])
        } else {
            (&zeros[..], &mut sink[..])
        };
        let row = BackwardRow {
            act: &act[r * 4 * hh..(r + 1) * 4 * hh],
            c_prev: cp,
            tanh_c: &tanh_c[r * hh..(r + 1) * hh],
            dh: &dh[r * hh..(r + 1) * hh],
            dc: &dc[r * hh..(r + 1) * hh],
        };
        let dz = &mut d_gates[r * 4 * hh..(r + 1) * 4 * hh];
        if simd {
            #[cfg(target_arch = "x86_64")]
            {
                let (row, dz, dcp) = (row.as_f32(), crate::as_f32_mut(dz), crate::as_f32_mut(dcp));
                // SAFETY: AVX2 and FMA are present (`simd_path` checked); T is f32.
                unsafe { backward_row_avx2(row, dz.expect("f32"), dcp.expect("f32")) };
                continue;
            }
        }
        backward_row(row, dz, dcp);
    }
}

/// One row of [`cell_backward`]'s inputs: `act` `[4H]`, the others `[H]`.
#[derive(Clone, Copy)]
struct BackwardRow<'a, T> {
    act: &'a [T],
    c_prev: &'a [T],
    tanh_c: &'a [T],
    dh: &'a [T],
    dc: &'a [T],
}

impl<'a, T: Float> BackwardRow<'a, T> {
    #[cfg(target_arch = "x86_64")]
    fn as_f32(self) -> BackwardRow<'a, f32> {
        let f = |v: &'a [T]| crate::as_f32(v).expect("f32");
        BackwardRow {
            act: f(self.act),
            c_prev: f(self.c_prev),
            tanh_c: f(self.tanh_c),
            dh: f(self.dh),
            dc: f(self.dc),
        }
    }
}

/// The cell backward of one row (formulas in the module doc), writing `dz` `[4H]` and
/// `dc_prev` `[H]`.
#[inline(always)]
fn backward_row<T: Float>(x: BackwardRow<'_, T>, dz: &mut [T], dc_prev: &mut [T]) {
    let hh = x.tanh_c.len();
    let one = T::ONE;
    let a = &x.act[..4 * hh];
    let (ai, af, ag, ao) = (&a[..hh], &a[hh..2 * hh], &a[2 * hh..3 * hh], &a[3 * hh..]);
    let (dzi, rest) = dz[..4 * hh].split_at_mut(hh);
    let (dzf, rest) = rest.split_at_mut(hh);
    let (dzg, dzo) = rest.split_at_mut(hh);
    let (cp, dcp) = (&x.c_prev[..hh], &mut dc_prev[..hh]);
    let (tc, dh, dc) = (&x.tanh_c[..hh], &x.dh[..hh], &x.dc[..hh]);
    for j in 0..hh {
        let (i, f, g, o, t) = (ai[j], af[j], ag[j], ao[j], tc[j]);
        let dct = dc[j] + dh[j] * o * (one - t * t);
        dzi[j] = dct * g * i * (one - i);
        dzf[j] = dct * cp[j] * f * (one - f);
        dzg[j] = dct * i * (one - g * g);
        dzo[j] = dh[j] * t * o * (one - o);
        dcp[j] = dct * f;
    }
}

/// [`backward_row`] compiled for AVX2+FMA (the same operations: no contraction into FMAs, so
/// the results are those of the portable loop, bit for bit).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn backward_row_avx2(x: BackwardRow<'_, f32>, dz: &mut [f32], dc_prev: &mut [f32]) {
    backward_row(x, dz, dc_prev)
}

/// What [`cell_forward_reference`] returns: activations `[rows, 4H]`, c, tanh c, h.
pub type CellForward<T> = (Vec<T>, Vec<T>, Vec<T>, Vec<T>);

/// The textbook cell, one formula per line on whole gate blocks, allocating.
/// The reference [`cell_forward`] is tested against. `c_prev` is `[rows, H]`.
pub fn cell_forward_reference<T: Float>(
    pre: &[T],
    c_prev: &[T],
    rows: usize,
    hidden: usize,
) -> CellForward<T> {
    let hh = hidden;
    let gate = |k: usize, f: fn(T) -> T| -> Vec<T> {
        (0..rows).flat_map(|r| (0..hh).map(move |j| f(pre[r * 4 * hh + k * hh + j]))).collect()
    };
    let i = gate(0, sigmoid);
    let f = gate(1, sigmoid);
    let g = gate(2, T::tanh);
    let o = gate(3, sigmoid);
    let c: Vec<T> = (0..rows * hh).map(|e| f[e] * c_prev[e] + i[e] * g[e]).collect();
    let tc: Vec<T> = c.iter().map(|v| v.tanh()).collect();
    let h: Vec<T> = (0..rows * hh).map(|e| o[e] * tc[e]).collect();
    let mut act = vec![T::ZERO; rows * 4 * hh];
    for r in 0..rows {
        for (k, src) in [&i, &f, &g, &o].into_iter().enumerate() {
            act[r * 4 * hh + k * hh..r * 4 * hh + (k + 1) * hh].copy_from_slice(&src[r * hh..(r + 1) * hh]);
        }
    }
    (act, c, tc, h)
}

/// The textbook backward: from the pre-activations, recomputing everything.
/// Returns (d pre-activations `[rows, 4H]`, dc_prev `[rows, H]`).
pub fn cell_backward_reference<T: Float>(
    pre: &[T],
    c_prev: &[T],
    dh: &[T],
    dc: &[T],
    rows: usize,
    hidden: usize,
) -> (Vec<T>, Vec<T>) {
    let (act, _c, tc, _h) = cell_forward_reference(pre, c_prev, rows, hidden);
    let hh = hidden;
    let one = T::ONE;
    let mut dz = vec![T::ZERO; rows * 4 * hh];
    let mut dcp = vec![T::ZERO; rows * hh];
    for r in 0..rows {
        for j in 0..hh {
            let at = |k: usize| act[r * 4 * hh + k * hh + j];
            let (i, f, g, o) = (at(0), at(1), at(2), at(3));
            let e = r * hh + j;
            // h = o·tanh(c): dL/do = dh·tanh c, dL/dc += dh·o·(1 − tanh²c)
            let d_o = dh[e] * tc[e];
            let d_c = dc[e] + dh[e] * o * (one - tc[e] * tc[e]);
            // c = f·c_prev + i·g
            let (d_i, d_f, d_g) = (d_c * g, d_c * c_prev[e], d_c * i);
            dcp[e] = d_c * f;
            dz[r * 4 * hh + j] = d_i * i * (one - i);
            dz[r * 4 * hh + hh + j] = d_f * f * (one - f);
            dz[r * 4 * hh + 2 * hh + j] = d_g * (one - g * g);
            dz[r * 4 * hh + 3 * hh + j] = d_o * o * (one - o);
        }
    }
    (dz, dcp)
}

/// The cell op's single output: `hc` `[rows, 2H]` = `[h | c]` per row, from `h` and
/// `c` `[rows, H]`.
pub fn interleave_hc<T: Float>(h: &[T], c: &[T], hidden: usize, hc: &mut [T]) {
    assert!(h.len() == c.len() && hc.len() == 2 * h.len(), "interleave_hc: h, c [rows, H] and hc [rows, 2H]");
    if hidden == 0 {
        return;
    }
    for ((out, hr), cr) in
        hc.chunks_exact_mut(2 * hidden).zip(h.chunks_exact(hidden)).zip(c.chunks_exact(hidden))
    {
        out[..hidden].copy_from_slice(hr);
        out[hidden..].copy_from_slice(cr);
    }
}

/// The adjoint of [`interleave_hc`]: `g_hc` `[rows, 2H]` split into `dh` and `dc` `[rows, H]`.
pub fn split_hc<T: Float>(g_hc: &[T], hidden: usize, dh: &mut [T], dc: &mut [T]) {
    assert!(
        dh.len() == dc.len() && g_hc.len() == 2 * dh.len(),
        "split_hc: g_hc [rows, 2H] and dh, dc [rows, H]"
    );
    if hidden == 0 {
        return;
    }
    for ((g, dhr), dcr) in
        g_hc.chunks_exact(2 * hidden).zip(dh.chunks_exact_mut(hidden)).zip(dc.chunks_exact_mut(hidden))
    {
        dhr.copy_from_slice(&g[..hidden]);
        dcr.copy_from_slice(&g[hidden..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngExt, SeedableRng};

    /// n values uniform in (−scale, scale) (also `sequence`'s tests).
    pub(super) fn rand_vec(n: usize, scale: f64, rng: &mut impl Rng) -> Vec<f64> {
        (0..n).map(|_| rng.random_range(-scale..scale)).collect()
    }

    /// The largest |a − b| (also `sequence`'s tests).
    pub(super) fn max_diff<T: Float>(a: &[T], b: &[T]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x.to_f64() - y.to_f64()).abs()).fold(0.0, f64::max)
    }

    #[test]
    fn fused_cell_matches_reference_f64() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for &(rows, hh) in &[(1, 1), (3, 5), (7, 16)] {
            let pre = rand_vec(rows * 4 * hh, 4.0, &mut rng);
            let cp = rand_vec(rows * hh, 2.0, &mut rng);
            let (act_r, c_r, tc_r, h_r) = cell_forward_reference(&pre, &cp, rows, hh);
            let mut act = pre.clone();
            let (mut c, mut tc, mut h) = (vec![0.0; rows * hh], vec![0.0; rows * hh], vec![0.0; rows * hh]);
            cell_forward(&mut act, &cp, hh, &mut c, &mut tc, &mut h);
            assert!(max_diff(&act, &act_r) < 1e-15);
            assert!(max_diff(&c, &c_r) < 1e-15 && max_diff(&tc, &tc_r) < 1e-15 && max_diff(&h, &h_r) < 1e-15);

            let dh = rand_vec(rows * hh, 1.0, &mut rng);
            let dc = rand_vec(rows * hh, 1.0, &mut rng);
            let (dz_r, dcp_r) = cell_backward_reference(&pre, &cp, &dh, &dc, rows, hh);
            let (mut dz, mut dcp) = (vec![0.0; rows * 4 * hh], vec![0.0; rows * hh]);
            let x = CellBackwardIn { act: &act[..], c_prev: &cp, tanh_c: &tc, dh: &dh, dc: &dc, hidden: hh };
            cell_backward(x, CellGrads { d_gates: &mut dz, dc_prev: &mut dcp });
            assert!(max_diff(&dz, &dz_r) < 1e-14 && max_diff(&dcp, &dcp_r) < 1e-14);
        }
    }

    #[test]
    #[should_panic(expected = "lstm cell backward [3 rows, H 2]: dc has 5 elements, needs 6")]
    fn cell_backward_names_a_short_buffer() {
        let (act, cp, tc, dh, dc) =
            (vec![0.0f32; 24], vec![0.0; 6], vec![0.0; 6], vec![0.0; 6], vec![0.0; 5]);
        let (mut dz, mut dcp) = (vec![0.0; 24], vec![0.0; 6]);
        let x = CellBackwardIn { act: &act[..], c_prev: &cp, tanh_c: &tc, dh: &dh, dc: &dc, hidden: 2 };
        cell_backward(x, CellGrads { d_gates: &mut dz, dc_prev: &mut dcp });
    }

    #[test]
    fn interleave_and_split_are_inverse() {
        let (h, c) = (vec![1.0, 2.0, 3.0, 4.0], vec![5.0, 6.0, 7.0, 8.0]);
        let mut hc = vec![0.0; 8];
        interleave_hc(&h, &c, 2, &mut hc);
        assert_eq!(hc, [1.0, 2.0, 5.0, 6.0, 3.0, 4.0, 7.0, 8.0]);
        let (mut dh, mut dc) = (vec![0.0; 4], vec![0.0; 4]);
        split_hc(&hc, 2, &mut dh, &mut dc);
        assert_eq!((dh, dc), (h, c));
    }

    #[test]
    fn missing_prev_rows_are_zero_state() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let (rows, hh, p) = (4, 3, 2);
        let pre = rand_vec(rows * 4 * hh, 3.0, &mut rng);
        let mut cp = rand_vec(rows * hh, 2.0, &mut rng);
        cp[p * hh..].fill(0.0);
        let (mut a1, mut a2) = (pre.clone(), pre.clone());
        let z = || vec![0.0; rows * hh];
        let (mut c1, mut t1, mut h1, mut c2, mut t2, mut h2) = (z(), z(), z(), z(), z(), z());
        cell_forward(&mut a1, &cp, hh, &mut c1, &mut t1, &mut h1);
        cell_forward(&mut a2, &cp[..p * hh], hh, &mut c2, &mut t2, &mut h2);
        assert_eq!((c1, h1), (c2, h2));
        let (dh, dc) = (rand_vec(rows * hh, 1.0, &mut rng), rand_vec(rows * hh, 1.0, &mut rng));
        let (mut dz1, mut dz2, mut dcp1, mut dcp2) =
            (vec![0.0; rows * 4 * hh], vec![0.0; rows * 4 * hh], z(), vec![0.0; p * hh]);
        let x = CellBackwardIn { act: &a1[..], c_prev: &cp, tanh_c: &t1, dh: &dh, dc: &dc, hidden: hh };
        cell_backward(x, CellGrads { d_gates: &mut dz1, dc_prev: &mut dcp1 });
        let x =
            CellBackwardIn { act: &a2[..], c_prev: &cp[..p * hh], tanh_c: &t2, dh: &dh, dc: &dc, hidden: hh };
        cell_backward(x, CellGrads { d_gates: &mut dz2, dc_prev: &mut dcp2 });
        assert_eq!(dz1, dz2);
        assert_eq!(&dcp1[..p * hh], &dcp2[..]);
    }

    #[test]
    fn f32_cell_close_to_f64_reference() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let (rows, hh) = (5, 33);
        let pre = rand_vec(rows * 4 * hh, 12.0, &mut rng);
        let cp = rand_vec(rows * hh, 3.0, &mut rng);
        let (act_r, c_r, _tc, h_r) = cell_forward_reference(&pre, &cp, rows, hh);
        let mut act: Vec<f32> = pre.iter().map(|&v| v as f32).collect();
        let cp32: Vec<f32> = cp.iter().map(|&v| v as f32).collect();
        let (mut c, mut tc, mut h) = (vec![0f32; rows * hh], vec![0f32; rows * hh], vec![0f32; rows * hh]);
        cell_forward(&mut act, &cp32, hh, &mut c, &mut tc, &mut h);
        let act_r: Vec<f32> = act_r.iter().map(|&v| v as f32).collect();
        assert!(max_diff(&act, &act_r) < 1e-6, "{}", max_diff(&act, &act_r));
        let (c_r, h_r): (Vec<f32>, Vec<f32>) =
            (c_r.iter().map(|&v| v as f32).collect(), h_r.iter().map(|&v| v as f32).collect());
        assert!(max_diff(&c, &c_r) < 2e-6 && max_diff(&h, &h_r) < 2e-6);
    }
}
