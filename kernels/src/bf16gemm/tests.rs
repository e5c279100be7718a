//! Every path the CPU runs against the reference (bit-exact within one depth block), the
//! reference against the f32 product (within bf16's error bound), and the rounding.

use super::driver::{bf16_bits, Generic, KC};
use super::*;
use crate::gemm::Strides;
use rand::{RngExt, SeedableRng};

fn rand_vec(rng: &mut rand_chacha::ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// The paths this CPU runs; prints the ones it skips.
fn paths() -> Vec<Path> {
    let mut v = vec![];
    for p in [Path::Portable, Path::Avx2, Path::Avx512Bf16, Path::Amx] {
        if cpu_supports(p) {
            v.push(p);
        } else {
            eprintln!(
                "bf16gemm: SKIPPED the {} path (this CPU or OS cannot run it; its geometry runs below, \
                 on the portable arithmetic)",
                p.name()
            );
        }
    }
    v
}

/// The driver with the portable arithmetic at the AVX512-BF16 path's geometry (12 × 32) and
/// at the AMX path's (32 × 32, A's panels row by row, the depth padded to 16 pairs): those
/// paths' packing and edges on every CPU, not only where their instructions run.
type Avx512Bf16Shaped = Generic<
    { avx512::Avx512Bf16::MR },
    { avx512::Avx512Bf16::NR },
    { avx512::Avx512Bf16::MC },
    { avx512::Avx512Bf16::NC },
    { <avx512::Avx512Bf16 as Kernel>::KQ_ALIGN },
    { <avx512::Avx512Bf16 as Kernel>::A_ROWS },
>;
type AmxShaped = Generic<
    { amx::Amx::MR },
    { amx::Amx::NR },
    { amx::Amx::MC },
    { amx::Amx::NC },
    { <amx::Amx as Kernel>::KQ_ALIGN },
    { <amx::Amx as Kernel>::A_ROWS },
>;

/// What computes a product in these tests: a path as users get it, or the sequential driver
/// on a portable kernel at another path's geometry (one thread whatever `threads` says).
#[derive(Clone, Copy)]
enum Runner {
    Path(Path),
    Shaped(&'static str, unsafe fn(Gemm)),
}

impl Runner {
    fn name(self) -> &'static str {
        match self {
            Runner::Path(p) => p.name(),
            Runner::Shaped(name, _) => name,
        }
    }

    fn run(self, threads: usize, d: Dims, a: MatRef<f32>, b: MatRef<f32>, beta: f32, mut c: MatMut<f32>) {
        match self {
            Runner::Path(p) => bf16gemm_with(p, threads, d, a, b, beta, c),
            Runner::Shaped(_, seq) => {
                check("bf16gemm", d, &a, &b, &c);
                assert!(
                    d.batch == 1 && d.m > 0 && d.n > 0 && d.k > 0,
                    "the driver takes one non-empty product"
                );
                // SAFETY: the operands cover their extents (checked above); the kernel is portable.
                unsafe { seq(Gemm::new(d, &a, &b, beta, &mut c)) }
            }
        }
    }

    /// Whether it sums each C element's pairs in the reference's order (bit-exact within one
    /// depth block): all but AMX, which sums a tile's 32 depths in its own order.
    fn in_order(self) -> bool {
        !matches!(self, Runner::Path(Path::Amx))
    }
}

/// The paths this CPU runs (printing the ones it skips), and the other paths' geometries.
fn runners() -> Vec<Runner> {
    let shaped = [
        Runner::Shaped("avx512-bf16's 12x32 (portable arithmetic)", gemm_seq::<Avx512Bf16Shaped>),
        Runner::Shaped("amx's 32x32, rows of A (portable arithmetic)", gemm_seq::<AmxShaped>),
    ];
    paths().into_iter().map(Runner::Path).chain(shaped).collect()
}

/// Layouts of (A, B) as (rsa, csa, rsb, csb) for an m x k A and k x n B.
fn layouts(m: usize, n: usize, k: usize) -> [(&'static str, usize, usize, usize, usize); 4] {
    [("NN", k, 1, n, 1), ("NT", k, 1, 1, k), ("TN", 1, m, n, 1), ("TT", 1, m, 1, k)]
}

#[test]
fn bits_round_to_nearest_even_as_half_does() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let specials = [0.0f32, -0.0, 1.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MAX, -f32::MAX, 1.5];
    let randoms = (0..100_000).map(|_| f32::from_bits(rng.random::<u32>()));
    for x in specials.into_iter().chain(randoms) {
        let got = f32::from_bits(bf16_bits(x) << 16);
        let want = round_bf16(x);
        assert!(
            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
            "{x:e}: {got:e} vs {want:e}"
        );
    }
    // ties go to even: 1 + 2⁻⁸ lies halfway between 1 and 1 + 2⁻⁷
    assert_eq!(round_bf16(1.0 + 2f32.powi(-8)), 1.0);
    assert_eq!(round_bf16(1.0 + 3.0 * 2f32.powi(-8)), 1.0 + 2.0 * 2f32.powi(-7));
    assert_eq!(round_bf16(f32::MIN_POSITIVE / 2.0), 0.0, "subnormals flush");
}

#[test]
fn every_path_equals_the_reference() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    // edges of both tiles, an odd depth, one full block, several blocks
    let shapes = [(1, 1, 1), (13, 35, 7), (37, 50, 64), (25, 70, KC), (30, 40, KC + 1), (20, 33, 3 * KC - 5)];
    for runner in runners() {
        for (m, n, k) in shapes {
            for (name, rsa, csa, rsb, csb) in layouts(m, n, k) {
                for (beta, threads, with_bias) in [
                    (0.0, 1, false),
                    (1.0, 2, false),
                    (0.5, 2, false),
                    (0.3, 1, false),
                    (0.0, 2, true),
                    (0.5, 1, true),
                ] {
                    let (a, b, c0) =
                        (rand_vec(&mut rng, m * k), rand_vec(&mut rng, k * n), rand_vec(&mut rng, m * n));
                    let bias = rand_vec(&mut rng, n);
                    let bias = with_bias.then_some(&bias[..]);
                    let d = Dims::new(m, n, k);
                    let a = MatRef::new(&a, Strides { batch: 0, row: rsa, col: csa });
                    let b = MatRef::new(&b, Strides { batch: 0, row: rsb, col: csb });
                    let mut got = c0.clone();
                    runner.run(threads, d, a, b, beta, MatMut { bias, ..MatMut::rows(&mut got, n) });
                    let mut want = c0;
                    bf16gemm_reference(d, a, b, beta, MatMut { bias, ..MatMut::rows(&mut want, n) });
                    let what = format!("{} {name} {m}x{n}x{k} beta {beta} bias {with_bias}", runner.name());
                    if k <= KC && runner.in_order() {
                        // same sums in the same order: the same bits
                        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                            assert_eq!(g.to_bits(), w.to_bits(), "{what}: C[{i}] = {g:e}, want {w:e}");
                        }
                    } else {
                        // AMX sums a tile's 32 depths in its own order (measured: not the
                        // instruction's documented pairwise rounding), and past one block each
                        // block's partial sum is added into C: f32 sums of the same k terms in
                        // another order, |Δ| ≤ k·2⁻²³·Σ|terms| (here k terms of magnitude ≤ 1,
                        // plus |beta·C| ≤ 1 and |bias| ≤ 1)
                        let tol = (k + 2) as f32 * 2f32.powi(-23) * (k + 2) as f32;
                        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                            assert!((g - w).abs() <= tol, "{what}: C[{i}] = {g:e}, want {w:e}");
                        }
                    }
                }
            }
        }
    }
}

