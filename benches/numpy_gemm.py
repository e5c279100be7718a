"""Best-of-N numpy (OpenBLAS) float32 GEMM GFLOP/s, for comparison with examples/gemm.rs.

Run with the thread count fixed before numpy loads, and without the environment's
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE overrides, e.g.:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
        python benches/numpy_gemm.py 512 1024 2048

Each line ends in `gflops=<number>` like the Rust example's. `--cpu-time` times with the
calling thread's CPU clock (time.thread_time) instead of the wall clock: meaningful with
OPENBLAS_NUM_THREADS=1 on a machine shared with other work (like the example's --cpu-time).
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
    clock = time.thread_time if cpu else time.perf_counter
    sizes = [int(s) for s in args if s != "--cpu-time"] or [512, 1024, 2048]
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "?")
    if threadpool_info is not None:
        for pool in threadpool_info():
            print(
                f"# {pool.get('internal_api')} {pool.get('version')} "
                f"arch={pool.get('architecture')} threads={pool.get('num_threads')}"
            )
    rng = np.random.default_rng(0)
    for n in sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        c = a @ b
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        once = max(time.perf_counter() - t0, 1e-7)
        reps = int(min(max(1.0 / once, 3), 200))
        best = float("inf")
        for _ in range(reps):
            t = clock()
            np.matmul(a, b, out=c)
            best = min(best, clock() - t)
        print(
            f"numpy m={n} n={n} k={n} threads={threads} reps={reps} "
            f"clock={'thread-cpu' if cpu else 'wall'} "
            f"best_ms={best * 1e3:.4f} gflops={2 * n**3 / best / 1e9:.2f}"
        )


if __name__ == "__main__":
    main()
