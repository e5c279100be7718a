//! The test kernels (tests/cuda/*.cu, compiled by nvcc 13 to tests/ptx/) run through the
//! interpreter on odd shapes and are compared with Rust references.
mod common;
use common::*;
use tapegrad_ptx_sim::{Arg, LaunchDims};

fn close(got: f64, want: f64, rel: f64, what: &str) {
    assert!((got - want).abs() <= rel * (1.0 + want.abs()), "{what}: got {got}, want {want}");
}

fn unary_ref(v: f64) -> [f64; 7] {
    let erf = |x: f64| libm_erf(x);
    [
        v.exp(),
        (v.abs() + 1.0).ln(),
        v.tanh(),
        0.5 * v * (1.0 + erf(v * std::f64::consts::FRAC_1_SQRT_2)),
        v.abs().sqrt(),
        (v.abs() + 0.5).powf(1.7),
        1.0 / (v + 3.5),
    ]
}

/// erf by its series/continued fraction is not in std; Abramowitz-Stegun 7.1.26 is too
/// coarse for f64, so integrate the Taylor series (|x| small) or the asymptotic tail.
fn libm_erf(x: f64) -> f64 {
    if x.abs() > 6.0 {
        return x.signum();
    }
    // Taylor series: erf x = 2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1)); converges for |x| ≤ 6 in f64
    // only with care, so use the relation with the regularized series in x² (Kummer).
    let (mut sum, mut term, mut n) = (x, x, 0.0);
    let x2 = x * x;
    while term.abs() > 1e-17 * sum.abs() {
        n += 1.0;
        term *= 2.0 * x2 / (2.0 * n + 1.0);
        sum += term;
    }
    2.0 / std::f64::consts::PI.sqrt() * (-x2).exp() * sum
}

#[test]
fn unary_math_f32_and_f64() {
    let gpu = gpu_with("elementwise");
    let mut rng = Rng(7);
    let n = 77;
    let x: Vec<f32> = (0..n).map(|_| rng.f32(-3.0, 3.0)).collect();
    let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let (px, po) = (upload(&gpu, &x), zeros::<f32>(&gpu, n * 7));
    gpu.launch(
        "elementwise",
        "unary_math_f32",
        dims(3, 32, 0),
        &[Arg::Ptr(px), Arg::Ptr(po), Arg::I32(n as i32)],
    )
    .unwrap();
    let got = download::<f32>(&gpu, po, n * 7);
    let (pxd, pod) = (upload(&gpu, &xd), zeros::<f64>(&gpu, n * 7));
    gpu.launch(
        "elementwise",
        "unary_math_f64",
        dims(2, 64, 0),
        &[Arg::Ptr(pxd), Arg::Ptr(pod), Arg::I32(n as i32)],
    )
    .unwrap();
    let gotd = download::<f64>(&gpu, pod, n * 7);
    for i in 0..n {
        let want = unary_ref(xd[i]);
        for k in 0..7 {
            close(got[i * 7 + k] as f64, want[k], 4e-6, &format!("f32 fn {k} at x={}", x[i]));
            close(gotd[i * 7 + k], want[k], 1e-14, &format!("f64 fn {k} at x={}", xd[i]));
        }
    }
}

#[test]
fn fast_math_intrinsics() {
    let gpu = gpu_with("elementwise");
    let mut rng = Rng(9);
    let n = 45;
    let x: Vec<f32> = (0..n).map(|_| rng.f32(-4.0, 4.0)).collect();
    let (px, po) = (upload(&gpu, &x), zeros::<f32>(&gpu, n * 6));
    gpu.launch(
        "elementwise",
        "fast_math_f32",
        dims(1, 64, 0),
        &[Arg::Ptr(px), Arg::Ptr(po), Arg::I32(n as i32)],
    )
    .unwrap();
    let got = download::<f32>(&gpu, po, n * 6);
    for i in 0..n {
        let v = x[i] as f64;
        let want = [
            v.exp(),
            (v.abs() + 1.0).ln(),
            1.0 / (v.abs() + 1.0).sqrt(),
            v.sin(),
            v.cos(),
            1.0 / (1.0 + (-v).exp()),
        ];
        for k in 0..6 {
            close(got[i * 6 + k] as f64, want[k], 2e-6, &format!("fast fn {k} at {v}"));
        }
    }
}