/// The bias as each tile starts (on AMX, the accumulators loaded from the bias row with
/// stride 0) is the old way bit for bit: C filled with the bias rows, then accumulated into.
#[test]
fn bias_equals_filling_c_then_accumulating() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    for runner in runners() {
        for (m, n, k) in [(37, 50, 64), (70, 96, KC), (65, 33, KC + 7)] {
            let (a, b, bias) = (rand_vec(&mut rng, m * k), rand_vec(&mut rng, k * n), rand_vec(&mut rng, n));
            let (d, a, b) = (Dims::new(m, n, k), MatRef::rows(&a, k), MatRef::cols(&b, k));
            let mut filled: Vec<f32> = (0..m).flat_map(|_| bias.iter().copied()).collect();
            runner.run(2, d, a, b, 1.0, MatMut::rows(&mut filled, n));
            let mut got = vec![f32::NAN; m * n];
            runner.run(2, d, a, b, 0.0, MatMut::rows(&mut got, n).with_bias(&bias));
            for (i, (g, f)) in got.iter().zip(&filled).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    f.to_bits(),
                    "{} {m}x{n}x{k}: C[{i}] = {g}, filled-then-added {f}",
                    runner.name()
                );
            }
        }
    }
}

/// The bf16 product against the f32 one: each operand is off by ≤ u = 2⁻⁸ of itself, so each
/// product by ≤ 2u + u² = 2⁻⁷ + 2⁻¹⁶, and `|C − C_f32| ≤ (2⁻⁷ + 2⁻¹⁶)·Σ_p |A(i,p)·B(p,j)|` plus
/// f32 sums' rounding. The bound is tight: on operands 1 + 2⁻⁸ (ties, rounded to 1) the error
/// reaches it.
#[test]
fn within_bf16_error_of_the_f32_product() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let (m, n, k) = (64, 96, 500);
    let (a, b) = (rand_vec(&mut rng, m * k), rand_vec(&mut rng, k * n));
    let mut f32c = vec![0f32; m * n];
    let (d, am, bm) = (Dims::new(m, n, k), MatRef::rows(&a, k), MatRef::rows(&b, n));
    crate::sgemm::sgemm_reference_f64(d, am, bm, 0.0, MatMut::rows(&mut f32c, n));
    let mut bf = vec![0f32; m * n];
    bf16gemm(d, am, bm, 0.0, MatMut::rows(&mut bf, n));
    let mut worst = 0.0f32;
    for i in 0..m {
        for j in 0..n {
            let abs_sum: f32 = (0..k).map(|p| (a[i * k + p] * b[p * n + j]).abs()).sum();
            let bound = (2f32.powi(-7) + 2f32.powi(-16)) * abs_sum + k as f32 * 2f32.powi(-24) * abs_sum;
            let err = (bf[i * n + j] - f32c[i * n + j]).abs();
            assert!(
                err <= bound,
                "C[{i},{j}] = {}, f32 {}, error {err:e} > bound {bound:e}",
                bf[i * n + j],
                f32c[i * n + j]
            );
            worst = worst.max(err / abs_sum);
        }
    }
    // and it is not the f32 product: rounding the operands is visible
    assert!(worst > 2f32.powi(-16), "bf16gemm looks like an f32 product (worst relative error {worst:e})");
    // the worst case: 1 + 2⁻⁸ rounds to 1, so a row of them times a column of them is k
    // against k·(1 + 2⁻⁸)², 2⁻⁷·(1 − 2⁻⁸)/(1 + 2⁻⁸)² short: the bound above, not half of it
    let k = 64;
    let ones = vec![1.0 + 2f32.powi(-8); k];
    let mut c = [0f32];
    bf16gemm(
        Dims::new(1, 1, k),
        MatRef::rows(&ones, k),
        MatRef::rows(&ones, 1),
        0.0,
        MatMut::rows(&mut c, 1),
    );
    let exact = k as f64 * (1.0 + 2f64.powi(-8)).powi(2);
    let rel = (exact - c[0] as f64) / exact;
    assert_eq!(c[0], k as f32);
    assert!(rel > 2f64.powi(-7) * (1.0 - 2f64.powi(-7)), "relative error {rel:e}: the worst case is ≈ 2⁻⁷");
}

