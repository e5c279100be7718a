//! NumPy broadcasting on the GPU (`kernels/cuda/broadcast.cu`); the CPU twin is
//! `kernels/src/broadcast.rs`. Shapes are simplified on the host
//! ([`Strided::simplify`]) and passed as fixed-size parameters (≤ 6 dims after
//! simplification; more is a [`GpuError::Launch`] naming the shapes).

use super::launch::{self, row_major, Strided};
use super::{count, pick, GpuBuffer, GpuError, Kernel, KernelArg};
use crate::broadcast::{broadcast_strides, Binary};
use crate::Float;

pub const ENTRIES: &[&str] = &[
    "binary_f32",
    "binary_f64",
    "expand_f32",
    "expand_f64",
    "sum_to_thread_f32",
    "sum_to_thread_f64",
    "sum_to_block_f32",
    "sum_to_block_f64",
];

fn kernel<T: Float>(f32_entry: &'static str, f64_entry: &'static str) -> Kernel {
    Kernel { module: "broadcast", entry: pick::<T>(f32_entry, f64_entry) }
}

fn too_many_dims(kernel: Kernel, what: String) -> GpuError {
    GpuError::Launch { kernel: kernel.entry.into(), message: format!("{what} needs more than 6 dims") }
}

/// out = op(a, b) with broadcasting.        a (a_shape), b (b_shape), out (out_shape)
pub fn binary<T: Float>(
    op: Binary,
    a: &GpuBuffer<T>,
    a_shape: &[usize],
    b: &GpuBuffer<T>,
    b_shape: &[usize],
    out_shape: &[usize],
    out: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    let n = out.len();
    assert_eq!(n, out_shape.iter().product::<usize>(), "binary: out holds {n} elements for {out_shape:?}");
    assert_eq!(a.len(), a_shape.iter().product::<usize>(), "binary: a holds {} for {a_shape:?}", a.len());
    assert_eq!(b.len(), b_shape.iter().product::<usize>(), "binary: b holds {} for {b_shape:?}", b.len());
    let k = kernel::<T>("binary_f32", "binary_f64");
    if n == 0 {
        return Ok(());
    }
    let (sa, sb) = (broadcast_strides(a_shape, out_shape), broadcast_strides(b_shape, out_shape));
    let walk = Strided::simplify(out_shape, [&sa, &sb]);
    let dims = walk.params().ok_or_else(|| too_many_dims(k, format!("{a_shape:?} {op:?} {b_shape:?}")))?;
    let mut args = vec![KernelArg::U32(op.code())];
    args.extend(dims);
    args.extend([a.arg(), b.arg(), out.arg(), count(n)]);
    out.context().launch(k, launch::linear(n), &args)
}

/// out = x broadcast to `out_shape` (a copy).       x (x_shape), out (out_shape)
pub fn expand<T: Float>(
    x: &GpuBuffer<T>,
    x_shape: &[usize],
    out_shape: &[usize],
    out: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    let n = out.len();
    assert_eq!(n, out_shape.iter().product::<usize>(), "expand: out holds {n} elements for {out_shape:?}");
    assert_eq!(x.len(), x_shape.iter().product::<usize>(), "expand: x holds {} for {x_shape:?}", x.len());
    let k = kernel::<T>("expand_f32", "expand_f64");
    if n == 0 {
        return Ok(());
    }
    let sx = broadcast_strides(x_shape, out_shape);
    let walk = Strided::simplify(out_shape, [&sx]);
    let mut args =
        walk.params().ok_or_else(|| too_many_dims(k, format!("expand {x_shape:?} → {out_shape:?}")))?;
    args.extend([x.arg(), out.arg(), count(n)]);
    out.context().launch(k, launch::linear(n), &args)
}

