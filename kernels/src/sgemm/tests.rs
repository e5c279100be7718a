//! Fast GEMM against the f64 reference over shapes, layouts, betas, kernels and thread counts.

use super::driver::{gemm_seq, Generic, Kernel};
use super::team::{gemm_team, team_b_len, with_team_b, Team, TeamState};
use super::*;
use crate::gemm::Strides;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// How an operand is laid out in memory.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// Row-major with `pad` extra elements per row.
    Row(usize),
    /// Column-major (transposed) with `pad` extra elements per column.
    Col(usize),
    /// Neither stride is 1.
    Strided,
}

impl Layout {
    /// The strides of an r x c matrix, and the length it needs.
    fn strides(self, r: usize, c: usize) -> (Strides, usize) {
        let (rs, cs) = match self {
            Layout::Row(p) => (c + p, 1),
            Layout::Col(p) => (1, r + p),
            Layout::Strided => (2 * c + 1, 2),
        };
        let len = if r == 0 || c == 0 { 0 } else { (r - 1) * rs + (c - 1) * cs + 1 };
        (Strides { batch: 0, row: rs, col: cs }, len)
    }
}

fn rand_vec(rng: &mut StdRng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Which implementation to drive.
#[derive(Clone, Copy, Debug)]
enum Imp {
    Isa(Isa, usize),
    /// Generic kernel, tiny blocks: many jc/pc/ic iterations and edge tiles.
    Tiny,
    /// Generic kernel with the AVX-512 geometry (12 x 32) and small blocks.
    Wide,
    /// A team of this many threads sharing packed B blocks, with the Tiny geometry (threads
    /// often get no rows or no B panels; many blocks cycle through the two buffers), and
    /// maybe one thread (this index) starting late ...
    TeamTiny(usize, Option<usize>),
    /// ... or with the CPU's kernel (never gated by the product's size, unlike `Isa`).
    TeamIsa(Isa, usize),
}

fn run_imp(imp: Imp, d: Dims, a: MatRef<f32>, b: MatRef<f32>, beta: f32, c: MatMut<f32>) {
    /// The blocked kernel `K` on this thread, after the bounds check.
    unsafe fn direct<K: Kernel>(d: Dims, a: MatRef<f32>, b: MatRef<f32>, beta: f32, mut c: MatMut<f32>) {
        check("sgemm", d, &a, &b, &c);
        if d.m > 0 && d.n > 0 && d.k > 0 {
            gemm_seq::<K>(Gemm::new(d, &a, &b, beta, &mut c));
        } else {
            sgemm_with(Isa::Portable, 1, d, a, b, beta, c);
        }
    }
    /// Runs a team of `parts` threads sharing a B buffer of `len` floats (`run` is one
    /// thread's part) after checking the bounds.
    fn team<F>(
        (parts, len): (usize, usize),
        d: Dims,
        a: MatRef<f32>,
        b: MatRef<f32>,
        beta: f32,
        mut c: MatMut<f32>,
        run: F,
    ) where
        F: Fn(&Team, Gemm) + Sync,
    {
        check("sgemm", d, &a, &b, &c);
        if d.m == 0 || d.n == 0 || d.k == 0 {
            return sgemm_with(Isa::Portable, 1, d, a, b, beta, c);
        }
        let state = TeamState::new(parts);
        let g = Gemm::new(d, &a, &b, beta, &mut c);
        with_team_b(len, |bbuf| {
            let bbuf = MutPtr(bbuf);
            threads::run_parts(parts, |tid| run(&Team { tid, state: &state, bbuf: bbuf.get() }, g));
        });
    }
    type TinyK = Generic<4, 8, 8, 5, 16>;
    let (n, k) = (d.n, d.k);
    match imp {
        // SAFETY (both team arms): `team` checks the bounds before any thread runs the kernel.
        Imp::TeamTiny(t, late) => team((t, team_b_len::<TinyK>(n, k)), d, a, b, beta, c, |tm, g| {
            if late == Some(tm.tid) {
                std::thread::sleep(std::time::Duration::from_micros(300));
            }
            unsafe { gemm_team::<TinyK>(tm, g) }
        }),
        Imp::TeamIsa(isa, t) => {
            let len = team_b_len::<avx512::Avx512>(n, k).max(team_b_len::<avx2::Avx2>(n, k));
            team((t, len), d, a, b, beta, c, |tm, g| unsafe { team_part(isa, tm, g) })
        }
        Imp::Isa(isa, t) => sgemm_with(isa, t, d, a, b, beta, c),
        // SAFETY: `direct` checks the bounds before running the kernel.
        Imp::Tiny => unsafe { direct::<Generic<4, 8, 8, 5, 16>>(d, a, b, beta, c) },
        Imp::Wide => unsafe { direct::<Generic<12, 32, 24, 16, 64>>(d, a, b, beta, c) },
    }
}

/// The vector kernel families this CPU can run (all of them, whichever it would pick); the
/// `isa_paths` test binary reports the ones it cannot.
fn fast_isas() -> Vec<Isa> {
    [Isa::Avx512, Isa::Avx2].into_iter().filter(|&i| crate::isa::cpu_supports(i)).collect()
}

/// The implementations this CPU can run.
fn imps() -> Vec<Imp> {
    let mut v = vec![Imp::Isa(Isa::Portable, 1), Imp::Tiny, Imp::Wide, Imp::TeamTiny(3, None)];
    for isa in fast_isas() {
        v.extend([Imp::Isa(isa, 1), Imp::Isa(isa, 2), Imp::TeamIsa(isa, 2), Imp::TeamIsa(isa, 3)]);
    }
    v
}

fn tol(k: usize) -> f32 {
    1e-5 + 3e-6 * k as f32
}

/// Runs one case and compares against the reference, including untouched padding in C
/// (`padc` extra elements after each row).
fn case(rng: &mut StdRng, imp: Imp, d: Dims, layouts: (Layout, Layout), beta: f32, padc: usize) {
    case_bias(rng, imp, d, layouts, (beta, false), padc)
}

/// [`case`], with a random bias row carried by C when `with_bias`.
fn case_bias(
    rng: &mut StdRng,
    imp: Imp,
    d: Dims,
    (la, lb): (Layout, Layout),
    (beta, with_bias): (f32, bool),
    padc: usize,
) {
    let Dims { m, n, k, .. } = d;
    let (sa, alen) = la.strides(m, k);
    let (sb, blen) = lb.strides(k, n);
    let a = rand_vec(rng, alen);
    let b = rand_vec(rng, blen);
    let rsc = n + padc;
    let clen = if m == 0 { 0 } else { (m - 1) * rsc + n + padc };
    let mut c0 = rand_vec(rng, clen);
    if beta == 0.0 {
        c0.iter_mut().for_each(|x| *x = f32::NAN);
    }
    let (a, b) = (MatRef::new(&a, sa), MatRef::new(&b, sb));
    let bias = rand_vec(rng, n);
    let bias = with_bias.then_some(&bias[..]);
    let mut want = c0.clone();
    sgemm_reference_f64(d, a, b, beta, MatMut { bias, ..MatMut::rows(&mut want, rsc) });
    let mut got = c0.clone();
    run_imp(imp, d, a, b, beta, MatMut { bias, ..MatMut::rows(&mut got, rsc) });
    for idx in 0..clen {
        let (i, j) = (idx / rsc, idx % rsc);
        if i < m && j < n {
            let (g, w) = (got[idx], want[idx]);
            assert!(
                (g - w).abs() <= tol(k) * (1.0 + w.abs()),
                "{imp:?} {m}x{n}x{k} {la:?} {lb:?} beta={beta} bias {with_bias}: C[{i},{j}] = {g}, want {w}"
            );
        } else {
            assert!(
                got[idx].to_bits() == c0[idx].to_bits(),
                "{imp:?} {m}x{n}x{k}: padding C[{idx}] was written"
            );
        }
    }
}

const LAYOUTS: [Layout; 4] = [Layout::Row(0), Layout::Col(0), Layout::Row(3), Layout::Col(5)];

#[test]
fn odd_sizes_all_transposes() {
    let mut rng = StdRng::seed_from_u64(1);
    let sizes = [1usize, 2, 7, 15, 16, 17, 33];
    for imp in imps() {
        for &m in &sizes {
            for &n in &sizes {
                for &k in &[1usize, 7, 17] {
                    let la = LAYOUTS[(m + n) % 4];
                    let lb = LAYOUTS[(m + 2 * k + n / 3) % 4];
                    let beta = [0.0, 1.0, 0.5][(m + n + k) % 3];
                    case(&mut rng, imp, Dims::new(m, n, k), (la, lb), beta, (m * 7 + n) % 3);
                }
            }
        }
    }
}

#[test]
fn nn_nt_tn_tt_and_strided() {
    let mut rng = StdRng::seed_from_u64(2);
    let all = [Layout::Row(0), Layout::Col(0), Layout::Strided, Layout::Row(1)];
    for imp in imps() {
        for la in all {
            for lb in all {
                for beta in [0.0, 1.0] {
                    case(&mut rng, imp, Dims::new(37, 45, 29), (la, lb), beta, 2);
                }
            }
        }
    }
}

/// Every height of the last micro-panel (1 to MR - 1 rows, for every kernel's MR up to 12) on
/// full-width tiles, which a kernel may compute in place ([`Kernel::tile_rows`]), and with a
/// column edge beside them: every start (beta 0, 1, 0.5; a bias).
#[test]
fn every_row_edge_of_full_width_tiles() {
    let mut rng = StdRng::seed_from_u64(11);
    for imp in imps() {
        for m in 1..=25 {
            for n in [64, 70] {
                let beta = [0.0, 1.0, 0.5][m % 3];
                let layouts = (LAYOUTS[m % 4], LAYOUTS[(m / 4) % 4]);
                case_bias(&mut rng, imp, Dims::new(m, n, 19), layouts, (beta, m % 2 == 0), m % 3);
            }
        }
    }
}

/// A bias carried by C lands on every row, with every beta, on every kernel, at every tile
/// edge.
#[test]
fn bias_on_every_row() {
    let mut rng = StdRng::seed_from_u64(7);
    for imp in imps() {
        for (i, (m, n, k)) in [(1, 1, 1), (7, 33, 17), (13, 45, 29), (25, 70, 9)].into_iter().enumerate() {
            for beta in [0.0, 1.0, 0.5] {
                let layouts = (LAYOUTS[i % 4], LAYOUTS[(i + 1) % 4]);
                case_bias(&mut rng, imp, Dims::new(m, n, k), layouts, (beta, true), i % 3);
            }
        }
    }
}

/// The bias start is the old way bit for bit: C filled with the bias rows, then the product
/// accumulated into it (beta 1), so a linear layer's numbers did not move.
#[test]
fn bias_equals_filling_c_then_accumulating() {
    let mut rng = StdRng::seed_from_u64(8);
    let fast =
        fast_isas().into_iter().flat_map(|isa| [Imp::Isa(isa, 1), Imp::Isa(isa, 2), Imp::TeamIsa(isa, 2)]);
    for imp in [Imp::Isa(Isa::Portable, 1), Imp::Tiny].into_iter().chain(fast) {
        for (m, n, k) in [(37, 45, 29), (150, 70, 300), (430, 200, 400)] {
            let (a, b, bias) = (rand_vec(&mut rng, m * k), rand_vec(&mut rng, k * n), rand_vec(&mut rng, n));
            let (d, a, b) = (Dims::new(m, n, k), MatRef::rows(&a, k), MatRef::cols(&b, k));
            let mut filled: Vec<f32> = (0..m).flat_map(|_| bias.iter().copied()).collect();
            run_imp(imp, d, a, b, 1.0, MatMut::rows(&mut filled, n));
            let mut got = vec![f32::NAN; m * n];
            run_imp(imp, d, a, b, 0.0, MatMut::rows(&mut got, n).with_bias(&bias));
            for (i, (g, f)) in got.iter().zip(&filled).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    f.to_bits(),
                    "{imp:?} {m}x{n}x{k}: C[{i}] = {g}, filled-then-added {f}"
                );
            }
        }
    }
}