#[test]
fn axpy_grid_stride_is_fused() {
    let gpu = gpu_with("elementwise");
    let mut rng = Rng(3);
    let n = 1001usize;
    let x: Vec<f32> = (0..n).map(|_| rng.f32(-1.0, 1.0)).collect();
    let y: Vec<f32> = (0..n).map(|_| rng.f32(-1.0, 1.0)).collect();
    let (px, py) = (upload(&gpu, &x), upload(&gpu, &y));
    gpu.launch(
        "elementwise",
        "axpy_f32",
        dims(3, 96, 0),
        &[Arg::F32(0.3), Arg::Ptr(px), Arg::Ptr(py), Arg::I64(n as i64)],
    )
    .unwrap();
    let got = download::<f32>(&gpu, py, n);
    for i in 0..n {
        assert_eq!(got[i], 0.3f32.mul_add(x[i], y[i]), "element {i}");
    }
    let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let (px, py) = (upload(&gpu, &xd), upload(&gpu, &xd));
    gpu.launch(
        "elementwise",
        "axpy_f64",
        dims(2, 128, 0),
        &[Arg::F64(-1.5), Arg::Ptr(px), Arg::Ptr(py), Arg::I64(n as i64)],
    )
    .unwrap();
    let got = download::<f64>(&gpu, py, n);
    for i in 0..n {
        assert_eq!(got[i], (-1.5f64).mul_add(xd[i], xd[i]));
    }
}

#[test]
fn half_and_bfloat_conversions_and_rounding_modes() {
    let gpu = gpu_with("elementwise");
    let x: Vec<f32> = vec![0.1, -2.55, 1.0 / 3.0, 65519.0, -0.25, 3.1, 2.5, -2.5, 1e-6];
    let n = x.len();
    let (px, po, pi) = (upload(&gpu, &x), zeros::<f32>(&gpu, n * 3), zeros::<i32>(&gpu, n * 4));
    gpu.launch(
        "elementwise",
        "convert",
        dims(1, 32, 0),
        &[Arg::Ptr(px), Arg::Ptr(po), Arg::Ptr(pi), Arg::I32(n as i32)],
    )
    .unwrap();
    let got = download::<f32>(&gpu, po, n * 3);
    let ints = download::<i32>(&gpu, pi, n * 4);
    let bf16 = |v: f32| {
        let b = v.to_bits();
        let r = b + 0x7fff + ((b >> 16) & 1);
        f32::from_bits(r & 0xffff_0000)
    };
    for i in 0..n {
        let v = x[i];
        let h = got[i * 3];
        assert!((h - v).abs() <= v.abs() / 1024.0 + 6e-8, "f16 of {v}: {h}");
        assert_eq!(got[i * 3 + 1], bf16(v), "bf16 of {v}");
        let t = v * 10.0;
        assert_eq!(ints[i * 4], t.round_ties_even() as i32, "rn of {t}");
        assert_eq!(ints[i * 4 + 1], t.trunc() as i32, "rz of {t}");
        assert_eq!(ints[i * 4 + 2], t.floor() as i32, "rd of {t}");
        assert_eq!(ints[i * 4 + 3], (v.abs() * 10.0).ceil() as i32, "ru of {t}");
    }
    assert_eq!(got[2 * 3], 1365.0 / 4096.0); // 1/3 in f16
    assert_eq!(got[3 * 3], 65504.0); // rounds down to the largest f16
}

#[test]
fn integer_index_math() {
    let gpu = gpu_with("index");
    let mut rng = Rng(11);
    let n = 67;
    let a: Vec<i32> = (0..n).map(|_| rng.next_u32() as i32 >> (rng.next_u32() % 31)).collect();
    let b: Vec<u32> = (0..n).map(|_| rng.next_u32()).collect();
    let (pa, pb, po) = (upload(&gpu, &a), upload(&gpu, &b), zeros::<i32>(&gpu, n * 8));
    gpu.launch(
        "index",
        "int_mix",
        dims(2, 48, 0),
        &[Arg::Ptr(pa), Arg::Ptr(pb), Arg::Ptr(po), Arg::I32(n as i32)],
    )
    .unwrap();
    let got = download::<i32>(&gpu, po, n * 8);
    for i in 0..n {
        let (x, y) = (a[i], b[i]);
        let d = (y % 7 + 1) as i32;
        let want = [
            x / d,
            x % d,
            ((y >> (i & 31)) as i32) ^ (x << 3),
            x.max(y as i32).wrapping_add(x.min(-5)),
            ((x as u32).max(y) / 3) as i32,
            if x > 0 { x.wrapping_mul(3).wrapping_add(1) } else { x / 2 },
            (y.count_ones() + (x as u32).leading_zeros() + y.reverse_bits() % 97) as i32,
            ((x as i64 * y as i32 as i64) >> 17) as i32,
        ];
        assert_eq!(&got[i * 8..i * 8 + 8], &want, "thread {i}: a={x} b={y}");
    }
}

