//! Every instruction-set path this CPU can run, forced in turn ([`isa::force`]), for every
//! kernel family: each family's f32 kernels against their scalar references (computed in f64 on
//! the same inputs), on sizes that take the threaded splits. The family must record a call on
//! exactly the path it has for the forced one ([`isa::hits`]), so a switch that a family ignores
//! fails here.
//!
//! Its own binary, with its own `main` (`harness = false`): forcing is process-wide, and the
//! report below is printed, not captured. One line per family says which paths ran and which
//! this CPU cannot run (not a failure); a path the CPU supports that did not run, or ran wrong,
//! fails the run (exit code 1).

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::panic::{catch_unwind, AssertUnwindSafe};
use tapegrad_kernels::attention::{self as att, AttentionShape, DropoutMask};
use tapegrad_kernels::bf16gemm;
use tapegrad_kernels::elementwise::{self as ew, Unary};
use tapegrad_kernels::gemm::{Dims, MatMut, MatRef};
use tapegrad_kernels::isa::{self, Family, Isa};
use tapegrad_kernels::sgemm::{self, PackedB};
use tapegrad_kernels::update::{self, AdamCoefs, AdamStep};
use tapegrad_kernels::{layernorm as ln, loss, lstm, softmax};

fn rand_vec(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

fn widen(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// Asserts |got − want| ≤ tol·(1 + |want|) elementwise (lengths equal).
fn close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g as f64 - w).abs() <= tol * (1.0 + w.abs()), "{what}[{i}] = {g}, want {w}");
    }
}

/// f32 rounding over a k-term dot product: √k · 2⁻²⁴ grows to this with k ≤ 1024 and
/// operands in [−1, 1] (the products' magnitudes are ~√k, so the relative bound holds).
const GEMM_TOL: f64 = 5e-5;
/// The vector exp/tanh/erf are within 4e-7 relative; chained through a row (softmax, layer
/// norm, cross-entropy over up to 1024 terms) the sums add √n·2⁻²⁴.
const VEC_TOL: f64 = 1e-5;

fn check_sgemm(rng: &mut StdRng) {
    // 300³ (54 Mflop): split over both threads; 600x600x200 reaches the shared-B team
    for (m, n, k) in [(7, 33, 5), (300, 300, 300), (600, 600, 200)] {
        let (a, b) = (rand_vec(rng, m * k, 1.0), rand_vec(rng, k * n, 1.0));
        let (d, a, b) = (Dims::new(m, n, k), MatRef::rows(&a, k), MatRef::cols(&b, k)); // B transposed (NT)
        let mut c = vec![0f32; m * n];
        sgemm::sgemm(d, a, b, 0.0, MatMut::rows(&mut c, n));
        let mut want = vec![0f32; m * n];
        sgemm::sgemm_reference_f64(d, a, b, 0.0, MatMut::rows(&mut want, n));
        close(&format!("sgemm {m}x{n}x{k}"), &c, &widen(&want), GEMM_TOL);
    }
    // batched, parallel over the batch
    let (batch, m, n, k) = (4, 96, 100, 64);
    let (a, b) = (rand_vec(rng, batch * m * k, 1.0), rand_vec(rng, k * n, 1.0));
    let d = Dims::new(m, n, k).batched(batch);
    let (a, b) = (MatRef::rows(&a, k).batch_stride(m * k), MatRef::rows(&b, n)); // B broadcast
    let mut c = vec![0f32; batch * m * n];
    sgemm::sgemm(d, a, b, 0.0, MatMut::rows(&mut c, n).batch_stride(m * n));
    let mut want = vec![0f32; batch * m * n];
    sgemm::sgemm_reference_f64(d, a, b, 0.0, MatMut::rows(&mut want, n).batch_stride(m * n));
    close("sgemm batched", &c, &widen(&want), GEMM_TOL);
}