/// A bias over a batch: the same row added to every item (broadcast), split over threads.
#[test]
fn bias_broadcast_over_the_batch() {
    let mut rng = StdRng::seed_from_u64(9);
    let (batch, m, n, k) = (3, 40, 50, 60);
    let (a, b, bias) = (rand_vec(&mut rng, batch * m * k), rand_vec(&mut rng, k * n), rand_vec(&mut rng, n));
    let d = Dims::new(m, n, k).batched(batch);
    let (a, b) = (MatRef::rows(&a, k).batch_stride(m * k), MatRef::rows(&b, n));
    let mut want = vec![0.0; batch * m * n];
    sgemm_reference_f64(d, a, b, 0.0, MatMut::rows(&mut want, n).batch_stride(m * n).with_bias(&bias));
    for isa in fast_isas().into_iter().chain([Isa::Portable]) {
        let mut got = vec![f32::NAN; batch * m * n];
        sgemm_with(isa, 2, d, a, b, 0.0, MatMut::rows(&mut got, n).batch_stride(m * n).with_bias(&bias));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= tol(k) * (1.0 + w.abs()), "{isa:?}: C[{i}] = {g}, want {w}");
        }
    }
}

#[test]
#[should_panic(expected = "sgemm: the bias has 2 elements, C has n = 3 columns")]
fn short_bias_panics_naming_it() {
    let mut c = vec![0.0f32; 6];
    let (a, b) = (MatRef::rows(&[1.0; 4], 2), MatRef::rows(&[1.0; 6], 3));
    sgemm(Dims::new(2, 3, 2), a, b, 0.0, MatMut::rows(&mut c, 3).with_bias(&[1.0, 2.0]));
}