#[test]
fn strided_gather_and_divergent_loops() {
    let gpu = gpu_with("index");
    let (rows, cols, stride) = (13usize, 7usize, 9usize);
    let x: Vec<f32> = (0..rows * stride).map(|v| v as f32).collect();
    let (px, po) = (upload(&gpu, &x), zeros::<f32>(&gpu, rows * cols));
    let args =
        [Arg::Ptr(px), Arg::Ptr(po), Arg::I64(rows as i64), Arg::I64(cols as i64), Arg::I64(stride as i64)];
    gpu.launch("index", "gather2d_f32", dims(3, 40, 0), &args).unwrap();
    let got = download::<f32>(&gpu, po, rows * cols);
    for i in 0..rows * cols {
        assert_eq!(got[i], x[(i / cols) * stride + i % cols]);
    }
    let n = 100;
    let v: Vec<u32> = (1..=n as u32).collect();
    let (pv, ps) = (upload(&gpu, &v), zeros::<u32>(&gpu, n));
    gpu.launch("index", "collatz", dims(4, 32, 0), &[Arg::Ptr(pv), Arg::Ptr(ps), Arg::I32(n as i32)])
        .unwrap();
    let got = download::<u32>(&gpu, ps, n);
    for (i, &x) in v.iter().enumerate() {
        let (mut y, mut s) = (x as u64, 0);
        while y != 1 && s < 1000 {
            y = if y & 1 == 1 { 3 * y + 1 } else { y >> 1 };
            s += 1;
        }
        assert_eq!(got[i], s, "collatz({x})");
    }
}

#[test]
fn three_dimensional_launch_with_64_bit_division() {
    let gpu = gpu_with("index");
    let d = LaunchDims { grid: [3, 2, 2], block: [5, 3, 2], shared_bytes: 0 };
    let (nx, ny, nz) = (15u64, 6u64, 4u64);
    let po = zeros::<u64>(&gpu, (nx * ny * nz) as usize);
    let m = 1_000_003u64;
    gpu.launch("index", "grid3d", d, &[Arg::Ptr(po), Arg::U64(m)]).unwrap();
    let got = download::<u64>(&gpu, po, (nx * ny * nz) as usize);
    for (id, g) in got.iter().enumerate() {
        let h = (id as u64).wrapping_mul(0x9E3779B97F4A7C15);
        assert_eq!(*g, h % m + (h / m) % 1000, "id {id}");
    }
}

