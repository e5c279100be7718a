//! bf16 GEMM with f32 accumulation: `C(f32) = beta·C + bf16(A)·bf16(B)`, arbitrary strides for
//! A and B (as `sgemm`), for mixed-precision training (`--precision bf16`).
//!
//! ```text
//! â(i,p) = bf16(A(i,p)),  b̂(p,j) = bf16(B(p,j))     rounded to nearest even while packing
//! C[i, j] = beta·C[i, j] + Σ_p â(i,p)·b̂(p,j)         products exact in f32, sums in f32
//! ```
//!
//! The operands stay f32 in memory (a layer's master weights, its activations); only the
//! packed copies the micro-kernel reads are bf16, in pairs along the depth (`driver.rs`).
//! Paths: AMX (`tdpbf16ps` on 16x16 tiles, a 32x32 C tile, `amx.rs`) where the CPU and the
//! OS allow it, AVX512-BF16 (`vdpbf16ps`, 12x32 tile, `avx512.rs`) on CPUs that have it, else
//! on AVX2 the f32 AVX2 kernel on operands rounded to bf16 while packing (`avx2.rs`: the
//! speed of f32, the numerics of bf16), else a portable kernel doing the same pair arithmetic
//! in plain Rust; all are tested against
//! [`bf16gemm_reference`], the definition as a triple loop. The error against the f32 product
//! is that of rounding the operands: bf16 keeps 8 significant bits, so each operand moves by
//! at most `u = 2⁻⁸` of itself (reached at `1 + 2⁻⁸`, a tie rounded to 1) and each product by
//! at most `2u + u² ≈ 2⁻⁷`: `|C − C_f32| ≤ (2⁻⁷ + 2⁻¹⁶)·Σ_p |A(i,p)·B(p,j)|`, plus the f32
//! sums' rounding (the guide's chapter 6 works this out and `tests/guide_math.rs` checks it).
//!
//! The path follows `crate::isa`: under `isa::force(Isa::Avx512)` (or by default on such a
//! CPU) AMX if granted (`TAPEGRAD_NO_AMX=1` leaves it out), else the AVX512-BF16 kernel if the
//! CPU has AVX512-BF16, else (or under `isa::force(Isa::Avx2)`) the AVX2 one where the CPU has
//! AVX2 and FMA; under the portable path the portable one. Large products split over M or N across the `crate::threads` pool, each thread
//! packing its own operands.

mod amx;
mod avx2;
mod avx512;
mod driver;
pub mod reference;
#[cfg(test)]
mod tests;

pub use reference::{bf16gemm_reference, round_bf16};

use crate::gemm::{check, Dims, MatMut, MatRef};
use crate::isa::{self, Family, Isa};
use crate::threads;
use driver::{gemm_seq, Gemm, Kernel, Portable};

/// Products below this many flops (per thread) stay on one thread.
const PAR_MIN_FLOPS_PER_THREAD: usize = 1 << 21;

/// A path of the bf16 GEMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// AMX-BF16 `tdpbf16ps`, 32x32 tile.
    Amx,
    /// AVX512-BF16 `vdpbf16ps`, 12x32 tile.
    Avx512Bf16,
    /// The f32 AVX2 FMA kernel on operands rounded to bf16, 6x16 tile.
    Avx2,
    /// Plain Rust, 6x16 tile.
    Portable,
}

impl Path {
    /// The kernel's name and tile.
    pub fn name(self) -> &'static str {
        match self {
            Path::Amx => "amx-bf16 32x32",
            Path::Avx512Bf16 => "avx512-bf16 12x32",
            Path::Avx2 => "avx2+fma 6x16 (bf16 operands)",
            Path::Portable => "portable 6x16",
        }
    }
}

/// Whether this CPU has AVX512-BF16 (with AVX512F and BW).
pub fn cpu_has_avx512bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        isa::cpu_supports(Isa::Avx512)
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU has AMX-BF16 and the OS lets this process use it (asks Linux once).
pub fn cpu_has_amx() -> bool {
    amx::os_grants_amx()
}

/// Whether this CPU can run `path`.
pub fn cpu_supports(path: Path) -> bool {
    match path {
        Path::Amx => cpu_has_amx(),
        Path::Avx512Bf16 => cpu_has_avx512bf16(),
        Path::Avx2 => isa::cpu_supports(Isa::Avx2),
        Path::Portable => true,
    }
}

