//! The guide's formulas (docs/guide/03-math.md, 04-autodiff.md, 06-performance.md, 07-gpu.md),
//! each checked numerically against the code that implements it: the value or gradient the
//! engine computes equals the formula evaluated by hand here, in f64 (chapter 6: bf16's
//! rounding and its bounds on the engine's rounding, GEMM and linear layer; chapter 7: the
//! GPU's index maps and reduction orders, bit for bit on the simulated GPU).

use tapegrad::autograd::gradcheck::{gradcheck, GradcheckOptions};
use tapegrad::autograd::{Norm, Tensor};
use tapegrad::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};

fn close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (a, b) in got.iter().zip(want) {
        assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{got:?} vs {want:?}");
    }
}

fn softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().cloned().fold(f64::MIN, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// §3.1–3.2: L = (1/N) Σᵢ ℓᵢ with ℓᵢ = −log softmax(zᵢ)[tᵢ], and
/// ∂L/∂zᵢ = (1/N)(softmax(zᵢ) − onehot(tᵢ)): backward is seeded with 1/N per sample.
#[test]
fn cross_entropy_mean_and_gradient() {
    let (n, c) = (3, 4);
    let z: Vec<f64> = (0..n * c).map(|i| ((i * 37) % 11) as f64 * 0.3 - 1.5).collect();
    let t = [2, 0, 3];
    let x = Tensor::<f64>::param(z.clone(), &[n, c]);
    let loss = x.cross_entropy(&t, None);
    let mut want_loss = 0.0;
    let mut want_grad = Vec::new();
    for i in 0..n {
        let p = softmax(&z[i * c..(i + 1) * c]);
        want_loss += -p[t[i]].ln() / n as f64;
        want_grad.extend((0..c).map(|j| (p[j] - if j == t[i] { 1.0 } else { 0.0 }) / n as f64));
    }
    close(&[loss.item()], &[want_loss], 1e-12);
    loss.backward();
    close(&x.grad().unwrap().to_vec(), &want_grad, 1e-12);
}

/// §3.3: ℓ = −[t·log σ(x) + (1−t)·log(1−σ(x))] = max(x,0) − x·t + log(1 + e^{−|x|}),
/// ∂L/∂xᵢ = (1/N)(σ(xᵢ) − tᵢ).
#[test]
fn binary_cross_entropy_with_logits() {
    let xs = [-30.0, -1.2, 0.0, 0.7, 25.0];
    let ts = [0.0, 1.0, 1.0, 0.0, 1.0];
    let x = Tensor::<f64>::param(xs.to_vec(), &[5]);
    let loss = x.binary_cross_entropy_with_logits(&Tensor::from_vec(ts.to_vec(), &[5]));
    let n = xs.len() as f64;
    // The textbook form, fine at these magnitudes in f64 except the extremes' 1 − σ.
    let naive: f64 = xs
        .iter()
        .zip(&ts)
        .map(|(&x, &t)| -(t * sigmoid(x).ln() + (1.0 - t) * (sigmoid(-x)).ln()))
        .sum::<f64>()
        / n;
    close(&[loss.item()], &[naive], 1e-12);
    loss.backward();
    let want: Vec<f64> = xs.iter().zip(&ts).map(|(&x, &t)| (sigmoid(x) - t) / n).collect();
    close(&x.grad().unwrap().to_vec(), &want, 1e-12);
}

/// L(θ) = ½‖θ − a‖², ∇L = θ − a: a gradient we know in closed form, for the optimizers.
fn quadratic_step(opt: &mut dyn Optimizer<f64>, theta: &Tensor<f64>, a: &[f64]) -> Vec<f64> {
    opt.zero_grad();
    let target = Tensor::from_vec(a.to_vec(), &[a.len()]);
    let d = theta.sub(&target);
    d.mul(&d).sum().mul_scalar(0.5).backward();
    let g = theta.grad().unwrap().to_vec();
    opt.step();
    g
}

/// §3.4: θ_{t+1} = θ_t − η ∇L(θ_t).
#[test]
fn gradient_descent_update() {
    let a = [1.0, -2.0, 0.5];
    let theta = Tensor::<f64>::param(vec![0.0, 0.0, 0.0], &[3]);
    let mut opt = Sgd::new(vec![("θ".into(), theta.clone())], SgdConfig::new(0.1));
    let mut want = vec![0.0; 3];
    for _ in 0..5 {
        let g = quadratic_step(&mut opt, &theta, &a);
        for (w, g) in want.iter_mut().zip(g) {
            *w -= 0.1 * g;
        }
        close(&theta.to_vec(), &want, 1e-14);
    }
}

/// §3.5: momentum b_t = μ b_{t−1} + g_t (b_1 = g_1), θ ← θ − η b_t; Nesterov
/// θ ← θ − η (g_t + μ b_t).
#[test]
fn momentum_and_nesterov_updates() {
    let a = [1.0, -2.0];
    for nesterov in [false, true] {
        let theta = Tensor::<f64>::param(vec![0.5, 0.5], &[2]);
        let cfg = SgdConfig::new(0.05).momentum(0.9).nesterov(nesterov);
        let mut opt = Sgd::new(vec![("θ".into(), theta.clone())], cfg);
        let (mut want, mut b) = (vec![0.5, 0.5], vec![0.0; 2]);
        for t in 0..6 {
            let g = quadratic_step(&mut opt, &theta, &a);
            for i in 0..2 {
                b[i] = if t == 0 { g[i] } else { 0.9 * b[i] + g[i] };
                let d = if nesterov { g[i] + 0.9 * b[i] } else { b[i] };
                want[i] -= 0.05 * d;
            }
            close(&theta.to_vec(), &want, 1e-14);
        }
    }
}

/// §3.6: Adam: m_t = β₁m + (1−β₁)g, v_t = β₂v + (1−β₂)g², m̂ = m_t/(1−β₁ᵗ),
/// v̂ = v_t/(1−β₂ᵗ), θ ← θ − η m̂/(√v̂ + ε); AdamW first decays θ ← θ(1 − ηλ).
#[test]
fn adam_and_adamw_updates() {
    let a = [1.0, -2.0, 3.0];
    let (lr, b1, b2, eps, wd) = (0.1, 0.9, 0.999, 1e-8, 0.01);
    for decoupled in [false, true] {
        let theta = Tensor::<f64>::param(vec![0.2, 0.1, -0.3], &[3]);
        let base = if decoupled { AdamConfig::adamw(lr) } else { AdamConfig::new(lr) };
        let cfg = base.betas(b1, b2).eps(eps).weight_decay(if decoupled { wd } else { 0.0 });
        let mut opt = Adam::new(vec![("θ".into(), theta.clone())], cfg);
        let (mut want, mut m, mut v) = (theta.to_vec(), vec![0.0; 3], vec![0.0; 3]);
        for t in 1..=5 {
            let g = quadratic_step(&mut opt, &theta, &a);
            for i in 0..3 {
                if decoupled {
                    want[i] *= 1.0 - lr * wd;
                }
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                let m_hat = m[i] / (1.0 - b1.powi(t));
                let v_hat = v[i] / (1.0 - b2.powi(t));
                want[i] -= lr * m_hat / (v_hat.sqrt() + eps);
            }
            close(&theta.to_vec(), &want, 1e-12);
        }
    }
}

/// §3.7: the LSTM cell, i = σ(z_i), f = σ(z_f), g = tanh(z_g), o = σ(z_o),
/// c = f⊙c_prev + i⊙g, h = o⊙tanh(c); and its backward formulas with dL/dh, dL/dc given.
#[test]
fn lstm_cell_forward_and_backward() {
    let hsz = 2;
    let z: Vec<f64> = (0..4 * hsz).map(|i| (i as f64 * 0.7).sin()).collect();
    let cp = vec![0.3, -0.6];
    let gates = Tensor::<f64>::param(z.clone(), &[1, 4 * hsz]);
    let c_prev = Tensor::<f64>::param(cp.clone(), &[1, hsz]);
    let (h, c) = gates.lstm_cell(&c_prev);
    let (dh, dc) = ([0.5, -1.0], [0.25, 2.0]);
    let mut want = (vec![], vec![], vec![0.0; 4 * hsz], vec![0.0; hsz]);
    for j in 0..hsz {
        let (i, f, g, o) =
            (sigmoid(z[j]), sigmoid(z[hsz + j]), z[2 * hsz + j].tanh(), sigmoid(z[3 * hsz + j]));
        let cj = f * cp[j] + i * g;
        let tc = cj.tanh();
        want.0.push(o * tc);
        want.1.push(cj);
        let dct = dc[j] + dh[j] * o * (1.0 - tc * tc);
        want.2[j] = dct * g * i * (1.0 - i);
        want.2[hsz + j] = dct * cp[j] * f * (1.0 - f);
        want.2[2 * hsz + j] = dct * i * (1.0 - g * g);
        want.2[3 * hsz + j] = dh[j] * tc * o * (1.0 - o);
        want.3[j] = dct * f;
    }
    close(&h.to_vec(), &want.0, 1e-12);
    close(&c.to_vec(), &want.1, 1e-12);
    let l = h
        .mul(&Tensor::from_vec(dh.to_vec(), &[1, hsz]))
        .sum()
        .add(&c.mul(&Tensor::from_vec(dc.to_vec(), &[1, hsz])).sum());
    l.backward();
    close(&gates.grad().unwrap().to_vec(), &want.2, 1e-12);
    close(&c_prev.grad().unwrap().to_vec(), &want.3, 1e-12);
}

/// §3.9: LayerNorm's backward per row, ĝ = g⊙w:
/// dx = (1/√(σ²+ε)) (ĝ − mean(ĝ) − x̂·mean(ĝ⊙x̂)).
#[test]
fn layer_norm_backward_closed_form() {
    let xs = vec![0.5, -1.0, 2.0, 0.25];
    let ws = vec![1.5, 0.5, -1.0, 2.0];
    let gs = vec![0.3, -0.7, 1.1, 0.2];
    let eps = 1e-5;
    let x = Tensor::<f64>::param(xs.clone(), &[1, 4]);
    let w = Tensor::<f64>::param(ws.clone(), &[4]);
    let y = x.layer_norm(Norm { weight: Some(&w), bias: None, eps });
    y.mul(&Tensor::from_vec(gs.clone(), &[1, 4])).sum().backward();
    let n = 4.0;
    let mu = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / n;
    let rstd = 1.0 / (var + eps).sqrt();
    let xhat: Vec<f64> = xs.iter().map(|v| (v - mu) * rstd).collect();
    let ghat: Vec<f64> = gs.iter().zip(&ws).map(|(g, w)| g * w).collect();
    let mean_g = ghat.iter().sum::<f64>() / n;
    let mean_gx = ghat.iter().zip(&xhat).map(|(g, x)| g * x).sum::<f64>() / n;
    let want: Vec<f64> = (0..4).map(|i| rstd * (ghat[i] - mean_g - xhat[i] * mean_gx)).collect();
    close(&x.grad().unwrap().to_vec(), &want, 1e-12);
    let dw: Vec<f64> = gs.iter().zip(&xhat).map(|(g, x)| g * x).collect();
    close(&w.grad().unwrap().to_vec(), &dw, 1e-12);
}

/// §3.10: attention's softmax backward, dS = P ⊙ (dP − rowsum(dP ⊙ P)).
#[test]
fn softmax_backward_as_in_attention() {
    let s = vec![0.2, -1.0, 0.7, 1.5];
    let dp = vec![1.0, -0.5, 0.25, 2.0];
    let x = Tensor::<f64>::param(s.clone(), &[1, 4]);
    x.softmax(-1).mul(&Tensor::from_vec(dp.clone(), &[1, 4])).sum().backward();
    let p = softmax(&s);
    let dot: f64 = p.iter().zip(&dp).map(|(a, b)| a * b).sum();
    let want: Vec<f64> = (0..4).map(|i| p[i] * (dp[i] - dot)).collect();
    close(&x.grad().unwrap().to_vec(), &want, 1e-12);
}

/// §4: the worked example. u = x·y + x, L = u². At x = 2, y = 3: u = 8, L = 64,
/// dL/du = 2u = 16, dL/dx = 16·(y + 1) = 64 (x is used twice: the two paths add),
/// dL/dy = 16·x = 32.
#[test]
fn worked_example_by_hand() {
    let x = Tensor::<f64>::param(vec![2.0], &[1]);
    let y = Tensor::<f64>::param(vec![3.0], &[1]);
    let u = x.mul(&y).add(&x);
    let l = u.mul(&u).sum();
    assert_eq!(l.item(), 64.0);
    l.backward();
    assert_eq!(x.grad().unwrap().to_vec(), [64.0]);
    assert_eq!(y.grad().unwrap().to_vec(), [32.0]);
    // Central differences agree: (L(x+h) − L(x−h)) / 2h.
    let f = |x: f64, y: f64| (x * y + x).powi(2);
    let h = 1e-6;
    assert!(((f(2.0 + h, 3.0) - f(2.0 - h, 3.0)) / (2.0 * h) - 64.0).abs() < 1e-6);
    // And gradcheck says the same for the whole graph.
    let x = Tensor::<f64>::param(vec![2.0], &[1]);
    let y = Tensor::<f64>::param(vec![3.0], &[1]);
    gradcheck(|t| t[0].mul(&t[1]).add(&t[0]).pow_scalar(2.0), &[x, y], GradcheckOptions::default())
        .expect("backward agrees with finite differences");
}

// §6, bf16 mixed precision (06-performance.md, "Half the bits where they do not matter"),
// on the engine's rounding (`bf16gemm::round_bf16`), its bf16 GEMM and its linear layer under
// `--precision bf16`.

use tapegrad::kernels::bf16gemm::{bf16gemm, round_bf16};
use tapegrad::kernels::gemm::{Dims, MatMut, MatRef};

/// u = 2⁻⁸, bf16's unit roundoff.
const U: f64 = 1.0 / 256.0;

/// A deterministic stream of f32 in [−1, 1) (an LCG; these checks need spread, not quality).
fn lcg_values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// §6: bf16 is an f32's upper half (its low 16 bits zero), with f32's range, and
/// |bf16(x) − x| ≤ u|x|, u = 2⁻⁸; reached at 1 + 2⁻⁸, a tie that goes to the even 1.
#[test]
fn bf16_rounding_and_its_bound() {
    let mut worst = 0.0f64;
    // every 7th f32 in [1, 2) (the relative error repeats in every binade), then some spread
    let sweep = (0x3f80_0000u32..0x4000_0000).step_by(7).map(f32::from_bits);
    for x in sweep.chain(lcg_values(1, 10_000).into_iter().map(|v| v * 1e6)) {
        let r = round_bf16(x);
        assert_eq!(r.to_bits() & 0xffff, 0, "bf16({x}) = {r} is not an f32's upper half");
        if x != 0.0 {
            let rel = ((r as f64) - (x as f64)).abs() / (x as f64).abs();
            assert!(rel <= U, "bf16({x}) = {r}: relative error {rel:e} > 2⁻⁸");
            worst = worst.max(rel);
        }
    }
    assert_eq!(round_bf16(1.0 + 2f32.powi(-8)), 1.0, "1 + 2⁻⁸ is a tie and goes to the even 1");
    assert!(worst > U * (1.0 - 2.0 * U), "the sweep came near 2⁻⁸: worst {worst:e}");
    // the range is f32's: neither overflows nor underflows where f16 would (6.5e4, 6e-8)
    assert!(round_bf16(1e38).is_finite() && round_bf16(1e38) > 9.9e37);
    assert!(round_bf16(1e-37) > 0.0);
}

/// §6: a product of two bf16 is exact in f32; a bf16 dot product's error is the operands'
/// rounding alone, |ŷ − y| ≤ (2u + u²)·Σ|x_p·w_p| plus the f32 sum's rounding, and the bound is
/// reached at x_p = w_p = 1 + 2⁻⁸ (ŷ = k against y = k(1 + 2⁻⁸)²).
#[test]
fn bf16_products_are_exact_and_the_dot_product_bound() {
    let (a, b) = (lcg_values(2, 10_000), lcg_values(3, 10_000));
    for (&a, &b) in a.iter().zip(&b) {
        let (a, b) = (round_bf16(a), round_bf16(b));
        assert_eq!((a * b) as f64, a as f64 * b as f64, "{a} × {b} is not exact in f32");
    }
    // ŷ = x·w through the engine's bf16 GEMM (a 1 × k by k × 1 product)
    let dot = |x: &[f32], w: &[f32]| {
        let k = x.len();
        let mut y = [0f32];
        bf16gemm(Dims::new(1, 1, k), MatRef::rows(x, k), MatRef::rows(w, 1), 0.0, MatMut::rows(&mut y, 1));
        y[0] as f64
    };
    let k = 256;
    let (x, w) = (lcg_values(4, k), lcg_values(5, k));
    let exact: f64 = x.iter().zip(&w).map(|(&a, &b)| a as f64 * b as f64).sum();
    let abs_sum: f64 = x.iter().zip(&w).map(|(&a, &b)| (a as f64 * b as f64).abs()).sum();
    let err = (dot(&x, &w) - exact).abs();
    let bound = (2.0 * U + U * U) * abs_sum + k as f64 * 2f64.powi(-24) * abs_sum;
    assert!(err <= bound, "bf16 dot product off by {err:e} > {bound:e}");
    assert!(err > 2f64.powi(-20) * abs_sum, "the operands were not rounded (error {err:e})");
    // the worst case: every operand rounds down by u/(1 + u) of itself
    let ones = vec![1.0 + 2f32.powi(-8); 64];
    let (got, want) = (dot(&ones, &ones), 64.0 * (1.0 + U) * (1.0 + U));
    assert_eq!(got, 64.0);
    let rel = (want - got) / want;
    assert!(rel <= 2.0 * U + U * U && rel > 2.0 * U * (1.0 - 2.0 * U), "relative error {rel:e}, not ≈ 2⁻⁷");
}

/// §6: why the sums stay f32. At 256 bf16 numbers are 2 apart, so 256 + 1 rounds back to 256,
/// and a running sum of 1,000 ones kept in bf16 ends at 256; in f32 it is 1,000.
#[test]
fn a_bf16_accumulator_stops_at_256() {
    assert_eq!(round_bf16(256.0 + 1.0), 256.0);
    let (mut bf, mut f) = (0f32, 0f32);
    for _ in 0..1000 {
        bf = round_bf16(bf + 1.0);
        f += 1.0;
    }
    assert_eq!((bf, f), (256.0, 1000.0));
}

/// §6: why the weights stay f32. AdamW's first step moves each weight by ≈ η = 3·10⁻⁵ (m̂/√v̂ =
/// ±1); near 0.05 bf16 numbers are 2⁻¹² ≈ 2.4·10⁻⁴ apart, so the weight rounded to bf16 has not
/// moved, while the f32 master weight (the engine's parameter, updated by its optimizer) has.
#[test]
fn weights_kept_in_bf16_would_not_learn() {
    let lr = 3e-5;
    let before = vec![0.05f32, -0.05, 0.06];
    let bf = round_bf16(0.05);
    assert_eq!(f32::from_bits(bf.to_bits() + 0x1_0000) - bf, 2f32.powi(-12), "the bf16 spacing at 0.05");
    let theta = Tensor::<f32>::param(before.clone(), &[3]);
    let mut opt = Adam::new(vec![("θ".into(), theta.clone())], AdamConfig::adamw(lr));
    theta.mul(&Tensor::from_vec(vec![0.7, -1.3, 0.2], &[3])).sum().backward();
    opt.step();
    for (&a, &b) in theta.to_vec().iter().zip(&before) {
        // η·g/(|g| + ε) plus the decay η·λ·θ ≈ 1.5·10⁻⁸
        assert!(((a - b).abs() as f64 - lr).abs() < 1e-7, "{b} moved to {a}, not by ≈ η");
        assert_eq!(round_bf16(a), round_bf16(b), "{b} → {a} moved in bf16");
    }
}

/// §6: a linear layer under `--precision bf16` is ŷ_j = Σ_p bf16(x_p)·bf16(W_jp) + b_j: the
/// engine's output is that sum (computed here in f64) to within the f32 sum's rounding, and
/// not the f32 layer's.
#[test]
fn a_bf16_linear_layer_is_the_sum_of_rounded_products() {
    use tapegrad::autograd::precision::{set_product_precision, Precision};
    let (rows, inp, out) = (5, 64, 7);
    let (xv, wv, bv) = (lcg_values(6, rows * inp), lcg_values(7, out * inp), lcg_values(8, out));
    let layer = |p: Precision| {
        let _mode = set_product_precision(p);
        let x = Tensor::<f32>::from_vec(xv.clone(), &[rows, inp]);
        let w = Tensor::<f32>::from_vec(wv.clone(), &[out, inp]);
        x.linear(&w, Some(&Tensor::from_vec(bv.clone(), &[out]))).to_vec()
    };
    let (y16, y32) = (layer(Precision::Bf16), layer(Precision::F32));
    let mut off_f32 = 0.0f64;
    for r in 0..rows {
        for j in 0..out {
            let terms =
                (0..inp).map(|p| round_bf16(xv[r * inp + p]) as f64 * round_bf16(wv[j * inp + p]) as f64);
            let (want, abs_sum) =
                terms.fold((bv[j] as f64, bv[j].abs() as f64), |(s, a), t| (s + t, a + t.abs()));
            let got = y16[r * out + j] as f64;
            assert!(
                (got - want).abs() <= (inp + 1) as f64 * 2f64.powi(-24) * abs_sum,
                "y[{r},{j}] {got} vs {want}"
            );
            off_f32 = off_f32.max((y32[r * out + j] as f64 - want).abs());
        }
    }
    assert!(off_f32 > 1e-4, "the f32 layer gives the bf16 numbers: nothing was rounded");
}

// §7, the GPU. The launch geometry is the code's (`kernels::gpu::launch`); the kernels run
// on the simulated GPU, which executes the very PTX a real GPU loads (and on a real GPU
// too where there is one: `gpu::test_contexts`).

use tapegrad::kernels::gemm::Strides;
use tapegrad::kernels::gpu::{self, launch, GpuBuffer};

/// §7.2: a grid-stride launch over n elements (`launch::linear`: blocks of B = 256, at most
/// 4096 of them) gives thread t of block b the indices i = b·B + t + k·B·G, k = 0, 1, …,
/// i < n: every element exactly once, and ⌈n / (B·G)⌉ of them per thread at most.
#[test]
fn grid_stride_visits_every_element_once() {
    for n in [1usize, 255, 256, 1000, 1_000_000, 1 << 24] {
        let d = launch::linear(n);
        let (g, b) = (d.grid[0] as usize, d.block[0] as usize);
        assert_eq!(b, 256);
        assert_eq!(g, n.div_ceil(256).clamp(1, 4096));
        let mut seen = vec![0u8; n];
        let mut most = 0;
        for blk in 0..g {
            for t in 0..b {
                let mut count = 0;
                let mut i = blk * b + t;
                while i < n {
                    seen[i] += 1;
                    count += 1;
                    i += b * g;
                }
                most = most.max(count);
            }
        }
        assert!(seen.iter().all(|&c| c == 1), "n = {n}");
        assert_eq!(most, n.div_ceil(b * g), "n = {n}");
    }
    // 2²⁴ elements: 4096 blocks of 256 threads, 16 elements per thread.
    assert_eq!(launch::linear(1 << 24).grid[0], 4096);
}

/// §7.3: the warp's butterfly sum (`warp_sum` in `common.cuh`), S⁽ᵏ⁾ᵢ = S⁽ᵏ⁻¹⁾ᵢ + S⁽ᵏ⁻¹⁾_{i⊕o},
/// o = 16, 8, 4, 2, 1.
fn warp_sum(v: [f32; 32]) -> [f32; 32] {
    let mut v = v;
    for o in [16, 8, 4, 2, 1] {
        let old = v;
        for i in 0..32 {
            v[i] = old[i] + old[i ^ o];
        }
    }
    v
}

/// §7.3: `block_sum` over a row of n with B threads: thread t's partial Σ_{j ≡ t (mod B)} x_j
/// in increasing j, a butterfly per warp, then a butterfly over the warps' partials (lanes
/// past the last warp hold 0).
fn block_sum(x: &[f32], threads: usize) -> f32 {
    let warps = threads / 32;
    let partial: Vec<f32> =
        (0..threads).map(|t| x.iter().skip(t).step_by(threads).fold(0.0f32, |s, &v| s + v)).collect();
    let mut per_warp = [0.0f32; 32];
    for w in 0..warps {
        let lanes: [f32; 32] = partial[w * 32..(w + 1) * 32].try_into().unwrap();
        let s = warp_sum(lanes);
        assert!(s.iter().all(|v| v.to_bits() == s[0].to_bits()), "every lane gets the same bits");
        per_warp[w] = s[0];
    }
    warp_sum(per_warp)[0]
}

/// §7.3: the mean the GPU's layer norm writes per row is `block_sum(row) / n`, bit for bit,
/// with the tree above (B = `launch::row_threads(n)`: 32, 128 or 256 threads); the
/// left-to-right sum rounds differently, which is why the GPU's row kernels match the CPU to
/// a tolerance, not to the bit, yet give the same bits on every run.
#[test]
fn block_reduction_tree_is_the_kernels() {
    let mut some_differ = false;
    for (ctx, n) in
        gpu::test_contexts().into_iter().flat_map(|c| [200usize, 1000, 3000].map(|n| (c.clone(), n)))
    {
        let rows = 3;
        let x: Vec<f32> =
            (0..rows * n).map(|i| (i as f32 * 0.37).sin() * 10f32.powi((i % 5) as i32) + 0.1).collect();
        let xb = GpuBuffer::from_host(&ctx, &x).unwrap();
        let mut y = GpuBuffer::<f32>::zeros(&ctx, rows * n).unwrap();
        let mut mean = GpuBuffer::<f32>::zeros(&ctx, rows).unwrap();
        let mut rstd = GpuBuffer::<f32>::zeros(&ctx, rows).unwrap();
        let ln = gpu::layernorm::LayerNormIn { x: &xb, rows, n, w: None, b: None };
        let stats = gpu::layernorm::LayerNormStats { mean: &mut mean, rstd: &mut rstd };
        gpu::layernorm::layer_norm_forward(ln, 1e-5, &mut y, stats).unwrap();
        let got = mean.to_host().unwrap();
        let threads = launch::row_threads(n) as usize;
        for r in 0..rows {
            let row = &x[r * n..(r + 1) * n];
            let want = block_sum(row, threads) / n as f32;
            assert_eq!(
                got[r].to_bits(),
                want.to_bits(),
                "{}, n = {n}, row {r}: {} vs {want}",
                ctx.name(),
                got[r]
            );
            let sequential = row.iter().fold(0.0f32, |s, &v| s + v) / n as f32;
            some_differ |= sequential.to_bits() != want.to_bits();
        }
    }
    assert!(some_differ, "the tree and the left-to-right sum round alike on every row here");
}

/// §7.4: the tiled GEMM's threads (32×8 per 64×64 tile of C; `launch::gemm_tiles`) own
/// C(i, j) with i = 64·tm + ty + 8r (r < 8), j = 64·tn + tx + 32q (q < 2): every element of C
/// exactly once. Per tile step of depth 16 a block loads 2·64·16 = 2048 elements and does
/// 64·64·16 = 65,536 multiply-adds: 32 per element loaded (16 flops per byte in f32), against
/// ½ (¼ flop per byte) for one thread per element.
#[test]
fn gemm_tiles_own_every_element_once() {
    let (m, n) = (130, 70);
    let d = launch::gemm_tiles(1, m, n);
    assert_eq!((d.grid, d.block), ([2, 3, 1], [32, 8, 1]));
    let mut owners = vec![0u8; m * n];
    for tn in 0..d.grid[0] as usize {
        for tm in 0..d.grid[1] as usize {
            for ty in 0..8 {
                for tx in 0..32 {
                    for r in 0..8 {
                        for q in 0..2 {
                            let (i, j) = (64 * tm + ty + 8 * r, 64 * tn + tx + 32 * q);
                            if i < m && j < n {
                                owners[i * n + j] += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(owners.iter().all(|&c| c == 1));
    let (loads, fmas) = (2 * 64 * 16, 64 * 64 * 16);
    assert_eq!((loads, fmas, fmas / loads), (2048, 65_536, 32));
    assert_eq!(2.0 * fmas as f64 / (loads * 4) as f64, 16.0);
}

/// §7.4: each element of C is one chain of fused multiply-adds over p = 0, 1, …, k−1 in order
/// (`acc += a·b`, contracted by nvcc to `fma.rn`; the zero-filled tile edge adds nothing), so
/// the tiled kernel, the naive one and `f32::mul_add` in a loop give the same bits.
#[test]
fn tiled_gemm_is_an_fma_chain_in_k_order() {
    let (m, n, k) = (70, 40, 37);
    let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.731).sin() + 0.01).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 1.37).cos() + 0.01).collect();
    let (sa, sb, sc) = (Strides::row_major(m, k), Strides::row_major(k, n), Strides::row_major(m, n));
    let mut want = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            want[i * n + j] = (0..k).fold(0.0f32, |acc, p| a[i * k + p].mul_add(b[p * n + j], acc));
        }
    }
    for (ctx, naive) in gpu::test_contexts().into_iter().flat_map(|c| [(c.clone(), false), (c, true)]) {
        let (ab, bb) = (GpuBuffer::from_host(&ctx, &a).unwrap(), GpuBuffer::from_host(&ctx, &b).unwrap());
        let mut cb = GpuBuffer::<f32>::zeros(&ctx, m * n).unwrap();
        let f = if naive { gpu::gemm::gemm_naive::<f32> } else { gpu::gemm::gemm_tiled::<f32> };
        let (a_op, b_op) = (gpu::gemm::GpuMat::new(&ab, sa), gpu::gemm::GpuMat::new(&bb, sb));
        f(Dims::new(m, n, k), a_op, b_op, 0.0, gpu::gemm::GpuMatMut::new(&mut cb, sc)).unwrap();
        let got = cb.to_host().unwrap();
        for (e, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "{}, naive {naive}: C[{}][{}] = {g} vs {w}",
                ctx.name(),
                e / n,
                e % n
            );
        }
    }
}

/// §7.6: `Tensor::add` on the simulated GPU: `Backend::binary` on the tensors' storage, then
/// `gpu::broadcast::binary`, then one launch of the entry `binary_f32` (a device context
/// records every entry it launched).
#[test]
fn tensor_add_launches_binary_on_the_simulated_gpu() {
    use tapegrad::autograd::{storage, Device};
    use tapegrad::kernels::gpu::Kernel;
    let a = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).to(Device::Sim);
    let b = Tensor::<f32>::from_vec(vec![10.0, 20.0, 30.0], &[3]).to(Device::Sim);
    let c = a.add(&b);
    assert_eq!(c.device(), Device::Sim);
    assert_eq!(c.to_vec(), [11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
    let launched = storage::context(Device::Sim).unwrap().launched();
    assert!(launched.contains(&Kernel { module: "broadcast", entry: "binary_f32" }), "{launched:?}");
}