#[test]
fn block_reductions_with_shuffles_and_shared_memory() {
    let gpu = gpu_with("reduce");
    let (rows, cols) = (5usize, 333usize);
    let mut rng = Rng(5);
    let x: Vec<f32> = (0..rows * cols).map(|_| rng.f32(-1.0, 1.0)).collect();
    let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    for (entry, block) in [("row_sum_f32", 96u32), ("row_sum_f64", 128)] {
        let f64_ = entry.ends_with("f64");
        let px = if f64_ { upload(&gpu, &xd) } else { upload(&gpu, &x) };
        let po = zeros::<f64>(&gpu, rows);
        let shared = (block / 32) * if f64_ { 8 } else { 4 };
        gpu.launch(
            "reduce",
            entry,
            dims(rows as u32, block, shared),
            &[Arg::Ptr(px), Arg::Ptr(po), Arg::I32(cols as i32)],
        )
        .unwrap();
        let got: Vec<f64> = if f64_ {
            download::<f64>(&gpu, po, rows)
        } else {
            download::<f32>(&gpu, po, rows).iter().map(|&v| v as f64).collect()
        };
        for r in 0..rows {
            let want: f64 = xd[r * cols..(r + 1) * cols].iter().sum();
            close(got[r], want, if f64_ { 1e-13 } else { 1e-5 }, entry);
        }
    }
    for entry in ["row_max_f32", "row_max_f64"] {
        let f64_ = entry.ends_with("f64");
        let px = if f64_ { upload(&gpu, &xd) } else { upload(&gpu, &x) };
        let po = zeros::<f64>(&gpu, rows);
        gpu.launch(
            "reduce",
            entry,
            dims(rows as u32, 256, 0),
            &[Arg::Ptr(px), Arg::Ptr(po), Arg::I32(cols as i32)],
        )
        .unwrap();
        let got: Vec<f64> = if f64_ {
            download::<f64>(&gpu, po, rows)
        } else {
            download::<f32>(&gpu, po, rows).iter().map(|&v| v as f64).collect()
        };
        for r in 0..rows {
            let want = xd[r * cols..(r + 1) * cols].iter().cloned().fold(f64::MIN, f64::max);
            assert_eq!(got[r], want, "{entry} row {r}");
        }
    }
}

#[test]
fn warp_broadcast_scan_and_votes() {
    let gpu = gpu_with("reduce");
    let n = 70usize; // the last warp is partly outside the data
    let x: Vec<i32> = (0..n as i32).map(|i| if i == 40 { 7 } else { (i * 37 % 23) - 5 }).collect();
    let (px, po, pv) = (upload(&gpu, &x), zeros::<i32>(&gpu, n * 2), zeros::<u32>(&gpu, 3 * 3));
    gpu.launch(
        "reduce",
        "warp_ops",
        dims(1, 96, 0),
        &[Arg::Ptr(px), Arg::Ptr(po), Arg::Ptr(pv), Arg::I32(n as i32)],
    )
    .unwrap();
    let got = download::<i32>(&gpu, po, n * 2);
    let votes = download::<u32>(&gpu, pv, 9);
    for w in 0..3 {
        let vals: Vec<i32> = (0..32).map(|l| x.get(w * 32 + l).copied().unwrap_or(0)).collect();
        let ballot = vals.iter().enumerate().fold(0u32, |m, (l, &v)| m | ((v > 0) as u32) << l);
        assert_eq!(votes[w * 3], ballot, "ballot of warp {w}");
        assert_eq!(votes[w * 3 + 1], 1);
        assert_eq!(votes[w * 3 + 2], vals.contains(&7) as u32, "any of warp {w}");
        let mut scan = 0;
        for l in 0..32 {
            scan += vals[l];
            if w * 32 + l < n {
                assert_eq!(got[(w * 32 + l) * 2], vals[0]);
                assert_eq!(got[(w * 32 + l) * 2 + 1], scan, "scan at {}", w * 32 + l);
            }
        }
    }
}

#[test]
fn atomics_on_global_and_shared() {
    let gpu = gpu_with("reduce");
    let n = 1000usize;
    let bins = 37;
    let x: Vec<u32> = (0..n as u32).map(|i| i.wrapping_mul(2654435761)).collect();
    let (px, ph, pt) = (upload(&gpu, &x), zeros::<u32>(&gpu, bins), zeros::<f32>(&gpu, 1));
    let args = [Arg::Ptr(px), Arg::Ptr(ph), Arg::Ptr(pt), Arg::I32(n as i32), Arg::I32(bins as i32)];
    gpu.launch("reduce", "histogram", dims(5, 64, bins as u32 * 4), &args).unwrap();
    let mut want = vec![0u32; bins];
    x.iter().for_each(|v| want[(*v % bins as u32) as usize] += 1);
    assert_eq!(download::<u32>(&gpu, ph, bins), want);
    let total: f32 = download(&gpu, pt, 1)[0];
    assert_eq!(total as u32, x.iter().map(|v| v & 15).sum::<u32>());

    let m = 150;
    let v: Vec<f32> = (0..m).map(|i| (i as f32 * 0.37).sin()).collect();
    let (pv, pb, pm, pc) =
        (upload(&gpu, &v), zeros::<f32>(&gpu, 3), upload(&gpu, &[i32::MIN]), zeros::<u32>(&gpu, 1));
    gpu.launch(
        "reduce",
        "atomics_misc",
        dims(3, 64, 0),
        &[Arg::Ptr(pv), Arg::Ptr(pb), Arg::Ptr(pm), Arg::Ptr(pc), Arg::I32(m as i32)],
    )
    .unwrap();
    let sums = download::<f32>(&gpu, pb, 3);
    for b in 0..3 {
        let want: f32 = v[(b * 64).min(m)..((b + 1) * 64).min(m)].iter().sum();
        close(sums[b] as f64, want as f64, 1e-5, "shared atomic sum");
    }
    let max = v.iter().map(|&f| (f * 100.0) as i32).max().unwrap();
    assert_eq!(download::<i32>(&gpu, pm, 1)[0], max);
    assert_eq!(download::<u32>(&gpu, pc, 1)[0], m as u32);
}

