//! The tutorial's math on the tape: fit a line y = w·x + b to noisy samples by
//! plain gradient descent, θ ← θ − η∇L(θ), with the mean squared error
//! L(θ) = (1/N) Σᵢ (w·xᵢ + b − yᵢ)².
//!
//! Run: `cargo run --release --example gradient_descent`

#[path = "support/cli.rs"]
mod cli;
use rand::{RngExt, SeedableRng};
use tapegrad::autograd::{no_grad, Tensor};

fn main() {
    cli::Cli::new("usage: gradient_descent (no arguments)").positionals(0);
    // Data: N samples of y = 3x − 2 plus noise.
    let n = 64;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let xs: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let ys: Vec<f32> = xs.iter().map(|x| 3.0 * x - 2.0 + rng.random_range(-0.1..0.1)).collect();
    let x = Tensor::from_vec(xs, &[n, 1]);
    let y = Tensor::from_vec(ys, &[n, 1]);

    // Parameters θ = (w, b), starting at zero.
    let w = Tensor::param(vec![0.0f32], &[1, 1]);
    let b = Tensor::param(vec![0.0f32], &[1]);
    let lr = 0.1; // η

    for step in 0..=100 {
        let pred = x.matmul(&w).add(&b); // ŷ = x·w + b
        let loss = pred.mse(&y); // L = (1/N) Σ (ŷᵢ − yᵢ)²
        loss.backward(); // ∇L into w.grad(), b.grad()
        if step % 10 == 0 {
            println!("step {step:3}  loss {:.5}  w {:.4}  b {:.4}", loss.item(), w.item(), b.item());
        }
        no_grad(|| {
            for p in [&w, &b] {
                let g = p.grad().expect("backward reached every parameter");
                for (theta, grad) in p.data_mut().iter_mut().zip(g.data().iter()) {
                    *theta -= lr * grad; // θ ← θ − η∇L(θ)
                }
                p.zero_grad();
            }
        });
    }
}