#[test]
fn larger_than_blocks() {
    // Crosses KC (256), MC (144) and several micro-tiles, with edges on every side.
    let mut rng = StdRng::seed_from_u64(3);
    let fast: Vec<Imp> =
        imps().into_iter().filter(|i| matches!(i, Imp::Isa(isa, _) if *isa != Isa::Portable)).collect();
    for imp in fast.iter().copied().chain([Imp::Isa(Isa::Portable, 2)]) {
        case(&mut rng, imp, Dims::new(257, 255, 300), (Layout::Row(0), Layout::Row(0)), 0.0, 0);
        case(&mut rng, imp, Dims::new(150, 64, 513), (Layout::Col(0), Layout::Row(1)), 1.0, 3);
        case(&mut rng, imp, Dims::new(64, 257, 256), (Layout::Row(0), Layout::Col(0)), 0.0, 1);
    }
    for imp in fast {
        // Large enough (2*m*n*k >= TEAM_MIN_FLOPS) for 2 threads to form a team.
        case(&mut rng, imp, Dims::new(430, 200, 400), (Layout::Row(0), Layout::Col(0)), 0.5, 1);
        // Crosses NC (4080) with a thin product.
        case(&mut rng, imp, Dims::new(7, 4100, 3), (Layout::Row(0), Layout::Row(0)), 1.0, 0);
        case(&mut rng, imp, Dims::new(3, 4100, 5), (Layout::Row(0), Layout::Col(0)), 0.0, 0);
        // The bias at every block and split: a team (over M), depth blocks past the first
        // (which must not add it again), NC blocks and a split over N (the bias shifted
        // with the columns).
        let rc = (Layout::Row(0), Layout::Col(0));
        case_bias(&mut rng, imp, Dims::new(430, 200, 400), rc, (0.0, true), 1);
        case_bias(&mut rng, imp, Dims::new(150, 64, 513), rc, (0.5, true), 0);
        case_bias(&mut rng, imp, Dims::new(7, 4100, 3), rc, (1.0, true), 0);
        case_bias(&mut rng, imp, Dims::new(3, 4100, 300), rc, (0.0, true), 2);
    }
}

