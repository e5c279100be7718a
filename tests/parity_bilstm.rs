//! Parity with PyTorch for the tutorial's BiLSTM classifier, on the fixture
//! `bilstm_reference.safetensors` (see the fixtures' README.md): same parameters,
//! same padded batch and lengths, evaluation mode; logits, the last layer's
//! sequence output, the final states, the loss and every parameter gradient must
//! match.
//!
//! The fixture was computed in float64 and stored as float32. Two runs:
//! - the model in f64: |a − b| ≤ 1e-5·(|b| + 1e-3) for every element (a = ours,
//!   b = PyTorch's);
//! - the model in f32: |a − b| ≤ 1e-4·(|b| + 1e-2·max|B|), max|B| the largest
//!   magnitude in that reference tensor (f32 round-off accumulates over 12 steps
//!   and 2 layers; gradients of tiny entries are compared relative to the tensor's scale).
//!
//! Each check runs on the CPU and, from the same code, on the simulated GPU
//! (`Device::Sim`: the CUDA kernels' PTX interpreted on the CPU), at the same
//! tolerances: the model's parameters are loaded on the CPU and moved with
//! `Module::to`, the labels with `Tensor::to`, and results come back with `to_vec()`.
//!
//! Fixtures folder: env `TAPEGRAD_FIXTURES`, default `../shared/fixtures` from the
//! workspace root. If it is missing the test fails when `CI=true` and otherwise
//! prints `SKIPPED: ...` and passes.

use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use tapegrad::autograd::{Device, Float, Tensor};
use tapegrad::models::{BiLstmClassifier, BiLstmConfig, Module};

const FILE: &str = "bilstm_reference.safetensors";

fn fixture_bytes() -> Option<Vec<u8>> {
    let dir = std::env::var("TAPEGRAD_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures")));
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("fixture {} not found ({e}) and CI=true", path.display());
            }
            // straight to stderr, past libtest's capture of print!/eprint!, so the skip shows
            let _ = writeln!(std::io::stderr(), "SKIPPED: {} not found ({e})", path.display());
            None
        }
    }
}

/// A tensor of the file as f64 values with its shape (F32, F64 or I64).
fn read(st: &SafeTensors, name: &str) -> (Vec<f64>, Vec<usize>) {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("fixture has no tensor {name}: {e:?}"));
    let b = t.data();
    let v: Vec<f64> = match t.dtype() {
        Dtype::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        Dtype::F64 => b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
        Dtype::I64 => b.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        d => panic!("{name}: unsupported dtype {d:?}"),
    };
    (v, t.shape().to_vec())
}

fn config(bytes: &[u8]) -> BiLstmConfig {
    let (_, meta) = SafeTensors::read_metadata(bytes).expect("safetensors header");
    let json = meta.metadata().as_ref().and_then(|m| m.get("config")).expect("metadata `config`");
    let c: Value = serde_json::from_str(json).expect("config JSON");
    let num = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("config.{k} missing")) as usize;
    assert_eq!(c["batch_first"], Value::Bool(true), "the model is batch_first");
    BiLstmConfig {
        vocab: num("vocab"),
        embedding_dim: num("embedding_dim"),
        hidden: num("hidden"),
        layers: num("layers"),
        bidirectional: c["bidirectional"].as_bool().expect("config.bidirectional"),
        pad_index: num("pad_index"),
        output_dim: 1, // fc(2H → 1): logits [B] for binary_cross_entropy_with_logits
        dropout: 0.0,  // evaluation mode anyway
    }
}

/// Largest error, largest error as a fraction of its tolerance, and the failures.
struct Report {
    worst_abs: f64,
    worst_ratio: f64,
    failures: Vec<String>,
}

impl Report {
    fn new() -> Self {
        Report { worst_abs: 0.0, worst_ratio: 0.0, failures: Vec::new() }
    }
    fn compare(&mut self, what: &str, ours: &[f64], theirs: &[f64], tol: &dyn Fn(f64, f64) -> f64) {
        assert_eq!(ours.len(), theirs.len(), "{what}: {} values vs {}", ours.len(), theirs.len());
        let scale = theirs.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (i, (&a, &b)) in ours.iter().zip(theirs).enumerate() {
            let err = (a - b).abs();
            self.worst_abs = self.worst_abs.max(err);
            let t = tol(b.abs(), scale);
            self.worst_ratio = self.worst_ratio.max(err / t);
            if err.is_nan() || err > t {
                self.failures.push(format!("{what}[{i}]: ours {a:.9e}, PyTorch {b:.9e}"));
            }
        }
    }
}

/// The numbers on the host (copied back from a GPU), as f64.
fn to_f64<T: Float>(t: &Tensor<T>) -> Vec<f64> {
    t.to_vec().iter().map(|v| v.to_f64()).collect()
}

