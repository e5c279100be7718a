//! Strided, batched matrix products on the GPU (`kernels/cuda/gemm.cu`); the CPU twin
//! is `kernels/src/gemm.rs`, and the operands are described the same way: the sizes as
//! [`Dims`], each operand as a buffer and its [`Strides`] ([`GpuMat`], [`GpuMatMut`], the
//! device twins of `MatRef` and `MatMut`), plus the element where it starts in its buffer
//! (a step's rows of a packed LSTM batch).
//!
//! ```text
//! C_b (m,n) = beta·C_b + bias (n) + A_b (m,k) · B_b (k,n)     b in 0..batch, C row-major
//! ```
//!
//! The bias row is optional ([`GpuMatMut::with_bias`], as `MatMut::with_bias` on the CPU):
//! a linear layer's `x·Wᵀ + b` in one kernel, b added as each C element is stored.
//!
//! [`gemm_tiled`] runs the tiled kernel (a block of 32×8 threads per 64×64 tile of C);
//! [`gemm_naive`] the one-thread-per-element reference kernel the tiled one is tested
//! against. [`gemm`], what the backends call, takes the tiled kernel, or the naive one for a
//! C of fewer elements per batch item than a tile has threads ([`NAIVE_BELOW`]). Both
//! compute each element as the same fma chain in k order, so the choice changes no number.

use super::{count, launch, pick, scalar, GpuBuffer, GpuError, Kernel, KernelArg};
pub use crate::gemm::{Dims, Strides};
use crate::Float;

pub const ENTRIES: &[&str] = &["gemm_naive_f32", "gemm_naive_f64", "gemm_tiled_f32", "gemm_tiled_f64"];

/// A device operand: `buf[offset + b·s.batch + i·s.row + j·s.col]` is element (i, j) of item b.
pub struct GpuMat<'a, T: Float> {
    pub buf: &'a GpuBuffer<T>,
    pub offset: usize,
    pub s: Strides,
}

impl<T: Float> Clone for GpuMat<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: Float> Copy for GpuMat<'_, T> {}

impl<'a, T: Float> GpuMat<'a, T> {
    pub fn new(buf: &'a GpuBuffer<T>, s: Strides) -> Self {
        GpuMat { buf, offset: 0, s }
    }
    /// Row-major, rows `ld` apart.
    pub fn rows(buf: &'a GpuBuffer<T>, ld: usize) -> Self {
        Self::new(buf, Strides { batch: 0, row: ld, col: 1 })
    }
    /// The transpose of a row-major matrix whose rows are `ld` apart.
    pub fn cols(buf: &'a GpuBuffer<T>, ld: usize) -> Self {
        Self::new(buf, Strides { batch: 0, row: 1, col: ld })
    }
    /// Starting `offset` elements into the buffer.
    pub fn at(self, offset: usize) -> Self {
        GpuMat { offset, ..self }
    }
    /// Batch items `stride` elements apart (0: one matrix for every item).
    pub fn batch_stride(self, stride: usize) -> Self {
        GpuMat { s: Strides { batch: stride, ..self.s }, ..self }
    }
}

/// The written operand C: column stride 1, rows `s.row` apart; and an optional bias row of
/// `n` values added to every row of every item.
pub struct GpuMatMut<'a, T: Float> {
    pub buf: &'a mut GpuBuffer<T>,
    pub offset: usize,
    pub s: Strides,
    pub bias: Option<&'a GpuBuffer<T>>,
}

impl<'a, T: Float> GpuMatMut<'a, T> {
    pub fn new(buf: &'a mut GpuBuffer<T>, s: Strides) -> Self {
        GpuMatMut { buf, offset: 0, s, bias: None }
    }
    /// The same C with `bias` (one value per column) added to each of its rows by the product.
    pub fn with_bias(self, bias: &'a GpuBuffer<T>) -> Self {
        GpuMatMut { bias: Some(bias), ..self }
    }
    /// Row-major, rows `ld` apart.
    pub fn rows(buf: &'a mut GpuBuffer<T>, ld: usize) -> Self {
        Self::new(buf, Strides { batch: 0, row: ld, col: 1 })
    }
    /// Starting `offset` elements into the buffer.
    pub fn at(self, offset: usize) -> Self {
        GpuMatMut { offset, ..self }
    }
    /// Batch items `stride` elements apart.
    pub fn batch_stride(self, stride: usize) -> Self {
        GpuMatMut { s: Strides { batch: stride, ..self.s }, ..self }
    }
}