#[test]
fn kernel_a_packing_matches_scalar() {
    // Each kernel's (possibly vectorised) row-major A panel packing against the scalar one, on
    // depths around its 8-step blocks and a padded row stride.
    fn check_kernel<K: Kernel>() {
        let mut rng = StdRng::seed_from_u64(9);
        for kc in [1usize, 7, 8, 15, 17, 33, 255, 257] {
            let rsa = kc + 3;
            let a = rand_vec(&mut rng, K::MR * rsa);
            let (mut got, mut want) = (vec![f32::NAN; K::MR * kc], vec![0.0; K::MR * kc]);
            // SAFETY: `a` holds MR rows of stride rsa >= kc; the outputs hold MR*kc floats.
            unsafe {
                K::pack_a_rows(kc, a.as_ptr(), rsa, got.as_mut_ptr());
                driver::pack_a_rows_scalar(K::MR, kc, a.as_ptr(), rsa, want.as_mut_ptr());
            }
            assert_eq!(got, want, "kc={kc}");
        }
    }
    if crate::isa::cpu_supports(Isa::Avx2) {
        check_kernel::<avx2::Avx2>();
    } else {
        eprintln!("SKIPPED: AVX2 A packing (this CPU has no AVX2)");
    }
    if crate::isa::cpu_supports(Isa::Avx512) {
        check_kernel::<avx512::Avx512>();
    } else {
        eprintln!("SKIPPED: AVX-512 kernel's A packing (this CPU has no AVX-512F)");
    }
    check_kernel::<Generic<6, 16, 144, 256, 4080>>();
}

