//! One product as every layer of the GEMM passes it down ([`Gemm`]: shapes, strides and raw
//! pointers, split by rows, columns, blocks and batch items), and what each C tile starts as
//! before a micro-kernel adds its sum ([`CStart`]: `beta·C + bias`). Shared by `sgemm`'s
//! drivers, the prepacked product, attention's panels and `bf16gemm`.

use crate::gemm::{Dims, MatMut, MatRef};

/// One product on raw pointers, as every layer of the GEMM passes it down:
/// `C (m×n, rows rsc apart) = beta·C + bias + A·B` with `A(i,p) = a[i·rsa + p·csa]`,
/// `B(p,j) = b[p·rsb + j·csb]`, and `start` holding `beta` and the bias row. Inside the loop
/// nest one block of it is a `Gemm` too, with `b` the packed B block (`rsb`, `csb` unused).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: *const f32,
    pub rsa: usize,
    pub csa: usize,
    pub b: *const f32,
    pub rsb: usize,
    pub csb: usize,
    pub start: CStart,
    pub c: *mut f32,
    pub rsc: usize,
}

// SAFETY: a `Gemm` is shared by the threads of one product, which only read A and B and write
// disjoint parts of C, while the buffers it points into are borrowed by the caller (the
// parallel scope ends before the product returns).
unsafe impl Send for Gemm {}
unsafe impl Sync for Gemm {}

impl Gemm {
    /// The first item of a product on these operands (the pointers only: using them is
    /// safe once [`crate::gemm::check`] has passed and while the borrows last).
    pub(crate) fn new(d: Dims, a: &MatRef<f32>, b: &MatRef<f32>, beta: f32, c: &mut MatMut<f32>) -> Gemm {
        Gemm {
            m: d.m,
            n: d.n,
            k: d.k,
            a: a.data.as_ptr(),
            rsa: a.s.row,
            csa: a.s.col,
            b: b.data.as_ptr(),
            rsb: b.s.row,
            csb: b.s.col,
            start: CStart { beta, bias: c.bias.map_or(std::ptr::null(), |bias| bias.as_ptr()) },
            c: c.data.as_mut_ptr(),
            rsc: c.s.row,
        }
    }

    /// Rows `lo..hi` of the product: those rows of A and of C.
    ///
    /// # Safety
    /// `lo <= hi <= m`.
    pub(crate) unsafe fn rows(self, lo: usize, hi: usize) -> Gemm {
        Gemm { m: hi - lo, a: self.a.add(lo * self.rsa), c: self.c.add(lo * self.rsc), ..self }
    }

    /// Columns `lo..hi` of the product: those columns of B and of C.
    ///
    /// # Safety
    /// `lo <= hi <= n`.
    pub(crate) unsafe fn cols(self, lo: usize, hi: usize) -> Gemm {
        let start = self.start.cols_from(lo);
        Gemm { n: hi - lo, b: self.b.add(lo * self.csb), start, c: self.c.add(lo), ..self }
    }

    /// The block at column `jc` and depth `pc`, `nc` wide and `kc` deep, against the packed B
    /// block `bbuf`: what [`macro_block`] multiplies.
    ///
    /// [`macro_block`]: super::driver::macro_block
    ///
    /// # Safety
    /// `jc < n`, `pc < k`.
    #[inline(always)]
    pub(crate) unsafe fn block(
        self,
        (jc, nc): (usize, usize),
        (pc, kc): (usize, usize),
        bbuf: *const f32,
    ) -> Gemm {
        Gemm {
            n: nc,
            k: kc,
            a: self.a.add(pc * self.csa),
            b: bbuf,
            rsb: 0,
            csb: 0,
            start: self.start.cols_from(jc).at_depth(pc),
            c: self.c.add(jc),
            ..self
        }
    }

    /// The same shapes and strides with A, B and C moved by these many elements (a batch item).
    ///
    /// # Safety
    /// The moved operands are in bounds.
    pub(crate) unsafe fn offset(self, da: usize, db: usize, dc: usize) -> Gemm {
        Gemm { a: self.a.add(da), b: self.b.add(db), c: self.c.add(dc), ..self }
    }
}

