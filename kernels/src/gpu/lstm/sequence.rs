//! The LSTM recurrence over a packed batch on the GPU; the CPU twin (layout and math)
//! is `kernels/src/lstm/sequence.rs`, with the same arguments and structs.
//!
//! Per step one product through the tiled GEMM on the step's rows (`h_{t−1}·W_hhᵀ`
//! forward, `dz_t·W_hh` backward) and one cell launch; directions run one after the
//! other (one stream). `batch_sizes` stays on the host: it decides the launches.
//!
//! The backward's inputs that the CPU caller passes as sub-slices of bigger buffers
//! (`h`, `d_h`, `d_h_n`, `d_c_n`: regions of the op's one `[h | h_n | c_n]` output and
//! its gradient) are whole buffers here, each followed by its element offset. The
//! forward's outputs are separate buffers (one `&mut` each); a caller that keeps them
//! in one block copies them there (`GpuBuffer::copy_from`, three device copies).

use super::{at, CellBwd, CellFwd};

use crate::gpu::gemm::{gemm, Dims, GpuMat, GpuMatMut};
use crate::gpu::{GpuBuffer, GpuError};
use crate::lstm::{check_batch_sizes, packed_offsets};
use crate::Float;

/// One direction's buffers for [`sequences_forward`] (shapes as the CPU's `ForwardDir`).
pub struct ForwardDir<'a, T: Float> {
    /// `[N, 4H]`: each step's input projection.
    pub xproj: &'a GpuBuffer<T>,
    /// `[N, 4H]`, written: the activated gates.
    pub gates: &'a mut GpuBuffer<T>,
    /// `[4H, H]` (PyTorch's layout).
    pub w_hh: &'a GpuBuffer<T>,
    /// Run from the last step to the first.
    pub reverse: bool,
    /// `[N, H]` each.
    pub h: &'a mut GpuBuffer<T>,
    pub c: &'a mut GpuBuffer<T>,
    pub tanh_c: &'a mut GpuBuffer<T>,
    /// `[B, H]` each: the state after each sequence's last processed step.
    pub h_n: &'a mut GpuBuffer<T>,
    pub c_n: &'a mut GpuBuffer<T>,
}

/// One direction's buffers for [`sequences_backward`] (as the CPU's `BackwardDir`;
/// `h`, `d_h`, `d_h_n`, `d_c_n` start at their `*_offset` elements).
pub struct BackwardDir<'a, T: Float> {
    pub act: &'a GpuBuffer<T>,
    pub w_hh: &'a GpuBuffer<T>,
    pub reverse: bool,
    /// `[N, H]` at `h_offset`.
    pub h: &'a GpuBuffer<T>,
    pub h_offset: usize,
    pub c: &'a GpuBuffer<T>,
    pub tanh_c: &'a GpuBuffer<T>,
    /// Output gradients: `d_h` `[N, H]`, `d_h_n`, `d_c_n` `[B, H]`, at their offsets.
    pub d_h: &'a GpuBuffer<T>,
    pub d_h_offset: usize,
    pub d_h_n: &'a GpuBuffer<T>,
    pub d_h_n_offset: usize,
    pub d_c_n: &'a GpuBuffer<T>,
    pub d_c_n_offset: usize,
    /// Written: dL/d input projections `[N, 4H]`.
    pub d_gates: &'a mut GpuBuffer<T>,
    /// Accumulated into when given: dL/dW_hh `[4H, H]`.
    pub d_w_hh: Option<&'a mut GpuBuffer<T>>,
}

fn steps(n_steps: usize, reverse: bool) -> Vec<usize> {
    if reverse {
        (0..n_steps).rev().collect()
    } else {
        (0..n_steps).collect()
    }
}

/// LSTM recurrence over a packed batch, zero initial state, for each direction in `dirs`,
/// in turn (the CPU's `sequences_forward`).
pub fn sequences_forward<T: Float>(
    dirs: Vec<ForwardDir<'_, T>>,
    batch_sizes: &[usize],
    hidden: usize,
) -> Result<(), GpuError> {
    dirs.into_iter().try_for_each(|d| forward_one(d, batch_sizes, hidden))
}