fn check_prepacked(rng: &mut StdRng) {
    // the LSTM's recurrent product: 64 rows against a packed 256 x 1024 weight, and odd edges
    for (m, n, k) in [(64, 1024, 256), (13, 17, 300)] {
        let (a, b, c0) = (rand_vec(rng, m * k, 1.0), rand_vec(rng, k * n, 1.0), rand_vec(rng, m * n, 1.0));
        let (a, b) = (MatRef::rows(&a, k), MatRef::cols(&b, k));
        let pb = PackedB::new(k, n, b);
        let mut c = c0.clone();
        sgemm::sgemm_prepacked(m, a, &pb, 1.0, MatMut::rows(&mut c, n));
        let mut want = c0;
        sgemm::sgemm_reference_f64(Dims::new(m, n, k), a, b, 1.0, MatMut::rows(&mut want, n));
        close(&format!("prepacked {m}x{n}x{k}"), &c, &widen(&want), GEMM_TOL);
    }
}

fn check_elementwise(rng: &mut StdRng) {
    let n = 100_003; // above PAR_MIN: split over the threads; not a multiple of 8
    let (x, g) = (rand_vec(rng, n, 9.0), rand_vec(rng, n, 1.0));
    for op in [Unary::Exp, Unary::Tanh, Unary::Sigmoid, Unary::Relu, Unary::Gelu, Unary::GeluTanh] {
        let (mut y, mut dx) = (vec![0f32; n], vec![0f32; n]);
        ew::unary_forward(op, &x, &mut y);
        ew::unary_backward(op, &x, &y, &g, &mut dx);
        let (x64, g64) = (widen(&x), widen(&g));
        let (mut y64, mut dx64) = (vec![0f64; n], vec![0f64; n]);
        ew::unary_forward_reference(op, &x64, &mut y64);
        ew::unary_backward_reference(op, &x64, &y64, &g64, &mut dx64);
        close(&format!("{op:?} forward"), &y, &y64, VEC_TOL);
        close(&format!("{op:?} backward"), &dx, &dx64, VEC_TOL);
    }
}

fn check_softmax(rng: &mut StdRng) {
    let (rows, n) = (130, 1021); // 133k elements: split over the threads
    let (x, g) = (rand_vec(rng, rows * n, 8.0), rand_vec(rng, rows * n, 1.0));
    for log in [false, true] {
        let (mut y, mut dx) = (vec![0f32; rows * n], vec![0f32; rows * n]);
        softmax::softmax_forward(&x, rows, n, 1, &mut y, log);
        softmax::softmax_backward(&y, &g, rows, n, 1, &mut dx, log);
        let (mut y64, mut dx64) = (vec![0f64; rows * n], vec![0f64; rows * n]);
        softmax::softmax_forward_reference(&widen(&x), rows, n, 1, &mut y64, log);
        softmax::softmax_backward_reference(&y64, &widen(&g), rows, n, 1, &mut dx64, log);
        close(&format!("softmax log={log}"), &y, &y64, VEC_TOL);
        close(&format!("softmax backward log={log}"), &dx, &dx64, VEC_TOL);
    }
}