/// Builds the model in `T`, loads the fixture, moves it to `device`, runs forward +
/// backward there, compares.
fn run<T: Float>(bytes: &[u8], tol: &dyn Fn(f64, f64) -> f64, device: Device) -> Report {
    let st = SafeTensors::deserialize(bytes).expect("safetensors");
    let cfg = config(bytes);
    let mut model = BiLstmClassifier::<T>::new(
        cfg,
        &mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0),
    );
    model.set_training(false);

    // every parameter comes from the fixture, and every param.* is used
    let params = model.named_parameters();
    let mut fixture_params: Vec<String> =
        st.names().into_iter().filter_map(|n| n.strip_prefix("param.").map(str::to_string)).collect();
    fixture_params.sort();
    let mut ours: Vec<String> = params.iter().map(|(n, _)| n.clone()).collect();
    ours.sort();
    assert_eq!(ours, fixture_params, "parameter names differ from the fixture's");
    for (name, p) in &params {
        let (v, shape) = read(&st, &format!("param.{name}"));
        assert_eq!(p.shape(), &shape[..], "shape of {name}");
        p.data_mut().iter_mut().zip(&v).for_each(|(d, &s)| *d = T::from_f64(s));
    }
    model.to(device);
    assert_eq!(model.device(), device, "the model moved");

    let (text, tshape) = read(&st, "input.text");
    let text: Vec<usize> = text.iter().map(|&v| v as usize).collect();
    let lengths: Vec<usize> = read(&st, "input.lengths").0.iter().map(|&v| v as usize).collect();
    let (labels, lshape) = read(&st, "input.labels");
    let labels = Tensor::<T>::from_vec(labels.iter().map(|&v| T::from_f64(v)).collect(), &lshape).to(device);

    let out = model.forward(&text, &tshape, &lengths);
    let b = tshape[0];
    let logits = out.logits.reshape(&[b]);
    let loss = logits.binary_cross_entropy_with_logits(&labels);
    loss.backward();
    assert_eq!(loss.device(), device, "the loss is computed on the model's device");

    let mut r = Report::new();
    let mut cmp = |what: &str, ours: Vec<f64>| {
        let (theirs, shape) = read(&st, what);
        r.compare(what, &ours, &theirs, tol);
        shape
    };
    assert_eq!(cmp("output.logits", to_f64(&logits)), logits.shape());
    let sequence = out.sequence();
    assert_eq!(cmp("output.sequence", to_f64(&sequence)), sequence.shape());
    assert_eq!(cmp("output.hidden", to_f64(&out.h_n)), out.h_n.shape());
    assert_eq!(cmp("output.cell", to_f64(&out.c_n)), out.c_n.shape());
    cmp("output.loss", to_f64(&loss));
    let mut n_grads = 0;
    for name in st.names().into_iter().filter(|n| n.starts_with("grad.")) {
        let param = &name["grad.".len()..];
        let p = &params.iter().find(|(n, _)| n == param).unwrap_or_else(|| panic!("no parameter {param}")).1;
        let g = p.grad().unwrap_or_else(|| Tensor::zeros(p.shape()));
        assert!(!p.has_grad() || g.device() == device, "the gradient of {param} stays on the device");
        cmp(name, to_f64(&g));
        n_grads += 1;
    }
    assert_eq!(n_grads, params.len(), "a gradient for every parameter");
    r
}

fn check<T: Float>(label: &str, tol: &dyn Fn(f64, f64) -> f64, device: Device) {
    let Some(bytes) = fixture_bytes() else { return };
    let t0 = std::time::Instant::now();
    let r = run::<T>(&bytes, tol, device);
    let label = format!("{label} on {device}");
    // straight to stderr, past libtest's capture, so the numbers show in the run
    let _ = writeln!(
        std::io::stderr(),
        "{label}: max |a − b| = {:.3e}, max |a − b| / tolerance = {:.3e} ({:.1}s)",
        r.worst_abs,
        r.worst_ratio,
        t0.elapsed().as_secs_f64()
    );
    assert!(
        r.failures.is_empty(),
        "{label}: {} mismatches, first: {:?}",
        r.failures.len(),
        &r.failures[..r.failures.len().min(8)]
    );
}

fn f64_tol(b: f64, _scale: f64) -> f64 {
    1e-5 * (b + 1e-3)
}

fn f32_tol(b: f64, scale: f64) -> f64 {
    1e-4 * (b + 1e-2 * scale)
}

#[test]
fn bilstm_matches_pytorch_f64() {
    check::<f64>("f64", &f64_tol, Device::Cpu);
}

#[test]
fn bilstm_matches_pytorch_f32() {
    check::<f32>("f32", &f32_tol, Device::Cpu);
}

#[test]
fn bilstm_matches_pytorch_f64_on_sim() {
    check::<f64>("f64", &f64_tol, Device::Sim);
}

#[test]
fn bilstm_matches_pytorch_f32_on_sim() {
    check::<f32>("f32", &f32_tol, Device::Sim);
}
