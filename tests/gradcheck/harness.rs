//! How a row of the table in `tests/gradcheck.rs` runs: in f64 against central finite
//! differences on a device ([`run`], [`run_on`]), and in f32 against the f64 backward on the
//! CPU ([`run_f32`]) and against the CPU on a GPU, simulated or real ([`run_f32_on`]).

use super::uniform;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::cell::Cell;
use tapegrad::autograd::{gradcheck, Device, GradcheckOptions, Tensor};

pub type Fun<T> = Box<dyn Fn(&[Tensor<T>]) -> Tensor<T>>;
/// A row of the table: from a base shape and an RNG, the inputs and the function. Each row is
/// built in f64 and in f32 from the same random draws (values are drawn as f64 and rounded).
pub type Build<T> = fn(&[usize], &mut ChaCha8Rng) -> (Vec<Tensor<T>>, Fun<T>);

thread_local! {
    /// Set while building the f32 fast-path rows: the table's `dim` and `first` draw large sizes.
    pub static FAST: Cell<bool> = const { Cell::new(false) };
}

/// Checks one row on `cases` random shapes of rank 1..=3 (dims 1..=4). A failure names the
/// shape and the seed that reproduce it (proptest shrinks to the smallest failing case), and is
/// persisted next to this file so later runs try it first.
pub fn run(build: Build<f64>, min_rank: usize) {
    run_on(Device::Cpu, 24, build, min_rank)
}

/// Cases per row on the simulated GPU, which interprets every kernel's PTX on the CPU
/// (each case runs the forward twice per input element).
pub const SIM_CASES: u32 = 2;

/// Cases per row on a real GPU (`cuda::<row>`, where there is one).
pub const CUDA_CASES: u32 = 8;

/// The same on `device` with `cases` shapes: the simulated GPU runs the whole table
/// through this (`sim::<row>`), and a real GPU too (`cuda::<row>`).
pub fn run_on(device: Device, cases: u32, build: Build<f64>, min_rank: usize) {
    // a failing case is saved in tests/gradcheck/harness.proptest-regressions and replayed first
    let persist = FileFailurePersistence::SourceParallel("proptest-regressions");
    let config = Config {
        cases,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(persist)),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = (prop::collection::vec(1usize..=4, min_rank..=3), any::<u64>());
    runner
        .run(&strategy, |(shape, seed)| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (inputs, f) = build(&shape, &mut rng);
            let opts = GradcheckOptions { seed, device, ..GradcheckOptions::default() };
            gradcheck(|t| f(t), &inputs, opts)
                .map_err(|e| TestCaseError::fail(format!("shape {shape:?} seed {seed}: {e}")))
        })
        .unwrap();
}

/// The base shapes of the f32 rows, one case per rank allowed: every elementwise row then has
/// over 65,536 elements (2 × `PAR_MIN`: split over two threads) and a length that is not a
/// multiple of the vector width.
pub const F32_SHAPES: [&[usize]; 3] = [&[70_001], &[257, 263], &[41, 43, 47]];

/// f32's unit roundoff, 2⁻²⁴.
pub const U: f64 = f32::EPSILON as f64 / 2.0;
/// The f32 fast path's gradients may differ from f64's on the same inputs by
/// `(F32_TOL_U + F32_TOL_FANIN_U·√fanin)·u` relative to the largest f64 gradient of that input,
/// where fanin = output elements per input element (how many terms each element's gradient
/// sums over when the input is broadcast). Sums over k terms round to ~√k·u of the terms' scale
/// with random signs, the vector exp/tanh/erf are within 4e-7 (≈7u) of exact, and a row chains
/// a few such ops; a broadcast input's gradient is a sum that can cancel to well below its
/// terms, hence the √fanin part. Measured on every input of every row: at most 243u for the
/// unbroadcast ones (the BiLSTM's biases, 97u layer norm over one row of 70,002, ≤ 20u the
/// others) and 1610u for `div_broadcast`'s [1]-shaped denominator (fanin 70,001: allowed 5264u).
/// A kernel that is wrong (a lane, an edge tile, a threaded part, a 1% slip in a derivative:
/// ~170,000u) is off by far more.
pub const F32_TOL_U: f64 = 1024.0;
/// See [`F32_TOL_U`].
pub const F32_TOL_FANIN_U: f64 = 16.0;

