//! The LSTM on the GPU (`kernels/cuda/lstm.cu`); the CPU twin (and the math) is
//! `kernels/src/lstm/`: the fused cell and the h/c interleave copies here, the packed
//! recurrence in `sequence`. Same arguments as the CPU functions, device buffers
//! for slices.

mod sequence;
pub use sequence::*;

use super::{count, launch, pick, DevPtr, GpuBuffer, GpuError, Kernel, KernelArg};
pub use crate::lstm::{CellBackwardIn, CellGrads};
use crate::Float;

pub const ENTRIES: &[&str] = &[
    "lstm_cell_fwd_f32",
    "lstm_cell_fwd_f64",
    "lstm_cell_bwd_f32",
    "lstm_cell_bwd_f64",
    "lstm_interleave_f32",
    "lstm_interleave_f64",
    "lstm_split_f32",
    "lstm_split_f64",
];

fn kernel<T: Float>(f32_entry: &'static str, f64_entry: &'static str) -> Kernel {
    Kernel { module: "lstm", entry: pick::<T>(f32_entry, f64_entry) }
}

/// Element `offset` of `buf` as a kernel argument.
fn at<T: Float>(buf: &GpuBuffer<T>, offset: usize) -> KernelArg {
    KernelArg::Ptr(buf.ptr() + (offset * std::mem::size_of::<T>()) as DevPtr)
}

/// A cell launch (`on`: any buffer of the device, for its context and element type)
/// on rows of bigger buffers (the recurrence's steps): pointers already
/// offset to the rows, `rows` rows of which the first `p` have a previous state.
struct CellFwd {
    gates: KernelArg,
    c_prev: KernelArg,
    c: KernelArg,
    tanh_c: KernelArg,
    h: KernelArg,
    rows: usize,
    p: usize,
    hidden: usize,
}

impl CellFwd {
    fn launch<T: Float>(self, on: &GpuBuffer<T>) -> Result<(), GpuError> {
        let CellFwd { gates, c_prev, c, tanh_c, h, rows, p, hidden } = self;
        let k = kernel::<T>("lstm_cell_fwd_f32", "lstm_cell_fwd_f64");
        let args = [gates, c_prev, c, tanh_c, h, count(rows), count(p), count(hidden)];
        on.context().launch(k, launch::linear(rows * hidden), &args)
    }
}

/// The backward cell launch; `dh_add` (null: none) is added to `dh`, and `dc_prev` may
/// be `dc` itself.
struct CellBwd {
    act: KernelArg,
    c_prev: KernelArg,
    tanh_c: KernelArg,
    dh: KernelArg,
    dh_add: KernelArg,
    dc: KernelArg,
    d_gates: KernelArg,
    dc_prev: KernelArg,
    rows: usize,
    p: usize,
    hidden: usize,
}

impl CellBwd {
    fn launch<T: Float>(self, on: &GpuBuffer<T>) -> Result<(), GpuError> {
        let CellBwd { act, c_prev, tanh_c, dh, dh_add, dc, d_gates, dc_prev, rows, p, hidden } = self;
        let k = kernel::<T>("lstm_cell_bwd_f32", "lstm_cell_bwd_f64");
        let args =
            [act, c_prev, tanh_c, dh, dh_add, dc, d_gates, dc_prev, count(rows), count(p), count(hidden)];
        on.context().launch(k, launch::linear(rows * hidden), &args)
    }
}

/// Fused cell forward: `gates` `[rows, 4H]` pre-activations in, activations out;
/// `c_prev` `[p ≤ rows, H]` (missing rows are zero); writes `c`, `tanh_c`, `h` `[rows, H]`.
pub fn cell_forward<T: Float>(
    gates: &mut GpuBuffer<T>,
    c_prev: &GpuBuffer<T>,
    hidden: usize,
    c: &mut GpuBuffer<T>,
    tanh_c: &mut GpuBuffer<T>,
    h: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    let hh = hidden;
    if hh == 0 {
        return Ok(());
    }
    let rows = gates.len() / (4 * hh);
    assert_eq!(gates.len(), rows * 4 * hh, "lstm cell: gates must be [rows, 4H]");
    assert!(c.len() == rows * hh && tanh_c.len() == rows * hh && h.len() == rows * hh);
    assert!(
        c_prev.len().is_multiple_of(hh) && c_prev.len() <= rows * hh,
        "lstm cell: c_prev must be [p ≤ rows, H]"
    );
    if rows == 0 {
        return Ok(());
    }
    let p = c_prev.len() / hh;
    let (c_prev, on) = (c_prev.arg(), c_prev);
    CellFwd { gates: gates.arg(), c_prev, c: c.arg(), tanh_c: tanh_c.arg(), h: h.arg(), rows, p, hidden: hh }
        .launch(on)
}