#[test]
fn empty_and_zero_depth() {
    let mut c = vec![3.0f32; 6];
    bf16gemm(Dims::new(2, 3, 0), MatRef::rows(&[], 0), MatRef::rows(&[], 3), 0.5, MatMut::rows(&mut c, 3));
    assert_eq!(c, vec![1.5; 6]);
    let bias = [1.0, 2.0, 3.0];
    let (a, b) = (MatRef::rows(&[], 0), MatRef::rows(&[], 3));
    bf16gemm(Dims::new(2, 3, 0), a, b, 2.0, MatMut::rows(&mut c, 3).with_bias(&bias));
    assert_eq!(c, [4.0, 5.0, 6.0, 4.0, 5.0, 6.0]);
    let b = MatRef::rows(&[0.0; 12], 3);
    bf16gemm(Dims::new(0, 3, 4), MatRef::rows(&[], 4), b, 0.0, MatMut::rows(&mut [], 3));
}

#[test]
#[should_panic(expected = "bf16gemm: B is too short")]
fn short_operand_panics_naming_it() {
    let mut c = vec![0f32; 4];
    bf16gemm(
        Dims::new(2, 2, 2),
        MatRef::rows(&[0.0; 4], 2),
        MatRef::rows(&[0.0; 3], 2),
        0.0,
        MatMut::rows(&mut c, 2),
    );
}

