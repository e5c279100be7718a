//! Planted faults (tests/cuda/faults.cu): each is caught with a message naming it.
mod common;
use common::*;
use tapegrad_ptx_sim::{Arg, LaunchDims, SimGpu};

fn fault(gpu: &SimGpu, entry: &str, grid: u32, block: u32, args: &[Arg]) -> String {
    gpu.launch("faults", entry, dims(grid, block, 0), args)
        .expect_err("the planted fault must be caught")
        .to_string()
}

#[test]
fn out_of_bounds_write_names_buffer_thread_and_line() {
    let gpu = gpu_with("faults");
    let out = zeros::<f32>(&gpu, 100);
    let e = fault(&gpu, "oob_write", 4, 32, &[Arg::Ptr(out), Arg::I32(100)]);
    assert!(e.contains("kernel `oob_write`"), "{e}");
    assert!(e.contains("thread (4,0,0) of block (3,0,0)"), "{e}");
    assert!(e.contains("`st.global.u32` at line"), "{e}");
    assert!(e.contains(&format!("past the end of buffer {out:#x} (400 bytes)")), "{e}");
}

#[test]
fn barrier_skipped_by_some_threads() {
    let gpu = gpu_with("faults");
    let out = zeros::<f32>(&gpu, 64);
    let e = fault(&gpu, "barrier_skip", 1, 64, &[Arg::Ptr(out)]);
    assert!(e.contains("kernel `barrier_skip`: block (0,0,0): `bar.sync` at line"), "{e}");
    assert!(e.contains("threads 0, 2, 4") && e.contains("exited without reaching it"), "{e}");
}

#[test]
fn shuffle_mask_naming_threads_that_never_arrive() {
    let gpu = gpu_with("faults");
    let x = upload(&gpu, &[1.0f32; 32]);
    let out = zeros::<f32>(&gpu, 32);
    let e = fault(&gpu, "shuffle_wrong_mask", 1, 32, &[Arg::Ptr(x), Arg::Ptr(out)]);
    assert!(
        e.contains("kernel `shuffle_wrong_mask`: block (0,0,0), warp 0: `shfl.sync.down.b32` at line"),
        "{e}"
    );
    assert!(e.contains("member mask 0xffffffff names lanes 16-31 which exited without reaching it"), "{e}");
}

#[test]
fn shared_memory_write_write_race() {
    let gpu = gpu_with("faults");
    let out = zeros::<f32>(&gpu, 64);
    let e = fault(&gpu, "shared_race", 1, 64, &[Arg::Ptr(out)]);
    assert!(
        e.contains("kernel `shared_race`") && e.contains("shared-memory race at shared offset 0x0"),
        "{e}"
    );
    // the first two writers are lanes of one warp, which need not run in step (Volta on)
    assert!(
        e.contains(
            "thread 1 (warp 0) writes it after thread 0 (warp 0) wrote it, with no __syncwarp() between"
        ),
        "{e}"
    );
}

#[test]
fn lanes_of_a_warp_need_syncwarp_between_shared_accesses() {
    let gpu = gpu_with("faults");
    let out = zeros::<f32>(&gpu, 32);
    // read after write: lane 0 reads lane 1's slot before lane 1 has (necessarily) written it
    let e = fault(&gpu, "warp_exchange_unsynced", 1, 32, &[Arg::Ptr(out)]);
    assert!(e.contains("kernel `warp_exchange_unsynced`") && e.contains("shared-memory race"), "{e}");
    assert!(e.contains("with no __syncwarp() between"), "{e}");
    // write after read: lane 1 overwrites its slot, which lane 0 read with no __syncwarp()
    // since
    let e = fault(&gpu, "warp_overwrite_unsynced", 1, 32, &[Arg::Ptr(out)]);
    assert!(e.contains("writes it after thread 0 (warp 0) read it, with no __syncwarp() between"), "{e}");
    // with __syncwarp() between each step, the same exchanges are no race, and the values are
    // the ones a GPU gives: lane i reads 2·(i ^ 1 ^ 1) = 2i
    gpu.launch("faults", "warp_exchange_synced", dims(1, 32, 0), &[Arg::Ptr(out)]).unwrap();
    let want: Vec<f32> = (0..32).map(|i| 2.0 * i as f32).collect();
    assert_eq!(download::<f32>(&gpu, out, 32), want);
}