fn check_layernorm(rng: &mut StdRng) {
    let (rows, n) = (200, 384);
    let (x, g) = (rand_vec(rng, rows * n, 3.0), rand_vec(rng, rows * n, 1.0));
    let (w, b) = (rand_vec(rng, n, 2.0), rand_vec(rng, n, 1.0));
    let (mut y, mut mean, mut rstd) = (vec![0f32; rows * n], vec![0f32; rows], vec![0f32; rows]);
    let norm = ln::LayerNormIn { x: &x[..], rows, n, w: Some(&w[..]), b: Some(&b[..]) };
    ln::layer_norm_forward(norm, 1e-5, &mut y, ln::LayerNormStats { mean: &mut mean, rstd: &mut rstd });
    let (mut dx, mut dw, mut db) = (vec![0f32; rows * n], vec![0f32; n], vec![0f32; n]);
    let grads = ln::LayerNormGrads { dx: Some(&mut dx[..]), dw: Some(&mut dw[..]), db: Some(&mut db[..]) };
    ln::layer_norm_backward(norm, ln::LayerNormStats { mean: &mean[..], rstd: &rstd[..] }, &g, grads);
    let (x64, w64, b64, g64) = (widen(&x), widen(&w), widen(&b), widen(&g));
    let (mut y64, mut m64, mut r64) = (vec![0f64; rows * n], vec![0f64; rows], vec![0f64; rows]);
    let norm64 = ln::LayerNormIn { x: &x64[..], rows, n, w: Some(&w64[..]), b: Some(&b64[..]) };
    let stats64 = ln::LayerNormStats { mean: &mut m64[..], rstd: &mut r64[..] };
    ln::layer_norm_forward_reference(norm64, 1e-5, &mut y64, stats64);
    let (mut dx64, mut dw64, mut db64) = (vec![0f64; rows * n], vec![0f64; n], vec![0f64; n]);
    let grads64 =
        ln::LayerNormGrads { dx: Some(&mut dx64[..]), dw: Some(&mut dw64[..]), db: Some(&mut db64[..]) };
    ln::layer_norm_backward_reference(
        norm64,
        ln::LayerNormStats { mean: &m64[..], rstd: &r64[..] },
        &g64,
        grads64,
    );
    close("layer norm y", &y, &y64, VEC_TOL);
    close("layer norm dx", &dx, &dx64, VEC_TOL);
    close("layer norm dw", &dw, &dw64, VEC_TOL * 10.0); // sums of 200 rows
    close("layer norm db", &db, &db64, VEC_TOL * 10.0);
    // layer_norm(dropout(x) + r) in one pass: the same s and y as the reference kernels in f64
    let r = rand_vec(rng, rows * n, 1.0);
    let (mut s, mut keep) = (vec![0f32; rows * n], vec![0u8; rows * n]);
    let out = ln::ResidualOut {
        s: &mut s,
        y: &mut y,
        keep: Some(&mut keep[..]),
        stats: ln::LayerNormStats { mean: &mut mean, rstd: &mut rstd },
    };
    ln::residual_layer_norm_forward(
        ln::ResidualIn { ln: norm, residual: &r, dropout: Some((0.1, 4)) },
        1e-5,
        out,
    );
    let (mut d64, mut keep64) = (vec![0f64; rows * n], vec![0u8; rows * n]);
    tapegrad_kernels::dropout::dropout_forward_reference(&x64, 0.1, 4, &mut d64, &mut keep64);
    assert_eq!(keep, keep64, "residual layer norm: the dropout mask");
    let s64: Vec<f64> = d64.iter().zip(widen(&r)).map(|(d, r)| d + r).collect();
    let stats64 = ln::LayerNormStats { mean: &mut m64[..], rstd: &mut r64[..] };
    ln::layer_norm_forward_reference(ln::LayerNormIn { x: &s64[..], ..norm64 }, 1e-5, &mut y64, stats64);
    close("residual layer norm s", &s, &s64, VEC_TOL);
    close("residual layer norm y", &y, &y64, VEC_TOL);
}

fn check_loss(rng: &mut StdRng) {
    let (n, c) = (64, 1024);
    let x = rand_vec(rng, n * c, 6.0);
    let t: Vec<usize> = (0..n).map(|_| rng.random_range(0..c)).collect();
    let (l, count) = loss::cross_entropy_forward(&x, n, c, &t, Some(t[3]));
    let (l64, count64) = loss::cross_entropy_forward_reference(&widen(&x), n, c, &t, Some(t[3]));
    assert_eq!(count, count64, "cross-entropy: counted rows");
    close("cross-entropy", &[l], &[l64], VEC_TOL);
    let (mut d, mut d64) = (vec![0f32; n * c], vec![0f64; n * c]);
    loss::cross_entropy_backward(&x, n, c, &t, Some(t[3]), 1.0 / n as f32, &mut d);
    loss::cross_entropy_backward_reference(&widen(&x), n, c, &t, Some(t[3]), 1.0 / n as f64, &mut d64);
    close("cross-entropy backward", &d, &d64, VEC_TOL);
}

