//! Save → restore → continue equals an uninterrupted run bit for bit; bad state
//! files give errors naming the file and the tensor.

use std::path::PathBuf;
use tapegrad_autograd::{Float, Tensor};
use tapegrad_optim::state::{load_checkpoint, read_optim_state, save_checkpoint};
use tapegrad_optim::{
    Adam, AdamConfig, CosineWarmup, LrSchedule, Optimizer, ParamGroup, Sgd, SgdConfig, StateError,
};

fn temp_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tapegrad-optim-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Deterministic pseudo-random numbers in [−1, 1).
fn noise(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

type Model<T> = Vec<(String, Tensor<T>)>;

fn model<T: Float>(seed: u64) -> Model<T> {
    let shapes: [(&str, &[usize]); 3] = [("w", &[3, 4]), ("b", &[4]), ("emb", &[5, 2])];
    let mut out = Vec::new();
    for (i, (name, shape)) in shapes.iter().enumerate() {
        let n = shape.iter().product();
        let v = noise(seed * 10 + i as u64, n).into_iter().map(T::from_f64).collect();
        out.push((name.to_string(), Tensor::param(v, shape)));
    }
    out
}

fn groups<T: Float>(m: &Model<T>) -> Vec<ParamGroup<T>> {
    vec![
        ParamGroup::new(vec![m[0].clone()]),
        ParamGroup::new(vec![m[1].clone()]).with_weight_decay(0.0),
        ParamGroup::new(vec![m[2].clone()]).with_lr(3e-3),
    ]
}

/// Step `k`: gradients from the step number (`emb` gets none on odd steps, to
/// exercise per-parameter step counts), the schedule's factor, then the update.
fn train<T: Float>(m: &Model<T>, opt: &mut dyn Optimizer<T>, steps: std::ops::Range<u64>) {
    let sched = CosineWarmup::new(3, 12);
    for k in steps {
        opt.zero_grad();
        for (i, (_, p)) in m.iter().enumerate() {
            if i == 2 && k % 2 == 1 {
                continue;
            }
            let g = noise(1000 + k * 7 + i as u64, p.numel()).into_iter().map(T::from_f64).collect();
            p.accumulate_grad(|| Tensor::from_vec(g, p.shape()));
        }
        opt.set_lr_factor(sched.lr_factor(opt.step_count()));
        opt.step();
    }
}

fn bits<T: Float>(m: &Model<T>) -> Vec<u64> {
    m.iter().flat_map(|(_, p)| p.to_vec()).map(|v| v.to_f64().to_bits()).collect()
}

fn make<T: Float>(kind: &str, m: &Model<T>) -> Box<dyn Optimizer<T>> {
    match kind {
        "sgd" => Box::new(Sgd::with_groups(groups(m), SgdConfig::new(0.05).momentum(0.9).weight_decay(0.01))),
        "nesterov" => Box::new(Sgd::with_groups(
            groups(m),
            SgdConfig::new(0.05).momentum(0.9).nesterov(true).weight_decay(0.01),
        )),
        "adam" => Box::new(Adam::with_groups(groups(m), AdamConfig::new(1e-2).weight_decay(0.1))),
        "adamw" => Box::new(Adam::with_groups(groups(m), AdamConfig::adamw(1e-2).weight_decay(0.1))),
        _ => unreachable!(),
    }
}

fn resume_is_exact<T: Float>(kind: &str) {
    let dir = temp_dir(&format!("resume-{kind}-{}", T::DTYPE));
    let path = dir.join("ckpt.safetensors");

    // Uninterrupted: 12 steps, with a checkpoint after 5.
    let m = model::<T>(1);
    let mut opt = make(kind, &m);
    train(&m, opt.as_mut(), 0..5);
    save_checkpoint(&path, &m, Some(&opt.state())).unwrap();
    train(&m, opt.as_mut(), 5..12);

    // Resumed: other initial weights and a fresh optimizer, restored from the file.
    let m2 = model::<T>(2);
    let mut opt2 = make(kind, &m2);
    load_checkpoint(&path, &m2, Some(opt2.as_mut())).unwrap();
    assert_eq!(opt2.step_count(), 5);
    train(&m2, opt2.as_mut(), 5..12);

    assert_eq!(bits(&m), bits(&m2), "{kind} {}: resumed run differs", T::DTYPE);
    assert_eq!(opt.state().tensors, opt2.state().tensors);
    // Written atomically: no temporary file left beside it.
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 1, "{left:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn resume_sgd_momentum_bit_for_bit() {
    resume_is_exact::<f32>("sgd");
    resume_is_exact::<f64>("sgd");
    resume_is_exact::<f32>("nesterov");
}

#[test]
fn resume_adam_bit_for_bit() {
    resume_is_exact::<f32>("adam");
    resume_is_exact::<f64>("adam");
}

#[test]
fn resume_adamw_bit_for_bit() {
    resume_is_exact::<f32>("adamw");
    resume_is_exact::<f64>("adamw");
}

#[test]
fn checkpoint_layout_is_prefixed() {
    let dir = temp_dir("layout");
    let path = dir.join("c.safetensors");
    let m = model::<f32>(1);
    let mut opt = make("adamw", &m);
    train(&m, opt.as_mut(), 0..2);
    save_checkpoint(&path, &m, Some(&opt.state())).unwrap();
    let s = read_optim_state(&path).unwrap();
    assert_eq!(s.meta["kind"], "adamw");
    assert_eq!(s.meta["step"], 2);
    assert_eq!(s.meta["state"]["emb"]["step"], 1); // no gradient at step 1
    let names: Vec<&str> = s.tensors.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"w.exp_avg_sq"), "{names:?}");
    // Weights only, no optimizer: loads into a model, but has no optimizer state.
    let path2 = dir.join("weights.safetensors");
    save_checkpoint(&path2, &m, None).unwrap();
    load_checkpoint::<f32>(&path2, &m, None).unwrap();
    let err = read_optim_state(&path2).unwrap_err();
    assert!(err.to_string().contains("no optimizer state"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Runs `load_checkpoint` of `path` into a fresh Adam over `m`, expecting an error;
/// checks that nothing changed.
fn load_err(path: &std::path::Path, m: &Model<f32>, opt: &mut dyn Optimizer<f32>) -> StateError {
    let before = bits(m);
    let step = opt.step_count();
    let err = load_checkpoint(path, m, Some(opt)).unwrap_err();
    assert_eq!(bits(m), before, "weights changed by a failed load");
    assert_eq!(opt.step_count(), step, "optimizer changed by a failed load");
    err
}

#[test]
fn bad_state_files_give_clear_errors() {
    let dir = temp_dir("errors");
    let good = dir.join("good.safetensors");
    let m = model::<f32>(1);
    let mut opt = make("adam", &m);
    train(&m, opt.as_mut(), 0..3);
    save_checkpoint(&good, &m, Some(&opt.state())).unwrap();
    let shown = good.display().to_string();

    // Missing file.
    let missing = dir.join("nope.safetensors");
    let err = load_err(&missing, &m, make("adam", &m).as_mut());
    assert!(matches!(err, StateError::File(_)) && err.to_string().contains("nope.safetensors"), "{err}");

    // Corrupt: garbage, and a truncated copy.
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"definitely not safetensors").unwrap();
    let err = load_err(&garbage, &m, make("adam", &m).as_mut());
    assert!(matches!(err, StateError::File(_)) && err.to_string().contains("garbage"), "{err}");
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    let err = load_err(&truncated, &m, make("adam", &m).as_mut());
    assert!(matches!(err, StateError::File(_)), "{err}");

    // Wrong optimizer kind.
    let err = load_err(&good, &m, make("sgd", &m).as_mut());
    assert!(
        err.to_string().contains("`adam` optimizer, not `sgd`") && err.to_string().contains(&shown),
        "{err}"
    );

    // A model whose `w` has another shape: the weight itself is refused first...
    let mut other = model::<f32>(3);
    other[0].1 = Tensor::param(vec![0.0; 8], &[2, 4]);
    let err = load_err(&good, &other, make("adam", &other).as_mut());
    assert!(
        matches!(&err, StateError::Shape { tensor, expected, found, .. }
            if tensor == "w" && expected == &[2, 4] && found == &[3, 4]),
        "{err}"
    );
    // ...and loading the optimizer state alone names the state tensor.
    let state = read_optim_state(&good).unwrap();
    let mut opt_other = make("adam", &other);
    let err = opt_other.load_state(&state).unwrap_err();
    assert!(err.to_string().contains("`optim.w.exp_avg` has shape [3, 4], expected [2, 4]"), "{err}");
    assert!(err.to_string().contains(&shown), "{err}");

    // A state tensor missing from the file.
    let mut cut = state.clone();
    cut.tensors.retain(|t| t.name != "b.exp_avg_sq");
    let holed = dir.join("holed.safetensors");
    save_checkpoint(&holed, &m, Some(&cut)).unwrap();
    let err = load_err(&holed, &m, make("adam", &m).as_mut());
    assert!(
        matches!(&err, StateError::Missing { tensor, .. } if tensor == "optim.b.exp_avg_sq")
            && err.to_string().contains("holed.safetensors"),
        "{err}"
    );

    // A model weight missing from the file.
    let mut bigger = model::<f32>(1);
    bigger.push(("extra".into(), Tensor::param(vec![0.0], &[1])));
    let err = load_err(&good, &bigger, make("adam", &bigger).as_mut());
    assert!(matches!(&err, StateError::Missing { tensor, .. } if tensor == "extra"), "{err}");

    // Groups that do not match.
    let mut single = Adam::new(m.clone(), AdamConfig::new(1e-2));
    let err = single.load_state(&state).unwrap_err();
    assert!(err.to_string().contains("3 parameter groups, the optimizer 1"), "{err}");

    // Metadata without the fields a state needs.
    let mut broken = state.clone();
    broken.meta = serde_json::json!({"kind": "adam"});
    let err = make("adam", &m).load_state(&broken).unwrap_err();
    assert!(err.to_string().contains("`groups` is missing"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}
