//! Every differentiable op, checked against central finite differences in f64, and its
//! f32 fast path checked against that f64 backward.
//!
//! One table drives the whole suite: each row names an op and builds, from a
//! proptest-drawn base shape and seed, the op's inputs and the function to check.
//! `cargo test --test gradcheck -- --list` shows one test per row and device: `<row>` runs it in
//! f64 against finite differences; `f32_fast::<row>` runs the same row in f32, on sizes that
//! take the SIMD kernels, the sgemm driver and the threaded splits, and compares its backward
//! with the f64 backward on the same inputs (see [`harness::run_f32`]). `sim::<row>` runs the f64
//! row against finite differences on the simulated GPU, and `sim_f32::<row>` the f32 row on
//! the simulated GPU against the same row on the CPU, at the f32 sizes (see [`harness::run_f32_on`]).
//! `cuda::<row>` and `cuda_f32::<row>` run the same two on a real GPU (`cuda:0`) where the
//! machine has one; elsewhere (CI) they pass after one `SKIPPED` line.

#[path = "support/cuda_device.rs"]
mod cuda_device;
#[path = "gradcheck/harness.rs"]
mod harness;

use cuda_device::cuda;
use harness::*;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tapegrad::autograd::{gradcheck, Device, DropoutMask, GradcheckOptions, Norm, Tensor};
use tapegrad::kernels::Float;
use tapegrad::models::layers::Dropout;
use tapegrad::models::lstm::{Lstm, LstmWeights};

type T64 = Tensor<f64>;

