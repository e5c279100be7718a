//! AMX micro-kernel: a 32 x 32 C tile as four 16 x 16 f32 accumulator tiles, `tdpbf16ps` on
//! 16 x 32 bf16 tiles of A and 16-pair x 16 tiles of B (Intel AMX-BF16; selected at run time,
//! see `super::path`).
//!
//! Stable Rust has no AMX intrinsics, so the tile instructions are inline assembly. Linux
//! hands a process the 8 KB tile state only on request ([`os_grants_amx`], once per process).
//! The panels are packed by the AVX512-BF16 kernel's vectorised packing (`vcvtne2ps2bf16`,
//! `avx512.rs`): every CPU with AMX-BF16 has AVX512-BF16, so that packing is tested, bit for
//! bit against the scalar one, on any CPU with AVX512-BF16.
//!
//! ```text
//! A panel: 32 rows, row i = kq pairs contiguous      tmm4 = rows 0..16, tmm5 = rows 16..32
//! B panel: bpack[q*32 + j] (pair-major, 128 B rows)  tmm6 = cols 0..16, tmm7 = cols 16..32
//! per 16 pairs (32 depths):  tmm0 += tmm4·tmm6   tmm1 += tmm4·tmm7
//!                            tmm2 += tmm5·tmm6   tmm3 += tmm5·tmm7
//! ```

use super::driver::{gemm_seq, CStart, Gemm, Kernel, Panel};

pub(crate) struct Amx;

impl Kernel for Amx {
    const MR: usize = 32;
    const NR: usize = 32;
    const MC: usize = 128;
    const NC: usize = 512;
    const KQ_ALIGN: usize = 16;
    const A_ROWS: bool = true;

    #[inline(always)]
    unsafe fn tile(kq: usize, a: *const u32, b: *const u32, c: *mut f32, rsc: usize, s: CStart) {
        #[cfg(target_arch = "x86_64")]
        {
            kernel_32x32(kq, a, b, c, rsc, s)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (kq, a, b, c, rsc, s);
            unreachable!("the AMX kernel is only selected on x86_64")
        }
    }

    // Packing rounds with AVX512-BF16's `vcvtne2ps2bf16`, as that kernel's does: every CPU
    // with AMX-BF16 has it, and the AMX path is taken only where it is (`os_grants_amx`).

    #[inline(always)]
    unsafe fn pack_depth_contiguous(x: *const f32, s_i: usize, w: usize, kc: usize, out: Panel) {
        #[cfg(target_arch = "x86_64")]
        {
            super::avx512::pack_depth_contiguous_avx512(x, s_i, w, kc, out)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (x, s_i, w, kc, out);
            unreachable!("the AMX kernel is only selected on x86_64")
        }
    }

    #[inline(always)]
    unsafe fn pair_runs(lo: *const f32, hi: *const f32, w: usize, dst: *mut u32) {
        #[cfg(target_arch = "x86_64")]
        {
            <super::avx512::Avx512Bf16 as Kernel>::pair_runs(lo, hi, w, dst)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (lo, hi, w, dst);
            unreachable!("the AMX kernel is only selected on x86_64")
        }
    }
}

