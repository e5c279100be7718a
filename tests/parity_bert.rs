//! Parity of the BERT classifier with PyTorch/transformers on all-MiniLM-L6-v2.
//!
//! Reference: `minilm_reference.safetensors` in the fixtures folder (env
//! `TAPEGRAD_FIXTURES`, default `../shared/fixtures` from the workspace root),
//! computed in float64 and stored as float32. The model folder is
//! `../shared/models/all-MiniLM-L6-v2` (env `TAPEGRAD_MINILM` overrides it).
//! Without them the tests print `SKIPPED: …` and pass, except under `CI=true`,
//! where a missing fixture fails.
//!
//! Tolerance: 1e-4 absolute for the hidden states, logits, loss and every
//! gradient when running in f32 against the f64 reference (1e-5 in f64, where
//! only the reference's f32 storage rounding remains). The gradient checks are
//! driven by the `grad.*` names present in the file, so any fixture set with the
//! same layout runs through the same test.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tapegrad::autograd::{Float, Tensor};
use tapegrad::models::bert::model::BertInput;
use tapegrad::models::bert::BertForSequenceClassification;
use tapegrad::models::safetensors_io::SafeTensorsFile;
use tapegrad::models::tokenizer::Tokenizer;
use tapegrad::models::Module;

const FIXTURE: &str = "minilm_reference.safetensors";

fn fixtures_dir() -> PathBuf {
    std::env::var_os("TAPEGRAD_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures")))
}

fn model_dir() -> PathBuf {
    std::env::var_os("TAPEGRAD_MINILM").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/models/all-MiniLM-L6-v2"))
    })
}

/// True if `path` exists; otherwise fails under `CI=true`, or prints SKIPPED.
fn available(path: &Path, what: &str) -> bool {
    if path.exists() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} not found at {} (required when CI=true)", path.display());
    }
    println!("SKIPPED: {what} not found at {}", path.display());
    false
}

/// The fixture and the model folder, or None (skipped).
fn inputs() -> Option<(SafeTensorsFile, PathBuf)> {
    let fixture = fixtures_dir().join(FIXTURE);
    let model = model_dir();
    if !available(&fixture, "MiniLM reference fixture")
        || !available(&model.join("model.safetensors"), "all-MiniLM-L6-v2 model")
    {
        return None;
    }
    Some((SafeTensorsFile::open(&fixture).expect("the fixture opens"), model))
}

/// The truncation length the fixture states in its `config` metadata
/// ("truncation 48"), 48 when it does not say.
fn fixture_max_len(fx: &SafeTensorsFile) -> usize {
    let config: serde_json::Value = serde_json::from_str(&fx.metadata()["config"]).expect("config is JSON");
    let text = config["tokenizer"].as_str().unwrap_or("");
    let after = text.split("truncation").nth(1).unwrap_or("");
    let digits: String = after.trim_start().chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().unwrap_or(48)
}

fn fixture_input(fx: &SafeTensorsFile) -> BertInput {
    let (input_ids, shape) = fx.tensor_usize("input.input_ids").unwrap();
    let (attention_mask, _) = fx.tensor_usize("input.attention_mask").unwrap();
    let (token_type_ids, _) = fx.tensor_usize("input.token_type_ids").unwrap();
    BertInput { input_ids, attention_mask, token_type_ids, shape: [shape[0], shape[1]] }
}

#[test]
fn tokenizer_matches_the_fixture() {
    let Some((fx, model)) = inputs() else { return };
    let texts: Vec<String> = serde_json::from_str(&fx.metadata()["texts"]).expect("texts is a JSON list");
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tok = Tokenizer::from_dir(&model, fixture_max_len(&fx)).unwrap();
    let got = tok.encode_batch(&texts).unwrap();
    let want = fixture_input(&fx);
    assert_eq!(got.shape, want.shape, "batch shape");
    assert_eq!(got.input_ids, want.input_ids, "input_ids");
    assert_eq!(got.attention_mask, want.attention_mask, "attention_mask");
    assert_eq!(got.token_type_ids, want.token_type_ids, "token_type_ids");
}

#[test]
fn tokenizer_missing_file_is_an_error() {
    let err = Tokenizer::from_dir("/nonexistent/model-dir", 16).err().expect("no file, no tokenizer");
    assert!(err.to_string().contains("/nonexistent/model-dir/tokenizer.json"), "{err}");
}

