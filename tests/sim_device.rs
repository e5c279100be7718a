//! Training on the simulated GPU (`Device::Sim`: the CUDA kernels' PTX interpreted on
//! the CPU), and on a real one (`cuda:0`) where the machine has one, against the same
//! training on the CPU: the models are built on the CPU from
//! one seed, one copy is moved with `Module::to`, and both take the same Adam steps
//! with dropout on. Dropout masks are the same on both devices by design (ChaCha8 from
//! the same seeds), so the losses of every step and the final parameters must agree
//! to float round-off: see [`TOL`].

#[path = "support/cuda_device.rs"]
mod cuda_device;

use cuda_device::cuda;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::Write;
use tapegrad::autograd::{Device, Tensor};
use tapegrad::models::bert::{BertConfig, BertForSequenceClassification, BertInput};
use tapegrad::models::{BiLstmClassifier, BiLstmConfig, Module};
use tapegrad::optim::{clip_grad_norm, Adam, AdamConfig, Optimizer, ParamGroup};

/// |sim − cpu| ≤ TOL·max(1, |cpu|), for the losses and every parameter element.
///
/// The math is the same on both devices, the order of f32 operations is not everywhere:
/// the GPU's reductions (LayerNorm, softmax, a bias's gradient summed over the batch, the
/// BCE mean, the clip norm) are block trees where the CPU runs vector lanes, and its exp,
/// tanh and erf are CUDA's where the CPU's are its own polynomials (the matrix products
/// agree bit for bit: see gradcheck's `sim_f32` rows). Each is a few u = 2⁻²⁴ ≈ 6e-8 per
/// op, carried through three Adam steps; 1e-5 is the fixtures' f32 tolerance. Measured:
/// losses within 6e-8, parameters within 3.3e-7.
const TOL: f64 = 1e-5;

/// What a run leaves: the device it ran on, each step's loss, then every parameter by name
/// (on the host).
struct Run {
    device: Device,
    losses: Vec<f32>,
    params: Vec<(String, Vec<f32>)>,
}

/// Compares two runs element by element (see [`TOL`]); prints the largest differences.
fn assert_close(what: &str, cpu: &Run, sim: &Run) {
    let on = sim.device;
    let rel = |a: f32, b: f32| (a as f64 - b as f64).abs() / (b as f64).abs().max(1.0);
    assert_eq!(cpu.losses.len(), sim.losses.len());
    let mut failures = Vec::new();
    let mut worst_loss = 0.0f64;
    for (k, (&c, &s)) in cpu.losses.iter().zip(&sim.losses).enumerate() {
        let e = rel(s, c);
        worst_loss = worst_loss.max(e);
        if e.is_nan() || e > TOL {
            failures.push(format!("step {k}: loss {s} on {on}, {c} on the CPU"));
        }
    }
    let mut worst_param = (0.0f64, String::new());
    for ((name, c), (sname, s)) in cpu.params.iter().zip(&sim.params) {
        assert_eq!(name, sname, "parameter order");
        assert_eq!(c.len(), s.len(), "{name}: length");
        for (i, (&a, &b)) in s.iter().zip(c).enumerate() {
            let e = rel(a, b);
            if e > worst_param.0 {
                worst_param = (e, format!("{name}[{i}]"));
            }
            if e.is_nan() || e > TOL {
                failures.push(format!("{name}[{i}]: {a} on {on}, {b} on the CPU"));
            }
        }
    }
    // straight to stderr, past libtest's capture, so the numbers show in the run
    let _ = writeln!(
        std::io::stderr(),
        "{what}: losses {:?} (CPU) / {:?} ({on}); worst loss difference {worst_loss:.2e}, worst parameter \
         difference {:.2e} at {}",
        cpu.losses,
        sim.losses,
        worst_param.0,
        worst_param.1
    );
    assert!(
        failures.is_empty(),
        "{what}: {} differences, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(8)]
    );
}

/// Every parameter's values, copied back to the host, after checking it is on `device`
/// with its optimizer state (the step left it there).
fn host_params(m: &dyn Module, device: Device) -> Vec<(String, Vec<f32>)> {
    m.named_parameters()
        .into_iter()
        .map(|(n, p)| {
            assert_eq!(p.device(), device, "{n} left {device}");
            (n, p.to_vec())
        })
        .collect()
}

