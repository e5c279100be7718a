//! SGD, SGD with momentum and Adam side by side on the same problem: a 2-layer
//! network ŷ = tanh(x·W1 + b1)·W2 + b2 fitted to y = sin(2·x₀) + x₁·x₂ by the mean
//! squared error L(θ) = (1/N) Σᵢ (ŷᵢ − yᵢ)². Each optimizer starts from the same θ
//! and sees the same full-batch gradients; each step is θ_{t+1} = θ_t − η·d_t with
//! d_t the optimizer's direction (the gradient itself for plain SGD).
//!
//! Run: `cargo run --release --example optimizers`

#[path = "support/cli.rs"]
mod cli;
use rand::{RngExt, SeedableRng};
use tapegrad::autograd::Tensor;
use tapegrad::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};

const N: usize = 128;
const D: usize = 3;
const H: usize = 16;

type Params = Vec<(String, Tensor<f32>)>;

/// The same initial parameters for every optimizer (a fresh copy each call).
fn init(seed: u64) -> Params {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut uniform =
        |n: usize, scale: f32| -> Vec<f32> { (0..n).map(|_| rng.random_range(-scale..scale)).collect() };
    vec![
        ("w1".into(), Tensor::param(uniform(D * H, 1.0 / (D as f32).sqrt()), &[D, H])),
        ("b1".into(), Tensor::param(vec![0.0; H], &[H])),
        ("w2".into(), Tensor::param(uniform(H, 1.0 / (H as f32).sqrt()), &[H, 1])),
        ("b2".into(), Tensor::param(vec![0.0], &[1])),
    ]
}

/// L(θ) = (1/N) Σ (ŷ − y)², recorded on the tape.
fn loss(p: &Params, x: &Tensor, y: &Tensor) -> Tensor {
    let h = x.matmul(&p[0].1).add(&p[1].1).tanh(); // h = tanh(x·W1 + b1)
    h.matmul(&p[2].1).add(&p[3].1).mse(y) // ŷ = h·W2 + b2
}

fn main() {
    cli::Cli::new("usage: optimizers (no arguments)").positionals(0);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let xs: Vec<f32> = (0..N * D).map(|_| rng.random_range(-1.0..1.0)).collect();
    let ys: Vec<f32> = xs.chunks(D).map(|r| (2.0 * r[0]).sin() + r[1] * r[2]).collect();
    let x = Tensor::from_vec(xs, &[N, D]);
    let y = Tensor::from_vec(ys, &[N, 1]);

    let runs: Vec<(&str, Params)> = vec![("SGD", init(1)), ("SGD+momentum", init(1)), ("Adam", init(1))];
    let mut opts: Vec<Box<dyn Optimizer>> = vec![
        Box::new(Sgd::new(runs[0].1.clone(), SgdConfig::new(0.1))),
        Box::new(Sgd::new(runs[1].1.clone(), SgdConfig::new(0.1).momentum(0.9))),
        Box::new(Adam::new(runs[2].1.clone(), AdamConfig::new(0.02))),
    ];

    print!("{:>5}", "step");
    runs.iter().for_each(|(name, _)| print!("{name:>16}"));
    println!();
    for step in 0..=60 {
        print!("{step:>5}");
        for ((_, params), opt) in runs.iter().zip(opts.iter_mut()) {
            opt.zero_grad();
            let l = loss(params, &x, &y);
            l.backward(); // ∇L(θ_t) into each parameter's grad
            print!("{:>16.6}", l.item());
            opt.step(); // θ_{t+1} = θ_t − η·d_t
        }
        println!();
    }
}
