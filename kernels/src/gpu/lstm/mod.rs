//! The LSTM on the GPU (`kernels/cuda/lstm.cu`); the CPU twin (and the math) is
//! `kernels/src/lstm/`: the fused cell and the h/c interleave copies here, the packed
//! recurrence in `sequence`. Same arguments as the CPU functions, device buffers
//! for slices.

mod sequence;
pub use sequence::*;

use super::{count, launch, pick, DevPtr, GpuBuffer, GpuError, Kernel, KernelArg};
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

/// Fused cell backward: from the saved activations `act` `[rows, 4H]`, `c_prev`
/// `[p, H]`, `tanh_c`, `dh`, `dc` `[rows, H]`; writes `d_gates` `[rows, 4H]` and
/// `dc_prev` `[p, H]`.
#[allow(clippy::too_many_arguments)]
pub fn cell_backward<T: Float>(
    act: &GpuBuffer<T>,
    c_prev: &GpuBuffer<T>,
    tanh_c: &GpuBuffer<T>,
    dh: &GpuBuffer<T>,
    dc: &GpuBuffer<T>,
    hidden: usize,
    d_gates: &mut GpuBuffer<T>,
    dc_prev: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    let hh = hidden;
    if hh == 0 {
        return Ok(());
    }
    let rows = act.len() / (4 * hh);
    assert!(
        act.len() == rows * 4 * hh && d_gates.len() == rows * 4 * hh,
        "lstm cell: gates must be [rows, 4H]"
    );
    assert!(tanh_c.len() == rows * hh && dh.len() == rows * hh && dc.len() == rows * hh);
    assert!(
        c_prev.len() <= rows * hh && dc_prev.len() == c_prev.len() && c_prev.len().is_multiple_of(hh),
        "lstm cell: c_prev must be [p ≤ rows, H]"
    );
    if rows == 0 {
        return Ok(());
    }
    let p = c_prev.len() / hh;
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
mod tests {
    use super::*;
    use crate::gpu::test_contexts;
    use crate::lstm as cpu;

    /// The cell, interleave and recurrence launches fit their PTX `.param` lists, f32
    /// and f64 (no GPU needed).
    #[test]
    fn launches_fit_their_entries() {
        fn run<T: Float>() {
            let ctx = crate::gpu::param_check::context();
            let z = |n| GpuBuffer::<T>::zeros(&ctx, n).unwrap();
            let (rows, hh) = (3, 2);
            let (mut gates, c_prev) = (z(rows * 4 * hh), z(2 * hh));
            let (mut c, mut tc, mut h) = (z(rows * hh), z(rows * hh), z(rows * hh));
            cell_forward(&mut gates, &c_prev, hh, &mut c, &mut tc, &mut h).unwrap();
            let (mut dz, mut dcp) = (z(rows * 4 * hh), z(2 * hh));
            cell_backward(&gates, &c_prev, &tc, &h, &c, hh, &mut dz, &mut dcp).unwrap();
            let mut hc = z(2 * rows * hh);
            interleave_hc(&h, &c, hh, &mut hc).unwrap();
            split_hc(&hc, hh, &mut h, &mut c).unwrap();
            let bs = [2, 1];
            let (mut gates, w) = (z(3 * 4 * hh), z(4 * hh * hh));
            let (mut h, mut c, mut tc, mut hn, mut cn) =
                (z(3 * hh), z(3 * hh), z(3 * hh), z(2 * hh), z(2 * hh));
            sequence_forward(&mut gates, &w, &bs, hh, true, &mut h, &mut c, &mut tc, &mut hn, &mut cn)
                .unwrap();
            let (mut dz, mut dw) = (z(3 * 4 * hh), z(4 * hh * hh));
            sequence_backward(
                &gates,
                &w,
                &bs,
                hh,
                true,
                &h,
                0,
                &c,
                &tc,
                &h,
                0,
                &hn,
                0,
                &cn,
                0,
                &mut dz,
                Some(&mut dw),
            )
            .unwrap();
        }
        run::<f32>();
        run::<f64>();
    }

    pub(super) fn values(len: usize, seed: f64, scale: f64) -> Vec<f64> {
        (0..len).map(|i| (i as f64 * 0.7548 + seed).sin() * scale).collect()
    }

    pub(super) fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what} at {i}: {g} vs {w}");
        }
    }

    /// The cell forward and backward, with fewer previous rows than rows, against the
    /// CPU cell; f64 to 1e-12, f32 within rounding.
    #[test]
    fn cell_matches_cpu() {
        for ctx in test_contexts() {
            for &(rows, hh, p) in &[(1, 1, 1), (5, 7, 3), (9, 33, 9)] {
                let what = format!("rows {rows} H {hh} p {p} on {}", ctx.name());
                let pre = values(rows * 4 * hh, 0.2, 4.0);
                let cp = values(p * hh, 1.1, 2.0);
                let (dh, dc) = (values(rows * hh, 2.5, 1.0), values(rows * hh, 3.3, 1.0));
                let mut act = pre.clone();
                let z = |n: usize| vec![0.0; n];
                let (mut c, mut tc, mut h) = (z(rows * hh), z(rows * hh), z(rows * hh));
                cpu::cell_forward(&mut act, &cp, hh, &mut c, &mut tc, &mut h);
                let (mut dz, mut dcp) = (z(rows * 4 * hh), z(p * hh));
                cpu::cell_backward(&act, &cp, &tc, &dh, &dc, hh, &mut dz, &mut dcp);
                let up = |v: &[f64]| GpuBuffer::from_host(&ctx, v).unwrap();
                let (mut gb, cpb) = (up(&pre), up(&cp));
                let mut outs: Vec<GpuBuffer<f64>> = (0..3).map(|_| up(&z(rows * hh))).collect();
                let [cb, tcb, hb] = &mut outs[..] else { unreachable!() };
                cell_forward(&mut gb, &cpb, hh, cb, tcb, hb).unwrap();
                close(&gb.to_host().unwrap(), &act, 1e-12, &format!("act {what}"));
                close(&cb.to_host().unwrap(), &c, 1e-12, &format!("c {what}"));
                close(&tcb.to_host().unwrap(), &tc, 1e-12, &format!("tanh c {what}"));
                close(&hb.to_host().unwrap(), &h, 1e-12, &format!("h {what}"));
                let (dhb, dcb) = (up(&dh), up(&dc));
                let (mut dzb, mut dcpb) = (up(&z(rows * 4 * hh)), up(&z(p * hh)));
                cell_backward(&gb, &cpb, tcb, &dhb, &dcb, hh, &mut dzb, &mut dcpb).unwrap();
                close(&dzb.to_host().unwrap(), &dz, 1e-12, &format!("dz {what}"));
                close(&dcpb.to_host().unwrap(), &dcp, 1e-12, &format!("dc_prev {what}"));
                // f32 forward within rounding (σ, tanh to a few ulps)
                let f = |v: &[f64]| {
                    GpuBuffer::from_host(&ctx, &v.iter().map(|&x| x as f32).collect::<Vec<_>>()).unwrap()
                };
                let (mut gb, cpb) = (f(&pre), f(&cp));
                let mut outs: Vec<GpuBuffer<f32>> = (0..3).map(|_| f(&z(rows * hh))).collect();
                let [cb, tcb, hb] = &mut outs[..] else { unreachable!() };
                cell_forward(&mut gb, &cpb, hh, cb, tcb, hb).unwrap();
                let h32: Vec<f64> = hb.to_host().unwrap().iter().map(|&x| x as f64).collect();
                close(&h32, &h, 2e-6, &format!("f32 h {what}"));
            }
        }
    }

    #[test]
    fn interleave_and_split_match_cpu() {
        for ctx in test_contexts() {
            let (rows, hh) = (5, 7);
            let (h, c) = (values(rows * hh, 0.1, 1.0), values(rows * hh, 0.9, 1.0));
            let mut hc = vec![0.0; 2 * rows * hh];
            cpu::interleave_hc(&h, &c, hh, &mut hc);
            let (hb, cb) = (GpuBuffer::from_host(&ctx, &h).unwrap(), GpuBuffer::from_host(&ctx, &c).unwrap());
            let mut hcb = GpuBuffer::<f64>::uninit(&ctx, 2 * rows * hh).unwrap();
            interleave_hc(&hb, &cb, hh, &mut hcb).unwrap();
            assert_eq!(hcb.to_host().unwrap(), hc);
            let g = values(2 * rows * hh, 1.7, 1.0);
            let (mut dh, mut dc) = (vec![0.0; rows * hh], vec![0.0; rows * hh]);
            cpu::split_hc(&g, hh, &mut dh, &mut dc);
            let gb = GpuBuffer::from_host(&ctx, &g).unwrap();
            let (mut dhb, mut dcb) =
                (GpuBuffer::uninit(&ctx, rows * hh).unwrap(), GpuBuffer::uninit(&ctx, rows * hh).unwrap());
            split_hc(&gb, hh, &mut dhb, &mut dcb).unwrap();
            assert_eq!((dhb.to_host().unwrap(), dcb.to_host().unwrap()), (dh, dc));
        }
    }
}
