//! `TAPEGRAD_GPU_BENCH_SIM=1 cargo bench --bench gpu`: the bench's own logic without
//! a GPU, on the host (the cuBLAS argument mapping) and on the simulated GPU (the
//! validations, their power to fail, the timing and the tables).

use crate::bandwidth::{streams, validate_streams};
use crate::gemm::{
    blas_args, blas_emulate, blas_operands, ours, validate, validate_product, GemmRow, Operands, Reference,
    Shape, SHAPES,
};
use crate::{fill, timed, Buf, Times};
use tapegrad_kernels::gemm::{Dims, MatMut, MatRef};
use tapegrad_kernels::gpu;
use tapegrad_kernels::gpu::gemm::{GpuMat, GpuMatMut};

/// The bench's logic on the simulated GPU and the host (`TAPEGRAD_GPU_BENCH_SIM=1`).
pub fn run() {
    // 1. The cuBLAS argument mapping computes each shape's product (host, f64 sums).
    for sh in SHAPES.iter().map(Shape::shrunk) {
        let (la, lb, lc) = sh.lens();
        let (a, b, c0) = (fill(la, 1), fill(lb, 2), fill(lc, 3));
        let mut got = c0.clone();
        let (blas_a, blas_b) = blas_operands(&a[..], &b[..]);
        blas_emulate(&blas_args(&sh), blas_a, blas_b, sh.beta, &mut got);
        // the column-major Cᵀ (n×m, ld n) is the row-major C itself
        let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        let mut want = f64s(&c0);
        let (sa, sb, sc) = sh.strides();
        let (m, n, k) = (sh.m, sh.n, sh.k);
        let (a64, b64) = (f64s(&a), f64s(&b));
        let d = Dims::new(m, n, k).batched(sh.batch);
        tapegrad_kernels::gemm::gemm(
            d,
            MatRef::new(&a64, sa),
            MatRef::new(&b64, sb),
            sh.beta as f64,
            MatMut::new(&mut want, sc),
        );
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (*g as f64 - w).abs() <= 1e-6 * (1.0 + w.abs()),
                "{} {sh:?}: the cuBLAS mapping gives C[{i}] = {g}, the product is {w}",
                sh.name
            );
        }
    }
    eprintln!("self-check: the cuBLAS argument mapping computes all {} shapes' products", SHAPES.len());

    // 2. Validation, timing and the bandwidth checks on the simulated GPU.
    let ctx = gpu::sim_context();
    let r = Reference::Naive;
    let times = Times::default();
    let mut rows = Vec::new();
    for sh in SHAPES.iter().map(Shape::shrunk) {
        let (mut ops, agr) = validate(&ctx, &r, &sh).unwrap_or_else(|e| panic!("validation: {e}"));
        // a wrong product must fail it: ours with the last term of every sum left out
        let short = |sh: &Shape, a: &Buf, b: &Buf, beta: f32, c: &mut Buf| {
            let (sa, sb, sc) = sh.strides();
            let d = Dims { k: sh.k - 1, ..sh.dims() };
            let (a, b, c) = (GpuMat::new(a, sa), GpuMat::new(b, sb), GpuMatMut::new(c, sc));
            gpu::gemm::gemm_tiled(d, a, b, beta, c).map_err(|e| e.to_string())
        };
        assert!(validate_product(&ctx, &r, &sh, short).is_err(), "{}: a wrong product passed", sh.name);
        let Operands { a, b, c } = &mut ops;
        let key = |who: &str| format!("gemm/{}/{who}", sh.name);
        timed(&ctx, &times, &key("tapegrad"), 2, || ours(&sh, a, b, sh.beta, c).unwrap());
        timed(&ctx, &times, &key(r.name()), 2, || r.gemm(&sh, a, b, sh.beta, c).unwrap());
        eprintln!(
            "self-check: {:<22} {}×{}×{}×{} ta {} tb {}: ours = naive, max rel err {:.2e}, worst {:.2} ε·bound",
            sh.name, sh.batch, sh.m, sh.n, sh.k, sh.ta, sh.tb, agr.max_rel, agr.worst_in_eps
        );
        rows.push(GemmRow { shape: sh, result: Ok(agr) });
    }
    assert_eq!(times.borrow().len(), 2 * SHAPES.len(), "every shape was timed, ours and the reference");
    eprintln!("self-check: the summary, from the simulated GPU's times (meaningless as speeds):");
    assert!(crate::gemm::summary(&r, &rows, &times), "every shape passed");
    for (len, chunk) in [(5000, 1024), (4096, 4096), (300, 1024)] {
        let mut s = streams(&ctx, len, chunk).unwrap();
        validate_streams(&mut s, len).unwrap_or_else(|e| panic!("bandwidth validation: {e}"));
    }
    eprintln!("self-check: copy, negation and Adam agree with the host on the buffers' tails");
    // and the checks catch a wrong result: a stream whose copy was not made
    let mut s = streams(&ctx, 5000, 1024).unwrap();
    s.patterns[0][7] += 1.0;
    assert!(validate_streams(&mut s, 5000).is_err(), "a wrong tail must fail the bandwidth check");
    eprintln!("self-check: passed (no GPU was used)");
}
