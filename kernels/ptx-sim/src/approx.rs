//! The approximate instructions as a GPU may compute them: anywhere within the error that
//! the PTX ISA (9.1) documents, not exactly. A simulator that returned the exact result would
//! pass a kernel, or a test tolerance, that holds only for exact results and fails on a GPU.
//!
//! | instruction          | documented                                                        |
//! |----------------------|-------------------------------------------------------------------|
//! | `ex2.approx.f32`     | "maximum ulp error is 2 ulp from correctly rounded result across the full range of inputs" |
//! | `rcp.approx.f32`     | "maximum ulp error is 1 across the full range of inputs"          |
//! | `rcp.approx.ftz.f64` | bit for bit: the reciprocal of `a`'s upper 32 bits (1.11.20 format) from their 20 mantissa bits, in `d`'s upper 32 bits, the lower 32 zeroed; subnormals flushed, NaN → `0x7fffffff00000000` |
//!
//! The simulator takes the correctly rounded result and moves it by the whole documented
//! error, up or down as a hash of the input's bits decides. That is the worst case in size,
//! deterministic (one input, one output, as on a GPU) and without a bias (errors all one way
//! would pile up in a sum as no GPU's do). The 20-bit reciprocal's own error is not
//! documented; the simulator takes it off by one unit of its last bit, a guess stated as one:
//! the Newton steps that follow it in every use (libdevice's f64 division-free reciprocals)
//! are then shown to repair a seed that is not exact (`unary_math_f32_and_f64` in
//! `tests/kernels.rs` holds libdevice's f64 `tanh` and `log` to 1e-14).
//!
//! The special inputs give the table's exact results (`ex2`: −Inf → +0, ±0 → 1, +Inf →
//! +Inf; `rcp`: ±0 → ±Inf, ±Inf → ±0; NaN → NaN), and `ex2` of an integer is exact: the
//! ISA does not say so, but libdevice's f64 `tanh` and `erf` make their scale `2^k` with
//! `ex2.approx.ftz.f32` of an integer `k` and would be wrong otherwise (modelled without it,
//! the simulator's f64 `tanh` was off by 6e-10). A moved result stays finite and keeps its
//! sign, and under `.ftz` a result moved below the normal range is flushed.
//!
//! The other approximate instructions (`sqrt.approx`, `rsqrt`, `lg2`, `sin`, `cos`, `tanh`,
//! `div.approx`, and every `.f16`/`.bf16` form) are computed exactly and rounded: no kernel
//! of the engine uses them (`approximate_instructions_the_engine_uses_are_modelled` in
//! `tests/load.rs` reads the engine's PTX to keep that true).

/// `ex2.approx{.ftz}.f32`: `2^x` rounded, moved by 2 ulp; exact at integers.
pub fn ex2_f32(x: f32, ftz: bool) -> f32 {
    if x.is_nan() || x.is_infinite() || x == x.trunc() {
        // NaN, +0 or +Inf, and 2^k exact: libdevice's f64 functions (tanh, erf) build the
        // scale 2^k of their range reduction with `ex2.approx.ftz.f32` of an integer k, so
        // NVIDIA's own library holds a GPU's to exact powers of two there.
        return flushed(x.exp2(), ftz);
    }
    let exact = (x as f64).exp2() as f32;
    moved_f32(exact, 2, x.to_bits(), ftz)
}

/// `rcp.approx{.ftz}.f32`: `1/x` rounded, moved by 1 ulp.
pub fn rcp_f32(x: f32, ftz: bool) -> f32 {
    if x.is_nan() || x.is_infinite() || x == 0.0 {
        return 1.0 / x; // NaN, ±0 or ±Inf
    }
    let exact = (1.0 / x as f64) as f32;
    moved_f32(exact, 1, x.to_bits(), ftz)
}

/// Moves `r` by `ulps` units in the last place, the direction drawn from `input`; a zero or
/// infinite `r` (the rounded result over- or underflowed) is left as it is.
fn moved_f32(r: f32, ulps: u32, input: u32, ftz: bool) -> f32 {
    if r == 0.0 || r.is_infinite() {
        return flushed(r, ftz);
    }
    let sign = r.to_bits() & 0x8000_0000;
    let mag = r.to_bits() & 0x7fff_ffff;
    let mag = if up(input as u64) { (mag + ulps).min(f32::MAX.to_bits()) } else { mag.saturating_sub(ulps) };
    flushed(f32::from_bits(sign | mag), ftz)
}

fn flushed(r: f32, ftz: bool) -> f32 {
    if ftz && r != 0.0 && r.abs() < f32::MIN_POSITIVE {
        0.0f32.copysign(r)
    } else {
        r
    }
}

