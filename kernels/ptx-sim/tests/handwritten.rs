//! Hand-written PTX (tests/ptx/handwritten.ptx) for supported instructions nvcc did not
//! emit for the CUDA test kernels, and for scheduling cases.
mod common;
use common::*;
use tapegrad_ptx_sim::Arg;

#[test]
fn documented_neighbour_instructions() {
    let gpu = gpu_with("handwritten");
    let out = zeros::<u32>(&gpu, 32 * 20);
    gpu.launch("handwritten", "neighbours", dims(1, 32, 0), &[Arg::Ptr(out)]).unwrap();
    let got = download::<u32>(&gpu, out, 32 * 20);
    let active = 0x0fff_ffffu32;
    let ballot = (0..28).filter(|l| l % 3 == 0).fold(0u32, |m, l| m | 1 << l);
    for lane in 0..28u32 {
        let g = &got[lane as usize * 20..lane as usize * 20 + 20];
        let s = lane as i32 - 16;
        let bfe = ((0xdeadbeefu32 >> lane) & 31) as i32;
        let bfe = if lane + 4 <= 31 && bfe & 16 != 0 {
            bfe | !31
        } else if lane + 4 > 31 {
            (0xdeadbeefu32 as i32) >> lane
        } else {
            bfe
        };
        let wide = s as i64 * 100000 + 5_000_000_000;
        let n = (lane + 20).min(32);
        let funnel = ((0x9abcdef0u64 << 32 | 0x12345678) >> n) as u32;
        let odd = lane & 1 == 1;
        let setp = (lane < 10 && !odd) as u32 + 2 * (lane >= 10 && !odd) as u32;
        let want_tanh = ((s as f32 * 0.125) as f64).tanh();
        let want = [
            lane ^ 0xf0f0 ^ 0xff00,
            bfe as u32,
            (!(31u32 << 4)) | (lane & 31) << 4,
            ((s as i64 * (1 << 30)) >> 32) as u32,
            wide as u32,
            (wide >> 32) as u32,
            funnel,
            setp,
            (lane > 0) as u32,
            ballot,
            active,
            (1u32 << lane) - 1,
            ((lane & !7) | 3) * 10,
            lane + 20,
            lane * 3,
            g[15],
            lane * 5,
            (1365.0f32 / 4096.0).to_bits(),
            (s as f64 * 0.25).trunc() as i32 as u32,
            ((s as f32 + 0.5).clamp(0.0, 1.0)).to_bits(),
        ];
        assert_eq!(g, &want, "lane {lane}");
        assert!((f32::from_bits(g[15]) as f64 - want_tanh).abs() < 1e-6, "tanh at lane {lane}");
    }
    assert!(got[28 * 20..].iter().all(|&v| v == 0), "lanes 28-31 exited first");
}

#[test]
fn threads_waiting_at_different_shuffles_deadlock() {
    let gpu = gpu_with("handwritten");
    let e =
        gpu.launch("handwritten", "split_shuffles", dims(1, 32, 0), &[Arg::Ptr(0)]).unwrap_err().to_string();
    assert!(e.contains("kernel `split_shuffles`: block (0,0,0): deadlock"), "{e}");
    assert!(
        e.contains("threads 0-15 wait at `shfl.sync.bfly.b32` at line")
            && e.contains("threads 16-31 wait at"),
        "{e}"
    );
}

#[test]
fn barrier_zero_at_two_sites_is_one_barrier() {
    let gpu = gpu_with("handwritten");
    let out = zeros::<u32>(&gpu, 64);
    gpu.launch("handwritten", "two_barrier_sites", dims(1, 64, 0), &[Arg::Ptr(out)]).unwrap();
    let got = download::<u32>(&gpu, out, 64);
    assert_eq!(got, (0..64u32).map(|t| t ^ 1).collect::<Vec<_>>());
}

#[test]
fn aligned_barrier_at_two_sites_is_an_error() {
    let gpu = gpu_with("handwritten");
    let e = gpu
        .launch("handwritten", "two_aligned_sites", dims(1, 64, 0), &[Arg::Ptr(0)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("an aligned barrier must be reached by the whole block at one instruction"), "{e}");
    assert!(e.contains("`barrier.sync` at line"), "{e}");
}

#[test]
fn non_aligned_barrier_waits_only_for_live_threads() {
    let gpu = gpu_with("handwritten");
    let out = zeros::<u32>(&gpu, 64);
    gpu.launch("handwritten", "exit_before_barrier", dims(1, 64, 0), &[Arg::Ptr(out)]).unwrap();
    let got = download::<u32>(&gpu, out, 64);
    let want: Vec<u32> = (0..64).map(|t| if t < 40 { 39 - t } else { 0 }).collect();
    assert_eq!(got, want);
}

#[test]
fn results_do_not_depend_on_the_host_thread_count() {
    for m in ["reduce"] {
        let mut runs = Vec::new();
        for threads in [1, 3] {
            let gpu = tapegrad_ptx_sim::SimGpu::with_host_threads(threads);
            gpu.load_module(
                m,
                &std::fs::read_to_string(format!("{}/tests/ptx/{m}.ptx", env!("CARGO_MANIFEST_DIR")))
                    .unwrap(),
            )
            .unwrap();
            let x: Vec<u32> = (0..5000u32).map(|i| i.wrapping_mul(2654435761)).collect();
            let (px, ph, pt) = (upload(&gpu, &x), zeros::<u32>(&gpu, 50), zeros::<f32>(&gpu, 1));
            let args = [Arg::Ptr(px), Arg::Ptr(ph), Arg::Ptr(pt), Arg::I32(5000), Arg::I32(50)];
            let stats = gpu.launch(m, "histogram", dims(9, 64, 200), &args).unwrap();
            runs.push((download::<u32>(&gpu, ph, 50), stats.thread_instructions));
        }
        assert_eq!(runs[0], runs[1]);
    }
}

#[test]
fn trace_shows_divergence_meetings_and_shared_memory() {
    let gpu = gpu_with("teach");
    let x: Vec<f32> = (0..50).map(|i| i as f32).collect();
    let (px, out) = (upload(&gpu, &x), zeros::<f32>(&gpu, 1));
    let (stats, t) = gpu
        .launch_traced("teach", "block_sum", dims(1, 64, 0), &[Arg::Ptr(px), Arg::Ptr(out), Arg::I32(50)])
        .unwrap();
    assert!(t.contains("warp 1: lanes took 2 different paths (divergence)"), "{t}");
    assert!(t.contains("warp 1, lanes 18-31 (threads 50-63):"), "{t}");
    assert!(t.contains("block (0,0,0): threads 0-63 meet at line 84 `bar.sync` and continue"), "{t}");
    // Warp 0's partial, 0+1+...+31 = 496, is in shared memory after the barrier.
    assert!(t.contains(&format!("[  0] {:#010x}", 496f32.to_bits())), "{t}");
    assert_eq!(download::<f32>(&gpu, out, 1)[0], 1225.0);
    let plain = gpu
        .launch("teach", "block_sum", dims(1, 64, 0), &[Arg::Ptr(px), Arg::Ptr(out), Arg::I32(50)])
        .unwrap();
    assert_eq!(stats.thread_instructions, plain.thread_instructions);
}
