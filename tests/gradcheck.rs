//! Every differentiable op, checked against central finite differences in f64.
//!
//! One table drives the whole suite: each row names an op and builds, from a
//! proptest-drawn base shape and seed, the op's inputs and the function to check.
//! `cargo test --test gradcheck -- --list` shows one test per row.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tapegrad::autograd::{gradcheck, DropoutMask, GradcheckOptions, Tensor};
use tapegrad::models::layers::Dropout;
use tapegrad::models::lstm::{Lstm, LstmWeights};

type T64 = Tensor<f64>;
type Fun = Box<dyn Fn(&[T64]) -> T64>;
/// A row of the table: from a base shape and an RNG, the inputs and the function.
type Build = fn(&[usize], &mut ChaCha8Rng) -> (Vec<T64>, Fun);

/// A trainable input of `shape` with values uniform in [-2, 2].
fn x(shape: &[usize], rng: &mut ChaCha8Rng) -> T64 {
    T64::param((0..shape.iter().product()).map(|_| rng.random_range(-2.0..2.0)).collect(), shape)
}
/// Values in [0.5, 2.5] (for log, sqrt, pow, denominators).
fn positive(shape: &[usize], rng: &mut ChaCha8Rng) -> T64 {
    T64::param((0..shape.iter().product()).map(|_| rng.random_range(0.5..2.5)).collect(), shape)
}
/// Values at least 0.1 away from 0 (for kinks at 0).
fn away_from_zero(shape: &[usize], rng: &mut ChaCha8Rng) -> T64 {
    let v = (0..shape.iter().product())
        .map(|_| rng.random_range(0.1..2.0) * if rng.random() { 1.0 } else { -1.0 });
    T64::param(v.collect(), shape)
}
/// Distinct values 0.05 apart at least, shuffled (no ties for max).
fn distinct(shape: &[usize], rng: &mut ChaCha8Rng) -> T64 {
    let n: usize = shape.iter().product();
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 * 0.1 - n as f64 * 0.05).collect();
    v.shuffle(rng);
    T64::param(v, shape)
}
/// A constant 0/1 mask.
fn mask(shape: &[usize], rng: &mut ChaCha8Rng) -> T64 {
    T64::from_vec((0..shape.iter().product()).map(|_| if rng.random() { 1.0 } else { 0.0 }).collect(), shape)
}
/// `shape` with some dims randomly turned to 1 and maybe a leading dim dropped:
/// a shape that broadcasts to `shape`.
fn broadcastable(shape: &[usize], rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut s: Vec<usize> = shape.iter().map(|&d| if rng.random_bool(0.4) { 1 } else { d }).collect();
    if s.len() > 1 && rng.random() {
        s.remove(0);
    }
    s
}
fn random_dim(shape: &[usize], rng: &mut ChaCha8Rng) -> isize {
    rng.random_range(0..shape.len()) as isize
}

fn unary(
    shape: &[usize],
    rng: &mut ChaCha8Rng,
    input: fn(&[usize], &mut ChaCha8Rng) -> T64,
    f: fn(&T64) -> T64,
) -> (Vec<T64>, Fun) {
    (vec![input(shape, rng)], Box::new(move |t| f(&t[0])))
}
fn binary(
    shape: &[usize],
    rng: &mut ChaCha8Rng,
    f: fn(&T64, &T64) -> T64,
    broadcast: bool,
) -> (Vec<T64>, Fun) {
    let other = if broadcast { broadcastable(shape, rng) } else { shape.to_vec() };
    let (a, b) = if rng.random() { (x(shape, rng), x(&other, rng)) } else { (x(&other, rng), x(shape, rng)) };
    (vec![a, b], Box::new(move |t| f(&t[0], &t[1])))
}

/// Checks one row on `cases` random shapes of rank 1..=3 (dims 1..=4).
fn run(build: Build, min_rank: usize) {
    let mut runner = TestRunner::new(Config { cases: 24, failure_persistence: None, ..Config::default() });
    let strategy = (prop::collection::vec(1usize..=4, min_rank..=3), any::<u64>());
    runner
        .run(&strategy, |(shape, seed)| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (inputs, f) = build(&shape, &mut rng);
            let opts = GradcheckOptions { seed, ..GradcheckOptions::default() };
            gradcheck(|t| f(t), &inputs, opts)
                .map_err(|e| TestCaseError::fail(format!("shape {shape:?}: {e}")))
        })
        .unwrap();
}

