//! Times the pieces of the packed LSTM recurrence at the tutorial's shapes (B 64, H 256):
//! the per-step product `h·W_hhᵀ` against the prepacked weight (on one thread, and on two
//! at once as the two directions run), the fused cell, and the whole
//! `sequences_forward` / `sequences_backward` of one bidirectional layer over 250 steps of 64
//! sequences, then one direction alone on one thread. Best of 3–5 runs each.
//!
//! Run: `cargo run --release --example lstm_recurrence`
#[path = "support/cli.rs"]
mod cli;
use std::time::Instant;
use tapegrad_kernels::gemm::{MatMut, MatRef};
use tapegrad_kernels::lstm::{cell_forward, sequences_backward, sequences_forward, BackwardDir, ForwardDir};
use tapegrad_kernels::sgemm::{sgemm_prepacked, PackedB};
use tapegrad_kernels::threads;

fn best<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    let mut b = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        b = b.min(t.elapsed().as_secs_f64());
    }
    b
}

fn main() {
    cli::Cli::new("usage: lstm_recurrence (no arguments)").positionals(0);
    let (m, hh) = (64usize, 256usize);
    let g4 = 4 * hh;
    let w: Vec<f32> = (0..g4 * hh).map(|i| ((i * 7919) % 1000) as f32 * 1e-4 - 0.05).collect();
    let a: Vec<f32> = (0..m * hh).map(|i| ((i * 31) % 100) as f32 * 1e-2 - 0.5).collect();
    let pb = PackedB::new(hh, g4, MatRef::cols(&w, hh));
    let mut c = vec![0f32; m * g4];
    let steps = 200;
    let flops = 2.0 * (m * hh * g4) as f64 * steps as f64;
    let t = best(5, || {
        for _ in 0..steps {
            sgemm_prepacked(m, MatRef::rows(&a, hh), &pb, 1.0, MatMut::rows(&mut c, g4));
        }
    });
    println!(
        "prepacked step {m}x{hh}x{g4}, 1 thread: {:.1} us/step, {:.1} GFLOP/s",
        t / steps as f64 * 1e6,
        flops / t / 1e9
    );
    let mut c2 = vec![0f32; m * g4];
    let t = best(5, || {
        threads::join(
            || {
                for _ in 0..steps {
                    sgemm_prepacked(m, MatRef::rows(&a, hh), &pb, 1.0, MatMut::rows(&mut c, g4));
                }
            },
            || {
                for _ in 0..steps {
                    sgemm_prepacked(m, MatRef::rows(&a, hh), &pb, 1.0, MatMut::rows(&mut c2, g4));
                }
            },
        )
    });
    println!("prepacked step, 2 threads at once: {:.1} GFLOP/s total", 2.0 * flops / t / 1e9);
    // the cell on [64, 4H]
    let z0: Vec<f32> = (0..m * g4).map(|i| ((i * 13) % 100) as f32 * 0.02 - 1.0).collect();
    let cp = vec![0.1f32; m * hh];
    let (mut cc, mut tc, mut h) = (vec![0f32; m * hh], vec![0f32; m * hh], vec![0f32; m * hh]);
    let mut z = z0.clone();
    let t = best(5, || {
        for _ in 0..steps {
            z.copy_from_slice(&z0);
            cell_forward(&mut z, &cp, hh, &mut cc, &mut tc, &mut h);
        }
    });
    println!("cell_forward [{m},{g4}] (+copy): {:.1} us/step", t / steps as f64 * 1e6);
    // a whole bidirectional layer, 250 steps of 64
    let bs = vec![64usize; 250];
    let n: usize = bs.iter().sum();
    let x: Vec<f32> = (0..n * g4).map(|i| ((i * 13) % 100) as f32 * 0.02 - 1.0).collect();
    let mut dirs = [Dir::new(n, m, hh), Dir::new(n, m, hh)];
    let t = best(3, || {
        let [d0, d1] = &mut dirs;
        sequences_forward(vec![d0.forward(&x, &w, false), d1.forward(&x, &w, true)], &bs, hh);
    });
    let f = 2.0 * 2.0 * (n * hh * g4) as f64;
    println!("sequences_forward bidirectional, 250 x 64: {:.1} ms, {:.1} GFLOP/s", t * 1e3, f / t / 1e9);
    let d_h: Vec<f32> = (0..n * hh).map(|i| ((i * 17) % 100) as f32 * 1e-3 - 0.05).collect();
    let dn = vec![0f32; m * hh];
    let t = best(3, || {
        let [d0, d1] = &mut dirs;
        sequences_backward(
            vec![d0.backward(&w, false, &d_h, &dn), d1.backward(&w, true, &d_h, &dn)],
            &bs,
            hh,
        );
    });
    println!(
        "sequences_backward bidirectional, 250 x 64: {:.1} ms, {:.1} GFLOP/s",
        t * 1e3,
        2.0 * f / t / 1e9
    );
    threads::set_num_threads(1);
    let t = best(3, || sequences_forward(vec![dirs[0].forward(&x, &w, false)], &bs, hh));
    println!(
        "sequences_forward one direction, 1 thread: {:.1} ms, {:.1} GFLOP/s",
        t * 1e3,
        f / 2.0 / t / 1e9
    );
}

/// One direction's buffers: what the forward saves and what the backward writes.
struct Dir {
    gates: Vec<f32>,
    h: Vec<f32>,
    c: Vec<f32>,
    tanh_c: Vec<f32>,
    h_n: Vec<f32>,
    c_n: Vec<f32>,
    d_gates: Vec<f32>,
    d_w: Vec<f32>,
}

impl Dir {
    fn new(n: usize, b: usize, hh: usize) -> Dir {
        let z = |k: usize| vec![0f32; k];
        Dir {
            gates: z(n * 4 * hh),
            h: z(n * hh),
            c: z(n * hh),
            tanh_c: z(n * hh),
            h_n: z(b * hh),
            c_n: z(b * hh),
            d_gates: z(n * 4 * hh),
            d_w: z(4 * hh * hh),
        }
    }

    /// The forward's buffers, reading the input projections `x`.
    fn forward<'a>(&'a mut self, x: &'a [f32], w_hh: &'a [f32], reverse: bool) -> ForwardDir<'a, f32> {
        ForwardDir {
            xproj: x,
            gates: &mut self.gates,
            w_hh,
            reverse,
            h: &mut self.h,
            c: &mut self.c,
            tanh_c: &mut self.tanh_c,
            h_n: &mut self.h_n,
            c_n: &mut self.c_n,
        }
    }

    /// The backward's buffers, after [`Dir::forward`] ran.
    fn backward<'a>(
        &'a mut self,
        w_hh: &'a [f32],
        reverse: bool,
        d_h: &'a [f32],
        d_n: &'a [f32],
    ) -> BackwardDir<'a, f32> {
        BackwardDir {
            act: &self.gates,
            w_hh,
            reverse,
            h: &self.h,
            c: &self.c,
            tanh_c: &self.tanh_c,
            stride: (w_hh.len() / 4).isqrt(), // H: h and d_h are this direction's own [N, H]
            d_h,
            d_h_n: d_n,
            d_c_n: d_n,
            d_gates: &mut self.d_gates,
            d_w_hh: Some(&mut self.d_w),
        }
    }
}
