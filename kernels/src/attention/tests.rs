//! The fast attention kernels against the plain loops of `super`.

use super::reference::reference_factors;
use super::*;
use rand::{Rng, RngExt};

fn rand_vec<T: Float>(n: usize, rng: &mut impl Rng) -> Vec<T> {
    (0..n).map(|_| T::from_f64(rng.random_range(-1.5..1.5))).collect()
}

fn max_diff<T: Float>(a: &[T], b: &[T]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x.to_f64() - y.to_f64()).abs()).fold(0.0, f64::max)
}

/// Fast forward and backward against the loops, for f32 and f64, over odd sizes (fewer
/// queries than keys, as a classifier's last layer asks, and more), with and without
/// padding and dropout, on 1 and 2 threads.
fn check_against_reference<T: Float>(tol: f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    for (batch, queries, seq, heads, head_dim) in [
        (2, 0, 0, 2, 3),
        (1, 1, 1, 1, 1),
        (2, 7, 7, 3, 5),
        (3, 17, 17, 2, 8),
        (2, 33, 33, 4, 16),
        (2, 1, 33, 4, 16),
        (3, 5, 17, 2, 8),
        (2, 9, 4, 3, 5),
        (2, 3, 0, 2, 3),
        // MiniLM's head size: several key and query panels of the evaluation path, each
        // with a partial last one (the panels path), and the classifier's single query (the
        // row path)
        (1, 40, 70, 2, 32),
        (2, 1, 70, 2, 32),
    ] {
        let s = AttentionShape { batch, queries, seq, heads, head_dim };
        let (nq, nkv) = (s.q_numel(), s.kv_numel());
        let (q, k, v, g) = (
            rand_vec::<T>(nq, &mut rng),
            rand_vec(nkv, &mut rng),
            rand_vec(nkv, &mut rng),
            rand_vec(nq, &mut rng),
        );
        // the last third of each sequence is padding
        let mask: Vec<T> = (0..batch * seq)
            .map(|i| if i % seq >= seq - seq / 3 && i % seq > 0 { T::from_f64(-1e30) } else { T::ZERO })
            .collect();
        for (key_mask, dropout) in [
            (None, None),
            (Some(&mask[..]), None),
            (Some(&mask[..]), Some(DropoutMask { p: 0.3, seed: 11 })),
            (None, Some(DropoutMask { p: 1.0, seed: 12 })), // nothing kept
        ] {
            let qkv = Qkv { q: &q[..], k: &k[..], v: &v[..] };
            let mut want_o = vec![T::ZERO; nq];
            let want_p = attention_forward_reference(s, qkv, key_mask, dropout, &mut want_o);
            let mut want = [vec![T::ZERO; nq], vec![T::ZERO; nkv], vec![T::ZERO; nkv]];
            let [wq, wk, wv] = &mut want;
            attention_backward_reference(s, qkv, &want_p, dropout, &g, Qkv { q: wq, k: wk, v: wv });
            // every output starts as garbage: the kernels overwrite it all
            let garbage = |n: usize| vec![T::from_f64(7.0); n];
            for threads in [1, 2] {
                let (mut o, mut p) = (garbage(nq), garbage(s.probs_numel()));
                attention_forward_with(
                    Run { threads, bf16: false },
                    s,
                    qkv,
                    key_mask,
                    dropout,
                    &mut o,
                    Some(&mut p),
                );
                let mut o2 = garbage(nq);
                attention_forward_with(
                    Run { threads, bf16: false },
                    s,
                    qkv,
                    key_mask,
                    dropout,
                    &mut o2,
                    None,
                );
                let (mut dq, mut dk, mut dv) = (garbage(nq), garbage(nkv), garbage(nkv));
                let grads = Qkv { q: &mut dq[..], k: &mut dk[..], v: &mut dv[..] };
                attention_backward_with(Run { threads, bf16: false }, s, qkv, &p, dropout, &g, grads);
                let what = format!("{s:?} mask {} dropout {dropout:?} threads {threads}", key_mask.is_some());
                assert!(max_diff(&o, &want_o) < tol, "o: {what}");
                // without P to save and without dropout, o2 takes the evaluation path: the
                // panels from a panel's worth of queries on (`panels::pays`), else the row path
                assert!(max_diff(&o2, &want_o) < tol, "o without saving P: {what}");
                // P is saved with the sign bit of each dropped entry set
                let unsigned: Vec<T> = p.iter().map(|x| x.abs()).collect();
                assert!(max_diff(&unsigned, &want_p) < tol, "P: {what}");
                let factors = reference_factors::<T>(s, dropout);
                let dropped = |f: &T| dropout.is_some() && *f == T::ZERO;
                assert!(
                    p.iter().zip(&factors).all(|(x, f)| x.is_sign_negative() == dropped(f)),
                    "the signs of the saved P are not the mask: {what}"
                );
                for (name, got, want) in [("dq", &dq, &*wq), ("dk", &dk, &*wk), ("dv", &dv, &*wv)] {
                    assert!(max_diff(got, want) < tol, "{name}: {what}: {}", max_diff(got, want));
                }
            }
        }
    }
}