/// Fused cell backward (`lstm::cell_backward`'s math and argument structs, on device
/// buffers): reads `x`, writes `out`.
pub fn cell_backward<T: Float>(
    x: CellBackwardIn<'_, GpuBuffer<T>>,
    out: CellGrads<'_, GpuBuffer<T>>,
) -> Result<(), GpuError> {
    let hh = x.hidden;
    if hh == 0 {
        return Ok(());
    }
    let (rows, p) = x.check(&out);
    if rows == 0 {
        return Ok(());
    }
    let (CellBackwardIn { act, c_prev, tanh_c, dh, dc, .. }, CellGrads { d_gates, dc_prev }) = (x, out);
    CellBwd {
        act: act.arg(),
        c_prev: c_prev.arg(),
        tanh_c: tanh_c.arg(),
        dh: dh.arg(),
        dh_add: KernelArg::Ptr(0),
        dc: dc.arg(),
        d_gates: d_gates.arg(),
        dc_prev: dc_prev.arg(),
        rows,
        p,
        hidden: hh,
    }
    .launch(act)
}

/// `hc` `[rows, 2H]` = `[h | c]` per row, from `h` and `c` `[rows, H]`.
pub fn interleave_hc<T: Float>(
    h: &GpuBuffer<T>,
    c: &GpuBuffer<T>,
    hidden: usize,
    hc: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    assert!(h.len() == c.len() && hc.len() == 2 * h.len(), "interleave_hc: h, c [rows, H] and hc [rows, 2H]");
    if hidden == 0 || h.is_empty() {
        return Ok(());
    }
    let rows = h.len() / hidden;
    let k = kernel::<T>("lstm_interleave_f32", "lstm_interleave_f64");
    let args = [h.arg(), c.arg(), hc.arg(), count(rows), count(hidden)];
    h.context().launch(k, launch::linear(hc.len()), &args)
}

