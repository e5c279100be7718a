//! The bandwidth benches: a device-to-device copy, our negation and our fused Adam
//! update on large buffers, each checked on its buffers' last chunk first.

use crate::{fill, median, timed, Buf, Times};
use criterion::{Criterion, Throughput};
use std::sync::Arc;
use std::time::Duration;
use tapegrad_kernels::elementwise::Unary;
use tapegrad_kernels::gpu::{self, GpuContext};
use tapegrad_kernels::update::AdamStep;

/// Four f32 buffers of `len` elements, each `pattern[i % chunk]` for its own pattern
/// (uploaded once, tiled on the device); the fourth non-negative (Adam's v).
pub struct Streams {
    chunk: usize,
    pub patterns: [Vec<f32>; 4],
    bufs: [Buf; 4],
}

pub fn streams(ctx: &Arc<GpuContext>, len: usize, chunk: usize) -> Result<Streams, String> {
    let e = |e: gpu::GpuError| e.to_string();
    let chunk = chunk.min(len);
    let patterns = [fill(chunk, 11), fill(chunk, 12), fill(chunk, 13).iter().map(|x| x * 0.1).collect(), {
        fill(chunk, 14).iter().map(|x| x * x * 0.01).collect()
    }];
    let mut bufs = Vec::new();
    for p in &patterns {
        let src = Buf::from_host(ctx, p).map_err(e)?;
        let mut buf = Buf::uninit(ctx, len).map_err(e)?;
        let mut at = 0;
        while at < len {
            let n = chunk.min(len - at);
            buf.copy_from(at, &src, 0, n).map_err(e)?;
            at += n;
        }
        bufs.push(buf);
    }
    let bufs: [Buf; 4] = bufs.try_into().map_err(|_| "four buffers".to_string())?;
    Ok(Streams { chunk, patterns, bufs })
}

impl Streams {
    /// The pattern's values over the last `chunk` elements of a buffer of `len`.
    fn tail(&self, which: usize, len: usize) -> Vec<f32> {
        let start = len - self.chunk;
        (start..len).map(|i| self.patterns[which][i % self.chunk]).collect()
    }
}

/// The last `chunk` elements of `buf`, on the host.
fn tail_of(buf: &Buf, chunk: usize) -> Result<Vec<f32>, String> {
    let e = |e: gpu::GpuError| e.to_string();
    let mut t = Buf::uninit(buf.context(), chunk).map_err(e)?;
    t.copy_from(0, buf, buf.len() - chunk, chunk).map_err(e)?;
    t.to_host().map_err(e)
}

const ADAM: AdamStep =
    AdamStep { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01, decoupled: true, step: 1 };

/// Copy, negate and one Adam step on buffers of `len`, each checked on the last chunk
/// (copy and negation exactly, Adam against the CPU's `update::adam_update`).
pub fn validate_streams(s: &mut Streams, len: usize) -> Result<(), String> {
    let e = |e: gpu::GpuError| e.to_string();
    let chunk = s.chunk;
    let [want, mut theta, mut mh, mut vh] = [0, 0, 2, 3].map(|w| s.tail(w, len));
    let [x, y, m, v] = &mut s.bufs;
    y.copy_from(0, x, 0, len).map_err(e)?;
    let got = tail_of(y, chunk)?;
    if got != want {
        return Err(format!("copy_from of {len} elements: the last {chunk} differ"));
    }
    gpu::elementwise::unary_forward(Unary::Neg, x, y).map_err(e)?;
    let got = tail_of(y, chunk)?;
    if got.iter().zip(&want).any(|(g, w)| *g != -w) {
        return Err(format!("unary_forward(Neg) of {len} elements: the last {chunk} are not −x"));
    }
    // Adam: θ = x, g = the copy of x just negated (y), moments m and v
    let grad = tail_of(y, chunk)?;
    gpu::update::adam_update(x, y, m, v, ADAM).map_err(e)?;
    tapegrad_kernels::update::adam_update(&mut theta, &grad, &mut mh, &mut vh, ADAM);
    for (what, buf, want) in [("θ", &*x, &theta), ("m", &*m, &mh), ("v", &*v, &vh)] {
        let got = tail_of(buf, chunk)?;
        if let Some((i, (g, w))) =
            got.iter().zip(want).enumerate().find(|(_, (g, w))| (*g - *w).abs() > 1e-6 * (1.0 + w.abs()))
        {
            return Err(format!(
                "adam_update of {len} elements: {what}[{}] is {g}, the CPU's {w}",
                len - chunk + i
            ));
        }
    }
    Ok(())
}

