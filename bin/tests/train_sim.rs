//! `finetune-imdb train --device sim`: a tiny BiLSTM run on the simulated GPU (the CUDA
//! kernels' PTX interpreted on the CPU) stops after a step, saves, resumes on the sim,
//! validates, tests and writes its metrics, with the CPU's losses; resuming there is
//! exact, as on the CPU.

mod run_common;

use run_common::*;
use serde_json::Value;
use std::fs;
use std::path::Path;

/// The `loss`-like fields of each line of a JSON-lines file.
fn column(path: &Path, key: &str) -> Vec<f64> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()[key].as_f64().unwrap_or_else(|| panic!("{key} in {l}"))
        })
        .collect()
}

/// |sim − cpu| ≤ 1e-5·max(1, |cpu|): the same math, some f32 operations in another order
/// (the GPU's reduction trees, CUDA's exp and tanh; see tests/sim_device.rs at the
/// workspace root).
fn assert_close(what: &str, cpu: &[f64], sim: &[f64]) {
    assert_eq!(cpu.len(), sim.len(), "{what}: {cpu:?} on the CPU, {sim:?} on the sim");
    for (c, s) in cpu.iter().zip(sim) {
        assert!((c - s).abs() <= 1e-5 * c.abs().max(1.0), "{what}: {sim:?} on the sim, {cpu:?} on the CPU");
    }
}

#[test]
fn trains_on_the_simulated_gpu_as_on_the_cpu() {
    let f = Fixture::new(12); // 24 reviews a split: 2 batches of 16 an epoch
    let (cpu, sim) = (f.path("cpu"), f.path("sim"));
    let o = run(&f.train(&cpu, &["--epochs", "1"]));
    assert!(o.status.success(), "{}", stderr(&o));

    // One step on the sim, then it stops and saves (as Ctrl-C would).
    let o = run(&f.train(&sim, &["--epochs", "1", "--device", "sim", "--max-steps", "1"]));
    assert!(o.status.success(), "train --device sim failed: {}", stderr(&o));
    assert!(stdout(&o).contains("interrupted=true"), "{}", stdout(&o));
    assert_eq!(lines(&sim.join("steps.jsonl")), 1);
    for file in ["model.safetensors", "optimizer.safetensors", "run.json", "vocab.json"] {
        assert!(sim.join("last").join(file).exists(), "last/{file}");
    }

    // Resumed on the sim: the epoch's last step, validation, test, metrics, best/.
    let o = run(&f.resume(&sim, &["--device", "sim"]));
    assert!(o.status.success(), "resume --device sim failed: {}", stderr(&o));
    let (_, reviews) = last_line_accuracy(&o);
    assert_eq!(reviews, 24);
    assert_eq!(lines(&sim.join("metrics.jsonl")), 1, "one metrics line for the epoch");
    assert!(fs::read_to_string(sim.join("curves.svg")).unwrap().contains("<polyline"));
    for file in ["model.safetensors", "optimizer.safetensors", "run.json", "vocab.json"] {
        assert!(sim.join("best").join(file).exists(), "best/{file}");
    }

    // An uninterrupted run on the sim ends with the same bits as the resumed one.
    let whole = f.path("whole");
    let o = run(&f.train(&whole, &["--epochs", "1", "--device", "sim"]));
    assert!(o.status.success(), "{}", stderr(&o));
    for file in ["model.safetensors", "optimizer.safetensors"] {
        let (a, b) = (
            fs::read(whole.join("last").join(file)).unwrap(),
            fs::read(sim.join("last").join(file)).unwrap(),
        );
        assert!(a == b, "{file} differs between the resumed and the uninterrupted run on the sim");
    }

    // The same losses as the CPU's run: each step's, and the epoch's train and validation.
    assert_close(
        "step losses",
        &column(&cpu.join("steps.jsonl"), "loss"),
        &column(&sim.join("steps.jsonl"), "loss"),
    );
    for key in ["train_loss", "valid_loss"] {
        assert_close(key, &column(&cpu.join("metrics.jsonl"), key), &column(&sim.join("metrics.jsonl"), key));
    }
}
