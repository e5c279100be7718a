//! Hand-computed updates, parameter groups, frozen parameters, schedules and clipping.

use tapegrad_autograd::Tensor;
use tapegrad_optim::{
    clip_grad_norm, clip_grad_value, Adam, AdamConfig, LinearWarmup, LrSchedule, Optimizer, ParamGroup, Sgd,
    SgdConfig,
};

fn param(v: &[f64]) -> Tensor<f64> {
    Tensor::param(v.to_vec(), &[v.len()])
}

/// Replaces the gradient of `p` by `g`.
fn set_grad(p: &Tensor<f64>, g: &[f64]) {
    p.zero_grad();
    p.accumulate_grad(|| Tensor::from_vec(g.to_vec(), p.shape()));
}

fn close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}: lengths differ");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-12, "{a:?} vs {b:?}");
    }
}

#[test]
fn sgd_plain_is_theta_minus_lr_grad() {
    let w = param(&[1.0, -2.0]);
    let mut opt = Sgd::new(vec![("w".into(), w.clone())], SgdConfig::new(0.5));
    set_grad(&w, &[2.0, 4.0]);
    opt.step();
    close(&w.to_vec(), &[0.0, -4.0]);
    assert_eq!(opt.step_count(), 1);
}

#[test]
fn sgd_momentum_first_buffer_is_the_gradient() {
    let w = param(&[0.0]);
    let cfg = SgdConfig::new(0.1).momentum(0.9).dampening(0.5);
    let mut opt = Sgd::new(vec![("w".into(), w.clone())], cfg);
    set_grad(&w, &[1.0]);
    opt.step(); // b = g = 1 (not (1 − 0.5)·g)
    close(&w.to_vec(), &[-0.1]);
    opt.step(); // b = 0.9·1 + 0.5·1 = 1.4
    close(&w.to_vec(), &[-0.1 - 0.14]);
}

#[test]
fn sgd_nesterov_with_weight_decay() {
    let w = param(&[1.0]);
    let cfg = SgdConfig::new(0.1).momentum(0.9).nesterov(true).weight_decay(0.5);
    let mut opt = Sgd::new(vec![("w".into(), w.clone())], cfg);
    set_grad(&w, &[2.0]);
    opt.step(); // g = 2 + 0.5·1 = 2.5; b = 2.5; d = 2.5 + 0.9·2.5 = 4.75
    close(&w.to_vec(), &[1.0 - 0.475]);
    opt.step(); // g = 2 + 0.5·0.525 = 2.2625; b = 0.9·2.5 + 2.2625 = 4.5125; d = g + 0.9·b
    let (g, b) = (2.2625, 4.5125);
    close(&w.to_vec(), &[0.525 - 0.1 * (g + 0.9 * b)]);
}

#[test]
fn adam_first_step_moves_by_lr_times_sign() {
    let w = param(&[1.0, 1.0]);
    let mut opt = Adam::new(vec![("w".into(), w.clone())], AdamConfig::new(0.01).eps(0.0));
    set_grad(&w, &[3.0, -0.25]);
    opt.step(); // m̂ = g, v̂ = g², so the step is η·g/|g|
    close(&w.to_vec(), &[0.99, 1.01]);
}

#[test]
fn adamw_decays_without_touching_the_moments_and_adam_couples() {
    let w = param(&[2.0]);
    let mut opt = Adam::adamw(vec![("w".into(), w.clone())], AdamConfig::new(0.1).weight_decay(0.5));
    assert_eq!(opt.kind(), "adamw");
    set_grad(&w, &[0.0]); // m = v = 0: only the decoupled decay θ·(1 − η·λ)
    opt.step();
    close(&w.to_vec(), &[2.0 * (1.0 - 0.05)]);

    let w = param(&[2.0]);
    let mut opt = Adam::new(vec![("w".into(), w.clone())], AdamConfig::new(0.1).weight_decay(0.5).eps(0.0));
    set_grad(&w, &[0.0]); // coupled: g = λ·θ = 1 > 0, so the first step is −η
    opt.step();
    close(&w.to_vec(), &[1.9]);
}

#[test]
fn groups_override_lr_and_weight_decay() {
    let (w, b, e) = (param(&[1.0]), param(&[1.0]), param(&[1.0]));
    let groups = vec![
        ParamGroup::new(vec![("w".into(), w.clone())]),
        ParamGroup::new(vec![("b".into(), b.clone())]).with_weight_decay(0.0),
        ParamGroup::new(vec![("e".into(), e.clone())]).with_lr(0.01),
    ];
    let mut opt = Sgd::with_groups(groups, SgdConfig::new(0.1).weight_decay(0.5));
    for p in [&w, &b, &e] {
        set_grad(p, &[1.0]);
    }
    opt.step();
    close(&w.to_vec(), &[1.0 - 0.1 * 1.5]); // lr 0.1, g + 0.5·θ
    close(&b.to_vec(), &[1.0 - 0.1]); // no weight decay
    close(&e.to_vec(), &[1.0 - 0.01 * 1.5]); // its own lr, default decay
    assert_eq!(opt.group_lr(2), 0.01);
    assert_eq!(opt.group_weight_decay(1), 0.0);

    // A schedule multiplies every group's lr.
    opt.set_lr_factor(0.5);
    assert_eq!(opt.group_lr(0), 0.05);
    assert_eq!(opt.group_lr(2), 0.005);
    opt.set_lr(1.0);
    assert_eq!(opt.group_lr(0), 0.5);
    assert_eq!(opt.group_lr(2), 0.005); // its own lr is kept
}