/// Max |a − b| over two same-shape tensors.
fn max_abs_diff<T: Float>(a: &[T], b: &[T]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x.to_f64() - y.to_f64()).abs()).fold(0.0, f64::max)
}

struct Checker {
    tol: f64,
    failures: Vec<String>,
}
impl Checker {
    fn check<T: Float>(&mut self, name: &str, got: &[T], want: &Tensor<T>, shape: (&[usize], &[usize])) {
        assert_eq!(shape.0, shape.1, "{name}: shape");
        let err = max_abs_diff(got, &want.data());
        println!("{name:<70} max abs err {err:.3e}");
        if err.is_nan() || err > self.tol {
            self.failures.push(format!("{name}: max abs error {err:.3e} > {:.0e}", self.tol));
        }
    }
}

fn run_parity<T: Float>(tol: f64) {
    let Some((fx, model_path)) = inputs() else { return };
    let num_labels = fx.info("param.classifier.weight").expect("param.classifier.weight").shape[0];
    let mut model = BertForSequenceClassification::<T>::from_pretrained(&model_path, num_labels, 0).unwrap();
    model.classifier.weight.set_data(&fx.tensor::<T>("param.classifier.weight").unwrap());
    model.classifier.bias.as_ref().unwrap().set_data(&fx.tensor::<T>("param.classifier.bias").unwrap());
    model.set_training(false);

    let x = fixture_input(&fx);
    let (labels, _) = fx.tensor_usize("input.labels").unwrap();
    let out = model.forward(&x).unwrap();
    let loss = model.loss(&out.logits, &labels).unwrap();
    loss.backward();

    let mut c = Checker { tol, failures: Vec::new() };
    for (name, got) in [
        ("output.embeddings", &out.embeddings),
        ("output.last_hidden_state", &out.last_hidden_state),
        ("output.logits", &out.logits),
    ] {
        let want = fx.tensor::<T>(name).unwrap();
        c.check(name, &got.data(), &want, (got.shape(), want.shape()));
    }
    let want = fx.tensor::<T>("output.loss").unwrap();
    c.check("output.loss", &[loss.item()], &want, (&[1], want.shape()));

    let params: HashMap<String, Tensor<T>> = model.named_parameters().into_iter().collect();
    let grad_of = |name: &str| -> (Vec<T>, Vec<usize>) {
        let p = params
            .get(name)
            .unwrap_or_else(|| panic!("the fixture has a gradient for `{name}`, no such parameter"));
        let g = p.grad().map(|g| g.to_vec()).unwrap_or_else(|| vec![T::ZERO; p.numel()]);
        (g, p.shape().to_vec())
    };
    let mut compared = 0;
    for fname in fx.names().filter(|n| n.starts_with("grad.")) {
        let name = &fname["grad.".len()..];
        let want = || fx.tensor::<T>(fname).unwrap();
        if name.ends_with(".rows") {
            continue; // read with its `.values`
        } else if let Some(base) = name.strip_suffix(".values") {
            // the gradient's rows at the listed (distinct) token ids
            let (rows, _) = fx.tensor_usize(&format!("grad.{base}.rows")).unwrap();
            let (g, shape) = grad_of(base);
            let d = shape[1];
            let picked: Vec<T> = rows.iter().flat_map(|&r| g[r * d..(r + 1) * d].to_vec()).collect();
            let w = want();
            c.check(fname, &picked, &w, (&[rows.len(), d], w.shape()));
        } else if let Some(base) = name.strip_suffix(".first_rows") {
            let (g, shape) = grad_of(base);
            let w = want();
            let n = w.shape()[0];
            c.check(fname, &g[..n * shape[1]], &w, (&[n, shape[1]], w.shape()));
        } else {
            let (g, shape) = grad_of(name);
            let w = want();
            c.check(fname, &g, &w, (&shape, w.shape()));
        }
        compared += 1;
    }
    assert!(compared > 0, "the fixture has no gradients to compare");
    assert!(c.failures.is_empty(), "parity failures ({}):\n{}", T::DTYPE, c.failures.join("\n"));
}

#[test]
fn minilm_parity_f32() {
    run_parity::<f32>(1e-4);
}

#[test]
fn minilm_parity_f64() {
    run_parity::<f64>(1e-5);
}