/// `rcp.approx.ftz.f64`, as the ISA specifies it bit for bit, its 20-bit result then moved
/// by one unit of its last bit.
pub fn rcp_ftz_f64(a: u64) -> u64 {
    const LOW: u64 = 0xffff_ffff;
    let hi = a & !LOW; // a[63:32], the lower half ignored
    let sign = hi & (1 << 63);
    let exp = (hi >> 52) & 0x7ff;
    let mantissa20 = (hi >> 32) & 0xf_ffff;
    match exp {
        0 => return sign | f64::INFINITY.to_bits(), // ±0 and subnormals (flushed): ±Inf
        0x7ff if mantissa20 == 0 => return sign,    // ±Inf: ±0
        0x7ff => return 0x7fff_ffff_0000_0000,      // NaN: the canonical one
        _ => {}
    }
    let r = 1.0 / f64::from_bits(hi);
    // Round to 20 mantissa bits (to nearest, ties to even), then move one unit of bit 20.
    let bits = r.to_bits() & !(1 << 63);
    let half = 1u64 << 31;
    let odd = (bits >> 32) & 1;
    let rounded = (bits + half - 1 + odd) & !LOW;
    let moved = if up(hi) { rounded + (1 << 32) } else { rounded - (1 << 32) };
    if (moved >> 52) == 0 {
        sign // below the normal range: flushed
    } else {
        sign | moved
    }
}

/// The direction of an approximation's error for one input: a fixed hash of its bits
/// (splitmix64's finaliser), so the same input always errs the same way.
fn up(input: u64) -> bool {
    let mut z = input ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) & 1 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps_apart(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn each_result_is_at_the_edge_of_the_documented_error_both_ways() {
        let (mut ups, mut downs) = (0, 0);
        for i in 0..2000 {
            let x = -20.0 + i as f32 * 0.0203;
            if x == x.trunc() {
                assert_eq!(ex2_f32(x, true), (x as f64).exp2() as f32, "2^{x} is exact");
                continue;
            }
            let exact = (x as f64).exp2() as f32;
            let got = ex2_f32(x, true);
            assert_eq!(ulps_apart(got, exact), 2, "ex2({x})");
            if got > exact {
                ups += 1
            } else {
                downs += 1
            }
            assert_eq!(ex2_f32(x, true), got, "one input, one output");
            let r = rcp_f32(x, true);
            assert_eq!(ulps_apart(r, (1.0 / x as f64) as f32), 1, "rcp({x})");
        }
        assert!(ups > 800 && downs > 800, "both directions: {ups} up, {downs} down");
    }

    #[test]
    fn special_inputs_give_the_tables_results() {
        for k in -126..128 {
            assert_eq!(ex2_f32(k as f32, true), (k as f64).exp2() as f32, "2^{k}");
        }
        assert_eq!(ex2_f32(-127.0, true), 0.0, "2^-127 is subnormal: flushed");
        assert_eq!(ex2_f32(0.0, true), 1.0);
        assert_eq!(ex2_f32(-0.0, true), 1.0);
        assert_eq!(ex2_f32(f32::NEG_INFINITY, true).to_bits(), 0);
        assert_eq!(ex2_f32(f32::INFINITY, true), f32::INFINITY);
        assert!(ex2_f32(f32::NAN, true).is_nan());
        assert_eq!(ex2_f32(200.0, true), f32::INFINITY, "overflow stays infinite");
        assert_eq!(ex2_f32(-140.0, true), 0.0, ".ftz flushes a subnormal result");
        assert!(ex2_f32(-140.0, false) > 0.0, "without .ftz it stays subnormal");
        assert!(ex2_f32(127.999_99, true).is_finite(), "a moved result stays finite");
        assert_eq!(rcp_f32(0.0, true), f32::INFINITY);
        assert_eq!(rcp_f32(-0.0, true), f32::NEG_INFINITY);
        assert_eq!(rcp_f32(f32::NEG_INFINITY, true).to_bits(), (-0.0f32).to_bits());
        assert!(rcp_f32(f32::NAN, true).is_nan());

        let f = |x: f64| f64::from_bits(rcp_ftz_f64(x.to_bits()));
        assert_eq!(f(0.0), f64::INFINITY);
        assert_eq!(f(-1e-310), f64::NEG_INFINITY, "a subnormal input is flushed to -0");
        assert_eq!(f(f64::INFINITY), 0.0);
        assert_eq!(rcp_ftz_f64(f64::NAN.to_bits()), 0x7fff_ffff_0000_0000);
        assert_eq!(f(1e308), 0.0, "a result below the normal range is flushed");
    }

    #[test]
    fn the_f64_reciprocal_is_a_20_bit_one_of_the_upper_half() {
        for x in [1.0f64, 3.0, -7.5, 0.1, 1e-300, 12_345.678_9] {
            let bits = rcp_ftz_f64(x.to_bits());
            assert_eq!(bits & 0xffff_ffff, 0, "the lower 32 bits are zero");
            let upper = f64::from_bits(x.to_bits() & !0xffff_ffff);
            let rel = (f64::from_bits(bits) * upper - 1.0).abs();
            // One unit of the 20th bit, less or more half of one from the rounding: a unit
            // is 2^-21 to 2^-20 of the value.
            assert!(rel <= 1.5 * 2f64.powi(-20) && rel >= 0.5 * 2f64.powi(-21), "{x}: {rel}");
            // The lower half of the input is ignored.
            assert_eq!(rcp_ftz_f64(x.to_bits() | 0x1234_5678), bits);
        }
    }
}