/// Whether the CPU has AMX-TILE and AMX-BF16 and Linux lets this process use the tile data
/// (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, asked once).
pub(crate) fn os_grants_amx() -> bool {
    static GRANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *GRANTED.get_or_init(|| {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        {
            // cpuid leaf 7 exists on every CPU with AVX-512 (checked with the leaf's bits)
            let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
            let (amx_bf16, amx_tile) = (leaf7.edx >> 22 & 1 == 1, leaf7.edx >> 24 & 1 == 1);
            if !(amx_bf16 && amx_tile && super::cpu_has_avx512bf16()) {
                return false;
            }
            extern "C" {
                fn syscall(num: i64, ...) -> i64;
            }
            const SYS_ARCH_PRCTL: i64 = 158;
            const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
            const XFEATURE_XTILEDATA: i64 = 18;
            // SAFETY: arch_prctl only changes which extended states the process may use.
            unsafe { syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
        }
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        {
            false
        }
    })
}

/// The whole blocked product with the AMX kernel (packing compiled with AVX-512).
///
/// # Safety
/// As [`gemm_seq`]; [`os_grants_amx`] returned true.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f,avx512bw,avx512bf16,avx2,fma"))]
pub(crate) unsafe fn gemm_seq_amx(g: Gemm) {
    // Configure the tiles once per product (`ldtilecfg` costs as much as a whole tile's
    // products: once per tile it took 42 % of a MiniLM FFN product), release them after.
    #[cfg(target_arch = "x86_64")]
    {
        let mut cfg =
            TileConfig { palette: 1, start_row: 0, reserved: [0; 14], colsb: [0; 16], rows: [0; 16] };
        for t in 0..8 {
            cfg.colsb[t] = 64;
            cfg.rows[t] = 16;
        }
        std::arch::asm!("ldtilecfg [{}]", in(reg) &cfg, options(nostack, readonly));
    }
    gemm_seq::<Amx>(g);
    #[cfg(target_arch = "x86_64")]
    std::arch::asm!("tilerelease", options(nostack, nomem));
}

/// The tile configuration `ldtilecfg` reads: palette 1, tiles 0..8 of 16 rows x 64 bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

/// # Safety
/// See [`Kernel::tile`] (`a` is `A_ROWS`-packed, `kq` a multiple of 16); AMX is granted and
/// the tiles configured as [`gemm_seq_amx`] does.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn kernel_32x32(kq: usize, a: *const u32, b: *const u32, c: *mut f32, rsc: usize, s: CStart) {
    use std::arch::asm;
    let beta = s.beta;
    // C in place when beta is 0 or 1 (else into a scratch tile, merged below)
    let mut scratch = [0.0f32; 32 * 32];
    let (cp, cs) = if beta == 0.0 || beta == 1.0 { (c, rsc * 4) } else { (scratch.as_mut_ptr(), 32 * 4) };
    let c_rows = cp.add(16 * cs / 4);
    if !s.bias.is_null() {
        // bias + sum (beta is 0): every row of the accumulators starts as the bias, a tile
        // load with row stride 0 (columns 0..16 into tmm0 and tmm2, 16..32 into tmm1, tmm3)
        asm!(
            "tileloadd tmm0, [{b} + {zero}]",
            "tileloadd tmm1, [{b} + {zero} + 64]",
            "tileloadd tmm2, [{b} + {zero}]",
            "tileloadd tmm3, [{b} + {zero} + 64]",
            b = in(reg) s.bias, zero = in(reg) 0usize, options(nostack, readonly)
        );
    } else if beta == 1.0 {
        asm!(
            "tileloadd tmm0, [{c0} + {s}]",
            "tileloadd tmm1, [{c0} + {s} + 64]",
            "tileloadd tmm2, [{c1} + {s}]",
            "tileloadd tmm3, [{c1} + {s} + 64]",
            c0 = in(reg) cp, c1 = in(reg) c_rows, s = in(reg) cs, options(nostack, readonly)
        );
    } else {
        asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
    }
    let sa = kq * 4; // bytes between A rows
    let a1 = a.add(16 * kq);
    for step in 0..kq / 16 {
        asm!(
            "tileloadd tmm4, [{a0} + {sa}]",
            "tileloadd tmm5, [{a1} + {sa}]",
            "tileloadd tmm6, [{b} + {sb}]",
            "tileloadd tmm7, [{b} + {sb} + 64]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            a0 = in(reg) a.add(step * 16),
            a1 = in(reg) a1.add(step * 16),
            sa = in(reg) sa,
            b = in(reg) b.add(step * 16 * 32),
            sb = in(reg) 128usize,
            options(nostack, readonly)
        );
    }
    asm!(
        "tilestored [{c0} + {s}], tmm0",
        "tilestored [{c0} + {s} + 64], tmm1",
        "tilestored [{c1} + {s}], tmm2",
        "tilestored [{c1} + {s} + 64], tmm3",
        c0 = in(reg) cp, c1 = in(reg) c_rows, s = in(reg) cs, options(nostack)
    );
    if !(beta == 0.0 || beta == 1.0) {
        for i in 0..32 {
            for j in 0..32 {
                let cij = c.add(i * rsc + j);
                *cij = beta * *cij + scratch[i * 32 + j];
            }
        }
    }
}