/// An inner dimension: 1..=`small` for the finite-difference rows, `large` for the f32 rows
/// (where products must be big enough to split over threads).
fn dim(rng: &mut ChaCha8Rng, small: usize, large: std::ops::RangeInclusive<usize>) -> usize {
    if FAST.with(|f| f.get()) {
        rng.random_range(large)
    } else {
        rng.random_range(1..=small)
    }
}
/// The base shape's first dimension for the finite-difference rows, `large` for the f32 rows.
fn first(s: &[usize], rng: &mut ChaCha8Rng, large: std::ops::RangeInclusive<usize>) -> usize {
    if FAST.with(|f| f.get()) {
        rng.random_range(large)
    } else {
        s[0]
    }
}
/// `n` values uniform in [lo, hi), drawn as f64 (the same draws for f32 and f64).
fn uniform<T: Float>(n: usize, rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> Vec<T> {
    (0..n).map(|_| T::from_f64(rng.random_range(lo..hi))).collect()
}
/// A trainable input of `shape` with values uniform in [-2, 2].
fn x<T: Float>(shape: &[usize], rng: &mut ChaCha8Rng) -> Tensor<T> {
    Tensor::param(uniform(shape.iter().product(), rng, -2.0, 2.0), shape)
}
/// Values in [0.5, 2.5] (for log, sqrt, pow, denominators).
fn positive<T: Float>(shape: &[usize], rng: &mut ChaCha8Rng) -> Tensor<T> {
    Tensor::param(uniform(shape.iter().product(), rng, 0.5, 2.5), shape)
}
/// Values at least 0.1 away from 0 (for kinks at 0).
fn away_from_zero<T: Float>(shape: &[usize], rng: &mut ChaCha8Rng) -> Tensor<T> {
    let v = (0..shape.iter().product())
        .map(|_| T::from_f64(rng.random_range(0.1..2.0) * if rng.random() { 1.0 } else { -1.0 }));
    Tensor::param(v.collect(), shape)
}
/// Distinct values 0.05 apart at least, shuffled (no ties for max).
fn distinct<T: Float>(shape: &[usize], rng: &mut ChaCha8Rng) -> Tensor<T> {
    let n: usize = shape.iter().product();
    let mut v: Vec<T> = (0..n).map(|i| T::from_f64(i as f64 * 0.1 - n as f64 * 0.05)).collect();
    v.shuffle(rng);
    Tensor::param(v, shape)
}
/// A constant 0/1 mask.
fn mask<T: Float>(shape: &[usize], rng: &mut ChaCha8Rng) -> Tensor<T> {
    Tensor::from_vec(
        (0..shape.iter().product()).map(|_| if rng.random() { T::ONE } else { T::ZERO }).collect(),
        shape,
    )
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

fn unary<T: Float>(
    shape: &[usize],
    rng: &mut ChaCha8Rng,
    input: fn(&[usize], &mut ChaCha8Rng) -> Tensor<T>,
    f: fn(&Tensor<T>) -> Tensor<T>,
) -> (Vec<Tensor<T>>, Fun<T>) {
    (vec![input(shape, rng)], Box::new(move |t| f(&t[0])))
}
fn binary<T: Float>(
    shape: &[usize],
    rng: &mut ChaCha8Rng,
    f: fn(&Tensor<T>, &Tensor<T>) -> Tensor<T>,
    broadcast: bool,
) -> (Vec<Tensor<T>>, Fun<T>) {
    let other = if broadcast { broadcastable(shape, rng) } else { shape.to_vec() };
    let (a, b) = if rng.random() { (x(shape, rng), x(&other, rng)) } else { (x(&other, rng), x(shape, rng)) };
    (vec![a, b], Box::new(move |t| f(&t[0], &t[1])))
}

/// One `#[test]` per row: `name: min_rank => build`, in f64 against finite differences, the
/// same as `sim::name` on the simulated GPU, as `f32_fast::name` in f32 against the f64
/// backward, and as `sim_f32::name` in f32 on the simulated GPU against the CPU; `cuda::name`
/// and `cuda_f32::name` are the two GPU rows on `cuda:0` where there is one (else they say
/// once that they skipped). The row's body is built twice, with `Tn`
/// the tensor type and `E` the element type of each precision.
macro_rules! table {
    ($($name:ident: $rank:literal => $build:expr;)*) => {
        #[allow(dead_code)]
        mod rows_f64 {
            use super::*;
            type Tn = Tensor<f64>;
            type E = f64;
            $( pub fn $name(s: &[usize], r: &mut ChaCha8Rng) -> (Vec<Tn>, Fun<E>) {
                let build: Build<E> = $build;
                build(s, r)
            } )*
        }
        #[allow(dead_code)]
        mod rows_f32 {
            use super::*;
            type Tn = Tensor<f32>;
            type E = f32;
            $( pub fn $name(s: &[usize], r: &mut ChaCha8Rng) -> (Vec<Tn>, Fun<E>) {
                let build: Build<E> = $build;
                build(s, r)
            } )*
        }
        $( #[test] fn $name() { run(rows_f64::$name, $rank) } )*
        mod sim {
            use super::*;
            $( #[test] fn $name() { run_on(Device::Sim, SIM_CASES, rows_f64::$name, $rank) } )*
        }
        mod sim_f32 {
            use super::*;
            $( #[test] fn $name() { run_f32_on(Device::Sim, rows_f32::$name, $rank) } )*
        }
        mod cuda {
            use super::*;
            $( #[test] fn $name() { if let Some(d) = cuda() { run_on(d, CUDA_CASES, rows_f64::$name, $rank) } } )*
        }
        mod cuda_f32 {
            use super::*;
            $( #[test] fn $name() { if let Some(d) = cuda() { run_f32_on(d, rows_f32::$name, $rank) } } )*
        }
        mod f32_fast {
            use super::*;
            $( #[test] fn $name() { run_f32(rows_f32::$name, rows_f64::$name, $rank) } )*
        }
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
        let (m, k, n) = (first(s, r, 150..=200), dim(r, 5, 150..=200), dim(r, 5, 150..=200));
        (vec![x(&[m, k], r), x(&[k, n], r)], Box::new(|t| t[0].matmul(&t[1])))
    };
    matmul_batched: 1 => |s, r| {
        let (b, m, k, n) = (first(s, r, 6..=9), dim(r, 4, 40..=60), dim(r, 4, 40..=60), dim(r, 4, 40..=60));
        (vec![x(&[b, 2, m, k], r), x(&[b, 2, k, n], r)], Box::new(|t| t[0].matmul(&t[1])))
    };
    matmul_shared_rhs: 1 => |s, r| {
        let (b, m, k, n) = (first(s, r, 6..=9) + 1, dim(r, 4, 40..=60), dim(r, 4, 40..=60), dim(r, 4, 40..=60));
        (vec![x(&[b, m, k], r), x(&[k, n], r)], Box::new(|t| t[0].matmul(&t[1])))
    };
    matmul_shared_lhs: 1 => |s, r| {
        let (b, m, k, n) = (first(s, r, 6..=9) + 1, dim(r, 4, 40..=60), dim(r, 4, 40..=60), dim(r, 4, 40..=60));
        (vec![x(&[m, k], r), x(&[b, k, n], r)], Box::new(|t| t[0].matmul(&t[1])))
    };
    linear: 1 => |s, r| {
        // x [s0, 2, in] · Wᵀ + b
        let (inp, out) = (dim(r, 5, 100..=160), dim(r, 5, 100..=160));
        (vec![x(&[first(s, r, 60..=90), 2, inp], r), x(&[out, inp], r), x(&[out], r)], Box::new(|t| t[0].linear(&t[1], Some(&t[2]))))
    };
    linear_no_bias: 1 => |s, r| {
        let (inp, out) = (dim(r, 5, 100..=160), dim(r, 5, 100..=160));
        (vec![x(&[first(s, r, 120..=180), inp], r), x(&[out, inp], r)], Box::new(|t| t[0].linear(&t[1], None)))
    };
    linear_shared_input: 1 => |s, r| {
        // x feeds two layers (as a BERT layer's input feeds Q, K and V): the second dx is
        // summed into x's gradient by the product itself (β = 1)
        let (inp, out) = (dim(r, 5, 100..=160), dim(r, 5, 100..=160));
        let inputs = vec![x(&[first(s, r, 120..=180), inp], r), x(&[out, inp], r), x(&[out, inp], r)];
        (inputs, Box::new(|t| t[0].linear(&t[1], None).add(&t[0].linear(&t[2], None))))
    };
    residual_layer_norm: 1 => |s, r| {
        // layer_norm(x + residual) (no dropout), x and residual alike, n ≥ 2 as for layer_norm
        let mut s = s.to_vec();
        *s.last_mut().unwrap() += 1;
        let n = s[s.len() - 1];
        let norm = |t: &[Tn]| t[0].residual_layer_norm(&t[1], None, Norm { weight: Some(&t[2]), bias: Some(&t[3]), eps: 1e-5 });
        (vec![x(&s, r), x(&s, r), x(&[n], r), x(&[n], r)], Box::new(norm))
    };
    residual_layer_norm_dropout: 1 => |s, r| {
        // with dropout: the mask is a fixed function of the seed, so the op is smooth in x
        let mut s = s.to_vec();
        *s.last_mut().unwrap() += 1;
        let n = s[s.len() - 1];
        let dm = DropoutMask { p: 0.3, seed: r.random() };
        let norm = move |t: &[Tn]| t[0].residual_layer_norm(&t[1], Some(dm), Norm { weight: Some(&t[2]), bias: Some(&t[3]), eps: 1e-5 });
        (vec![x(&s, r), x(&s, r), x(&[n], r), x(&[n], r)], Box::new(norm))
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
        let m = n.min(64); // the first 64 elements' outer product (all of it in f64)
        (vec![x(s, r)], Box::new(move |t| t[0].reshape(&[n, 1]).narrow(0, 0, m).mul(&t[0].reshape(&[1, n]).narrow(1, 0, m))))
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
            let keep: Vec<E> = ids.iter().flat_map(|&i| vec![if i == pad { 0.0 } else { 1.0 }; d]).collect();
            t[0].embedding(&ids, &[2, 3], Some(pad)).mul(&Tn::from_vec(keep, &[2, 3, d]).to(t[0].device()))
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
        (vec![x(s, r)], Box::new(move |t| t[0].masked_fill(&m.to(t[0].device()), -3.0)))
    };
    where_: 1 => |s, r| {
        let c = mask(&broadcastable(s, r), r);
        let other = broadcastable(s, r);
        (vec![x(s, r), x(&other, r)], Box::new(move |t| Tensor::where_(&c.to(t[0].device()), &t[0], &t[1])))
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
        (vec![x(&s, r), x(&[n], r), x(&[n], r)], Box::new(|t| t[0].layer_norm(Norm { weight: Some(&t[1]), bias: Some(&t[2]), eps: 1e-5 })))
    };
    layer_norm_no_affine: 1 => |s, r| {
        let mut s = s.to_vec();
        *s.last_mut().unwrap() += 1;
        (vec![x(&s, r)], Box::new(|t| t[0].layer_norm(Norm { weight: None, bias: None, eps: 1e-5 })))
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
        let t: Vec<E> = uniform(s.iter().product(), r, 0.0, 1.0);
        (vec![x(s, r), Tn::param(t, s)], Box::new(|t| t[0].binary_cross_entropy_with_logits(&t[1])))
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
            let l = Tensor::lstm_packed_dirs(&[(&t[0], &t[1], false), (&t[2], &t[3], true)], &batch_sizes);
            let flat = |t: &Tn| t.reshape(&[t.numel()]);
            let mut all = vec![flat(&l.out)];
            all.extend(l.h_n.iter().zip(&l.c_n).flat_map(|(hn, cn)| [flat(hn), flat(cn)]));
            Tensor::concat(&all.iter().collect::<Vec<_>>(), 0)
        }))
    };
    attention: 1 => |s, r| {
        // q [B, Tq, nh·d], k, v [B, T, nh·d] with padded keys (Tq drawn apart from T: fewer
        // queries, as a classifier's last layer asks, or more); the mask is a constant
        let (t, tq, heads, d) = (r.random_range(1..=4), r.random_range(1..=4), r.random_range(1..=2), r.random_range(1..=3));
        let (q_shape, shape) = ([s[0], tq, heads * d], [s[0], t, heads * d]);
        let mask = Tensor::from_vec((0..s[0] * t).map(|i| if i % t == t - 1 && t > 1 { -1e9 } else { 0.0 }).collect(), &[s[0], t]);
        (vec![x(&q_shape, r), x(&shape, r), x(&shape, r)], Box::new(move |t| t[0].attention(&t[1], &t[2], heads, Some(&mask.to(t[0].device())), None)))
    };
    attention_dropout: 1 => |s, r| {
        // the same with dropout: the mask comes from the seed, so it is fixed across evaluations
        let (t, tq, heads, d) = (r.random_range(1..=4), r.random_range(1..=4), r.random_range(1..=2), r.random_range(1..=3));
        let (q_shape, shape) = ([s[0], tq, heads * d], [s[0], t, heads * d]);
        let dm = DropoutMask { p: 0.3, seed: r.random() };
        (vec![x(&q_shape, r), x(&shape, r), x(&shape, r)], Box::new(move |t| t[0].attention(&t[1], &t[2], heads, None, Some(dm))))
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
            let flat = |t: &Tn| t.reshape(&[t.numel()]);
            Tensor::concat(&[&flat(&out.output()), &flat(&out.h_n), &flat(&out.c_n)], 0)
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

/// A 1% error is caught too: y = x² with a backward of 2.02x.
#[test]
fn a_one_percent_error_is_caught() {
    let square_off = |x: &T64| {
        let y = T64::from_vec(x.data().iter().map(|v| v * v).collect(), x.shape());
        let xc = x.clone();
        T64::from_op("square_off", y, &[x], move |g| {
            xc.accumulate_grad(|| g.mul(&xc.detach()).mul_scalar(2.02))
        })
    };
    let input = T64::param(vec![0.5, -1.0, 2.0], &[3]);
    let err = gradcheck(|t| square_off(&t[0]), &[input], GradcheckOptions::default()).unwrap_err();
    assert_eq!(err.input, 0);
    assert!((err.analytic - 1.01 * err.numeric).abs() < 1e-6 * err.numeric.abs().max(1.0), "{err}");
}

/// A wrong gradient on one input of two is caught and named: y = a·b whose backward is right
/// for a (g·b) but gives b the gradient g·b instead of g·a.
#[test]
fn an_error_on_the_second_input_is_caught() {
    let mul_wrong = |a: &T64, b: &T64| {
        let y = T64::from_vec(a.data().iter().zip(b.data().iter()).map(|(x, y)| x * y).collect(), a.shape());
        let (ac, bc) = (a.clone(), b.clone());
        T64::from_op("mul_wrong", y, &[a, b], move |g| {
            ac.accumulate_grad(|| g.mul(&bc.detach()));
            bc.accumulate_grad(|| g.mul(&bc.detach()));
        })
    };
    let (a, b) = (T64::param(vec![0.5, -1.0, 2.0], &[3]), T64::param(vec![1.5, 0.25, -3.0], &[3]));
    let err = gradcheck(|t| mul_wrong(&t[0], &t[1]), &[a.clone(), b.clone()], GradcheckOptions::default())
        .unwrap_err();
    assert_eq!(err.input, 1, "{err}");
    // and the correct product passes on the same inputs
    gradcheck(|t| t[0].mul(&t[1]), &[a, b], GradcheckOptions::default()).unwrap();
}

/// `padding_idx`: the padding row gets no gradient although its output is used (PyTorch's
/// rule, which finite differences cannot see: the row above masks it). Every other row gets
/// the sum of the output gradients at its positions.
#[test]
fn embedding_padding_row_gets_no_gradient() {
    let (v, d, pad) = (5, 3, 2);
    let ids = [2usize, 0, 2, 4, 1, 0];
    let w = T64::param((0..v * d).map(|i| i as f64 * 0.1 - 0.7).collect(), &[v, d]);
    let gw: Vec<f64> = (0..ids.len() * d).map(|i| (i as f64 * 0.37).sin()).collect();
    let out = w.embedding(&ids, &[2, 3], Some(pad));
    out.mul(&T64::from_vec(gw.clone(), &[2, 3, d])).sum().backward();
    let grad = w.grad().unwrap().to_vec();
    for row in 0..v {
        for j in 0..d {
            let want: f64 = if row == pad {
                0.0
            } else {
                ids.iter().enumerate().filter(|&(_, &id)| id == row).map(|(p, _)| gw[p * d + j]).sum()
            };
            assert!(
                (grad[row * d + j] - want).abs() < 1e-12,
                "row {row} col {j}: {} vs {want}",
                grad[row * d + j]
            );
        }
    }
}