/// One `#[test]` per row: `name: min_rank => build`.
macro_rules! table {
    ($($name:ident: $rank:literal => $build:expr;)*) => {
        $( #[test] fn $name() { run($build, $rank) } )*
    };
}

table! {
    add: 1 => |s, r| binary(s, r, |a, b| a.add(b), false);
    add_broadcast: 1 => |s, r| binary(s, r, |a, b| a.add(b), true);
    sub_broadcast: 1 => |s, r| binary(s, r, |a, b| a.sub(b), true);
    mul: 1 => |s, r| binary(s, r, |a, b| a.mul(b), false);
    mul_broadcast: 1 => |s, r| binary(s, r, |a, b| a.mul(b), true);
    div_broadcast: 1 => |s, r| {
        let other = broadcastable(s, r);
        (vec![x(s, r), positive(&other, r)], Box::new(|t| t[0].div(&t[1])))
    };
    neg: 1 => |s, r| unary(s, r, x, |a| a.neg());
    add_scalar: 1 => |s, r| unary(s, r, x, |a| a.add_scalar(0.7));
    mul_scalar: 1 => |s, r| unary(s, r, x, |a| a.mul_scalar(-1.3));
    pow_scalar: 1 => |s, r| unary(s, r, positive, |a| a.pow_scalar(2.5));
    exp: 1 => |s, r| unary(s, r, x, |a| a.exp());
    log: 1 => |s, r| unary(s, r, positive, |a| a.log());
    sqrt: 1 => |s, r| unary(s, r, positive, |a| a.sqrt());
    tanh: 1 => |s, r| unary(s, r, x, |a| a.tanh());
    sigmoid: 1 => |s, r| unary(s, r, x, |a| a.sigmoid());
    relu: 1 => |s, r| unary(s, r, away_from_zero, |a| a.relu());
    gelu: 1 => |s, r| unary(s, r, x, |a| a.gelu());
    gelu_tanh: 1 => |s, r| unary(s, r, x, |a| a.gelu_tanh());
    matmul_2d: 1 => |s, r| {
        let (m, k, n) = (s[0], r.random_range(1..=5), r.random_range(1..=5));
        (vec![x(&[m, k], r), x(&[k, n], r)], Box::new(|t| t[0].matmul(&t[1])))
    };
    matmul_batched: 1 => |s, r| {
        let (b, m, k, n) = (s[0], r.random_range(1..=4), r.random_range(1..=4), r.random_range(1..=4));
        (vec![x(&[b, 2, m, k], r), x(&[b, 2, k, n], r)], Box::new(|t| t[0].matmul(&t[1])))
    };
    matmul_shared_rhs: 1 => |s, r| {
        let (b, m, k, n) = (s[0] + 1, r.random_range(1..=4), r.random_range(1..=4), r.random_range(1..=4));
        (vec![x(&[b, m, k], r), x(&[k, n], r)], Box::new(|t| t[0].matmul(&t[1])))
    };
    matmul_shared_lhs: 1 => |s, r| {
        let (b, m, k, n) = (s[0] + 1, r.random_range(1..=4), r.random_range(1..=4), r.random_range(1..=4));
        (vec![x(&[m, k], r), x(&[b, k, n], r)], Box::new(|t| t[0].matmul(&t[1])))
    };
    linear: 1 => |s, r| {
        // x [s0, 2, in] · Wᵀ + b
        let (inp, out) = (r.random_range(1..=5), r.random_range(1..=5));
        (vec![x(&[s[0], 2, inp], r), x(&[out, inp], r), x(&[out], r)], Box::new(|t| t[0].linear(&t[1], Some(&t[2]))))
    };
    linear_no_bias: 1 => |s, r| {
        let (inp, out) = (r.random_range(1..=5), r.random_range(1..=5));
        (vec![x(&[s[0], inp], r), x(&[out, inp], r)], Box::new(|t| t[0].linear(&t[1], None)))
    };
    sum: 1 => |s, r| unary(s, r, x, |a| a.sum());
    sum_dims: 2 => |s, r| {
        let d = random_dim(s, r);
        (vec![x(s, r)], Box::new(move |t| t[0].sum_dims(&[d, -1], false)))
    };
    sum_dims_keepdim: 1 => |s, r| {
        let d = random_dim(s, r);
        (vec![x(s, r)], Box::new(move |t| t[0].sum_dims(&[d], true)))
    };
    sum_to: 1 => |s, r| {
        let target = broadcastable(s, r);
        (vec![x(s, r)], Box::new(move |t| t[0].sum_to(&target)))
    };
    expand: 1 => |s, r| {
        let small = broadcastable(s, r);
        let full = s.to_vec();
        (vec![x(&small, r)], Box::new(move |t| t[0].expand(&full)))
    };
    mean: 1 => |s, r| unary(s, r, x, |a| a.mean());
    mean_dims: 1 => |s, r| {
        let d = random_dim(s, r);
        (vec![x(s, r)], Box::new(move |t| t[0].mean_dims(&[d], false)))
    };
    max_dim: 1 => |s, r| {
        let d = random_dim(s, r);
        (vec![distinct(s, r)], Box::new(move |t| t[0].max_dim(d, false).0))
    };
    reshape: 1 => |s, r| {
        let n: usize = s.iter().product();
        (vec![x(s, r)], Box::new(move |t| t[0].reshape(&[n, 1]).mul(&t[0].reshape(&[1, n]))))
    };
    transpose: 2 => |s, r| {
        let d = random_dim(s, r);
        (vec![x(s, r)], Box::new(move |t| t[0].transpose(d, -1)))
    };
    permute: 1 => |s, r| {
        let mut perm: Vec<usize> = (0..s.len()).collect();
        perm.shuffle(r);
        (vec![x(s, r)], Box::new(move |t| t[0].permute(&perm)))
    };
    narrow: 1 => |s, r| {
        let d = random_dim(s, r);
        let n = s[d as usize];
        let start = r.random_range(0..n);
        let len = r.random_range(1..=n - start);
        (vec![x(s, r)], Box::new(move |t| t[0].narrow(d, start, len)))
    };
    // two overlapping slices of one input: the second adds into the gradient the first began
    narrow_overlapping: 1 => |s, r| {
        let d = random_dim(s, r);
        let n = s[d as usize];
        let (a, b) = (r.random_range(0..n), r.random_range(0..n));
        let (la, lb) = (r.random_range(1..=n - a), r.random_range(1..=n - b));
        (vec![x(s, r)], Box::new(move |t| Tensor::concat(&[&t[0].narrow(d, a, la), &t[0].narrow(d, b, lb)], d)))
    };
    concat: 1 => |s, r| {
        let d = random_dim(s, r);
        let mut s2 = s.to_vec();
        s2[d as usize] = r.random_range(1..=3);
        (vec![x(s, r), x(&s2, r)], Box::new(move |t| Tensor::concat(&[&t[0], &t[1], &t[0]], d)))
    };
    stack: 1 => |s, r| {
        let d = r.random_range(0..=s.len()) as isize;
        (vec![x(s, r), x(s, r)], Box::new(move |t| Tensor::stack(&[&t[0], &t[1]], d)))
    };
    index_select: 1 => |s, r| {
        let d = random_dim(s, r);
        let n = s[d as usize];
        let idx: Vec<usize> = (0..r.random_range(1..=6)).map(|_| r.random_range(0..n)).collect();
        (vec![x(s, r)], Box::new(move |t| t[0].index_select(d, &idx)))
    };
    embedding_padding_idx: 1 => |s, r| {
        let (v, d) = (s[0] + 1, r.random_range(1..=4));
        let ids: Vec<usize> = (0..6).map(|_| r.random_range(0..v)).collect();
        let pad = ids[0]; // a padding id that occurs: its row must get no gradient
        (vec![x(&[v, d], r)], Box::new(move |t| {
            // the padding row's output is used through a constant mask, so its true
            // gradient is zero and finite differences agree with PyTorch's padding_idx
            let keep: Vec<f64> = ids.iter().flat_map(|&i| vec![if i == pad { 0.0 } else { 1.0 }; d]).collect();
            t[0].embedding(&ids, &[2, 3], Some(pad)).mul(&T64::from_vec(keep, &[2, 3, d]))
        }))
    };
    gather: 1 => |s, r| {
        let d = random_dim(s, r);
        let n = s[d as usize];
        let mut ishape = s.to_vec();
        ishape[d as usize] = r.random_range(1..=5);
        let idx: Vec<usize> = (0..ishape.iter().product()).map(|_| r.random_range(0..n)).collect();
        (vec![x(s, r)], Box::new(move |t| t[0].gather(d, &idx, &ishape)))
    };
    masked_fill: 1 => |s, r| {
        let m = mask(&broadcastable(s, r), r);
        (vec![x(s, r)], Box::new(move |t| t[0].masked_fill(&m, -3.0)))
    };
    where_: 1 => |s, r| {
        let c = mask(&broadcastable(s, r), r);
        let other = broadcastable(s, r);
        (vec![x(s, r), x(&other, r)], Box::new(move |t| Tensor::where_(&c, &t[0], &t[1])))
    };
    softmax: 1 => |s, r| {
        let d = random_dim(s, r);
        (vec![x(s, r)], Box::new(move |t| t[0].softmax(d)))
    };
    log_softmax: 1 => |s, r| {
        let d = random_dim(s, r);
        (vec![x(s, r)], Box::new(move |t| t[0].log_softmax(d)))
    };
    layer_norm: 1 => |s, r| {
        let n = s[s.len() - 1] + 1; // n ≥ 2: a single element normalises to a constant
        let mut s = s.to_vec();
        *s.last_mut().unwrap() = n;
        (vec![x(&s, r), x(&[n], r), x(&[n], r)], Box::new(|t| t[0].layer_norm(Some(&t[1]), Some(&t[2]), 1e-5)))
    };
    layer_norm_no_affine: 1 => |s, r| {
        let mut s = s.to_vec();
        *s.last_mut().unwrap() += 1;
        (vec![x(&s, r)], Box::new(|t| t[0].layer_norm(None, None, 1e-5)))
    };
    dropout: 1 => |s, r| {
        let seed = r.random();
        (vec![x(s, r)], Box::new(move |t| t[0].dropout(0.4, true, &mut ChaCha8Rng::seed_from_u64(seed))))
    };
    cross_entropy: 1 => |s, r| {
        let (n, c) = (s[0], r.random_range(1..=5));
        let targets: Vec<usize> = (0..n).map(|_| r.random_range(0..c)).collect();
        (vec![x(&[n, c], r)], Box::new(move |t| t[0].cross_entropy(&targets, None)))
    };
    cross_entropy_ignore_index: 1 => |s, r| {
        let (n, c) = (s[0] + 1, r.random_range(2..=5));
        // class c-1 is ignored; make sure at least one row is not
        let mut targets: Vec<usize> = (0..n).map(|_| r.random_range(0..c)).collect();
        targets[0] = 0;
        (vec![x(&[n, c], r)], Box::new(move |t| t[0].cross_entropy(&targets, Some(c - 1))))
    };
    bce_with_logits: 1 => |s, r| {
        let t: Vec<f64> = (0..s.iter().product()).map(|_| r.random_range(0.0..1.0)).collect();
        (vec![x(s, r), T64::param(t, s)], Box::new(|t| t[0].binary_cross_entropy_with_logits(&t[1])))
    };
    mse: 1 => |s, r| binary(s, r, |a, b| a.mse(b), false);
    lstm_cell: 1 => |s, r| {
        let (b, h) = (s[0], s.get(1).copied().unwrap_or(2));
        (vec![x(&[b, 4 * h], r), x(&[b, h], r)], Box::new(|t| {
            let (h, c) = t[0].lstm_cell(&t[1]);
            Tensor::concat(&[&h, &c], 1)
        }))
    };
    lstm_packed: 1 => |s, r| {
        // s[0] sequences of random lengths 1..=4, sorted descending; either direction
        let h = r.random_range(1..=3);
        let mut lengths: Vec<usize> = (0..s[0]).map(|_| r.random_range(1..=4)).collect();
        lengths.sort_by(|a, b| b.cmp(a));
        let batch_sizes: Vec<usize> = (0..lengths[0]).map(|t| lengths.iter().filter(|&&l| l > t).count()).collect();
        let n: usize = lengths.iter().sum();
        let reverse = r.random();
        (vec![x(&[n, 4 * h], r), x(&[4 * h, h], r)], Box::new(move |t| {
            let (out, h_n, c_n) = t[0].lstm_packed(&t[1], &batch_sizes, reverse);
            Tensor::concat(&[&out, &h_n, &c_n], 0)
        }))
    };
    lstm_packed_dirs: 1 => |s, r| {
        // both directions as one op (run concurrently), each with its own input and weight
        let h = r.random_range(1..=3);
        let mut lengths: Vec<usize> = (0..s[0]).map(|_| r.random_range(1..=4)).collect();
        lengths.sort_by(|a, b| b.cmp(a));
        let batch_sizes: Vec<usize> = (0..lengths[0]).map(|t| lengths.iter().filter(|&&l| l > t).count()).collect();
        let n: usize = lengths.iter().sum();
        let inputs = vec![x(&[n, 4 * h], r), x(&[4 * h, h], r), x(&[n, 4 * h], r), x(&[4 * h, h], r)];
        (inputs, Box::new(move |t| {
            let outs = Tensor::lstm_packed_dirs(&[(&t[0], &t[1], false), (&t[2], &t[3], true)], &batch_sizes);
            let all: Vec<&T64> = outs.iter().flat_map(|(o, hn, cn)| [o, hn, cn]).collect();
            Tensor::concat(&all, 0)
        }))
    };
    attention: 1 => |s, r| {
        // q, k, v [B, T, nh·d] with padded keys; the mask is a constant
        let (t, heads, d) = (r.random_range(1..=4), r.random_range(1..=2), r.random_range(1..=3));
        let shape = [s[0], t, heads * d];
        let mask = Tensor::from_vec((0..s[0] * t).map(|i| if i % t == t - 1 && t > 1 { -1e9 } else { 0.0 }).collect(), &[s[0], t]);
        (vec![x(&shape, r), x(&shape, r), x(&shape, r)], Box::new(move |t| t[0].attention(&t[1], &t[2], heads, Some(&mask), None)))
    };
    attention_dropout: 1 => |s, r| {
        // the same with dropout: the mask comes from the seed, so it is fixed across evaluations
        let (t, heads, d) = (r.random_range(1..=4), r.random_range(1..=2), r.random_range(1..=3));
        let shape = [s[0], t, heads * d];
        let dm = DropoutMask { p: 0.3, seed: r.random() };
        (vec![x(&shape, r), x(&shape, r), x(&shape, r)], Box::new(move |t| t[0].attention(&t[1], &t[2], heads, None, Some(dm))))
    };
    lstm_layer: 1 => |s, r| {
        // the whole 2-layer BiLSTM over an unsorted padded batch: input and every weight
        let (b, tmax, inp, h) = (s[0], 3, 2, 2);
        let lengths: Vec<usize> = (0..b).map(|_| r.random_range(1..=tmax)).collect();
        let mut inputs = vec![x(&[b, tmax, inp], r)];
        for k in 0..2 {
            for _dir in 0..2 {
                let in_k = if k == 0 { inp } else { 2 * h };
                inputs.extend([x(&[4 * h, in_k], r), x(&[4 * h, h], r), x(&[4 * h], r), x(&[4 * h], r)]);
            }
        }
        (inputs, Box::new(move |t| {
            let w = |i: usize| LstmWeights {
                weight_ih: t[1 + 4 * i].clone(),
                weight_hh: t[2 + 4 * i].clone(),
                bias_ih: t[3 + 4 * i].clone(),
                bias_hh: t[4 + 4 * i].clone(),
            };
            let lstm = Lstm {
                input_size: inp,
                hidden_size: h,
                num_layers: 2,
                bidirectional: true,
                layers: vec![vec![w(0), w(1)], vec![w(2), w(3)]],
                dropout: Dropout::new(0.0, 0),
            };
            let out = lstm.forward(&t[0], &lengths);
            let flat = |t: &T64| t.reshape(&[t.numel()]);
            Tensor::concat(&[&flat(&out.output), &flat(&out.h_n), &flat(&out.c_n)], 0)
        }))
    };
}

/// The suite must catch a wrong backward: an op y = x² whose backward says 3x.
#[test]
fn a_wrong_backward_is_caught() {
    let square_wrong = |x: &T64| {
        let y = T64::from_vec(x.data().iter().map(|v| v * v).collect(), x.shape());
        let xc = x.clone();
        T64::from_op("square_wrong", y, &[x], move |g| {
            xc.accumulate_grad(|| g.mul(&xc.detach()).mul_scalar(3.0))
        })
    };
    let input = T64::param(vec![0.5, -1.0, 2.0], &[3]);
    let err = gradcheck(|t| square_wrong(&t[0]), &[input], GradcheckOptions::default()).unwrap_err();
    assert_eq!(err.input, 0);
    assert!((err.analytic - 1.5 * err.numeric).abs() < 1e-6, "{err}");
}
