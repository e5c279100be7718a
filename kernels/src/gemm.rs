//! Matrix products on strided operands, generic over the element type.
//!
//! `C = beta·C + A·B`, `batch` times, with the sizes in a [`Dims`] and each operand a
//! [`MatRef`] or [`MatMut`]: a slice and its [`Strides`], `A(i,p) = a[i·row + p·col]`.
//! C may carry a bias row ([`MatMut::with_bias`]): `C = beta·C + bias + A·B`, the bias
//! added to every row as each C tile is first written (a linear layer's `x·Wᵀ + b`
//! without broadcasting b into C first).
//! Transposes are only a change of strides, so autograd's backward products
//! (`dA = dC·Bᵀ`, `dB = Aᵀ·dC`) need no copies. Every product of the crate takes these
//! three types: [`gemm`] (any [`Float`]), [`crate::sgemm::sgemm`] (the f32 kernel it runs
//! on), [`crate::bf16gemm::bf16gemm`], the prepacked product and the references.

use crate::sgemm::reference::gemm_reference;
use crate::sgemm::sgemm;
use crate::{as_f32, as_f32_mut, Float};

/// Strided operand: where a matrix starts in its buffer and how to step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// The sizes of a product: `batch` times `C (m×n) = A (m×k) · B (k×n)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

impl Dims {
    /// One product, `C (m×n) = A (m×k) · B (k×n)`.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        Dims { batch: 1, m, n, k }
    }
    /// The same sizes, `batch` products.
    pub fn batched(self, batch: usize) -> Self {
        Dims { batch, ..self }
    }
    /// One item of the batch.
    pub fn one(self) -> Self {
        Dims { batch: 1, ..self }
    }
    /// Multiply-adds times two.
    pub fn flops(self) -> usize {
        2 * self.batch * self.m * self.n * self.k
    }
}

/// A matrix a product reads: element `(i, j)` of batch item `b` is
/// `data[b·s.batch + i·s.row + j·s.col]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    pub data: &'a [T],
    pub s: Strides,
}

impl<'a, T: Copy> MatRef<'a, T> {
    pub fn new(data: &'a [T], s: Strides) -> Self {
        MatRef { data, s }
    }
    /// Row-major, rows `ld` apart (one matrix; [`Self::batch_stride`] for more).
    pub fn rows(data: &'a [T], ld: usize) -> Self {
        MatRef { data, s: Strides { batch: 0, row: ld, col: 1 } }
    }
    /// Column-major, columns `ld` apart: the transpose of a row-major matrix whose rows are
    /// `ld` apart.
    pub fn cols(data: &'a [T], ld: usize) -> Self {
        MatRef { data, s: Strides { batch: 0, row: 1, col: ld } }
    }
    /// The next batch item starts `stride` elements on (0 broadcasts this one).
    pub fn batch_stride(self, stride: usize) -> Self {
        MatRef { s: Strides { batch: stride, ..self.s }, ..self }
    }
    /// Batch item `b` as a matrix of its own.
    pub fn item(self, b: usize) -> Self {
        let start = (b * self.s.batch).min(self.data.len()); // an empty item may start past the end
        MatRef { data: &self.data[start..], ..self }
    }
    /// Element `(i, j)` of the first matrix.
    #[inline(always)]
    pub fn at(&self, i: usize, j: usize) -> T {
        self.data[i * self.s.row + j * self.s.col]
    }
}

impl<'a, T: Float> MatRef<'a, T> {
    /// The same operand typed as f32, when `T` is f32.
    pub fn as_f32(self) -> Option<MatRef<'a, f32>> {
        as_f32(self.data).map(|data| MatRef { data, s: self.s })
    }
}

/// The matrix a product writes: row-major, element `(i, j)` of batch item `b` is
/// `data[b·s.batch + i·s.row + j]` (`s.col` must be 1), and an optional bias row of `n`
/// values added to every row of every item: `C(i, j) = beta·C(i, j) + bias[j] + (A·B)(i, j)`.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    pub data: &'a mut [T],
    pub s: Strides,
    pub bias: Option<&'a [T]>,
}

impl<'a, T> MatMut<'a, T> {
    pub fn new(data: &'a mut [T], s: Strides) -> Self {
        MatMut { data, s, bias: None }
    }
    /// Row-major, rows `ld` apart (one matrix; [`Self::batch_stride`] for more).
    pub fn rows(data: &'a mut [T], ld: usize) -> Self {
        MatMut::new(data, Strides { batch: 0, row: ld, col: 1 })
    }
    /// The same C with `bias` (one value per column) added to each of its rows by the product.
    pub fn with_bias(self, bias: &'a [T]) -> Self {
        MatMut { bias: Some(bias), ..self }
    }
    /// The next batch item starts `stride` elements on.
    pub fn batch_stride(self, stride: usize) -> Self {
        MatMut { s: Strides { batch: stride, ..self.s }, ..self }
    }
    /// Batch item `b` as a matrix of its own.
    pub fn item(&mut self, b: usize) -> MatMut<'_, T> {
        let start = (b * self.s.batch).min(self.data.len()); // an empty item may start past the end
        MatMut { data: &mut self.data[start..], s: self.s, bias: self.bias }
    }
    /// Element `(i, j)` of the first matrix.
    #[inline(always)]
    pub fn at(&mut self, i: usize, j: usize) -> &mut T {
        &mut self.data[i * self.s.row + j]
    }
}