fn check_lstm(rng: &mut StdRng) {
    let (rows, h, p) = (37, 100, 30); // 30 of 37 rows have a previous cell state
    let pre = rand_vec(rng, rows * 4 * h, 4.0);
    let c_prev = rand_vec(rng, p * h, 2.0);
    let (mut act, mut c, mut tc, mut hh) =
        (pre.clone(), vec![0f32; rows * h], vec![0f32; rows * h], vec![0f32; rows * h]);
    lstm::cell_forward(&mut act, &c_prev, h, &mut c, &mut tc, &mut hh);
    let mut cp64 = widen(&c_prev);
    cp64.resize(rows * h, 0.0);
    let (act64, c64, tc64, h64) = lstm::cell_forward_reference(&widen(&pre), &cp64, rows, h);
    close("lstm act", &act, &act64, VEC_TOL);
    close("lstm c", &c, &c64, VEC_TOL);
    close("lstm tanh c", &tc, &tc64, VEC_TOL);
    close("lstm h", &hh, &h64, VEC_TOL);
    // the backward from what this forward saved, against the f64 textbook backward
    let (dh, dc) = (rand_vec(rng, rows * h, 1.0), rand_vec(rng, rows * h, 1.0));
    let (mut dz, mut dcp) = (vec![f32::NAN; rows * 4 * h], vec![f32::NAN; p * h]);
    let x = lstm::CellBackwardIn {
        act: &act[..],
        c_prev: &c_prev[..],
        tanh_c: &tc[..],
        dh: &dh[..],
        dc: &dc[..],
        hidden: h,
    };
    lstm::cell_backward(x, lstm::CellGrads { d_gates: &mut dz[..], dc_prev: &mut dcp[..] });
    let (dz64, dcp64) = lstm::cell_backward_reference(&widen(&pre), &cp64, &widen(&dh), &widen(&dc), rows, h);
    close("lstm d_gates", &dz, &dz64, VEC_TOL);
    close("lstm dc_prev", &dcp, &dcp64[..p * h], VEC_TOL);
}

fn check_update(rng: &mut StdRng) {
    let n = 10_007;
    let (theta0, g) = (rand_vec(rng, n, 1.0), rand_vec(rng, n, 1.0));
    let (m0, v0) =
        (rand_vec(rng, n, 0.1), rand_vec(rng, n, 0.01).iter().map(|v| v.abs()).collect::<Vec<_>>());
    let s = AdamStep {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
        decoupled: true,
        step: 3,
    };
    let (mut theta, mut m, mut v) = (theta0.clone(), m0.clone(), v0.clone());
    update::adam_update(&mut theta, &g, &mut m, &mut v, s);
    // the reference in f32 with the same coefficients: the fast kernel does the same operations
    let (mut theta_r, mut m_r, mut v_r) = (theta0, m0, v0);
    update::adam_reference(&mut theta_r, &g, &mut m_r, &mut v_r, AdamCoefs::new(s));
    for (what, got, want) in [("theta", &theta, &theta_r), ("m", &m, &m_r), ("v", &v, &v_r)] {
        let same = got.iter().zip(want.iter()).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "adam {what}: not bit-identical to the reference");
    }
}