fn forward_one<T: Float>(d: ForwardDir<'_, T>, batch_sizes: &[usize], hidden: usize) -> Result<(), GpuError> {
    let (n, b) = check_batch_sizes(batch_sizes);
    let (hh, g4) = (hidden, 4 * hidden);
    let ForwardDir { xproj, gates, w_hh, reverse, h, c, tanh_c, h_n, c_n } = d;
    assert!(xproj.len() == n * g4 && gates.len() == n * g4 && w_hh.len() == g4 * hh);
    assert!(h.len() == n * hh && c.len() == n * hh && tanh_c.len() == n * hh);
    assert!(h_n.len() == b * hh && c_n.len() == b * hh);
    if n == 0 || hh == 0 {
        return Ok(());
    }
    // z = xproj (one device copy: each step's product then adds into its rows)
    gates.copy_from(0, xproj, 0, n * g4)?;
    let offs = packed_offsets(batch_sizes);
    let order = steps(batch_sizes.len(), reverse);
    for (k, &t) in order.iter().enumerate() {
        let (bt, off) = (batch_sizes[t], offs[t]);
        let prev = k.checked_sub(1).map(|k| order[k]);
        let p = prev.map_or(0, |tp| batch_sizes[tp].min(bt));
        let prev_off = prev.map_or(0, |tp| offs[tp]);
        if p > 0 {
            // z[0..p] += h_prev · W_hhᵀ, W_hhᵀ (H, 4H): B(p, j) = w_hh[j·H + p]
            let (a, b) = (GpuMat::rows(h, hh).at(prev_off * hh), GpuMat::cols(w_hh, hh));
            gemm(Dims::new(p, g4, hh), a, b, T::ONE, GpuMatMut::rows(gates, g4).at(off * g4))?;
        }
        CellFwd {
            gates: at(gates, off * g4),
            c_prev: at(c, prev_off * hh),
            c: at(c, off * hh),
            tanh_c: at(tanh_c, off * hh),
            h: at(h, off * hh),
            rows: bt,
            p,
            hidden: hh,
        }
        .launch(w_hh)?;
        // Rows not running at the next step end here: their final state.
        let next_b = order.get(k + 1).map_or(0, |&tn| batch_sizes[tn].min(bt));
        let len = (bt - next_b) * hh;
        h_n.copy_from(next_b * hh, h, (off + next_b) * hh, len)?;
        c_n.copy_from(next_b * hh, c, (off + next_b) * hh, len)?;
    }
    Ok(())
}

/// Backward of [`sequences_forward`] (backpropagation through time), each direction in
/// turn: writes `d_gates`, adds dL/dW_hh to `d_w_hh` when given (the CPU's
/// `sequences_backward`, with an element offset after each buffer the CPU caller may pass
/// as a sub-slice).
pub fn sequences_backward<T: Float>(
    dirs: Vec<BackwardDir<'_, T>>,
    batch_sizes: &[usize],
    hidden: usize,
) -> Result<(), GpuError> {
    dirs.into_iter().try_for_each(|d| backward_one(d, batch_sizes, hidden))
}