/// The path the bf16 GEMM takes now (see the module doc).
pub fn path() -> Path {
    static NO_AMX: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let no_amx = *NO_AMX.get_or_init(|| std::env::var_os("TAPEGRAD_NO_AMX").is_some());
    let active = isa::active(); // at most what the CPU supports
    if active >= Isa::Avx512 && !no_amx && cpu_has_amx() {
        Path::Amx
    } else if active >= Isa::Avx512 && cpu_has_avx512bf16() {
        Path::Avx512Bf16
    } else if active >= Isa::Avx2 {
        Path::Avx2
    } else {
        Path::Portable
    }
}

/// `C = beta·C + bf16(A)·bf16(B)` (f32 sums) for every item of the batch; [`sgemm`]'s
/// contract otherwise (`beta == 0` overwrites C, transposes are strides, C row-major, a
/// bias that C carries is added to every row, in f32).
///
/// [`sgemm`]: crate::sgemm::sgemm
///
/// # Panics
/// If a slice is too short for its sizes and strides, or C's rows overlap.
pub fn bf16gemm(d: Dims, a: MatRef<f32>, b: MatRef<f32>, beta: f32, c: MatMut<f32>) {
    bf16gemm_with(path(), threads::num_threads(), d, a, b, beta, c);
}

/// [`bf16gemm`] on an explicit path and thread count (tests, benchmarks).
///
/// # Panics
/// As [`bf16gemm`], and if the CPU cannot run `path`.
pub fn bf16gemm_with(
    path: Path,
    nthreads: usize,
    d: Dims,
    a: MatRef<f32>,
    b: MatRef<f32>,
    beta: f32,
    mut c: MatMut<f32>,
) {
    assert!(cpu_supports(path), "bf16gemm: this CPU cannot run the {} kernel", path.name());
    // the same operand check as sgemm's, naming this product
    check("bf16gemm", d, &a, &b, &c);
    for item in 0..d.batch {
        one(path, nthreads, d.one(), a.item(item), b.item(item), beta, c.item(item));
    }
}

/// One product of [`bf16gemm_with`], its operands checked.
fn one(path: Path, nthreads: usize, d: Dims, a: MatRef<f32>, b: MatRef<f32>, beta: f32, mut c: MatMut<f32>) {
    let Dims { m, n, k, .. } = d;
    let rsc = c.s.row;
    if m == 0 || n == 0 {
        return;
    }
    threads::ensure_ftz();
    let noted = match path {
        Path::Amx | Path::Avx512Bf16 => Isa::Avx512,
        Path::Avx2 => Isa::Avx2,
        Path::Portable => Isa::Portable,
    };
    isa::note(Family::Bf16Gemm, noted);
    let g = Gemm::new(d, &a, &b, beta, &mut c);
    if k == 0 {
        // SAFETY: C (and its bias) were checked for m × n.
        unsafe { g.start.write(m, n, g.c, rsc) };
        return;
    }
    let (mr, nr) = match path {
        Path::Amx => (amx::Amx::MR, amx::Amx::NR),
        Path::Avx512Bf16 => (avx512::Avx512Bf16::MR, avx512::Avx512Bf16::NR),
        Path::Avx2 => (avx2::Avx2::MR, avx2::Avx2::NR),
        Path::Portable => (Portable::MR, Portable::NR),
    };
    // Split the larger of M and N; each part packs the other operand for itself.
    let split_m = m >= n;
    let (len, unit) = if split_m { (m, mr) } else { (n, nr) };
    let units = len.div_ceil(unit);
    let parts = nthreads.min(d.flops() / PAR_MIN_FLOPS_PER_THREAD).min(units).max(1);
    let run_part = |part: usize| {
        let lo = units * part / parts * unit;
        let hi = (units * (part + 1) / parts * unit).min(len);
        if lo >= hi {
            return;
        }
        // SAFETY: the asserts above put every addressed element in bounds; each part writes a
        // disjoint range of C's rows (or columns); the path was checked above (`cpu_supports`).
        unsafe {
            let part = if split_m { g.rows(lo, hi) } else { g.cols(lo, hi) };
            threads::ensure_ftz();
            match path {
                Path::Amx => amx::gemm_seq_amx(part),
                Path::Avx512Bf16 => avx512::gemm_seq_avx512bf16(part),
                Path::Avx2 => avx2::gemm_seq_avx2(part),
                Path::Portable => gemm_seq::<Portable>(part),
            }
        }
    };
    if parts == 1 {
        run_part(0);
    } else {
        threads::run_parts(parts, run_part);
    }
}