/// Attention on `s` (keys from `pad_from` on padded, dropout p = 0.2) by the fast kernels
/// (`bf16`: the `_bf16` ones, run by the bf16gemm family) against the matching f64 loops, to
/// `tol`: its forward (P kept, the signs of the dropped entries set), its backward, and an
/// evaluation forward (no P, no dropout: f32 takes the packed-panels path there).
fn check_attention_on(rng: &mut StdRng, s: AttentionShape, pad_from: usize, bf16: bool, tol: f64) {
    let n = s.q_numel();
    let (q, k, v, g) =
        (rand_vec(rng, n, 1.5), rand_vec(rng, n, 1.5), rand_vec(rng, n, 1.5), rand_vec(rng, n, 1.0));
    let mask: Vec<f32> =
        (0..s.batch * s.seq).map(|i| if i % s.seq >= pad_from { -1e30 } else { 0.0 }).collect();
    let dropout = Some(DropoutMask { p: 0.2, seed: 3 });
    let (qkv, mask) = (att::Qkv { q: &q[..], k: &k[..], v: &v[..] }, Some(&mask[..]));
    let [mut o, mut p, mut dq, mut dk, mut dv, mut o_eval] =
        [n, s.probs_numel(), n, n, n, n].map(|len| vec![0f32; len]);
    let grads = att::Qkv { q: &mut dq[..], k: &mut dk[..], v: &mut dv[..] };
    if bf16 {
        att::attention_forward_bf16(s, qkv, mask, dropout, &mut o, Some(&mut p));
        att::attention_backward_bf16(s, qkv, &p, dropout, &g, grads);
        att::attention_forward_bf16(s, qkv, mask, None, &mut o_eval, None);
    } else {
        att::attention_forward(s, qkv, mask, dropout, &mut o, Some(&mut p));
        att::attention_backward(s, qkv, &p, dropout, &g, grads);
        att::attention_forward(s, qkv, mask, None, &mut o_eval, None);
    }
    let (q64, k64, v64, g64) = (widen(&q), widen(&k), widen(&v), widen(&g));
    let (qkv64, mask64) = (att::Qkv { q: &q64[..], k: &k64[..], v: &v64[..] }, mask.map(widen));
    let [mut o64, mut dq64, mut dk64, mut dv64, mut o64_eval] = [0; 5].map(|_| vec![0f64; n]);
    let grads64 = att::Qkv { q: &mut dq64[..], k: &mut dk64[..], v: &mut dv64[..] };
    let p64 = if bf16 {
        let p64 = att::attention_forward_bf16_reference(s, qkv64, mask64.as_deref(), dropout, &mut o64);
        att::attention_backward_bf16_reference(s, qkv64, &p64, dropout, &g64, grads64);
        att::attention_forward_bf16_reference(s, qkv64, mask64.as_deref(), None, &mut o64_eval);
        p64
    } else {
        let p64 = att::attention_forward_reference(s, qkv64, mask64.as_deref(), dropout, &mut o64);
        att::attention_backward_reference(s, qkv64, &p64, dropout, &g64, grads64);
        att::attention_forward_reference(s, qkv64, mask64.as_deref(), None, &mut o64_eval);
        p64
    };
    let what = if bf16 { "bf16 attention" } else { "attention" };
    let dropped = p.iter().filter(|x| x.is_sign_negative()).count() as f64 / p.len() as f64;
    assert!((0.1..0.3).contains(&dropped), "{what}: {dropped} of the saved P marked dropped, p = 0.2");
    let unsigned: Vec<f32> = p.iter().map(|x| x.abs()).collect();
    let pairs =
        [(&o, &o64), (&unsigned, &p64), (&dq, &dq64), (&dk, &dk64), (&dv, &dv64), (&o_eval, &o64_eval)];
    for (name, (got, want)) in ["o", "P", "dq", "dk", "dv", "o (evaluation)"].iter().zip(pairs) {
        close(&format!("{what} {name}"), got, want, tol);
    }
}

fn check_attention(rng: &mut StdRng) {
    check_attention_on(rng, AttentionShape::square(2, 33, 4, 16), 25, false, VEC_TOL);
}

fn check_bf16gemm(rng: &mut StdRng) {
    // one depth block (bit-exact with the reference but on AMX), then three blocks and an odd depth
    // (the blocks' partial sums are added into C one by one: f32 rounding of a k-term sum)
    for (m, n, k, exact) in [(300, 300, 300, true), (7, 33, 5, true), (200, 150, 1001, false)] {
        let (a, b) = (rand_vec(rng, m * k, 1.0), rand_vec(rng, k * n, 1.0));
        let (d, a, b) = (Dims::new(m, n, k), MatRef::rows(&a, k), MatRef::cols(&b, k)); // B transposed (NT)
        let mut c = vec![0f32; m * n];
        bf16gemm::bf16gemm(d, a, b, 0.0, MatMut::rows(&mut c, n));
        let mut want = vec![0f32; m * n];
        bf16gemm::bf16gemm_reference(d, a, b, 0.0, MatMut::rows(&mut want, n));
        let what = format!("bf16gemm {m}x{n}x{k}");
        // AMX sums a tile's depths in its own order: bit-exact only on the other paths
        if exact && bf16gemm::path() != bf16gemm::Path::Amx {
            assert!(c.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()), "{what}: not bit-exact");
        } else {
            close(&what, &c, &widen(&want), GEMM_TOL);
        }
    }
}

/// Attention's products under `--precision bf16` run on this path's bf16 kernel (one thread
/// per pair), against the loops that round every product's operands: within f32 rounding of
/// them (the rounding itself moves them 1e-3 and more).
fn check_bf16_attention(rng: &mut StdRng) {
    check_attention_on(rng, AttentionShape::square(2, 40, 2, 32), 30, true, 2e-4);
}

