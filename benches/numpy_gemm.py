"""Best-of-N numpy (OpenBLAS) float32 GEMM GFLOP/s, for comparison with examples/gemm.rs.

Run with the thread count fixed before numpy loads, and without the environment's
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE overrides, e.g.:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
        python benches/numpy_gemm.py 512 1024 2048

Each line ends in `gflops=<number>` like the Rust example's. `--cpu-time` times with the
calling thread's CPU clock (time.thread_time) instead of the wall clock: meaningful with
OPENBLAS_NUM_THREADS=1 on a machine shared with other work (like the example's --cpu-time).
`--torch` times PyTorch's matmul instead (MKL on x86; its thread count from
OPENBLAS_NUM_THREADS too), the same shapes and timing: the MKL column of
benches/openblas_table.sh. torch is not a project dependency.
"""
import os
import sys
import time

import numpy as np

try:
    from threadpoolctl import threadpool_info
except ImportError:  # optional
    threadpool_info = None


def main():
    args = sys.argv[1:]
    cpu = "--cpu-time" in args
    use_torch = "--torch" in args
    clock = time.thread_time if cpu else time.perf_counter
    sizes = [int(s) for s in args if not s.startswith("--")] or [512, 1024, 2048]
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "?")
    if use_torch:
        import torch

        if threads != "?":
            torch.set_num_threads(int(threads))
        blas = "mkl" if torch.backends.mkl.is_available() else "other"
        print(f"# torch {torch.__version__} blas={blas} threads={torch.get_num_threads()}")
        engine, matmul = "torch", torch.matmul
    else:
        if threadpool_info is not None:
            for pool in threadpool_info():
                print(
                    f"# {pool.get('internal_api')} {pool.get('version')} "
                    f"arch={pool.get('architecture')} threads={pool.get('num_threads')}"
                )
        engine, matmul = "numpy", np.matmul
    rng = np.random.default_rng(0)
    for n in sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        if use_torch:
            a, b = torch.from_numpy(a), torch.from_numpy(b)
        c = a @ b
        t0 = time.perf_counter()
        matmul(a, b, out=c)
        once = max(time.perf_counter() - t0, 1e-7)
        reps = int(min(max(1.0 / once, 3), 200))
        best = float("inf")
        for _ in range(reps):
            t = clock()
            matmul(a, b, out=c)
            best = min(best, clock() - t)
        print(
            f"{engine} m={n} n={n} k={n} threads={threads} reps={reps} "
            f"clock={'thread-cpu' if cpu else 'wall'} "
            f"best_ms={best * 1e3:.4f} gflops={2 * n**3 / best / 1e9:.2f}"
        )


if __name__ == "__main__":
    main()