/// `g_hc` `[rows, 2H]` split into `dh` and `dc` `[rows, H]`.
pub fn split_hc<T: Float>(
    g_hc: &GpuBuffer<T>,
    hidden: usize,
    dh: &mut GpuBuffer<T>,
    dc: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    assert!(
        dh.len() == dc.len() && g_hc.len() == 2 * dh.len(),
        "split_hc: g_hc [rows, 2H] and dh, dc [rows, H]"
    );
    if hidden == 0 || g_hc.is_empty() {
        return Ok(());
    }
    let rows = dh.len() / hidden;
    let k = kernel::<T>("lstm_split_f32", "lstm_split_f64");
    let args = [g_hc.arg(), dh.arg(), dc.arg(), count(rows), count(hidden)];
    g_hc.context().launch(k, launch::linear(g_hc.len()), &args)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gpu::testing::{close, down, on, to, tol, up, wide};
    use crate::gpu::{test_contexts, GpuContext};
    use crate::lstm as cpu;
    use std::sync::Arc;

    pub(super) fn values(len: usize, seed: f64, scale: f64) -> Vec<f64> {
        (0..len).map(|i| (i as f64 * 0.7548 + seed).sin() * scale).collect()
    }

    /// The cell forward and backward in T on `rows` rows of H = `hh`, `p` of them with a
    /// previous state, against the CPU cell in f64 on the same inputs: f64 to 1e-12; f32
    /// within rounding (σ and tanh to a few ulps: 2e-6).
    pub(crate) fn check_cell<T: Float>(ctx: &Arc<GpuContext>, rows: usize, hh: usize, p: usize) {
        let what = format!("rows {rows} H {hh} p {p}, {}", on::<T>(ctx));
        let (t_fwd, t_bwd) = (tol::<T>(2e-6, 1e-12), tol::<T>(2e-6, 1e-12));
        let pre: Vec<T> = to(&values(rows * 4 * hh, 0.2, 4.0));
        let cp: Vec<T> = to(&values(p * hh, 1.1, 2.0));
        let (dh, dc): (Vec<T>, Vec<T>) = (to(&values(rows * hh, 2.5, 1.0)), to(&values(rows * hh, 3.3, 1.0)));
        let mut act = wide(&pre);
        let z = |n: usize| vec![0.0; n];
        let (mut c, mut tc, mut h) = (z(rows * hh), z(rows * hh), z(rows * hh));
        cpu::cell_forward(&mut act, &wide(&cp), hh, &mut c, &mut tc, &mut h);
        let (mut dz, mut dcp) = (z(rows * 4 * hh), z(p * hh));
        let (cpw, dhw, dcw) = (wide(&cp), wide(&dh), wide(&dc));
        let x = CellBackwardIn { act: &act[..], c_prev: &cpw, tanh_c: &tc, dh: &dhw, dc: &dcw, hidden: hh };
        cpu::cell_backward(x, CellGrads { d_gates: &mut dz, dc_prev: &mut dcp });
        let zeros = |n: usize| up(ctx, &vec![T::ZERO; n]);
        let (mut gb, cpb) = (up(ctx, &pre), up(ctx, &cp));
        let mut outs: Vec<GpuBuffer<T>> = (0..3).map(|_| zeros(rows * hh)).collect();
        let [cb, tcb, hb] = &mut outs[..] else { unreachable!() };
        cell_forward(&mut gb, &cpb, hh, cb, tcb, hb).unwrap();
        close(&down(&gb), &act, t_fwd, &format!("act {what}"));
        close(&down(cb), &c, t_fwd, &format!("c {what}"));
        close(&down(tcb), &tc, t_fwd, &format!("tanh c {what}"));
        close(&down(hb), &h, t_fwd, &format!("h {what}"));
        let (dhb, dcb) = (up(ctx, &dh), up(ctx, &dc));
        let (mut dzb, mut dcpb) = (zeros(rows * 4 * hh), zeros(p * hh));
        let x = CellBackwardIn { act: &gb, c_prev: &cpb, tanh_c: tcb, dh: &dhb, dc: &dcb, hidden: hh };
        cell_backward(x, CellGrads { d_gates: &mut dzb, dc_prev: &mut dcpb }).unwrap();
        close(&down(&dzb), &dz, t_bwd, &format!("dz {what}"));
        close(&down(&dcpb), &dcp, t_bwd, &format!("dc_prev {what}"));
    }

    /// h and c `[rows, H]` interleaved into `[rows, 2H]` and split back: the CPU's bits.
    pub(crate) fn check_interleave<T: Float>(ctx: &Arc<GpuContext>, rows: usize, hh: usize) {
        let what = format!("rows {rows} H {hh}, {}", on::<T>(ctx));
        let (h, c): (Vec<T>, Vec<T>) = (to(&values(rows * hh, 0.1, 1.0)), to(&values(rows * hh, 0.9, 1.0)));
        let mut hc = vec![T::ZERO; 2 * rows * hh];
        cpu::interleave_hc(&h, &c, hh, &mut hc);
        let mut hcb = GpuBuffer::<T>::uninit(ctx, 2 * rows * hh).unwrap();
        interleave_hc(&up(ctx, &h), &up(ctx, &c), hh, &mut hcb).unwrap();
        assert_eq!(hcb.to_host().unwrap(), hc, "interleave {what}");
        let g: Vec<T> = to(&values(2 * rows * hh, 1.7, 1.0));
        let (mut dh, mut dc) = (vec![T::ZERO; rows * hh], vec![T::ZERO; rows * hh]);
        cpu::split_hc(&g, hh, &mut dh, &mut dc);
        let (mut dhb, mut dcb) =
            (GpuBuffer::uninit(ctx, rows * hh).unwrap(), GpuBuffer::uninit(ctx, rows * hh).unwrap());
        split_hc(&up(ctx, &g), hh, &mut dhb, &mut dcb).unwrap();
        assert_eq!((dhb.to_host().unwrap(), dcb.to_host().unwrap()), (dh, dc), "split {what}");
    }

    /// Fewer previous rows than rows, H shorter and longer than a warp.
    #[test]
    fn cell_matches_cpu() {
        for ctx in test_contexts() {
            for (rows, hh, p) in [(1, 1, 1), (5, 7, 3), (9, 33, 9)] {
                check_cell::<f64>(&ctx, rows, hh, p);
                check_cell::<f32>(&ctx, rows, hh, p);
            }
        }
    }

    #[test]
    fn interleave_and_split_match_cpu() {
        for ctx in test_contexts() {
            check_interleave::<f64>(&ctx, 5, 7);
            check_interleave::<f32>(&ctx, 5, 7);
        }
    }
}