fn sgemm_ref(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).fold(0f32, |acc, p| a[i * k + p].mul_add(b[p * n + j], acc));
        }
    }
    c
}

#[test]
fn tiled_sgemm_matches_the_reference_exactly() {
    let gpu = gpu_with("sgemm");
    let mut rng = Rng(21);
    for (m, n, k) in [(70, 68, 37), (33, 61, 20)] {
        let a: Vec<f32> = (0..m * k).map(|_| rng.f32(-1.0, 1.0)).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.f32(-1.0, 1.0)).collect();
        let (pa, pb, pc) = (upload(&gpu, &a), upload(&gpu, &b), zeros::<f32>(&gpu, m * n));
        let d = LaunchDims {
            grid: [n.div_ceil(64) as u32, m.div_ceil(64) as u32, 1],
            block: [256, 1, 1],
            shared_bytes: 0,
        };
        let args = [
            Arg::Ptr(pa),
            Arg::Ptr(pb),
            Arg::Ptr(pc),
            Arg::I32(m as i32),
            Arg::I32(n as i32),
            Arg::I32(k as i32),
        ];
        gpu.launch("sgemm", "sgemm_tiled", d, &args).unwrap();
        // Same order of fused multiply-adds as the kernel: bit-identical.
        assert_eq!(download::<f32>(&gpu, pc, m * n), sgemm_ref(&a, &b, m, n, k), "{m}x{n}x{k}");
    }
}

/// Block `ctr` of stream `stream` of ChaCha8 under `key`, from `rand_chacha` (the generator the
/// CPU's dropout draws from): the same 64-bit block counter in words 12–13 and stream in 14–15.
fn chacha8_ref(key: &[u32; 8], stream: u64, ctr: u64) -> [u32; 16] {
    use rand_chacha::rand_core::{Rng, SeedableRng};
    let mut seed = [0u8; 32];
    for (bytes, word) in seed.chunks_exact_mut(4).zip(key) {
        bytes.copy_from_slice(&word.to_le_bytes());
    }
    let mut rng = rand_chacha::ChaCha8Rng::from_seed(seed);
    rng.set_stream(stream);
    rng.set_word_pos(16 * ctr as u128);
    std::array::from_fn(|_| rng.next_u32())
}

#[test]
fn chacha8_blocks() {
    let gpu = gpu_with("chacha");
    let key = [1u32, 2, 3, 4, 0xdeadbeef, 6, 7, 0x80000000];
    let n = 41;
    let stream = 0x1234_5678_9abc_def0u64;
    let (pk, po, pu) = (upload(&gpu, &key), zeros::<u32>(&gpu, n * 16), zeros::<f32>(&gpu, n * 4));
    gpu.launch(
        "chacha",
        "chacha8",
        dims(2, 32, 0),
        &[Arg::Ptr(pk), Arg::U64(stream), Arg::Ptr(po), Arg::Ptr(pu), Arg::I32(n as i32)],
    )
    .unwrap();
    let got = download::<u32>(&gpu, po, n * 16);
    let uni = download::<f32>(&gpu, pu, n * 4);
    for i in 0..n {
        let mut want = chacha8_ref(&key, stream, i as u64);
        for k in 0..4 {
            assert_eq!(uni[i * 4 + k], (want[k] >> 8) as f32 / 16777216.0);
        }
        want[0] = want[0].swap_bytes();
        assert_eq!(&got[i * 16..i * 16 + 16], &want, "block {i}");
    }
}