/// What a C tile starts as before a micro-kernel adds the first depth block's sum into it:
/// `beta·C + bias[j]` on every row (`beta == 0`: C's old contents are not read; a null `bias`:
/// none). Later depth blocks accumulate ([`CStart::ACCUMULATE`]). A micro-kernel starts its
/// tile from the bias itself (loaded beside its sum, or, on AMX, as the accumulators'
/// first value), so C is only written, as with `beta == 0`: no pass filling C with the bias
/// rows before the product, and no read of C back.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CStart {
    pub beta: f32,
    pub bias: *const f32,
}

impl CStart {
    /// Add the sum to C as it is (every depth block after the first).
    pub(crate) const ACCUMULATE: CStart = CStart { beta: 1.0, bias: std::ptr::null() };
    /// Overwrite C with the sum (an edge tile's scratch, merged into C afterwards).
    pub(crate) const OVERWRITE: CStart = CStart { beta: 0.0, bias: std::ptr::null() };

    /// The start of the depth block at `pc`: this one for the first, else accumulate.
    #[inline(always)]
    pub(crate) fn at_depth(self, pc: usize) -> CStart {
        if pc == 0 {
            self
        } else {
            Self::ACCUMULATE
        }
    }

    /// The same start for C's columns from `j` on.
    ///
    /// # Safety
    /// `j` is within the bias (at most n).
    #[inline(always)]
    pub(crate) unsafe fn cols_from(self, j: usize) -> CStart {
        let bias = if self.bias.is_null() { self.bias } else { self.bias.add(j) };
        CStart { bias, ..self }
    }

    /// The start to hand a micro-kernel for the `mr × nr` tile at `c`. Kernels take a bias
    /// only with `beta == 0` (`C = bias + sum`); for a bias with another beta (no caller of
    /// ours), `beta·C + bias` is written into the tile here and the kernel accumulates.
    ///
    /// # Safety
    /// `c` addresses the tile (rows `rsc` apart) and the bias holds `nr` values.
    #[inline(always)]
    pub(crate) unsafe fn for_kernel(self, mr: usize, nr: usize, c: *mut f32, rsc: usize) -> CStart {
        if self.bias.is_null() || self.beta == 0.0 {
            return self;
        }
        self.write(mr, nr, c, rsc);
        Self::ACCUMULATE
    }

    /// Writes C's element at `c`, in column `j`: the sum `v` added to what it starts as, in
    /// [`reference::start`]'s order.
    ///
    /// # Safety
    /// `c` is valid and the bias holds more than `j` values.
    ///
    /// [`reference::start`]: super::reference::start
    #[inline(always)]
    pub(crate) unsafe fn finish(self, c: *mut f32, j: usize, v: f32) {
        *c = self.value(c, j).map_or(v, |s| s + v);
    }

    /// What C's element at `c`, in column `j`, starts as: `None` when neither beta nor a bias
    /// gives it anything (C is then not read: it may hold anything, NaN included).
    ///
    /// # Safety
    /// As [`CStart::finish`].
    #[inline(always)]
    unsafe fn value(self, c: *const f32, j: usize) -> Option<f32> {
        let bias = (!self.bias.is_null()).then(|| *self.bias.add(j));
        let old = if self.beta == 0.0 { 0.0 } else { *c };
        super::reference::start(self.beta, old, bias)
    }

    /// `C = beta·C + bias` on the `m × n` C at `c`: a product with no depth (k = 0), or the
    /// start [`CStart::for_kernel`] writes.
    ///
    /// # Safety
    /// `c` addresses the `m × n` C (rows `rsc` apart) and the bias holds `n` values.
    pub(crate) unsafe fn write(self, m: usize, n: usize, c: *mut f32, rsc: usize) {
        for i in 0..m {
            let row = std::slice::from_raw_parts_mut(c.add(i * rsc), n);
            for (j, x) in row.iter_mut().enumerate() {
                *x = self.value(x, j).unwrap_or(0.0);
            }
        }
    }
}
