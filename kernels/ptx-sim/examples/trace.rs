//! Traces one small launch of the teaching kernel (tests/cuda/teach.cu): which warp ran
//! which instructions, where lanes diverged, where they met, and shared memory after the
//! barrier. `cargo run -p tapegrad-ptx-sim --example trace [n]` (n: how many of the 64
//! threads have a number to add; default 50, so warp 1 diverges at the first branch).
use tapegrad_ptx_sim::{Arg, LaunchDims, SimGpu};

fn main() {
    let n: i32 = match std::env::args().nth(1).map(|s| s.parse()) {
        None => 50,
        Some(Ok(v)) if (0..=64).contains(&v) => v,
        Some(_) => {
            eprintln!("usage: trace [n]   (n in 0..=64, how many threads have a number)");
            std::process::exit(2);
        }
    };
    let gpu = SimGpu::with_host_threads(1);
    let run = || -> Result<(String, f32), tapegrad_ptx_sim::SimError> {
        gpu.load_module("teach", include_str!("../tests/ptx/teach.ptx"))?;
        let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let px = gpu.alloc(256)?;
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        gpu.write(px, &bytes)?;
        let out = gpu.alloc(4)?;
        let dims = LaunchDims { grid: [1, 1, 1], block: [64, 1, 1], shared_bytes: 0 };
        let (stats, trace) =
            gpu.launch_traced("teach", "block_sum", dims, &[Arg::Ptr(px), Arg::Ptr(out), Arg::I32(n)])?;
        let mut sum = [0u8; 4];
        gpu.read(out, &mut sum)?;
        let head = format!("{} thread-instructions executed\n", stats.thread_instructions);
        Ok((head + &trace, f32::from_le_bytes(sum)))
    };
    match run() {
        Ok((trace, sum)) => {
            print!("{trace}");
            println!("sum of 0..{n} = {sum} (expected {})", (0..n).sum::<i32>());
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