#[test]
fn shared_memory_read_without_barrier() {
    let gpu = gpu_with("faults");
    let out = zeros::<f32>(&gpu, 128);
    let e = fault(&gpu, "shared_missing_barrier", 1, 128, &[Arg::Ptr(out)]);
    assert!(e.contains("shared-memory race") && e.contains("with no barrier between"), "{e}");
}

#[test]
fn misaligned_load() {
    let gpu = gpu_with("faults");
    let p = zeros::<u32>(&gpu, 64);
    let out = zeros::<f32>(&gpu, 32);
    let e = fault(&gpu, "misaligned", 1, 32, &[Arg::Ptr(p), Arg::Ptr(out)]);
    assert!(e.contains("misaligned 4-byte load at address") && e.contains("`ld.global.f32` at line"), "{e}");
}

#[test]
fn argument_mismatch_names_entry_and_parameter() {
    let gpu = gpu_with("faults");
    let e = gpu.launch("faults", "oob_write", dims(1, 1, 0), &[Arg::Ptr(0)]).unwrap_err().to_string();
    assert!(e.contains("`oob_write`: 1 arguments given, the entry has 2 parameters"), "{e}");
    let e = gpu
        .launch("faults", "oob_write", dims(1, 1, 0), &[Arg::Ptr(0), Arg::U64(3)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("`oob_write`: parameter 1 is 4 bytes"), "{e}");
    // the right size, the wrong kind: a float for `int n` (declared `.u32`), an integer
    // for a float
    let e = gpu
        .launch("faults", "oob_write", dims(1, 1, 0), &[Arg::Ptr(0), Arg::F32(3.0)])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`oob_write`: parameter 1 is declared `.u32`, but argument F32(3.0) is a float"),
        "{e}"
    );
    let e = gpu
        .launch("faults", "oob_write", dims(1, 1, 0), &[Arg::F64(0.0), Arg::I32(3)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("parameter 0 is declared `.u64`, but argument F64(0.0) is a float"), "{e}");
}

#[test]
fn launches_a_real_gpu_refuses_are_refused() {
    // Each would fail on a real GPU with CUDA_ERROR_INVALID_VALUE before any thread ran; the
    // kernel never runs here either (its planted out-of-bounds write is not what is reported).
    let gpu = gpu_with("faults");
    let out = gpu.alloc(3 * 4).unwrap(); // n = 3 floats: thread 3 writes past them
    let args = [Arg::Ptr(out), Arg::U32(3)];
    let launch = |grid: [u32; 3], block: [u32; 3], shared_bytes: u32| {
        gpu.launch("faults", "oob_write", LaunchDims { grid, block, shared_bytes }, &args)
            .expect_err("a launch beyond the hardware's limits")
            .to_string()
    };
    let dims_refused = |grid, block| {
        let e = launch(grid, block, 0);
        assert!(e.contains("`oob_write`: invalid launch dimensions"), "{grid:?} {block:?}: {e}");
    };
    dims_refused([1, 65_536, 1], [1, 1, 1]); // grid y and z stop at 65,535
    dims_refused([1, 1, 65_536], [1, 1, 1]);
    dims_refused([1 << 31, 1, 1], [1, 1, 1]); // grid x at 2³¹ − 1
    dims_refused([1, 1, 1], [1025, 1, 1]); // 1,024 threads a block
    dims_refused([1, 1, 1], [1, 1, 65]); // block z at 64
    dims_refused([0, 1, 1], [1, 1, 1]);
    // 48 KiB of shared memory a block without the launch opting in to more (static and
    // dynamic together; oob_write has no static shared memory)
    let e = launch([1, 1, 1], [1, 1, 1], 48 * 1024 + 4);
    assert!(e.contains("exceed the 49152-byte limit"), "{e}");
    // at the limits, the launch runs (and its planted fault is what fails it)
    for (grid, shared) in [([1, 65_535, 1], 0), ([1, 1, 1], 48 * 1024)] {
        let e = launch(grid, [4, 1, 1], shared);
        assert!(e.contains("out-of-bounds"), "{grid:?}, {shared} bytes: {e}");
    }
}

#[test]
fn reading_shared_memory_no_thread_wrote() {
    let gpu = gpu_with("faults");
    let out = zeros::<f32>(&gpu, 64);
    let e = fault(&gpu, "shared_read_unwritten", 1, 64, &[Arg::Ptr(out)]);
    assert!(
        e.contains("thread 32 (warp 1) reads shared offset 0x80, which no thread of the block has written"),
        "{e}"
    );
}

#[test]
fn an_output_has_one_owner_block() {
    // one host thread: the blocks run in order, so the report is the same every time
    let gpu = SimGpu::with_host_threads(1);
    let ptx =
        std::fs::read_to_string(format!("{}/tests/ptx/faults.ptx", env!("CARGO_MANIFEST_DIR"))).unwrap();
    gpu.load_module("faults", &ptx).unwrap();
    let (buf, out) = (zeros::<f32>(&gpu, 32), zeros::<f32>(&gpu, 32));
    let e = fault(&gpu, "output_of_every_block", 2, 32, &[Arg::Ptr(out)]);
    assert!(e.contains("thread (0,0,0) of block (1,0,0)"), "{e}");
    assert!(
        e.contains(&format!(
            "writes 4 bytes at {out:#x} (buffer {out:#x}), which block (0,0,0) wrote in this launch"
        )),
        "{e}"
    );
    let e = fault(&gpu, "reads_another_blocks_output", 2, 32, &[Arg::Ptr(buf), Arg::Ptr(out)]);
    assert!(
        e.contains(&format!("reads 4 bytes at {buf:#x} (buffer {buf:#x}), which block (0,0,0) wrote")),
        "{e}"
    );
    // block 0 runs first and reads; block 1's write is the conflict
    let e = fault(&gpu, "overwrites_what_another_block_read", 2, 32, &[Arg::Ptr(buf), Arg::Ptr(out)]);
    assert!(
        e.contains("thread (0,0,0) of block (1,0,0)")
            && e.contains(&format!(
                "writes 4 bytes at {buf:#x} (buffer {buf:#x}), which block (0,0,0) read in this launch"
            )),
        "{e}"
    );
}

#[test]
fn global_memory_within_a_block_needs_a_barrier() {
    let gpu = gpu_with("faults");
    let out = zeros::<f32>(&gpu, 2);
    let e = fault(&gpu, "global_missing_barrier", 1, 64, &[Arg::Ptr(out)]);
    assert!(
        e.contains(&format!(
            "reads 4 bytes at {out:#x} (buffer {out:#x}), which thread 0 (warp 0) of this block wrote with no barrier between"
        )),
        "{e}"
    );
    let e = fault(&gpu, "global_write_after_read", 1, 64, &[Arg::Ptr(out)]);
    assert!(
        e.contains(&format!(
            "writes 4 bytes at {out:#x} (buffer {out:#x}), which thread 0 (warp 0) of this block read with no barrier between"
        )),
        "{e}"
    );
    gpu.launch("faults", "global_with_barrier", dims(1, 64, 0), &[Arg::Ptr(out)]).unwrap();
    assert_eq!(download::<f32>(&gpu, out, 2), [1.0, 1.0]);
    // within a warp, a __syncwarp()
    let out = zeros::<f32>(&gpu, 2);
    let e = fault(&gpu, "global_missing_syncwarp", 1, 32, &[Arg::Ptr(out)]);
    assert!(
        e.contains(&format!(
            "reads 4 bytes at {out:#x} (buffer {out:#x}), which thread 0 (warp 0) of this block wrote with no __syncwarp() between"
        )),
        "{e}"
    );
    gpu.launch("faults", "global_with_syncwarp", dims(1, 32, 0), &[Arg::Ptr(out)]).unwrap();
    assert_eq!(download::<f32>(&gpu, out, 2), [1.0, 1.0]);
}