fn check(family: Family) -> fn(&mut StdRng) {
    match family {
        Family::Sgemm => check_sgemm,
        Family::Prepacked => check_prepacked,
        Family::Elementwise => check_elementwise,
        Family::Softmax => check_softmax,
        Family::LayerNorm => check_layernorm,
        Family::Loss => check_loss,
        Family::Lstm => check_lstm,
        Family::Update => check_update,
        Family::Attention => check_attention,
        Family::Bf16Gemm => |rng| {
            check_bf16gemm(rng);
            check_bf16_attention(rng);
        },
    }
}

/// What happened to one family on one path.
enum Outcome {
    Ran,
    NotSupported,
    Failed(String),
}

fn run_one(family: Family, forced: Isa) -> Outcome {
    let want = family.path_for(forced);
    let _guard = isa::force(forced);
    let before: Vec<usize> = Isa::ALL.iter().map(|&i| isa::hits(family, i)).collect();
    let mut rng = StdRng::seed_from_u64(0x15a + family as u64);
    if let Err(e) = catch_unwind(AssertUnwindSafe(|| check(family)(&mut rng))) {
        let msg =
            e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
        return Outcome::Failed(format!("{} wrong: {}", want.name(), msg.unwrap_or_default()));
    }
    let took: Vec<Isa> =
        Isa::ALL.iter().zip(&before).filter(|(i, b)| isa::hits(family, **i) > **b).map(|(&i, _)| i).collect();
    if took != [want] {
        let names: Vec<&str> = took.iter().map(|i| i.name()).collect();
        return Outcome::Failed(format!(
            "forced {} should run its {} path, ran {names:?}",
            forced.name(),
            want.name()
        ));
    }
    Outcome::Ran
}

fn main() {
    // `cargo test -- --list` lists this binary as one test; filters do not narrow it (every
    // path the CPU supports always runs)
    if std::env::args().any(|a| a == "--list") {
        println!("isa_paths: test");
        return;
    }
    // a failing check's message is reported in its family's line below
    std::panic::set_hook(Box::new(|_| {}));
    let mut failed = false;
    println!(
        "ISA paths (CPU best: {}, in use by default: {})",
        best_supported().name(),
        isa::detected().name()
    );
    for family in Family::ALL {
        let (mut ran, mut unsupported, mut errors) = (vec![], vec![], vec![]);
        for &path in family.paths() {
            // force the path itself (a family's own paths are what the forced ISA selects)
            let outcome =
                if family.cpu_supports(path) { run_one(family, path) } else { Outcome::NotSupported };
            match outcome {
                Outcome::Ran => ran.push(path.name()),
                Outcome::NotSupported => unsupported.push(path.name()),
                Outcome::Failed(e) => errors.push(e),
            }
        }
        let mut line = format!("isa paths  {:<12} ran: {}", family.name(), ran.join(", "));
        if !unsupported.is_empty() {
            line += &format!("; not supported by this CPU: {}", unsupported.join(", "));
        }
        for e in &errors {
            line += &format!("; FAILED: {e}");
        }
        failed |= !errors.is_empty();
        println!("{line}");
    }
    if !isa::cpu_supports(Isa::Avx512) {
        // what covers the AVX-512 families' code here: `Avx512Shaped` and its kin in the unit tests
        println!(
            "isa paths  avx512: its instructions cannot run here; the kernels' unit tests run its geometry \
             (tiles, blocks, packed layouts, AMX's too) on the portable arithmetic"
        );
    }
    // the kernel the bf16 GEMM runs on the best path here (AMX or AVX512-BF16 under avx512);
    // its unit tests run each kernel by name
    println!("isa paths  bf16gemm's best path runs the {} kernel here", {
        let _g = isa::force(best_supported());
        bf16gemm::path().name()
    });
    if failed {
        eprintln!("isa_paths: a path this CPU supports failed or did not run");
        std::process::exit(1);
    }
}

fn best_supported() -> Isa {
    Isa::ALL.into_iter().find(|&i| isa::cpu_supports(i)).unwrap_or(Isa::Portable)
}