fn backward_one<T: Float>(
    d: BackwardDir<'_, T>,
    batch_sizes: &[usize],
    hidden: usize,
) -> Result<(), GpuError> {
    let (n, b) = check_batch_sizes(batch_sizes);
    let (hh, g4) = (hidden, 4 * hidden);
    let BackwardDir {
        act,
        w_hh,
        reverse,
        h,
        h_offset,
        c,
        tanh_c,
        d_h,
        d_h_offset,
        d_h_n,
        d_h_n_offset,
        d_c_n,
        d_c_n_offset,
        d_gates,
        d_w_hh,
    } = d;
    assert!(act.len() == n * g4 && d_gates.len() == n * g4 && w_hh.len() == g4 * hh);
    assert!(c.len() == n * hh && tanh_c.len() == n * hh);
    assert!(
        h_offset + n * hh <= h.len() && d_h_offset + n * hh <= d_h.len(),
        "lstm: h or d_h too short for [N, H] at its offset"
    );
    assert!(
        d_h_n_offset + b * hh <= d_h_n.len() && d_c_n_offset + b * hh <= d_c_n.len(),
        "lstm: d_h_n or d_c_n too short for [B, H] at its offset"
    );
    if n == 0 || hh == 0 {
        return Ok(());
    }
    let offs = packed_offsets(batch_sizes);
    let order = steps(batch_sizes.len(), reverse);
    // Gradients flowing into each running sequence's (h, c) from later steps.
    let mut carry_h = GpuBuffer::<T>::uninit(d_h_n.context(), b * hh)?;
    carry_h.copy_from(0, d_h_n, d_h_n_offset, b * hh)?;
    let mut carry_c = GpuBuffer::<T>::uninit(d_c_n.context(), b * hh)?; // then written by the cell kernels
    carry_c.copy_from(0, d_c_n, d_c_n_offset, b * hh)?;
    for (k, &t) in order.iter().enumerate().rev() {
        let (bt, off) = (batch_sizes[t], offs[t]);
        let prev = k.checked_sub(1).map(|k| order[k]);
        let p = prev.map_or(0, |tp| batch_sizes[tp].min(bt));
        let prev_off = prev.map_or(0, |tp| offs[tp]);
        // dL/dh_t = d_h + carry_h (summed in the cell); dc_prev written over carry_c[..p]
        CellBwd {
            act: at(act, off * g4),
            c_prev: at(c, prev_off * hh),
            tanh_c: at(tanh_c, off * hh),
            dh: at(d_h, d_h_offset + off * hh),
            dh_add: carry_h.arg(),
            dc: carry_c.arg(),
            d_gates: at(d_gates, off * g4),
            dc_prev: carry_c.arg(),
            rows: bt,
            p,
            hidden: hh,
        }
        .launch(w_hh)?;
        if p == 0 {
            continue;
        }
        // d h_prev = dz[0..p] · W_hh
        let (a, b) = (GpuMat::rows(d_gates, g4).at(off * g4), GpuMat::rows(w_hh, hh));
        gemm(Dims::new(p, hh, g4), a, b, T::ZERO, GpuMatMut::rows(&mut carry_h, hh))?;
    }
    if let Some(dw) = d_w_hh {
        // dW_hh += d_gatesᵀ [4H, N] · h_prev [N, H], h_prev row i = the previous step's h
        // of the sequence in packed row i (zero where a sequence starts).
        let mut h_prev = GpuBuffer::<T>::zeros(h.context(), n * hh)?;
        for (k, &t) in order.iter().enumerate().skip(1) {
            let tp = order[k - 1];
            let p = batch_sizes[tp].min(batch_sizes[t]);
            h_prev.copy_from(offs[t] * hh, h, h_offset + offs[tp] * hh, p * hh)?;
        }
        let (dz_t, h_prev) = (GpuMat::cols(&*d_gates, g4), GpuMat::rows(&h_prev, hh));
        gemm(Dims::new(g4, hh, n), dz_t, h_prev, T::ONE, GpuMatMut::rows(dw, hh))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::values;
    use super::*;
    use crate::gpu::test_contexts;
    use crate::gpu::testing::close;
    use crate::lstm as cpu;

    /// Both directions, forward and backward with dW_hh, against the CPU recurrence on a
    /// ragged packed batch; f64 to 1e-12, f32 within rounding.
    #[test]
    fn sequence_matches_cpu() {
        for ctx in test_contexts() {
            let hh = 5;
            let lens = [6usize, 4, 4, 1];
            let bs: Vec<usize> = (0..6).map(|t| lens.iter().filter(|&&l| l > t).count()).collect();
            let (n, b) = check_batch_sizes(&bs);
            let xproj = values(n * 4 * hh, 0.3, 2.0);
            let w = values(4 * hh * hh, 1.7, 0.6);
            let d_h = values(n * hh, 2.1, 1.0);
            let (dhn, dcn) = (values(b * hh, 0.8, 1.0), values(b * hh, 1.4, 1.0));
            for reverse in [false, true] {
                let what = format!("reverse {reverse} on {}", ctx.name());
                let z = |k: usize| vec![0.0; k];
                let mut act = vec![f64::NAN; n * 4 * hh];
                let (mut h, mut c, mut tc, mut hn, mut cn) =
                    (z(n * hh), z(n * hh), z(n * hh), z(b * hh), z(b * hh));
                let dir = cpu::ForwardDir {
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
                cpu::sequences_forward(vec![dir], &bs, hh);
                let (mut dz, mut dw) = (z(n * 4 * hh), vec![0.5; 4 * hh * hh]);
                let dir = cpu::BackwardDir {
                    act: &act,
                    w_hh: &w,
                    reverse,
                    h: &h,
                    c: &c,
                    tanh_c: &tc,
                    stride: hh,
                    d_h: &d_h,
                    d_h_n: &dhn,
                    d_c_n: &dcn,
                    d_gates: &mut dz,
                    d_w_hh: Some(&mut dw),
                };
                cpu::sequences_backward(vec![dir], &bs, hh);
                let up = |v: &[f64]| GpuBuffer::from_host(&ctx, v).unwrap();
                let (xb, mut gb, wb) = (up(&xproj), up(&vec![f64::NAN; n * 4 * hh]), up(&w));
                let mut o: Vec<GpuBuffer<f64>> = [n, n, n, b, b].iter().map(|&r| up(&z(r * hh))).collect();
                let [hb, cb, tcb, hnb, cnb] = &mut o[..] else { unreachable!() };
                let dir = ForwardDir {
                    xproj: &xb,
                    gates: &mut gb,
                    w_hh: &wb,
                    reverse,
                    h: hb,
                    c: cb,
                    tanh_c: tcb,
                    h_n: hnb,
                    c_n: cnb,
                };
                sequences_forward(vec![dir], &bs, hh).unwrap();
                for (name, got, want) in
                    [("act", &gb, &act), ("h", hb, &h), ("c", cb, &c), ("h_n", hnb, &hn), ("c_n", cnb, &cn)]
                {
                    close(&got.to_host().unwrap(), want, 1e-12, &format!("{name} {what}"));
                }
                // the output gradient as the op holds it: one [d_h | d_h_n | d_c_n] block
                let g_all = up(&[&d_h[..], &dhn, &dcn].concat());
                let (mut dzb, mut dwb) = (up(&z(n * 4 * hh)), up(&vec![0.5; 4 * hh * hh]));
                let dir = BackwardDir {
                    act: &gb,
                    w_hh: &wb,
                    reverse,
                    h: hb,
                    h_offset: 0,
                    c: cb,
                    tanh_c: tcb,
                    d_h: &g_all,
                    d_h_offset: 0,
                    d_h_n: &g_all,
                    d_h_n_offset: n * hh,
                    d_c_n: &g_all,
                    d_c_n_offset: (n + b) * hh,
                    d_gates: &mut dzb,
                    d_w_hh: Some(&mut dwb),
                };
                sequences_backward(vec![dir], &bs, hh).unwrap();
                close(&dzb.to_host().unwrap(), &dz, 1e-12, &format!("d_gates {what}"));
                close(&dwb.to_host().unwrap(), &dw, 1e-12, &format!("d_w_hh {what}"));
                // f32: h within rounding of the f64 recurrence
                let f = |v: &[f64]| {
                    GpuBuffer::from_host(&ctx, &v.iter().map(|&x| x as f32).collect::<Vec<_>>()).unwrap()
                };
                let (xb, mut gb, wb) = (f(&xproj), f(&vec![f64::NAN; n * 4 * hh]), f(&w));
                let mut o: Vec<GpuBuffer<f32>> = [n, n, n, b, b].iter().map(|&r| f(&z(r * hh))).collect();
                let [hb, cb, tcb, hnb, cnb] = &mut o[..] else { unreachable!() };
                let dir = ForwardDir {
                    xproj: &xb,
                    gates: &mut gb,
                    w_hh: &wb,
                    reverse,
                    h: hb,
                    c: cb,
                    tanh_c: tcb,
                    h_n: hnb,
                    c_n: cnb,
                };
                sequences_forward(vec![dir], &bs, hh).unwrap();
                let back =
                    |b: &GpuBuffer<f32>| b.to_host().unwrap().iter().map(|&x| x as f64).collect::<Vec<f64>>();
                close(&back(hb), &h, 1e-5, &format!("f32 h {what}"));
                let (dhb, dhnb, dcnb) = (f(&d_h), f(&dhn), f(&dcn));
                // h at an offset of a bigger buffer, as the op's saved output block
                let mut h_at = f(&z(3 + n * hh));
                h_at.copy_from(3, hb, 0, n * hh).unwrap();
                let (mut dzb, mut dwb) = (f(&z(n * 4 * hh)), f(&vec![0.5; 4 * hh * hh]));
                let (act, tanh_c) = (&gb, &*tcb);
                let dir = BackwardDir {
                    act,
                    w_hh: &wb,
                    reverse,
                    h: &h_at,
                    h_offset: 3,
                    c: cb,
                    tanh_c,
                    d_h: &dhb,
                    d_h_offset: 0,
                    d_h_n: &dhnb,
                    d_h_n_offset: 0,
                    d_c_n: &dcnb,
                    d_c_n_offset: 0,
                    d_gates: &mut dzb,
                    d_w_hh: Some(&mut dwb),
                };
                sequences_backward(vec![dir], &bs, hh).unwrap();
                close(&back(&dzb), &dz, 1e-4, &format!("f32 d_gates {what}"));
                close(&back(&dwb), &dw, 1e-4, &format!("f32 d_w_hh {what}"));
            }
        }
    }
}