#[test]
fn kernel_b_packing_matches_scalar() {
    // Each kernel's (possibly vectorised) column-major B panel packing against the scalar
    // transpose, on depths around its 8-step blocks and a padded column stride.
    fn check_kernel<K: Kernel>() {
        let mut rng = StdRng::seed_from_u64(11);
        for kc in [1usize, 7, 8, 15, 17, 33, 255, 257] {
            let csb = kc + 5;
            let b = rand_vec(&mut rng, K::NR * csb);
            let (mut got, mut want) = (vec![f32::NAN; K::NR * kc], vec![0.0; K::NR * kc]);
            // SAFETY: `b` holds NR columns of stride csb >= kc; the outputs hold NR*kc floats.
            unsafe {
                K::pack_b_cols(kc, b.as_ptr(), csb, got.as_mut_ptr());
                driver::pack_a_rows_scalar(K::NR, kc, b.as_ptr(), csb, want.as_mut_ptr());
            }
            assert_eq!(got, want, "kc={kc}");
        }
    }
    if crate::isa::cpu_supports(Isa::Avx2) {
        check_kernel::<avx2::Avx2>();
    } else {
        eprintln!("SKIPPED: AVX2 B packing (this CPU has no AVX2)");
    }
    if crate::isa::cpu_supports(Isa::Avx512) {
        check_kernel::<avx512::Avx512>();
    } else {
        eprintln!("SKIPPED: AVX-512 kernel's B packing (this CPU has no AVX-512F)");
    }
    check_kernel::<Generic<6, 16, 144, 256, 4080>>();
}

#[test]
fn team_odd_sizes() {
    // Shared-B teams on the odd sizes around the kernels' MR/NR, with 2 and 3 threads.
    let mut rng = StdRng::seed_from_u64(10);
    let sizes = [1usize, 7, 15, 17, 33, 255, 257];
    let mut teams = vec![Imp::TeamTiny(2, None), Imp::TeamTiny(3, Some(0)), Imp::TeamTiny(3, Some(2))];
    for isa in fast_isas() {
        teams.extend([Imp::TeamIsa(isa, 2), Imp::TeamIsa(isa, 3)]);
    }
    for imp in teams {
        for (x, &m) in sizes.iter().enumerate() {
            for (y, &n) in sizes.iter().enumerate() {
                let k = sizes[(x + 2 * y) % sizes.len()];
                let (la, lb) = (LAYOUTS[(x + y) % 4], LAYOUTS[(2 * x + y) % 4]);
                case(&mut rng, imp, Dims::new(m, n, k), (la, lb), [0.0, 1.0, 0.5][(x + y) % 3], x % 3);
            }
        }
    }
}

