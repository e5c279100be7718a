//! Times the pieces of the packed LSTM recurrence at the tutorial's shapes (B 64, H 256):
//! the per-step product `h·W_hhᵀ` against the prepacked weight (on one thread, and on two
//! at once as the two directions run), the fused cell, and the whole
//! `sequences_forward` / `sequences_backward` of one bidirectional layer over 250 steps of 64
//! sequences, then one direction alone on one thread. Best of 3–5 runs each.
//!
//! Run: `cargo run --release --example lstm_recurrence`
use std::time::Instant;
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
    let (m, hh) = (64usize, 256usize);
    let g4 = 4 * hh;
    let w: Vec<f32> = (0..g4 * hh).map(|i| ((i * 7919) % 1000) as f32 * 1e-4 - 0.05).collect();
    let a: Vec<f32> = (0..m * hh).map(|i| ((i * 31) % 100) as f32 * 1e-2 - 0.5).collect();
    let pb = PackedB::new(hh, g4, &w, 1, hh);
    let mut c = vec![0f32; m * g4];
    let steps = 200;
    let flops = 2.0 * (m * hh * g4) as f64 * steps as f64;
    let t = best(5, || {
        for _ in 0..steps {
            sgemm_prepacked(m, &a, hh, 1, &pb, 1.0, &mut c, g4);
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
                    sgemm_prepacked(m, &a, hh, 1, &pb, 1.0, &mut c, g4);
                }
            },
            || {
                for _ in 0..steps {
                    sgemm_prepacked(m, &a, hh, 1, &pb, 1.0, &mut c2, g4);
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
    // a whole bidirectional layer forward, 250 steps of 64
    let bs = vec![64usize; 250];
    let n: usize = bs.iter().sum();
    let mk = |k: usize| vec![0f32; k];
    let x: Vec<f32> = (0..n * g4).map(|i| ((i * 13) % 100) as f32 * 0.02 - 1.0).collect();
    let (mut g0, mut g1) = (x.clone(), x.clone());
    let (mut h0, mut c0, mut t0, mut hn0, mut cn0) =
        (mk(n * hh), mk(n * hh), mk(n * hh), mk(m * hh), mk(m * hh));
    let (mut h1, mut c1, mut t1, mut hn1, mut cn1) =
        (mk(n * hh), mk(n * hh), mk(n * hh), mk(m * hh), mk(m * hh));
    let t = best(3, || {
        g0.copy_from_slice(&x);
        g1.copy_from_slice(&x);
        let dirs = vec![
            ForwardDir {
                gates: &mut g0,
                w_hh: &w,
                reverse: false,
                h: &mut h0,
                c: &mut c0,
                tanh_c: &mut t0,
                h_n: &mut hn0,
                c_n: &mut cn0,
            },
            ForwardDir {
                gates: &mut g1,
                w_hh: &w,
                reverse: true,
                h: &mut h1,
                c: &mut c1,
                tanh_c: &mut t1,
                h_n: &mut hn1,
                c_n: &mut cn1,
            },
        ];
        sequences_forward(dirs, &bs, hh);
    });
    let f = 2.0 * 2.0 * (n * hh * g4) as f64;
    println!("sequences_forward bidirectional, 250 x 64: {:.1} ms, {:.1} GFLOP/s", t * 1e3, f / t / 1e9);
    let d_h: Vec<f32> = (0..n * hh).map(|i| ((i * 17) % 100) as f32 * 1e-3 - 0.05).collect();
    let dn = vec![0f32; m * hh];
    let (mut dz0, mut dz1) = (mk(n * g4), mk(n * g4));
    let (mut dw0, mut dw1) = (mk(g4 * hh), mk(g4 * hh));
    let t = best(3, || {
        let dirs = vec![
            BackwardDir {
                act: &g0,
                w_hh: &w,
                reverse: false,
                h: &h0,
                c: &c0,
                tanh_c: &t0,
                d_h: &d_h,
                d_h_n: &dn,
                d_c_n: &dn,
                d_gates: &mut dz0,
                d_w_hh: Some(&mut dw0),
            },
            BackwardDir {
                act: &g1,
                w_hh: &w,
                reverse: true,
                h: &h1,
                c: &c1,
                tanh_c: &t1,
                d_h: &d_h,
                d_h_n: &dn,
                d_c_n: &dn,
                d_gates: &mut dz1,
                d_w_hh: Some(&mut dw1),
            },
        ];
        sequences_backward(dirs, &bs, hh);
    });
    println!(
        "sequences_backward bidirectional, 250 x 64: {:.1} ms, {:.1} GFLOP/s",
        t * 1e3,
        2.0 * f / t / 1e9
    );
    threads::set_num_threads(1);
    let t = best(3, || {
        g0.copy_from_slice(&x);
        let dirs = vec![ForwardDir {
            gates: &mut g0,
            w_hh: &w,
            reverse: false,
            h: &mut h0,
            c: &mut c0,
            tanh_c: &mut t0,
            h_n: &mut hn0,
            c_n: &mut cn0,
        }];
        sequences_forward(dirs, &bs, hh);
    });
    println!(
        "sequences_forward one direction, 1 thread: {:.1} ms, {:.1} GFLOP/s",
        t * 1e3,
        f / 2.0 / t / 1e9
    );
}