/// Runs one row in f32 on [`F32_SHAPES`] and compares its backward with the f64 backward of
/// the same row on the same inputs (the f32 values, widened), for every input.
pub fn run_f32(build32: Build<f32>, build64: Build<f64>, min_rank: usize) {
    FAST.with(|f| f.set(true));
    for (case, &shape) in F32_SHAPES.iter().enumerate().filter(|(_, s)| s.len() >= min_rank) {
        let seed = 0xf32 + case as u64;
        let (in32, f32_) = build32(shape, &mut ChaCha8Rng::seed_from_u64(seed));
        let (in64, f64_) = build64(shape, &mut ChaCha8Rng::seed_from_u64(seed));
        assert_eq!(in32.len(), in64.len());
        for (a, b) in in64.iter().zip(&in32) {
            assert_eq!(a.shape(), b.shape());
            a.data_mut().iter_mut().zip(b.data().iter()).for_each(|(d, &v)| *d = v as f64);
        }
        let (out32, out64) = (f32_(&in32), f64_(&in64));
        // the output weighting from its own stream (drawn from the inputs' stream, w would be an
        // affine function of x, which makes e.g. layer norm's true gradient exactly zero)
        let mut rng = ChaCha8Rng::seed_from_u64(!seed);
        let w: Vec<f32> = uniform(out32.numel(), &mut rng, -1.0, 1.0);
        let w64: Vec<f64> = w.iter().map(|&v| v as f64).collect();
        out32.mul(&Tensor::from_vec(w, out32.shape())).sum().backward();
        out64.mul(&Tensor::from_vec(w64, out64.shape())).sum().backward();
        for (i, (a, b)) in in32.iter().zip(&in64).enumerate() {
            if !b.tracks_grad() {
                continue;
            }
            let g32 = a.grad().map(|g| g.to_vec()).unwrap_or_else(|| vec![0.0; a.numel()]);
            let g64 = b.grad().map(|g| g.to_vec()).unwrap_or_else(|| vec![0.0; b.numel()]);
            let scale = g64.iter().fold(0f64, |m, v| m.max(v.abs()));
            let (worst, at) = g32
                .iter()
                .zip(&g64)
                .map(|(&p, &q)| (p as f64 - q).abs())
                .enumerate()
                .fold((0f64, 0), |(m, at), (e, d)| if d > m { (d, e) } else { (m, at) });
            let fanin = (out32.numel() / a.numel()).max(1) as f64;
            let allowed_u = F32_TOL_U + F32_TOL_FANIN_U * fanin.sqrt();
            assert!(
                worst <= allowed_u * U * scale,
                "shape {shape:?} seed {seed} input {i}: f32 gradient [{at}] = {} vs f64 {} \
                 (off by {:.0}u of the largest gradient {scale:.3e}; allowed {allowed_u:.0}u)",
                g32[at],
                g64[at],
                worst / (U * scale)
            );
        }
    }
}

/// Runs one row in f32 on a GPU (the simulated one, `sim_f32::<row>`, or a real one,
/// `cuda_f32::<row>`) and on the CPU, from the same inputs, at the f32
/// rows' sizes (many blocks, edge tiles, grid-stride loops, rows longer than a block), and
/// compares the outputs and every input's gradient (under the same output weighting).
///
/// Each side is an f32 computation that [`run_f32`]'s bound holds to the exact result (the
/// CPU's there; the GPU's kernels reduce in other orders, block trees where the CPU has vector
/// lanes, f64 partials for scalar losses, and use CUDA's exp/tanh/erf), so they may differ by
/// twice that bound, relative to the largest CPU value; for the outputs fanin is the input
/// elements per output element. Measured: at most 33u (sum and mean over 67,591 elements),
/// ≤ 30u every gradient, and the matrix products' outputs bit for bit. The 1-D base shape
/// (70,001, sized for the CPU's thread split) is left out: rows that take its length as a
/// batch run minutes in the interpreter (attention launches its products per batch item).
pub fn run_f32_on(gpu: Device, build32: Build<f32>, min_rank: usize) {
    FAST.with(|f| f.set(true));
    for (case, &shape) in F32_SHAPES.iter().enumerate().filter(|(_, s)| s.len() >= min_rank.max(2)) {
        let seed = 0xf32 + case as u64;
        let (cpu_in, f_cpu) = build32(shape, &mut ChaCha8Rng::seed_from_u64(seed));
        let (gpu_in, f_gpu) = build32(shape, &mut ChaCha8Rng::seed_from_u64(seed));
        gpu_in.iter().for_each(|t| t.move_to(gpu));
        let (out_cpu, out_gpu) = (f_cpu(&cpu_in), f_gpu(&gpu_in));
        assert_eq!(out_gpu.device(), gpu, "shape {shape:?}: the output left {gpu}");
        let mut rng = ChaCha8Rng::seed_from_u64(!seed);
        let w: Vec<f32> = uniform(out_cpu.numel(), &mut rng, -1.0, 1.0);
        out_gpu.mul(&Tensor::from_vec(w.clone(), out_gpu.shape()).to(gpu)).sum().backward();
        out_cpu.mul(&Tensor::from_vec(w, out_cpu.shape())).sum().backward();
        let compare = |what: &str, on_gpu: Vec<f32>, cpu: Vec<f32>, fanin: f64| {
            let scale = cpu.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
            let (worst, at) = on_gpu
                .iter()
                .zip(&cpu)
                .map(|(&p, &q)| (p as f64 - q as f64).abs())
                .enumerate()
                .fold((0f64, 0), |(m, at), (e, d)| if d.is_nan() || d > m { (d, e) } else { (m, at) });
            let allowed_u = 2.0 * (F32_TOL_U + F32_TOL_FANIN_U * fanin.sqrt());
            assert!(
                worst <= allowed_u * U * scale,
                "shape {shape:?} seed {seed} {what}: [{at}] = {} on {gpu} vs {} on the CPU \
                 (off by {:.0}u of the largest {scale:.3e}; allowed {allowed_u:.0}u)",
                on_gpu[at],
                cpu[at],
                worst / (U * scale)
            );
        };
        let widest = cpu_in.iter().map(|t| t.numel()).max().unwrap_or(1);
        compare(
            "output",
            out_gpu.to_vec(),
            out_cpu.to_vec(),
            (widest / out_cpu.numel().max(1)).max(1) as f64,
        );
        for (i, (a, b)) in gpu_in.iter().zip(&cpu_in).enumerate() {
            if !b.tracks_grad() {
                continue;
            }
            let gs = a.grad().map(|g| g.to_vec()).unwrap_or_else(|| vec![0.0; a.numel()]);
            let gc = b.grad().map(|g| g.to_vec()).unwrap_or_else(|| vec![0.0; b.numel()]);
            compare(&format!("input {i}'s gradient"), gs, gc, (out_cpu.numel() / b.numel()).max(1) as f64);
        }
    }
}