#[test]
fn threaded_product_inside_a_pool_worker() {
    // From a pool worker the product must not use a team (it could wait on a part
    // queued behind itself): it falls back to independent parts, and finishes.
    let mut rng = StdRng::seed_from_u64(11);
    for isa in fast_isas().into_iter().chain([Isa::Portable]) {
        threads::pool(2).install(|| {
            case(
                &mut rng,
                Imp::Isa(isa, 2),
                Dims::new(257, 255, 300),
                (Layout::Row(0), Layout::Row(0)),
                0.0,
                1,
            );
        });
    }
}

#[test]
fn k_zero_scales_c() {
    let mut c = vec![f32::NAN; 6];
    let (a, b) = (MatRef::rows(&[], 0), MatRef::rows(&[], 3));
    sgemm(Dims::new(2, 3, 0), a, b, 0.0, MatMut::rows(&mut c, 3));
    assert!(c.iter().all(|&x| x == 0.0));
    let mut c = vec![2.0; 6];
    sgemm(Dims::new(2, 3, 0), a, b, 0.5, MatMut::rows(&mut c, 3));
    assert!(c.iter().all(|&x| x == 1.0));
    // with a bias: C = beta·C + bias
    let bias = [1.0, 2.0, 3.0];
    sgemm(Dims::new(2, 3, 0), a, b, 0.5, MatMut::rows(&mut c, 3).with_bias(&bias));
    assert_eq!(c, [1.5, 2.5, 3.5, 1.5, 2.5, 3.5]);
    let mut c = vec![f32::NAN; 6];
    sgemm(Dims::new(2, 3, 0), a, b, 0.0, MatMut::rows(&mut c, 3).with_bias(&bias));
    assert_eq!(c, [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
    sgemm(
        Dims::new(0, 3, 4),
        MatRef::rows(&[], 4),
        MatRef::rows(&[0.0; 12], 3),
        0.0,
        MatMut::rows(&mut [], 3),
    );
}

#[test]
#[should_panic(expected = "A is too short")]
fn short_a_panics() {
    let mut c = vec![0.0; 4];
    sgemm(
        Dims::new(2, 2, 2),
        MatRef::rows(&[1.0; 3], 2),
        MatRef::rows(&[1.0; 4], 2),
        0.0,
        MatMut::rows(&mut c, 2),
    );
}

#[test]
#[should_panic(expected = "B is too short")]
fn short_b_panics() {
    let mut c = vec![0.0; 4];
    let b = MatRef::new(&[1.0; 4], Strides { batch: 0, row: 2, col: 2 });
    sgemm(Dims::new(2, 2, 2), MatRef::rows(&[1.0; 4], 2), b, 0.0, MatMut::rows(&mut c, 2));
}

#[test]
#[should_panic(expected = "C is too short")]
fn short_c_panics() {
    let mut c = vec![0.0; 3];
    sgemm(
        Dims::new(2, 2, 2),
        MatRef::rows(&[1.0; 4], 2),
        MatRef::rows(&[1.0; 4], 2),
        0.0,
        MatMut::rows(&mut c, 2),
    );
}

/// `d.batch` products, A's and B's items back to back or broadcast (`zero` batch stride).
fn batched_case(imp_isa: Isa, threads: usize, d: Dims, (sa_zero, sb_zero): (bool, bool), beta: f32) {
    let Dims { batch, m, n, k } = d;
    let mut rng = StdRng::seed_from_u64((batch * 1000 + m * 10 + n) as u64);
    let (sa, sb) = (if sa_zero { 0 } else { m * k }, if sb_zero { 0 } else { k * n });
    let a = rand_vec(&mut rng, if sa_zero { m * k } else { batch * m * k });
    // B transposed in every item.
    let b = rand_vec(&mut rng, if sb_zero { k * n } else { batch * k * n });
    let sc = m * n + 1;
    let mut c0 = rand_vec(&mut rng, batch * sc);
    if beta == 0.0 {
        c0.iter_mut().for_each(|x| *x = f32::NAN);
    }
    let (a, b) = (MatRef::rows(&a, k).batch_stride(sa), MatRef::cols(&b, k).batch_stride(sb));
    let mut want = c0.clone();
    sgemm_reference_f64(d, a, b, beta, MatMut::rows(&mut want, n).batch_stride(sc));
    let mut got = c0.clone();
    sgemm_with(imp_isa, threads, d, a, b, beta, MatMut::rows(&mut got, n).batch_stride(sc));
    for i in 0..batch {
        for idx in 0..m * n {
            let (g, w) = (got[i * sc + idx], want[i * sc + idx]);
            assert!((g - w).abs() <= tol(k) * (1.0 + w.abs()), "batch {i} C[{idx}] = {g}, want {w}");
        }
        assert!(got[i * sc + m * n].to_bits() == c0[i * sc + m * n].to_bits());
    }
}

#[test]
fn batched_broadcast_and_threads() {
    for isa_ in fast_isas().into_iter().chain([Isa::Portable]) {
        for threads in [1, 2] {
            batched_case(isa_, threads, Dims::new(33, 20, 17).batched(5), (false, false), 0.0);
            batched_case(isa_, threads, Dims::new(64, 64, 32).batched(7), (true, false), 1.0);
            batched_case(isa_, threads, Dims::new(20, 40, 9).batched(3), (false, true), 0.0);
            // Big enough per item to take the parallel-over-batch path.
            batched_case(isa_, threads, Dims::new(96, 100, 64).batched(6), (false, true), 1.0);
            batched_case(isa_, threads, Dims::new(130, 70, 40).batched(1), (true, true), 0.0);
        }
    }
}

#[test]
fn batched_overlapping_c_accumulates_in_order() {
    // stride_c == 0 with beta = 1: C accumulates every product.
    let (m, n, k, batch) = (3, 4, 5, 6);
    let mut rng = StdRng::seed_from_u64(9);
    let a = rand_vec(&mut rng, batch * m * k);
    let b = rand_vec(&mut rng, k * n);
    let d = Dims::new(m, n, k).batched(batch);
    let (a, b) = (MatRef::rows(&a, k).batch_stride(m * k), MatRef::rows(&b, n));
    let mut want = vec![0.0f32; m * n];
    sgemm_reference_f64(d, a, b, 1.0, MatMut::rows(&mut want, n));
    let mut got = vec![0.0f32; m * n];
    sgemm(d, a, b, 1.0, MatMut::rows(&mut got, n));
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-4, "{g} vs {w}");
    }
}

