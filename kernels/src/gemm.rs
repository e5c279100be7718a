//! Matrix products on strided operands, generic over the element type.
//!
//! `C = beta·C + A·B` with `A(i,p) = a[i·rsa + p·csa]`, `B(p,j) = b[p·rsb + j·csb]`:
//! transposes are only a change of strides, so autograd's backward products
//! (`dA = dC·Bᵀ`, `dB = Aᵀ·dC`) need no copies.

use crate::sgemm::reference::gemm_reference;
use crate::sgemm::sgemm_batched;
use crate::{as_f32, as_f32_mut, Float};

/// Strided operand: where a matrix starts in its buffer and how to step.
#[derive(Clone, Copy, Debug)]
pub struct Strides {
    /// Offset between consecutive matrices of a batch (0 broadcasts one matrix).
    pub batch: usize,
    /// Step between rows.
    pub row: usize,
    /// Step between columns.
    pub col: usize,
}

impl Strides {
    /// A row-major `rows × cols` matrix, batched back to back.
    pub fn row_major(rows: usize, cols: usize) -> Self {
        Strides { batch: rows * cols, row: cols, col: 1 }
    }
    /// The transpose of a row-major `rows × cols` matrix (read as `cols × rows`).
    pub fn transposed(rows: usize, cols: usize) -> Self {
        Strides { batch: rows * cols, row: 1, col: cols }
    }
    /// The same strides, with the matrix broadcast over the batch.
    pub fn broadcast(self) -> Self {
        Strides { batch: 0, ..self }
    }
}

/// `C_b (m×n, row-major, rows rsc apart) = beta·C_b + A_b·B_b` for `b in 0..batch`.
///
/// `beta == 0` overwrites C (its old contents are ignored, NaN included). f32 runs
/// on the packed SIMD [`sgemm_batched`]; other types on the reference loop.
#[allow(clippy::too_many_arguments)]
pub fn gemm_batched<T: Float>(
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    sa: Strides,
    b: &[T],
    sb: Strides,
    beta: T,
    c: &mut [T],
    sc: Strides,
) {
    crate::threads::ensure_ftz(); // denormals flush to zero (see `threads`)
    assert!(sc.col == 1, "gemm: C must be row-major (column stride 1)");
    check_len("A", a.len(), batch, m, k, sa);
    check_len("B", b.len(), batch, k, n, sb);
    check_len("C", c.len(), batch, m, n, sc);
    if batch > 1 {
        assert!(sc.batch != 0, "gemm: C cannot be broadcast over the batch");
    }
    if let (Some(af), Some(bf), Some(cf)) = (as_f32(a), as_f32(b), as_f32_mut(c)) {
        let beta = beta.to_f64() as f32;
        sgemm_batched(
            batch, m, n, k, af, sa.batch, sa.row, sa.col, bf, sb.batch, sb.row, sb.col, beta, cf, sc.batch,
            sc.row,
        );
        return;
    }
    for i in 0..batch {
        let (ai, bi, ci) = (&a[i * sa.batch..], &b[i * sb.batch..], &mut c[i * sc.batch..]);
        gemm_reference(m, n, k, ai, sa.row, sa.col, bi, sb.row, sb.col, beta, ci, sc.row);
    }
}

fn check_len(name: &str, len: usize, batch: usize, rows: usize, cols: usize, s: Strides) {
    if batch == 0 || rows == 0 || cols == 0 {
        return;
    }
    let last = (batch - 1) * s.batch + (rows - 1) * s.row + (cols - 1) * s.col;
    assert!(
        last < len,
        "gemm: operand {name} ({batch}×{rows}×{cols}, strides {s:?}) needs {} elements, has {len}",
        last + 1
    );
}

/// [`gemm_batched`] with the operands rounded to bf16 and f32 accumulation
/// ([`crate::bf16gemm`]), for f32 data: the products of `--precision bf16`.
///
/// # Panics
/// If `T` is not f32 (bf16 precision is an f32 mode; the f64 reference path has none), and as
/// [`gemm_batched`].
#[allow(clippy::too_many_arguments)]
pub fn gemm_batched_bf16<T: Float>(
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    sa: Strides,
    b: &[T],
    sb: Strides,
    beta: T,
    c: &mut [T],
    sc: Strides,
) {
    assert!(sc.col == 1, "gemm: C must be row-major (column stride 1)");
    check_len("A", a.len(), batch, m, k, sa);
    check_len("B", b.len(), batch, k, n, sb);
    check_len("C", c.len(), batch, m, n, sc);
    if batch > 1 {
        assert!(sc.batch != 0, "gemm: C cannot be broadcast over the batch");
    }
    let (Some(af), Some(bf), Some(cf)) = (as_f32(a), as_f32(b), as_f32_mut(c)) else {
        panic!("gemm: bf16 products take f32 operands, not {}", T::DTYPE);
    };
    let beta = beta.to_f64() as f32;
    for i in 0..batch {
        let (ai, bi) = (&af[i * sa.batch..], &bf[i * sb.batch..]);
        let ci = &mut cf[i * sc.batch..];
        crate::bf16gemm::bf16gemm(m, n, k, ai, sa.row, sa.col, bi, sb.row, sb.col, beta, ci, sc.row);
    }
}