/// Adam (no weight decay on biases, as finetune-imdb groups them), clipping at 1.
fn adam(m: &dyn Module, config: AdamConfig) -> Adam<f32> {
    let (decay, no_decay): (Vec<_>, Vec<_>) =
        m.trainable_parameters().into_iter().partition(|(n, _)| !n.ends_with("bias"));
    Adam::with_groups(vec![ParamGroup::new(decay), ParamGroup::new(no_decay).with_weight_decay(0.0)], config)
}

/// One optimizer step on `loss`, as finetune-imdb takes it (with `clip`, gradients
/// clipped to norm 1 first); returns the loss.
fn step(loss: &Tensor, opt: &mut Adam<f32>, clip: bool) -> f32 {
    let l = loss.item();
    loss.backward();
    if clip {
        let norm = clip_grad_norm(opt.trainable_params().iter(), 1.0);
        assert_eq!(norm.device(), loss.device(), "the clip norm is computed on the gradients' device");
    }
    opt.step();
    opt.zero_grad();
    l
}

/// The tutorial's classifier (as finetune-imdb builds it: bidirectional, one logit,
/// BCE with logits) on tiny sizes, 2 layers so that the dropout between LSTM layers
/// runs too: three Adam steps with dropout 0.3 on batches of padded reviews of
/// different lengths.
fn bilstm_run(device: Device, dropout: f64) -> Run {
    let config = BiLstmConfig {
        vocab: 40,
        embedding_dim: 8,
        hidden: 6,
        layers: 2,
        bidirectional: true,
        pad_index: 1,
        output_dim: 1,
        dropout,
    };
    let mut model = BiLstmClassifier::<f32>::new(config, &mut ChaCha8Rng::seed_from_u64(7));
    model.set_training(true);
    model.to(device);
    assert_eq!(model.device(), device);
    let mut opt = adam(&model, AdamConfig::new(1e-2).weight_decay(1e-4));
    let mut data = ChaCha8Rng::seed_from_u64(8);
    let (b, t) = (5, 9);
    let mut losses = Vec::new();
    for _ in 0..3 {
        let lengths: Vec<usize> = (0..b).map(|_| data.random_range(1..=t)).collect();
        let mut text = vec![1usize; b * t]; // padded with pad_index
        for (r, &len) in lengths.iter().enumerate() {
            for c in 0..len {
                text[r * t + c] = data.random_range(2..40);
            }
        }
        let labels: Vec<f32> = (0..b).map(|_| data.random_range(0..2) as f32).collect();
        let y = Tensor::from_vec(labels, &[b]).to(device);
        let logits = model.forward(&text, &[b, t], &lengths).logits.reshape(&[b]);
        assert_eq!(logits.device(), device);
        losses.push(step(&logits.binary_cross_entropy_with_logits(&y), &mut opt, true));
    }
    Run { device, losses, params: host_params(&model, device) }
}

#[test]
fn bilstm_training_steps_on_sim_match_the_cpu() {
    let cpu = bilstm_run(Device::Cpu, 0.3);
    let sim = bilstm_run(Device::Sim, 0.3);
    assert!(cpu.losses.iter().all(|l| l.is_finite()), "{:?}", cpu.losses);
    // dropout does drop: without it the same steps give other losses
    let no_dropout = bilstm_run(Device::Cpu, 0.0);
    assert!(no_dropout.losses[0] != cpu.losses[0], "dropout changed nothing: {:?}", cpu.losses);
    assert_close("BiLSTM, 3 Adam steps with dropout", &cpu, &sim);
}

/// The same on a real GPU, where there is one.
#[test]
fn bilstm_training_steps_on_cuda_match_the_cpu() {
    if let Some(gpu) = cuda() {
        assert_close(
            "BiLSTM, 3 Adam steps with dropout",
            &bilstm_run(Device::Cpu, 0.3),
            &bilstm_run(gpu, 0.3),
        );
    }
}

