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

/// `eval --device sim` and `predict --device sim` load a CPU-trained checkpoint onto the
/// simulated GPU and give the CPU's accuracy and probabilities.
#[test]
fn eval_and_predict_on_the_simulated_gpu_as_on_the_cpu() {
    let f = Fixture::new(12);
    let out = f.path("cpu");
    let o = run(&f.train(&out, &["--epochs", "1"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let best = out.join("best");
    let (best, data) = (best.to_str().unwrap(), f.data.to_str().unwrap());

    let eval = |device: &str| {
        let o = run(&strings(&["eval", "--checkpoint", best, "--data", data, "--device", device, "--quiet"]));
        assert!(o.status.success(), "eval --device {device}: {}", stderr(&o));
        last_line_accuracy(&o)
    };
    let (cpu, sim) = (eval("cpu"), eval("sim"));
    assert_eq!(sim.1, 24, "every test review evaluated");
    assert_eq!(cpu, sim, "eval: the sim's accuracy differs from the CPU's");

    let texts = ["a wonderful, moving film", "dull and far too long", "fine"];
    let predict = |device: &str| -> Vec<f64> {
        let mut args = strings(&["predict", "--checkpoint", best, "--device", device]);
        args.extend(strings(&texts));
        let o = run(&args);
        assert!(o.status.success(), "predict --device {device}: {}", stderr(&o));
        stdout(&o).lines().map(|l| l.split('\t').next().unwrap().parse().unwrap()).collect()
    };
    let (cpu, sim) = (predict("cpu"), predict("sim"));
    assert_eq!(sim.len(), texts.len(), "one probability per text");
    // predict prints 4 decimals: equal up to the last printed digit
    for (c, s) in cpu.iter().zip(&sim) {
        assert!((c - s).abs() <= 1e-4 + 1e-12, "predict: {sim:?} on the sim, {cpu:?} on the CPU");
    }
}

/// `lr-find --device sim` records the CPU's losses at each rate.
#[test]
fn lr_find_on_the_simulated_gpu_as_on_the_cpu() {
    let f = Fixture::new(12);
    let lr_find = |device: &str| -> Vec<f64> {
        let out = f.path(&format!("lr-{device}"));
        let mut args = strings(&["lr-find", "--out", out.to_str().unwrap(), "--steps", "10"]);
        // the tiny model of `train`'s fixture, without its --lr (lr-find sweeps the rate)
        let flags = tiny_flags(&f.data, &f.glove, &f.cache);
        let mut skip = false;
        for a in flags {
            if skip {
                skip = false;
            } else if a == "--lr" {
                skip = true;
            } else {
                args.push(a);
            }
        }
        args.extend(strings(&["--device", device]));
        let o = run(&args);
        assert!(o.status.success(), "lr-find --device {device}: {}", stderr(&o));
        column(&out.join("lr-find.jsonl"), "loss")
    };
    let (cpu, sim) = (lr_find("cpu"), lr_find("sim"));
    assert_eq!(cpu.len(), 10, "ten steps recorded");
    assert_close("lr-find losses", &cpu, &sim);
}
