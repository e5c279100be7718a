//! GEMM against a B operand packed once and reused: `C = beta*C + A*B` where B is a
//! [`PackedB`].
//!
//! A recurrent network multiplies the same weight matrix at every time step
//! (`z_t += h_{t-1}·W_hhᵀ`, and `dh_{t-1} = dz_t·W_hh` going back). Packing that
//! 1 MB operand into micro-panels costs as much as a quarter of such a small product
//! (M ≤ 64 rows), so it is packed once per sequence here and every step only packs
//! its small A block. The product runs on the calling thread (callers parallelise over
//! independent sequences/directions instead of splitting each small step).
//!
//! Layout of the packed B (k x n): depth blocks of `KC` rows, one after another; inside a
//! block, the `ceil(n/NR)` micro-panels of `kc x NR` floats exactly as the driver packs
//! them (zero-padded past `n`). Block `q` starts at `q * KC * panels * NR`.

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
use super::avx2::Avx2;
#[cfg(target_arch = "x86_64")]
use super::avx512::Avx512;
use super::driver::{macro_block, pack_b, Gemm, Kernel, BUFS};
use super::{isa, Isa, Portable};
use crate::gemm::{check_operand, check_out, extent, Dims, MatMut, MatRef};
use crate::threads;

/// A `k x n` matrix B packed for the micro-kernel that was active when it was made (the
/// CPU's best, or the one [`crate::isa::force`] set); products with it run that kernel.
pub struct PackedB {
    k: usize,
    n: usize,
    isa: Isa,
    /// Owned buffer, over-allocated so that `off` aligns the data to 64 bytes.
    buf: Vec<f32>,
    off: usize,
}

impl PackedB {
    /// Packs the `k × n` matrix B (any strides: `W` and `Wᵀ` both work; its batch
    /// stride is not used).
    ///
    /// # Panics
    /// If `b` is too short for the shape and strides.
    pub fn new(k: usize, n: usize, b: MatRef<f32>) -> PackedB {
        PackedB::with_isa(isa(), k, n, b)
    }

    /// [`PackedB::new`] for an explicit kernel family (which the CPU must support).
    pub(crate) fn with_isa(isa: Isa, k: usize, n: usize, b: MatRef<f32>) -> PackedB {
        let (rsb, csb) = (b.s.row, b.s.col);
        let ext = extent("sgemm_prepacked", k, n, rsb, csb, "B");
        assert!(b.data.len() >= ext, "sgemm_prepacked: B needs {ext} elements, got {}", b.data.len());
        let b = b.data;
        assert!(crate::isa::cpu_supports(isa), "sgemm_prepacked: this CPU cannot run {isa:?}");
        let len = match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => packed_len::<Avx512>(k, n),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Isa::Avx2 => packed_len::<Avx2>(k, n),
            _ => packed_len::<Portable>(k, n),
        };
        let mut buf = vec![0.0f32; len + 16];
        let off = buf.as_ptr().align_offset(64);
        let out = buf[off..].as_mut_ptr();
        // SAFETY: `b` covers the extent (checked above); `out` holds `len` floats.
        unsafe {
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => pack_all::<Avx512>(k, n, b.as_ptr(), rsb, csb, out),
                #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
                Isa::Avx2 => pack_all::<Avx2>(k, n, b.as_ptr(), rsb, csb, out),
                _ => pack_all::<Portable>(k, n, b.as_ptr(), rsb, csb, out),
            }
        }
        PackedB { k, n, isa, buf, off }
    }

    /// Rows (depth) of B.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of B.
    pub fn n(&self) -> usize {
        self.n
    }

    fn data(&self) -> *const f32 {
        self.buf[self.off..].as_ptr()
    }
}

fn packed_len<K: Kernel>(k: usize, n: usize) -> usize {
    k * n.div_ceil(K::NR) * K::NR
}

/// Packs all of B, depth block after depth block.
unsafe fn pack_all<K: Kernel>(k: usize, n: usize, b: *const f32, rsb: usize, csb: usize, out: *mut f32) {
    let width = n.div_ceil(K::NR) * K::NR;
    for pc in (0..k).step_by(K::KC) {
        let kc = K::KC.min(k - pc);
        pack_b::<K>(kc, n, b.add(pc * rsb), rsb, csb, out.add(pc * width));
    }
}