#[test]
fn denormal_products_flush_to_zero() {
    std::thread::spawn(|| {
        // Every product is ~1e-40 (denormal); with FTZ/DAZ set by the kernel the sum is 0.
        let (m, n, k) = (8, 16, 4);
        let a = vec![1.0e-20f32; m * k];
        let b = vec![1.0e-20f32; k * n];
        let mut c = vec![0.0f32; m * n];
        sgemm(Dims::new(m, n, k), MatRef::rows(&a, k), MatRef::rows(&b, n), 0.0, MatMut::rows(&mut c, n));
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        assert!(c.iter().all(|&x| x == 0.0), "denormals not flushed: {:?}", &c[..4]);
        // Normal-range results are unaffected.
        let a = vec![1.0e-10f32; m * k];
        sgemm(Dims::new(m, n, k), MatRef::rows(&a, k), MatRef::rows(&b, n), 0.0, MatMut::rows(&mut c, n));
        assert!(c.iter().all(|&x| (x - 4.0e-30).abs() <= 1e-35), "{:?}", &c[..4]);
    })
    .join()
    .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn prop_matches_reference(
        m in 1usize..70, n in 1usize..70, k in 1usize..70,
        la in 0usize..3, lb in 0usize..3, beta_i in 0usize..3, threads in 1usize..3, seed in any::<u64>(),
    ) {
        let all = [Layout::Row(0), Layout::Col(1), Layout::Strided];
        let beta = [0.0, 1.0, -0.5][beta_i];
        // every kernel family this CPU runs, on the same case
        for isa in fast_isas().into_iter().chain([Isa::Portable]) {
            let mut rng = StdRng::seed_from_u64(seed);
            case(&mut rng, Imp::Isa(isa, threads), Dims::new(m, n, k), (all[la], all[lb]), beta, 1);
        }
    }
}