#[test]
fn frozen_and_gradless_params_are_skipped() {
    let (w, frozen, unused) = (param(&[1.0]), param(&[1.0]), param(&[1.0]));
    set_grad(&frozen, &[1.0]);
    frozen.set_requires_grad(false); // frozen after a gradient was stored: still skipped
    let params =
        vec![("w".into(), w.clone()), ("frozen".into(), frozen.clone()), ("unused".into(), unused.clone())];
    let mut opt = Adam::new(params, AdamConfig::new(0.1));
    assert_eq!(opt.trainable_params().len(), 2);
    set_grad(&w, &[1.0]);
    opt.step();
    assert_ne!(w.to_vec(), vec![1.0]);
    assert_eq!(frozen.to_vec(), vec![1.0]);
    assert_eq!(unused.to_vec(), vec![1.0]);
    // Only `w` has state.
    let names: Vec<String> = opt.state().tensors.iter().map(|t| t.name.clone()).collect();
    assert_eq!(names, vec!["w.exp_avg", "w.exp_avg_sq"]);
    opt.zero_grad();
    assert!(w.grad().is_none());
}

#[test]
#[should_panic(expected = "appears twice")]
fn duplicate_names_are_refused() {
    let w = param(&[1.0]);
    Sgd::new(vec![("w".into(), w.clone()), ("w".into(), w)], SgdConfig::new(0.1));
}

#[test]
fn lr_schedule_drives_the_optimizer() {
    let w = param(&[0.0]);
    let mut opt = Sgd::new(vec![("w".into(), w.clone())], SgdConfig::new(1.0));
    let sched = LinearWarmup { warmup: 2, total: 4 };
    let mut expected = 0.0;
    for _ in 0..5 {
        opt.set_lr_factor(sched.lr_factor(opt.step_count()));
        set_grad(&w, &[1.0]);
        expected -= sched.lr_factor(opt.step_count());
        opt.step();
    }
    close(&w.to_vec(), &[expected]); // factors 0, 0.5, 1, 0.5, 0
    close(&[expected], &[-2.0]);
}

#[test]
fn clip_by_global_norm_and_by_value() {
    let (a, b, none) = (param(&[3.0, 0.0]), param(&[4.0]), param(&[1.0]));
    set_grad(&a, &[3.0, 0.0]);
    set_grad(&b, &[4.0]);
    let total = clip_grad_norm([&a, &b, &none], 1.0).item(); // none has no gradient: skipped
    assert_eq!(total, 5.0);
    let c = 1.0 / (5.0 + 1e-6);
    close(&a.grad().unwrap().to_vec(), &[3.0 * c, 0.0]);
    close(&b.grad().unwrap().to_vec(), &[4.0 * c]);
    // Under the limit: untouched.
    let total = clip_grad_norm([&a, &b], 10.0).item();
    assert!((total - 5.0 * c).abs() < 1e-12);
    close(&b.grad().unwrap().to_vec(), &[4.0 * c]);

    set_grad(&a, &[-3.0, 0.25]);
    clip_grad_value([&a], 0.5);
    assert_eq!(a.grad().unwrap().to_vec(), vec![-0.5, 0.25]);
}

#[test]
fn works_in_f32() {
    let w = Tensor::<f32>::param(vec![1.0, 2.0], &[2]);
    let mut opt: Box<dyn Optimizer> =
        Box::new(Adam::new(vec![("w".into(), w.clone())], AdamConfig::adamw(1e-3)));
    w.mul(&w).sum().backward(); // g = 2w = [2, 4]
    opt.step();
    // step 1 of AdamW (λ = 0.01): m̂ = g, v̂ = g², so θ ← θ(1 − ηλ) − η·g/(|g| + ε)
    let want =
        [(1.0 - 1e-3 * 0.01) - 1e-3 * 2.0 / (2.0 + 1e-8), 2.0 * (1.0 - 1e-5) - 1e-3 * 4.0 / (4.0 + 1e-8)];
    let got = w.to_vec();
    assert_eq!(got.len(), 2);
    for (g, w) in got.iter().zip(want) {
        // f32 rounding of θ (ulp 1.2e-7 at 1, 2.4e-7 at 2) and of the step
        assert!((*g as f64 - w).abs() <= 3e-7, "{got:?} vs {want:?}");
    }
}