/// Below this many elements of C per batch item, [`gemm`] runs the one-thread-per-element
/// kernel: a tile's block has 256 threads, so a smaller C would leave most of them idle (on a
/// GPU either is one short launch; on the simulated GPU the idle threads still run, and the
/// gradient checks' tiny products spent 86 % of their instructions in them).
pub const NAIVE_BELOW: usize = 256;

/// `C_b = beta·C_b + A_b·B_b` (`+ bias` on every row when C carries one) for every batch
/// item (module doc); the CPU's `gemm::gemm` with device operands. `beta == 0` overwrites C.
/// The tiled kernel, or for a C smaller than [`NAIVE_BELOW`] per item the naive one.
pub fn gemm<T: Float>(d: Dims, a: GpuMat<T>, b: GpuMat<T>, beta: T, c: GpuMatMut<T>) -> Result<(), GpuError> {
    match d.m * d.n < NAIVE_BELOW {
        true => gemm_naive(d, a, b, beta, c),
        false => gemm_tiled(d, a, b, beta, c),
    }
}

/// [`gemm`] by the tiled kernel at any size.
pub fn gemm_tiled<T: Float>(
    d: Dims,
    a: GpuMat<T>,
    b: GpuMat<T>,
    beta: T,
    c: GpuMatMut<T>,
) -> Result<(), GpuError> {
    run(d, (a, b, beta, c), "gemm_tiled_f32", "gemm_tiled_f64")
}

/// [`gemm`] by the reference kernel: one thread per element of C, the k loop in order.
pub fn gemm_naive<T: Float>(
    d: Dims,
    a: GpuMat<T>,
    b: GpuMat<T>,
    beta: T,
    c: GpuMatMut<T>,
) -> Result<(), GpuError> {
    run(d, (a, b, beta, c), "gemm_naive_f32", "gemm_naive_f64")
}

type Operands<'a, T> = (GpuMat<'a, T>, GpuMat<'a, T>, T, GpuMatMut<'a, T>);

fn run<T: Float>(
    d: Dims,
    (a, b, beta, c): Operands<'_, T>,
    f32_entry: &'static str,
    f64_entry: &'static str,
) -> Result<(), GpuError> {
    let Dims { batch, m, n, k } = d;
    let (sa, sb, sc) = (a.s, b.s, c.s);
    assert!(sc.col == 1, "gemm: C must be row-major (column stride 1)");
    check_len("A", a.buf.len(), a.offset, batch, m, k, sa);
    check_len("B", b.buf.len(), b.offset, batch, k, n, sb);
    check_len("C", c.buf.len(), c.offset, batch, m, n, sc);
    if let Some(bias) = c.bias {
        assert!(bias.len() == n, "gemm: the bias has {} elements, C has n = {n} columns", bias.len());
    }
    if batch > 1 {
        assert!(sc.batch != 0, "gemm: C cannot be broadcast over the batch");
    }
    if batch == 0 || m == 0 || n == 0 {
        return Ok(());
    }
    let naive = f32_entry.starts_with("gemm_naive");
    let dims = if naive { launch::linear(batch * m * n) } else { launch::gemm_tiles(batch, m, n) };
    let kernel = Kernel { module: "gemm", entry: pick::<T>(f32_entry, f64_entry) };
    let at =
        |buf: &GpuBuffer<T>, off: usize| KernelArg::Ptr(buf.ptr() + (off * std::mem::size_of::<T>()) as u64);
    let args = [
        scalar::<T>(beta.to_f64()),
        at(a.buf, a.offset),
        at(b.buf, b.offset),
        KernelArg::Ptr(c.bias.map_or(0, |bias| bias.ptr())), // null: no bias
        at(c.buf, c.offset),
        count(batch),
        count(m),
        count(n),
        count(k),
        count(sa.batch),
        count(sa.row),
        count(sa.col),
        count(sb.batch),
        count(sb.row),
        count(sb.col),
        count(sc.batch),
        count(sc.row),
    ];
    a.buf.context().launch(kernel, dims, &args)
}

