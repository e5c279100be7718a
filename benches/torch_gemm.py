"""Best-of-N PyTorch (MKL on x86) float32 GEMM GFLOP/s, the same shapes and timing as
benches/numpy_gemm.py, for the MKL column of benches/openblas_table.sh:

    python benches/torch_gemm.py THREADS 512 1024 2048

Each line ends in `gflops=<number>`. Needs torch (not a project dependency).
"""
import sys
import time

import torch


def main():
    threads = int(sys.argv[1])
    sizes = [int(s) for s in sys.argv[2:]] or [512, 1024, 2048]
    torch.set_num_threads(threads)
    blas = "mkl" if torch.backends.mkl.is_available() else "other"
    print(f"# torch {torch.__version__} blas={blas} threads={torch.get_num_threads()}")
    g = torch.Generator().manual_seed(0)
    for n in sizes:
        a = torch.randn(n, n, generator=g)
        b = torch.randn(n, n, generator=g)
        c = a @ b
        t0 = time.perf_counter()
        torch.matmul(a, b, out=c)
        once = max(time.perf_counter() - t0, 1e-7)
        reps = int(min(max(1.0 / once, 3), 200))
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            torch.matmul(a, b, out=c)
            best = min(best, time.perf_counter() - t)
        print(f"torch m={n} n={n} k={n} threads={threads} reps={reps} best_ms={best * 1e3:.4f} gflops={2 * n**3 / best / 1e9:.2f}")


if __name__ == "__main__":
    main()