/// The adjoint of [`expand`]: out = x summed down to `target_shape` (which broadcasts
/// to `x_shape`); out is overwritten.        x (x_shape), out (target_shape)
///
/// Each output element sums its preimage in a fixed order (one owner, no atomics):
/// with one thread per output when the preimage is short (≤ 32) or the outputs are
/// many and adjacent in x (coalesced reads), else with one block per output.
pub fn sum_to<T: Float>(
    x: &GpuBuffer<T>,
    x_shape: &[usize],
    target_shape: &[usize],
    out: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    let n = out.len();
    assert_eq!(n, target_shape.iter().product::<usize>(), "sum_to: out holds {n} for {target_shape:?}");
    assert_eq!(x.len(), x_shape.iter().product::<usize>(), "sum_to: x holds {} for {x_shape:?}", x.len());
    if n == 0 {
        return Ok(());
    }
    // Split x's dims into kept (the target has them) and reduced (the target is 1 there).
    let st = broadcast_strides(target_shape, x_shape);
    let sx = row_major(x_shape);
    let (mut kept, mut kept_sx, mut red, mut red_sx) = (vec![], vec![], vec![], vec![]);
    for k in 0..x_shape.len() {
        if st[k] == 0 && x_shape[k] != 1 {
            red.push(x_shape[k]);
            red_sx.push(sx[k]);
        } else {
            kept.push(x_shape[k]);
            kept_sx.push(sx[k]);
        }
    }
    let (kept, red) = (Strided::simplify(&kept, [&kept_sx]), Strided::simplify(&red, [&red_sx]));
    let rn = red.numel();
    let coalesced = kept.strides[0].last() == Some(&1);
    let by_thread = rn <= 32 || (coalesced && n >= 4096);
    let k = if by_thread {
        kernel::<T>("sum_to_thread_f32", "sum_to_thread_f64")
    } else {
        kernel::<T>("sum_to_block_f32", "sum_to_block_f64")
    };
    let shapes = || format!("sum_to {x_shape:?} → {target_shape:?}");
    let mut args = kept.params().ok_or_else(|| too_many_dims(k, shapes()))?;
    args.extend(red.params().ok_or_else(|| too_many_dims(k, shapes()))?);
    args.extend([x.arg(), out.arg(), count(n), count(rn)]);
    let dims =
        if by_thread { launch::linear(n) } else { launch::rows(n, if rn >= 1024 { 256 } else { 128 }) };
    out.context().launch(k, dims, &args)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::broadcast::{broadcast_shape, expand as expand_cpu, sum_to as sum_to_cpu};
    use crate::gpu::testing::{close, down, on, out, tol, up, wide};
    use crate::gpu::{sim_context, test_contexts, GpuContext};
    use std::sync::Arc;

    fn data<T: Float>(n: usize, k: f64) -> Vec<T> {
        (0..n).map(|i| T::from_f64(((i as f64 + k) * 0.731).sin() * 2.0 + 0.1)).collect()
    }

    /// a (`sa`) op b (`sb`) for every op, each operand expanded to the broadcast shape,
    /// and a tensor of that shape summed down to each operand's shape, in T: binary and
    /// expand are the CPU's bits (one rounding of the same op), sum_to is within
    /// reassociation of the f64 sum of the same inputs (per summed element, 1e-12 in f64,
    /// 1e-6 in f32).
    pub(crate) fn check<T: Float>(ctx: &Arc<GpuContext>, sa: &[usize], sb: &[usize]) {
        let what = format!("{sa:?} {sb:?}, {}", on::<T>(ctx));
        let shape = broadcast_shape(sa, sb).unwrap();
        let n: usize = shape.iter().product();
        let (a, b) = (data::<T>(sa.iter().product(), 0.0), data::<T>(sb.iter().product(), 3.0));
        let (ga, gb) = (up(ctx, &a), up(ctx, &b));
        let mut got = out::<T>(ctx, n);
        for op in Binary::ALL {
            let mut want = vec![T::ZERO; n];
            crate::broadcast::binary(op, &a, sa, &b, sb, &shape, &mut want);
            binary(op, &ga, sa, &gb, sb, &shape, &mut got).unwrap();
            assert_eq!(got.to_host().unwrap(), want, "{op:?} {what}");
        }
        for (s, v, g) in [(sa, &a, &ga), (sb, &b, &gb)] {
            let mut want = vec![T::ZERO; n];
            expand_cpu(v, s, &shape, &mut want);
            expand(g, s, &shape, &mut got).unwrap();
            assert_eq!(got.to_host().unwrap(), want, "expand {s:?} → {shape:?}, {what}");
            let big = data::<T>(n, 1.0);
            let mut want = vec![0.0; v.len()];
            sum_to_cpu(&wide(&big), &shape, s, &mut want);
            let mut sum = out::<T>(ctx, v.len());
            sum_to(&up(ctx, &big), &shape, s, &mut sum).unwrap();
            let bound = tol::<T>(1e-6, 1e-12) * (n as f64 / v.len().max(1) as f64 + 1.0);
            close(&down(&sum), &want, bound, &format!("sum_to {shape:?} → {s:?}, {what}"));
        }
    }

    /// (a shape, b shape): odd sizes, every broadcasting pattern, a rank-7 problem that
    /// simplifies to ≤ 6 dims, and long reductions that take the block kernel.
    const CASES: &[(&[usize], &[usize])] = &[
        (&[5], &[5]),
        (&[3, 1, 5], &[4, 1]),
        (&[7, 3], &[3]),
        (&[7, 3], &[7, 1]),
        (&[], &[2, 3]),
        (&[2, 1, 3, 1, 5], &[1, 4, 1, 3, 1]),
        (&[2, 3, 1, 5, 1, 3, 2], &[2, 3, 4, 5, 1, 3, 2]),
        (&[1, 1000], &[37, 1]),
        (&[5000, 3], &[3]),
    ];

    #[test]
    fn binary_expand_and_sum_to_match_cpu() {
        for ctx in test_contexts() {
            for &(sa, sb) in CASES {
                check::<f64>(&ctx, sa, sb);
                check::<f32>(&ctx, sa, sb);
            }
        }
    }

    #[test]
    fn too_many_dims_is_an_error() {
        let ctx = sim_context();
        let shape = [2usize; 7];
        let mut out = GpuBuffer::<f32>::zeros(&ctx, 128).unwrap();
        // x (1,2,1,2,1,2,1) → alternating broadcast dims never merge
        let xs = [1, 2, 1, 2, 1, 2, 1];
        let big = GpuBuffer::<f32>::zeros(&ctx, 8).unwrap();
        let e = expand(&big, &xs, &shape, &mut out).unwrap_err();
        assert!(e.to_string().contains("more than 6 dims"), "{e}");
        assert!(ctx.launched().is_empty(), "nothing may run: {:?}", ctx.launched());
    }
}