const MIB: usize = 1 << 20;
/// Bytes per buffer.
const SIZES: &[usize] = &[64 * MIB, 256 * MIB, 1024 * MIB];

pub struct BandwidthRow {
    mib: usize,
    result: Result<(), String>,
}

pub fn benches(c: &mut Criterion, ctx: &Arc<GpuContext>, times: &Times) -> Vec<BandwidthRow> {
    let mut rows = Vec::new();
    for &bytes in SIZES {
        let (len, mib) = (bytes / 4, bytes / MIB);
        let checked = streams(ctx, len, 4 * MIB).and_then(|mut s| validate_streams(&mut s, len).map(|()| s));
        let mut s = match checked {
            Ok(s) => s,
            Err(e) => {
                eprintln!("VALIDATION FAILED, not timed: {e}");
                rows.push(BandwidthRow { mib, result: Err(e) });
                continue;
            }
        };
        let [x, y, m, v] = &mut s.bufs;
        let group = format!("bandwidth/{mib}MiB");
        let mut g = c.benchmark_group(&group);
        g.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
        // copy and negation read x and write y; Adam reads θ, g, m, v and writes θ, m, v
        g.throughput(Throughput::BytesDecimal(2 * bytes as u64));
        let key = format!("{group}/copy");
        g.bench_function("copy", |bch| {
            bch.iter_custom(|iters| {
                timed(ctx, times, &key, iters, || y.copy_from(0, x, 0, len).expect("copy_from"))
            })
        });
        let key = format!("{group}/neg");
        g.bench_function("neg", |bch| {
            bch.iter_custom(|iters| {
                timed(ctx, times, &key, iters, || {
                    gpu::elementwise::unary_forward(Unary::Neg, x, y).expect("unary_forward")
                })
            })
        });
        g.throughput(Throughput::BytesDecimal(7 * bytes as u64));
        let key = format!("{group}/adam");
        g.bench_function("adam", |bch| {
            bch.iter_custom(|iters| {
                timed(ctx, times, &key, iters, || {
                    gpu::update::adam_update(x, y, m, v, ADAM).expect("adam_update")
                })
            })
        });
        g.finish();
        rows.push(BandwidthRow { mib, result: Ok(()) });
        drop(s);
        ctx.empty_cache().expect("empty the allocator's cache");
    }
    rows
}

/// Prints each kernel's bandwidth beside the copy's; false when a size failed validation.
pub fn summary(bw: &[BandwidthRow], times: &Times) -> bool {
    let med = |key: String| median(times, &key);
    let mut ok = true;
    println!();
    println!("Bandwidth (GB/s = 1e9 bytes read + written per second; fraction of the copy's):");
    println!(
        "{:<10} {:>10} {:>10} {:>10} {:>8} {:>8}",
        "buffers", "copy", "neg", "adam", "neg/copy", "adam/copy"
    );
    for row in bw {
        if row.result.is_err() {
            ok = false;
            println!("{:<10} VALIDATION FAILED (see above), not timed", format!("{} MiB", row.mib));
            continue;
        }
        let bytes = (row.mib * MIB) as f64;
        let gbs =
            |k: &str, per: f64| med(format!("bandwidth/{}MiB/{k}", row.mib)).map(|t| per * bytes / t / 1e9);
        let (cp, ng, ad) = (gbs("copy", 2.0), gbs("neg", 2.0), gbs("adam", 7.0));
        let f = |v: Option<f64>, p: usize| v.map_or("-".into(), |v| format!("{v:.p$}"));
        let frac = |v: Option<f64>| f(v.zip(cp).map(|(v, c)| v / c), 3);
        println!(
            "{:<10} {:>10} {:>10} {:>10} {:>8} {:>8}",
            format!("{} MiB", row.mib),
            f(cp, 1),
            f(ng, 1),
            f(ad, 1),
            frac(ng),
            frac(ad)
        );
    }
    ok
}