#[test]
fn fast_matches_reference_f32() {
    check_against_reference::<f32>(2e-5);
}

#[test]
fn fast_matches_reference_f64() {
    check_against_reference::<f64>(1e-12);
}

#[test]
fn padded_keys_get_no_probability_and_dropout_keeps_1_minus_p() {
    let s = AttentionShape::square(1, 64, 2, 4);
    let n = s.q_numel();
    let mut rng = ChaCha8Rng::seed_from_u64(18);
    let (q, k, v) = (rand_vec::<f32>(n, &mut rng), rand_vec(n, &mut rng), rand_vec(n, &mut rng));
    let mask: Vec<f32> = (0..64).map(|j| if j >= 48 { f32::MIN } else { 0.0 }).collect();
    let (mut o, mut p) = (vec![0.0; n], vec![0.0; s.probs_numel()]);
    attention_forward(s, Qkv { q: &q, k: &k, v: &v }, Some(&mask), None, &mut o, Some(&mut p));
    for row in p.chunks_exact(64) {
        assert!(row[48..].iter().all(|&x| x == 0.0), "a padded key got probability");
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    let f = reference_factors::<f32>(s, Some(DropoutMask { p: 0.25, seed: 5 }));
    let kept = f.iter().filter(|&&x| x != 0.0).count() as f64 / f.len() as f64;
    assert!((kept - 0.75).abs() < 0.02, "kept {kept}");
    assert!(f.iter().all(|&x| x == 0.0 || (x - 1.0 / 0.75).abs() < 1e-6));
}

/// The first Tq queries alone give the first Tq rows of the full block: the same outputs,
/// the same saved P (dropout's signs included) and, for an upstream gradient that is zero
/// on the other rows, the same dK and dV (f64, to rounding).
#[test]
fn the_first_queries_are_the_first_rows_of_the_full_block() {
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    let full = AttentionShape::square(2, 12, 3, 4);
    let first = AttentionShape { queries: 3, ..full };
    let (hid, t, tq) = (full.hidden(), full.seq, first.queries);
    let (q, k, v, g) = (
        rand_vec::<f64>(full.q_numel(), &mut rng),
        rand_vec(full.kv_numel(), &mut rng),
        rand_vec(full.kv_numel(), &mut rng),
        rand_vec(full.q_numel(), &mut rng),
    );
    // row i of item b of a (B, Tq, H) buffer from the (B, T, H) one
    let rows = |x: &[f64]| -> Vec<f64> {
        (0..full.batch).flat_map(|b| x[b * t * hid..][..tq * hid].to_vec()).collect()
    };
    let g_first_rows: Vec<f64> = (0..full.batch * t)
        .flat_map(|r| if r % t < tq { g[r * hid..][..hid].to_vec() } else { vec![0.0; hid] })
        .collect();
    for dropout in [None, Some(DropoutMask { p: 0.3, seed: 21 })] {
        let run = |s: AttentionShape, q: &[f64], g: &[f64]| {
            let (mut o, mut p) = (vec![0.0; s.q_numel()], vec![0.0; s.probs_numel()]);
            let qkv = Qkv { q, k: &k[..], v: &v[..] };
            attention_forward(s, qkv, None, dropout, &mut o, Some(&mut p));
            let (mut dq, mut dk, mut dv) =
                (vec![0.0; s.q_numel()], vec![0.0; s.kv_numel()], vec![0.0; s.kv_numel()]);
            attention_backward(
                s,
                qkv,
                &p,
                dropout,
                g,
                Qkv { q: &mut dq[..], k: &mut dk[..], v: &mut dv[..] },
            );
            (o, p, dq, dk, dv)
        };
        let (o, p, dq, dk, dv) = run(full, &q, &g_first_rows);
        let (o1, p1, dq1, dk1, dv1) = run(first, &rows(&q), &rows(&g));
        let p_first: Vec<f64> = p.chunks_exact(t * t).flat_map(|pair| pair[..tq * t].to_vec()).collect();
        assert!(max_diff(&o1, &rows(&o)) < 1e-12, "o, dropout {dropout:?}");
        assert!(p1
            .iter()
            .zip(&p_first)
            .all(|(a, b)| (a - b).abs() < 1e-12 && a.is_sign_negative() == b.is_sign_negative()));
        assert!(max_diff(&dq1, &rows(&dq)) < 1e-12, "dq, dropout {dropout:?}");
        assert!(max_diff(&dk1, &dk) < 1e-12 && max_diff(&dv1, &dv) < 1e-12, "dk, dv, dropout {dropout:?}");
    }
}

/// The bf16 kernels (f32 data) against the loops that round every product's operands to bf16
/// (in f64), on 1 and 2 threads, with and without padding, dropout and a P to save: within
/// f32's rounding of those loops' values, and much nearer to them than to the exact attention
/// (so the operands are rounded where the loops round them, and only there). 1 and 2 threads
/// give the same bits.
#[test]
fn bf16_kernels_match_the_rounding_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let widen = |x: &[f32]| -> Vec<f64> { x.iter().map(|&v| v as f64).collect() };
    for (batch, queries, seq, heads, head_dim) in
        [(2, 7, 7, 3, 5), (3, 17, 17, 2, 8), (2, 33, 33, 4, 16), (2, 1, 33, 4, 16), (1, 40, 70, 2, 32)]
    {
        let s = AttentionShape { batch, queries, seq, heads, head_dim };
        let (nq, nkv) = (s.q_numel(), s.kv_numel());
        let (q, k, v, g) = (
            rand_vec::<f32>(nq, &mut rng),
            rand_vec(nkv, &mut rng),
            rand_vec(nkv, &mut rng),
            rand_vec(nq, &mut rng),
        );
        let mask: Vec<f32> =
            (0..batch * seq).map(|i| if i % seq >= seq - seq / 3 { -1e30 } else { 0.0 }).collect();
        let (q64, k64, v64, g64, mask64) = (widen(&q), widen(&k), widen(&v), widen(&g), widen(&mask));
        for (masked, dropout) in [(false, None), (true, None), (true, Some(DropoutMask { p: 0.3, seed: 13 }))]
        {
            let what = format!("{s:?} mask {masked} dropout {dropout:?}");
            let (key_mask, key_mask64) =
                if masked { (Some(&mask[..]), Some(&mask64[..])) } else { (None, None) };
            // the loops in f64: operands rounded (want) and exact (the f32 attention's value)
            let qkv64 = Qkv { q: &q64[..], k: &k64[..], v: &v64[..] };
            let mut want = [vec![0.0; nq], vec![0.0; nq], vec![0.0; nkv], vec![0.0; nkv]];
            let mut exact = want.clone();
            for (out, bf16) in [(&mut want, true), (&mut exact, false)] {
                let [o, dq, dk, dv] = out;
                let forward =
                    if bf16 { attention_forward_bf16_reference } else { attention_forward_reference };
                let backward =
                    if bf16 { attention_backward_bf16_reference } else { attention_backward_reference };
                let p = forward(s, qkv64, key_mask64, dropout, o);
                backward(s, qkv64, &p, dropout, &g64, Qkv { q: &mut dq[..], k: &mut dk[..], v: &mut dv[..] });
            }
            let qkv = Qkv { q: &q[..], k: &k[..], v: &v[..] };
            let mut runs = vec![];
            for threads in [1, 2] {
                let run = Run { threads, bf16: true };
                let (mut o, mut p) = (vec![7.0; nq], vec![7.0; s.probs_numel()]);
                attention_forward_with(run, s, qkv, key_mask, dropout, &mut o, Some(&mut p));
                let mut o_eval = vec![7.0; nq];
                attention_forward_with(run, s, qkv, key_mask, dropout, &mut o_eval, None);
                assert_eq!(o, o_eval, "o without saving P: {what}");
                let (mut dq, mut dk, mut dv) = (vec![7.0; nq], vec![7.0; nkv], vec![7.0; nkv]);
                let grads = Qkv { q: &mut dq[..], k: &mut dk[..], v: &mut dv[..] };
                attention_backward_with(run, s, qkv, &p, dropout, &g, grads);
                runs.push([o, dq, dk, dv]);
            }
            assert_eq!(runs[0], runs[1], "1 and 2 threads: {what}");
            for (i, name) in ["o", "dq", "dk", "dv"].iter().enumerate() {
                let got = widen(&runs[0][i]);
                let (err, rounding) = (max_diff(&got, &want[i]), max_diff(&want[i], &exact[i]));
                assert!(
                    err < 2e-4 && err * 8.0 < rounding,
                    "{name}: {err:e} from the rounding loops, which are {rounding:e} from exact: {what}"
                );
            }
        }
    }
}

#[test]
#[should_panic(expected = "bf16 products take f32 data")]
fn bf16_kernels_refuse_f64() {
    let s = AttentionShape::square(1, 2, 1, 2);
    let x = vec![0.5f64; s.q_numel()];
    attention_forward_bf16(s, Qkv { q: &x[..], k: &x[..], v: &x[..] }, None, None, &mut x.clone(), None);
}