impl<'a, T: Float> MatMut<'a, T> {
    /// The same operand typed as f32, when `T` is f32.
    pub fn as_f32(self) -> Result<MatMut<'a, f32>, Self> {
        let (s, bias) = (self.s, self.bias);
        if T::DTYPE == f32::DTYPE {
            let bias = bias.map(|b| as_f32(b).expect("T is f32"));
            Ok(MatMut { data: as_f32_mut(self.data).expect("T is f32"), s, bias })
        } else {
            Err(self)
        }
    }
}

/// `C_b (m×n) = beta·C_b + A_b·B_b` for every item `b` of the batch (`+ bias` on every
/// row when C carries one, [`MatMut::with_bias`]).
///
/// `beta == 0` overwrites C (its old contents are ignored, NaN included). f32 runs
/// on the packed SIMD [`sgemm`]; other types on the reference loop.
///
/// # Panics
/// If an operand is too short for its sizes and strides, C is not row-major, C's rows
/// overlap, or C is broadcast over a batch (batch stride 0).
pub fn gemm<T: Float>(d: Dims, a: MatRef<T>, b: MatRef<T>, beta: T, c: MatMut<T>) {
    crate::threads::ensure_ftz(); // denormals flush to zero (see `threads`)
    check("gemm", d, &a, &b, &c);
    assert!(d.batch <= 1 || c.s.batch != 0, "gemm: C cannot be broadcast over the batch");
    match (a.as_f32(), b.as_f32(), c.as_f32()) {
        (Some(af), Some(bf), Ok(cf)) => sgemm(d, af, bf, beta.to_f64() as f32, cf),
        (_, _, Ok(_)) => unreachable!("A, B and C have one element type"),
        (_, _, Err(c)) => gemm_reference(d, a, b, beta, c),
    }
}

/// [`gemm`] with the operands rounded to bf16 and f32 accumulation
/// ([`crate::bf16gemm`]), for f32 data: the products of `--precision bf16`.
///
/// # Panics
/// If `T` is not f32 (bf16 precision is an f32 mode; the f64 reference path has none), and as
/// [`gemm`].
pub fn gemm_bf16<T: Float>(d: Dims, a: MatRef<T>, b: MatRef<T>, beta: T, c: MatMut<T>) {
    let (Some(af), Some(bf), Ok(cf)) = (a.as_f32(), b.as_f32(), c.as_f32()) else {
        panic!("gemm: bf16 products take f32 operands, not {}", T::DTYPE);
    };
    crate::bf16gemm::bf16gemm(d, af, bf, beta.to_f64() as f32, cf);
}

/// The index one past the last element an `rows × cols` matrix with strides `(rs, cs)`
/// addresses (0 when empty). Panics on overflow.
pub(crate) fn extent(op: &str, rows: usize, cols: usize, rs: usize, cs: usize, what: &str) -> usize {
    if rows == 0 || cols == 0 {
        return 0;
    }
    (rows - 1)
        .checked_mul(rs)
        .and_then(|x| (cols - 1).checked_mul(cs).and_then(|y| x.checked_add(y)))
        .and_then(|x| x.checked_add(1))
        .unwrap_or_else(|| panic!("{op}: {what} shape/strides overflow usize"))
}

/// Asserts, naming the product `op` and the operand, that every element the product
/// addresses is inside its slice, and that C is row-major (column stride 1) with rows that
/// do not overlap. (C's batch items may overlap in [`sgemm`], which then applies the
/// products one after another; [`gemm`] refuses that.)
pub(crate) fn check<T>(op: &str, d: Dims, a: &MatRef<T>, b: &MatRef<T>, c: &MatMut<T>) {
    let Dims { m, n, k, .. } = d;
    check_operand(op, "A", d.batch, (m, k), a.s, a.data.len());
    check_operand(op, "B", d.batch, (k, n), b.s, b.data.len());
    check_out(op, d, c);
}

/// [`check`]'s assertions on C (and its bias) alone.
pub(crate) fn check_out<T>(op: &str, d: Dims, c: &MatMut<T>) {
    let (m, n) = (d.m, d.n);
    if let Some(bias) = c.bias {
        assert!(bias.len() == n, "{op}: the bias has {} elements, C has n = {n} columns", bias.len());
    }
    assert!(c.s.col == 1, "{op}: C must be row-major (column stride 1), got column stride {}", c.s.col);
    check_operand(op, "C", d.batch, (m, n), c.s, c.data.len());
    assert!(m <= 1 || n == 0 || c.s.row >= n, "{op}: C's rows overlap: row stride {} < n = {n}", c.s.row);
}

/// Asserts that `batch` matrices of `rows × cols` with strides `s` fit in `len` elements.
pub(crate) fn check_operand(
    op: &str,
    what: &str,
    batch: usize,
    (rows, cols): (usize, usize),
    s: Strides,
    len: usize,
) {
    let ext = extent(op, rows, cols, s.row, s.col, what);
    if batch == 0 || ext == 0 {
        return;
    }
    let want = (batch - 1)
        .checked_mul(s.batch)
        .and_then(|x| x.checked_add(ext))
        .unwrap_or_else(|| panic!("{op}: {what} batch extent overflows usize"));
    assert!(
        len >= want,
        "{op}: {what} is too short: {rows}x{cols} with strides ({}, {}) over batch {batch} (stride {}) \
         needs {want} elements, got {len}",
        s.row,
        s.col,
        s.batch
    );
}