/// The vectorised packing of the AVX512-BF16 and AMX paths (conversion by `vcvtne2ps2bf16`,
/// then a transpose or an interleave) writes the words of the scalar packing (`bf16_bits`),
/// bit for bit, on special values (NaN, infinities, subnormals, ties to even) and random bit
/// patterns, for both source layouts, every panel of both kernels (pair by pair, 12 and 32
/// wide; AMX's A row by row; AMX's depth padded to 16 pairs), every panel height, and depths
/// around the vector width and the block. AMX's packing needs only AVX512-BF16, so it is
/// tested wherever that runs, AMX or not.
#[test]
fn avx512_packing_equals_the_scalar_one() {
    use super::driver::{pack, Kernel, Panel};
    use super::{amx::Amx, avx512::Avx512Bf16};
    if !cpu_supports(Path::Avx512Bf16) {
        eprintln!("bf16gemm: SKIPPED the AVX512-BF16 and AMX packing (this CPU lacks AVX512-BF16)");
        return;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let specials = [
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7f80_0001), // a signalling NaN
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MIN_POSITIVE / 3.0, // subnormal: flushes
        -f32::MIN_POSITIVE / 3.0,
        f32::MAX,
        1.0 + 2f32.powi(-8), // ties: to even
        1.0 + 3.0 * 2f32.powi(-8),
        -0.0,
    ];
    let rsa = KC + 5;
    // 32 rows of rsa for the row-major reads, 33 * KC for the depth-major ones below
    let a: Vec<f32> =
        (0..33 * rsa)
            .map(|i| {
                if i % 7 == 0 {
                    specials[i / 7 % specials.len()]
                } else {
                    f32::from_bits(rng.random::<u32>())
                }
            })
            .collect();
    // (kernel, which panel, its width, depth padding in pairs, row by row, the kernel's packing)
    type Packer = unsafe fn(*const f32, usize, usize, usize, usize, Panel);
    let panels: [(&str, &str, usize, usize, bool, Packer); 4] = [
        ("avx512-bf16", "A", Avx512Bf16::MR, 1, false, pack::<Avx512Bf16>),
        ("avx512-bf16", "B", Avx512Bf16::NR, 1, false, pack::<Avx512Bf16>),
        ("amx", "A", Amx::MR, Amx::KQ_ALIGN, Amx::A_ROWS, pack::<Amx>),
        ("amx", "B", Amx::NR, Amx::KQ_ALIGN, false, pack::<Amx>),
    ];
    for (kernel, which, w_full, align, rows, packer) in panels {
        for kc in [1, 2, 15, 16, 31, 32, 33, 64, 99, KC - 1, KC] {
            let kq = kc.div_ceil(2).next_multiple_of(align);
            let (s_q, s_w) = if rows { (1, kq) } else { (w_full, 1) };
            // X(i, p) = a[i*s_i + p*s_p]: rows contiguous along the depth (a row-major A, a
            // transposed B: `Kernel::pack_depth_contiguous`) or at each depth (a transposed A,
            // a row-major B: `Kernel::pair_runs` inside `pack_panel`).
            for (s_i, s_p) in [(rsa, 1), (1, 33)] {
                for w in 1..=w_full {
                    // the scalar packing by its definition: row i's pairs, zero past X
                    let x = |i: usize, p: usize| if i < w && p < kc { a[i * s_i + p * s_p] } else { 0.0 };
                    let want = |i: usize| -> Vec<u32> {
                        (0..kq).map(|q| bf16_bits(x(i, 2 * q)) | bf16_bits(x(i, 2 * q + 1)) << 16).collect()
                    };
                    let mut got = vec![0xdead_beefu32; w_full * kq];
                    let out = Panel { ptr: got.as_mut_ptr(), w_full, kq, s_q, s_w, wide: false };
                    // SAFETY: the panel holds w_full x kq words; X's elements lie within a's
                    // 33 * rsa (32 rows of rsa >= kc, or kc <= KC depths 33 apart); the CPU
                    // has AVX512-BF16, all either kernel's packing uses.
                    unsafe { packer(a.as_ptr(), s_i, s_p, w, kc, out) };
                    for i in 0..w_full {
                        let g: Vec<u32> = (0..kq).map(|q| got[q * s_q + i * s_w]).collect();
                        assert_eq!(
                            g,
                            want(i),
                            "{kernel} {which} panel, X strides ({s_i}, {s_p}), kc {kc}, {w} of {w_full} rows: row {i}: \
                             {g:08x?} vs the scalar {:08x?}",
                            want(i)
                        );
                    }
                }
            }
        }
    }
}