fn check_len(name: &str, len: usize, offset: usize, batch: usize, rows: usize, cols: usize, s: Strides) {
    if batch == 0 || rows == 0 || cols == 0 {
        return;
    }
    let last = offset + (batch - 1) * s.batch + (rows - 1) * s.row + (cols - 1) * s.col;
    assert!(
        last < len,
        "gemm: operand {name} ({batch}×{rows}×{cols} at offset {offset}, strides {s:?}) needs {} elements, has {len}",
        last + 1
    );
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gemm::{MatMut, MatRef};
    use crate::gpu::testing::{close, down, on, to, tol, up, wide};
    use crate::gpu::{test_contexts, GpuContext};
    use std::sync::Arc;

    /// One of the three entry points.
    type Gemm<T> = fn(Dims, GpuMat<'_, T>, GpuMat<'_, T>, T, GpuMatMut<'_, T>) -> Result<(), GpuError>;

    fn values(len: usize, seed: f64) -> Vec<f64> {
        (0..len)
            .map(|i| {
                ((i as f64 * 0.731 + seed).sin() * 1.7).round_ties_even() * 0.25 + (i as f64 * seed).cos()
            })
            .collect()
    }

    /// `batch`×`m`×`n`×`k` in T, NN, NT, TN and TT layouts, beta 0 and 1 (with a
    /// broadcast B), with and without a bias row: the tiled and the naive kernel against the CPU's `gemm::gemm` in
    /// f64 on the same inputs; f64 to 1e-12, f32 within the rounding of sums of k
    /// products (k·2⁻²³ of the magnitudes' sum), and the two f32 kernels as close.
    pub(crate) fn check<T: Float>(ctx: &Arc<GpuContext>, (batch, m, n, k): (usize, usize, usize, usize)) {
        let t = tol::<T>(4.0 * (k as f64 + 2.0) * f32::EPSILON as f64 * 4.0, 1e-12);
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            for (beta, bcast, with_bias) in
                [(0.0, false, false), (1.0, true, false), (0.0, false, true), (0.5, true, true)]
            {
                let sa = if ta { Strides::transposed(k, m) } else { Strides::row_major(m, k) };
                let sb = if tb { Strides::transposed(n, k) } else { Strides::row_major(k, n) };
                let sb = if bcast { sb.broadcast() } else { sb };
                let sc = Strides::row_major(m, n);
                let (la, lb) = (batch * m * k, if bcast { k * n } else { batch * k * n });
                let a: Vec<T> = to(&values(la, 0.3));
                let b: Vec<T> = to(&values(lb.max(1), 1.1));
                let c0: Vec<T> = to(&values(batch * m * n, 2.9));
                let bias: Vec<T> = to(&values(n, 4.3));
                let mut want = wide(&c0);
                let (a64, b64, bias64) = (wide(&a), wide(&b), wide(&bias));
                let d = Dims::new(m, n, k).batched(batch);
                let c_cpu = MatMut::new(&mut want, sc);
                let c_cpu = if with_bias { c_cpu.with_bias(&bias64) } else { c_cpu };
                crate::gemm::gemm(d, MatRef::new(&a64, sa), MatRef::new(&b64, sb), beta, c_cpu);
                let what = format!(
                    "{batch}×{m}×{n}×{k} ta {ta} tb {tb} beta {beta} bias {with_bias}, {}",
                    on::<T>(ctx)
                );
                let (ab, bb, biasb) = (up(ctx, &a), up(ctx, &b), up(ctx, &bias));
                let beta = T::from_f64(beta);
                let mut got = Vec::new();
                // the tiled kernel, the naive one, and `gemm`, which picks one of them by size
                for (f, name) in
                    [(gemm_tiled::<T> as Gemm<T>, "tiled"), (gemm_naive, "naive"), (gemm, "gemm")]
                {
                    let mut cb = up(ctx, &c0);
                    let (a_op, b_op) = (GpuMat::new(&ab, sa), GpuMat::new(&bb, sb));
                    let c_op = GpuMatMut::new(&mut cb, sc);
                    let c_op = if with_bias { c_op.with_bias(&biasb) } else { c_op };
                    f(d, a_op, b_op, beta, c_op).unwrap();
                    close(&down(&cb), &want, t, &format!("{name} {what}"));
                    got.push(down(&cb));
                }
                for (i, (tiled, naive)) in got[0].iter().zip(&got[1]).enumerate() {
                    assert!(
                        (tiled - naive).abs() <= t * (1.0 + want[i].abs()),
                        "tiled vs naive {what} at {i}"
                    );
                }
                let picked = if m * n < NAIVE_BELOW { &got[1] } else { &got[0] };
                let same = got[2].iter().zip(picked).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "gemm is not the kernel it picks for {m}×{n}: {what}");
            }
        }
    }

    /// Odd sizes, tiles cut at every edge, k = 0 (C = beta·C + bias), C on both sides of
    /// [`NAIVE_BELOW`] (15×17 and 16×16).
    #[test]
    fn tiled_and_naive_match_cpu() {
        for ctx in test_contexts() {
            let shapes = [
                (1, 1, 1, 1),
                (3, 5, 7, 3),
                (2, 15, 17, 4),
                (1, 16, 16, 5),
                (2, 67, 33, 19),
                (1, 130, 65, 70),
                (2, 3, 70, 0),
            ];
            for shape in shapes {
                check::<f64>(&ctx, shape);
                check::<f32>(&ctx, shape);
            }
        }
    }

    #[test]
    #[should_panic(expected = "gemm: the bias has 2 elements, C has n = 3 columns")]
    fn short_bias_panics_naming_it() {
        let ctx = crate::gpu::sim_context();
        let (ab, bb, bias) = (up(&ctx, &[1.0f32; 4]), up(&ctx, &[1.0f32; 6]), up(&ctx, &[1.0f32; 2]));
        let mut cb = up(&ctx, &[0.0f32; 6]);
        let (a, b) = (GpuMat::rows(&ab, 2), GpuMat::rows(&bb, 3));
        gemm(Dims::new(2, 3, 2), a, b, 0.0, GpuMatMut::rows(&mut cb, 3).with_bias(&bias)).unwrap();
    }

    /// Operands at offsets (rows of a bigger buffer), and beta = 0 ignoring NaN in C.
    #[test]
    fn offsets_and_beta_zero_overwrites_nan() {
        for ctx in test_contexts() {
            let (m, n, k) = (5, 6, 7);
            let a = values(3 + m * k, 0.7);
            let b = values(2 + k * n, 1.9);
            let mut want = vec![0.0; m * n];
            let (sa, sb, sc) = (Strides::row_major(m, k), Strides::row_major(k, n), Strides::row_major(m, n));
            let (a_at, b_at) = (MatRef::new(&a[3..], sa), MatRef::new(&b[2..], sb));
            crate::gemm::gemm(Dims::new(m, n, k), a_at, b_at, 0.0, MatMut::new(&mut want, sc));
            let (ab, bb) = (GpuBuffer::from_host(&ctx, &a).unwrap(), GpuBuffer::from_host(&ctx, &b).unwrap());
            let mut cb = GpuBuffer::from_host(&ctx, &vec![f64::NAN; 4 + m * n]).unwrap();
            let (a_op, b_op) = (GpuMat::new(&ab, sa).at(3), GpuMat::new(&bb, sb).at(2));
            gemm(Dims::new(m, n, k), a_op, b_op, 0.0, GpuMatMut::new(&mut cb, sc).at(4)).unwrap();
            let got = cb.to_host().unwrap();
            assert!(got[..4].iter().all(|v| v.is_nan()), "wrote before the offset");
            for (i, (g, w)) in got[4..].iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 1e-12 * (1.0 + w.abs()), "at {i}: {g} vs {w}");
            }
        }
    }
}