/// A MiniLM-shaped BERT (`BertConfig::tiny()`: 2 layers, 2 heads, GELU, random weights)
/// with a 2-class head, in training mode (hidden and attention dropout 0.1): three AdamW
/// steps on padded batches. `split`: layer 0 stays on the CPU while the rest runs on
/// `device` (the encoder moves the hidden state across, forward and backward).
/// `clip`: clip the gradients' norm to 1 before each step (`clip_grad_norm` needs all
/// gradients on one device: a split model is refused with a message naming both).
fn bert_run(device: Device, split: bool, clip: bool) -> Run {
    let config = BertConfig::tiny();
    let mut model = BertForSequenceClassification::<f32>::new(&config, 2, 5);
    model.set_training(true);
    model.to(device);
    if split {
        model.bert.encoder.layers[0].to(Device::Cpu);
    }
    let mut opt = adam(&model, AdamConfig::adamw(1e-2).weight_decay(0.01));
    let mut data = ChaCha8Rng::seed_from_u64(9);
    let (b, t) = (3, 7);
    let mut losses = Vec::new();
    for _ in 0..3 {
        let lengths: Vec<usize> = (0..b).map(|_| data.random_range(2..=t)).collect();
        let mut input_ids = vec![0usize; b * t];
        let mut attention_mask = vec![0usize; b * t];
        for (r, &len) in lengths.iter().enumerate() {
            for c in 0..len {
                input_ids[r * t + c] = data.random_range(1..config.vocab_size);
                attention_mask[r * t + c] = 1;
            }
        }
        let token_type_ids = (0..b * t).map(|k| usize::from(k % t >= 3)).collect();
        let x = BertInput { input_ids, attention_mask, token_type_ids, shape: [b, t] };
        let labels: Vec<usize> = (0..b).map(|_| data.random_range(0..2)).collect();
        let out = model.forward(&x).unwrap();
        assert_eq!(out.logits.device(), device);
        losses.push(step(&model.loss(&out.logits, &labels).unwrap(), &mut opt, clip));
    }
    let params = model
        .named_parameters()
        .into_iter()
        .map(|(n, p)| {
            let want = if split && n.starts_with("bert.encoder.layer.0.") { Device::Cpu } else { device };
            assert_eq!(p.device(), want, "{n} left {want}");
            (n, p.to_vec())
        })
        .collect();
    Run { device, losses, params }
}

#[test]
fn bert_training_steps_on_sim_match_the_cpu() {
    let cpu = bert_run(Device::Cpu, false, true);
    let sim = bert_run(Device::Sim, false, true);
    assert_close("tiny BERT, 3 AdamW steps with dropout", &cpu, &sim);
}

/// The same on a real GPU, where there is one.
#[test]
fn bert_training_steps_on_cuda_match_the_cpu() {
    if let Some(gpu) = cuda() {
        let (cpu, on_gpu) = (bert_run(Device::Cpu, false, true), bert_run(gpu, false, true));
        assert_close("tiny BERT, 3 AdamW steps with dropout", &cpu, &on_gpu);
        let split = bert_run(gpu, true, false);
        assert_close("tiny BERT split over CPU and cuda:0", &bert_run(Device::Cpu, false, false), &split);
    }
}

/// The same BERT split over the CPU (layer 0) and the sim (the rest) trains as on one device.
#[test]
fn bert_split_over_cpu_and_sim_matches_the_cpu() {
    let cpu = bert_run(Device::Cpu, false, false);
    let split = bert_run(Device::Sim, true, false);
    assert_close("tiny BERT split over CPU and sim", &cpu, &split);
}

/// Tensors with a zero dimension go through the ops on both devices alike (the CPU's
/// permute used to panic on them: `kernels/src/permute.rs`, `empty_shapes_permute_to_nothing`).
#[test]
fn empty_tensors_on_every_device() {
    for device in [Device::Cpu, Device::Sim].into_iter().chain(cuda()) {
        let on = |v: Vec<f32>, shape: &[usize]| {
            let t = Tensor::param(v, shape);
            t.move_to(device);
            t
        };
        let x = on(vec![], &[2, 0, 3]);
        let y = x.permute(&[2, 0, 1]).transpose(0, 1).softmax(-1);
        assert_eq!(y.shape(), &[2, 3, 0]);
        let s = y.mul_scalar(2.0).sum();
        s.backward();
        assert_eq!(s.item(), 0.0, "{device}");
        assert_eq!(x.grad().expect("a gradient").to_vec(), Vec::<f32>::new(), "{device}");

        let a = on((0..6).map(|i| i as f32).collect(), &[2, 3]);
        let parts = Tensor::concat(&[&a, &on(vec![], &[2, 0]), &a], 1);
        let k0 = on(vec![], &[2, 0]).matmul(&on(vec![], &[0, 4])); // a sum of no terms
        let none = a.index_select(0, &[]);
        assert_eq!(parts.to_vec(), [0., 1., 2., 0., 1., 2., 3., 4., 5., 3., 4., 5.], "{device}");
        assert_eq!(k0.to_vec(), [0.0; 8], "{device}");
        assert_eq!((none.shape(), none.to_vec()), (&[0, 3][..], vec![]), "{device}");
        parts.sum().add(&none.sum()).backward();
        assert_eq!(a.grad().unwrap().to_vec(), [2.0; 6], "{device}");
    }
}