/// `C (m × b.n()) = beta·C + A (m × b.k())·B` (`+ bias` on every row when C carries one)
/// with B packed beforehand, on the calling thread; A's and C's batch strides are not used.
///
/// # Panics
/// If a slice is too short for its shape and strides, or C's rows overlap.
pub fn sgemm_prepacked(m: usize, a: MatRef<f32>, b: &PackedB, beta: f32, c: MatMut<f32>) {
    let d = Dims::new(m, b.n, b.k);
    if m == 0 || d.n == 0 {
        return;
    }
    check_operand("sgemm_prepacked", "A", 1, (m, d.k), a.s, a.data.len());
    check_out("sgemm_prepacked", d, &c);
    let g = on_packed(d, &a, b.data(), beta, c);
    // SAFETY: extents checked above; C is a distinct &mut slice; the CPU supports b.isa
    // (checked when B was packed).
    unsafe {
        if g.k == 0 {
            g.start.write(m, g.n, g.c, g.rsc);
            return;
        }
        threads::ensure_ftz();
        crate::isa::note(crate::isa::Family::Prepacked, b.isa);
        match b.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => run_avx512(g),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Isa::Avx2 => run_avx2(g),
            _ => run::<Portable>(g),
        }
    }
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2(g: Gemm) {
    run::<Avx2>(g)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn run_avx512(g: Gemm) {
    run::<Avx512>(g)
}

/// The product `C = beta·C + A·B` with B's pointer the packed panels (`rsb`, `csb` unused:
/// [`run`] steps through them).
fn on_packed(d: Dims, a: &MatRef<f32>, packed: *const f32, beta: f32, mut c: MatMut<f32>) -> Gemm {
    Gemm { b: packed, rsb: 0, csb: 0, ..Gemm::new(d, a, &MatRef::rows(&[], 0), beta, &mut c) }
}

/// The driver's loop nest without the B packing: `pc` over K by KC, each depth block of the
/// packed B (`g.b`, panels of `n` rounded up to NR columns) handed to [`macro_block`] (which
/// packs A's blocks into this thread's buffer).
#[inline(always)]
unsafe fn run<K: Kernel>(g: Gemm) {
    let Gemm { m, n, k, b, .. } = g;
    let mut bufs = BUFS.with(|cell| cell.take());
    let abuf = bufs.a.get(K::MC.min(m.div_ceil(K::MR) * K::MR) * K::KC.min(k));
    let width = n.div_ceil(K::NR) * K::NR;
    for pc in (0..k).step_by(K::KC) {
        let kc = K::KC.min(k - pc);
        macro_block::<K>(g.block((0, n), (pc, kc), b.add(pc * width)), abuf);
    }
    BUFS.with(|cell| cell.set(bufs));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sgemm::{sgemm_reference_f64, Avx512Shaped};
    use rand::{RngExt, SeedableRng};

    /// `C = beta·C + A·B` with B packed for the kernel `K` and the product run on it, on any
    /// CPU when `K` is portable: a kernel family's packed layout and depth blocks where the CPU
    /// cannot run its instructions.
    fn prepacked_with<K: Kernel>(d: Dims, a: MatRef<f32>, b: MatRef<f32>, beta: f32, c: MatMut<f32>) {
        check_operand("prepacked_with", "A", 1, (d.m, d.k), a.s, a.data.len());
        check_operand("prepacked_with", "B", 1, (d.k, d.n), b.s, b.data.len());
        check_out("prepacked_with", d, &c);
        let mut packed = vec![0.0; packed_len::<K>(d.k, d.n)];
        // SAFETY: the operands cover their extents (checked above); `packed` holds B's panels.
        unsafe {
            pack_all::<K>(d.k, d.n, b.data.as_ptr(), b.s.row, b.s.col, packed.as_mut_ptr());
            run::<K>(on_packed(d, &a, packed.as_ptr(), beta, c));
        }
    }

    #[test]
    fn prepacked_matches_reference_on_odd_shapes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for &(m, n, k) in
            &[(1, 1, 1), (7, 15, 17), (64, 1024, 256), (33, 255, 257), (13, 17, 1024), (150, 40, 9)]
        {
            for &(trans_b, beta, with_bias) in &[
                (false, 0.0f32, false),
                (true, 1.0, false),
                (false, 0.5, false),
                (true, 0.0, true),
                (false, 0.5, true),
            ] {
                let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
                let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
                let c0: Vec<f32> = (0..m * n).map(|_| rng.random_range(-1.0..1.0)).collect();
                let bias: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
                let bias = with_bias.then_some(&bias[..]);
                let (a, b) =
                    (MatRef::rows(&a, k), if trans_b { MatRef::cols(&b, k) } else { MatRef::rows(&b, n) });
                let mut want = c0.clone();
                sgemm_reference_f64(
                    Dims::new(m, n, k),
                    a,
                    b,
                    beta,
                    MatMut { bias, ..MatMut::rows(&mut want, n) },
                );
                let check = |what: &str, c: &[f32]| {
                    for (i, (&got, &w)) in c.iter().zip(&want).enumerate() {
                        let tol = 1e-5 * (k as f32).sqrt() * (1.0 + w.abs());
                        assert!(
                            (got - w).abs() <= tol,
                            "{what} m {m} n {n} k {k} transB {trans_b} beta {beta} bias {with_bias}: C[{i}] = {got}, want {w}"
                        );
                    }
                };
                // every kernel this CPU runs, whichever the CPU would pick
                for isa in Isa::ALL.into_iter().filter(|&i| crate::isa::cpu_supports(i)) {
                    let pb = PackedB::with_isa(isa, k, n, b);
                    let mut c = c0.clone();
                    sgemm_prepacked(m, a, &pb, beta, MatMut { bias, ..MatMut::rows(&mut c, n) });
                    check(&format!("{isa:?}"), &c);
                }
                // and the AVX-512 family's packing and loop nest, on any CPU
                let mut c = c0.clone();
                prepacked_with::<Avx512Shaped>(
                    Dims::new(m, n, k),
                    a,
                    b,
                    beta,
                    MatMut { bias, ..MatMut::rows(&mut c, n) },
                );
                check("AVX-512's geometry (portable arithmetic)", &c);
            }
        }
    }
}
