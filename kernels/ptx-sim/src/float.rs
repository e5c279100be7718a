//! Float semantics: f16/bf16 encodings, rounding modes, flush-to-zero, saturation,
//! PTX `cvt`. Values travel as f64 between the narrow formats (exact for f16/bf16/f32).

use crate::inst::{CvtMode, Rnd, Ty};

/// Decodes a register value of a float type to f64 (exact).
#[inline(always)]
pub fn to_f64(ty: Ty, v: u64) -> f64 {
    match ty {
        Ty::F32 => f32::from_bits(v as u32) as f64,
        Ty::F64 => f64::from_bits(v),
        Ty::F16 => small_to_f64(v as u16, 5, 10),
        _ => small_to_f64(v as u16, 8, 7), // BF16
    }
}

/// Encodes an f64 into a float type, rounding once with `rnd` (round-to-nearest-even by default).
pub fn from_f64(ty: Ty, x: f64, rnd: Rnd) -> u64 {
    match ty {
        Ty::F64 => x.to_bits(),
        Ty::F32 => f64_to_f32(x, rnd).to_bits() as u64,
        Ty::F16 => f64_to_small(x, 5, 10, rnd) as u64,
        _ => f64_to_small(x, 8, 7, rnd) as u64,
    }
}

pub fn f64_to_f32(x: f64, rnd: Rnd) -> f32 {
    let f = x as f32;
    if !f.is_finite() && x.is_finite() {
        // Overflow: directed modes toward zero give the largest finite value.
        let toward_zero = match rnd {
            Rnd::Z => true,
            Rnd::M => x > 0.0,
            Rnd::P => x < 0.0,
            _ => false,
        };
        return if toward_zero { f32::MAX.copysign(x as f32) } else { f };
    }
    match rnd {
        Rnd::Z if (f as f64).abs() > x.abs() => next_toward_zero(f),
        Rnd::M if (f as f64) > x => f32::from_bits(if f > 0.0 { f.to_bits() - 1 } else { step_away(f) }),
        Rnd::P if (f as f64) < x => f32::from_bits(if f < 0.0 { f.to_bits() - 1 } else { step_away(f) }),
        _ => f,
    }
}

fn next_toward_zero(f: f32) -> f32 {
    if f == 0.0 {
        f
    } else {
        f32::from_bits(f.to_bits() - 1)
    }
}

fn step_away(f: f32) -> u32 {
    if f == 0.0 {
        // The smallest subnormal of the sign the rounding direction asks for.
        if f.is_sign_negative() {
            0x8000_0001
        } else {
            1
        }
    } else {
        f.to_bits() + 1
    }
}

fn small_to_f64(h: u16, eb: u32, mb: u32) -> f64 {
    let sign = if h >> 15 != 0 { -1.0 } else { 1.0 };
    let e = ((h >> mb) & ((1 << eb) - 1)) as i32;
    let m = (h & ((1 << mb) - 1)) as f64;
    let bias = (1i32 << (eb - 1)) - 1;
    let emax = (1i32 << eb) - 1;
    let scale = (2.0f64).powi(-(mb as i32));
    sign * if e == 0 {
        m * scale * (2.0f64).powi(1 - bias)
    } else if e == emax {
        if m == 0.0 {
            f64::INFINITY
        } else {
            f64::NAN
        }
    } else {
        (1.0 + m * scale) * (2.0f64).powi(e - bias)
    }
}

fn round_int(q: f64, rnd: Rnd, negative: bool) -> f64 {
    match rnd {
        Rnd::Z => q.trunc(),
        Rnd::M if negative => q.ceil(),
        Rnd::M => q.floor(),
        Rnd::P if negative => q.floor(),
        Rnd::P => q.ceil(),
        _ => round_half_even(q),
    }
}

pub fn round_half_even(q: f64) -> f64 {
    q.round_ties_even()
}

/// f64 → a binary16-style format with `eb` exponent and `mb` mantissa bits.
fn f64_to_small(x: f64, eb: u32, mb: u32, rnd: Rnd) -> u16 {
    let sign: u16 = if x.is_sign_negative() { 1 << 15 } else { 0 };
    let emax_field = (1u16 << eb) - 1;
    if x.is_nan() {
        return (emax_field << mb) | (1 << (mb - 1));
    }
    let a = x.abs();
    let bias = (1i32 << (eb - 1)) - 1;
    if a == 0.0 {
        return sign;
    }
    let max_finite = (2.0 - (2.0f64).powi(-(mb as i32))) * (2.0f64).powi(bias);
    if a.is_infinite() {
        return sign | (emax_field << mb);
    }
    let e = (a.log2().floor() as i32).max(1 - bias);
    // log2 can be off by one at powers of two: fix the binade.
    let e = if a < (2.0f64).powi(e) && e > 1 - bias {
        e - 1
    } else if a >= (2.0f64).powi(e + 1) {
        e + 1
    } else {
        e
    };
    let ulp = (2.0f64).powi(e - mb as i32);
    let r = round_int(a / ulp, rnd, sign != 0) * ulp;
    if r > max_finite {
        let to_max = match rnd {
            Rnd::Z => true,
            Rnd::M => sign == 0,
            Rnd::P => sign != 0,
            _ => false,
        };
        return if to_max {
            sign | (((emax_field - 1) << mb) | ((1 << mb) - 1))
        } else {
            sign | (emax_field << mb)
        };
    }
    let min_normal = (2.0f64).powi(1 - bias);
    if r < min_normal {
        return sign | (r / (2.0f64).powi(1 - bias - mb as i32)) as u16;
    }
    let e = r.log2().floor() as i32;
    let e = if r < (2.0f64).powi(e) {
        e - 1
    } else if r >= (2.0f64).powi(e + 1) {
        e + 1
    } else {
        e
    };
    let m = (r / (2.0f64).powi(e) - 1.0) * (2.0f64).powi(mb as i32);
    sign | (((e + bias) as u16) << mb) | m as u16
}

/// Flushes an f32 subnormal (given as f64) to a zero of the same sign.
#[inline(always)]
pub fn ftz32(x: f64) -> f64 {
    if x != 0.0 && x.abs() < f32::MIN_POSITIVE as f64 {
        0.0f64.copysign(x)
    } else {
        x
    }
}

#[inline(always)]
pub fn saturate(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

/// `cvt.d.s` with PTX semantics. `int_rnd` marks the `.rni/.rzi/.rmi/.rpi` forms.
pub fn cvt(m: CvtMode, v: u64) -> u64 {
    let CvtMode { d, s, rnd, int_rnd, sat, ftz } = m;
    match (d.is_float(), s.is_float()) {
        (false, false) => {
            let x = s.ext(v);
            let x = if sat { clamp_int(d, x as i64 as i128, s.signed(), x) } else { x };
            mask(d, x)
        }
        (true, true) => {
            let mut x = to_f64(s, v);
            if ftz && s == Ty::F32 {
                x = ftz32(x);
            }
            if int_rnd {
                x = round_int(x, rnd, false);
            }
            if sat {
                x = saturate(x);
            }
            let mut r = from_f64(d, x, rnd);
            if ftz && d == Ty::F32 {
                r = (ftz32(f32::from_bits(r as u32) as f64) as f32).to_bits() as u64;
            }
            r
        }
        (true, false) => {
            // Integer → float: exact in f64 up to 2^53; beyond, i128 comparison decides.
            let x = s.ext(v);
            let exact: i128 = if s.signed() { x as i64 as i128 } else { x as i128 };
            let f = if s.signed() { x as i64 as f64 } else { x as f64 };
            let r = from_f64(d, f, if (f as i128) == exact { rnd } else { Rnd::N });
            let r = if sat { from_f64(d, saturate(to_f64(d, r)), Rnd::N) } else { r };
            mask(d, r)
        }
        (false, true) => {
            let mut x = to_f64(s, v);
            if ftz && s == Ty::F32 {
                x = ftz32(x);
            }
            if x.is_nan() {
                return 0;
            }
            let r = round_int(x, rnd, false);
            // Float → integer always saturates to the destination's range.
            let (lo, hi) = int_range(d);
            let c = r.clamp(lo as f64, hi as f64) as i128;
            mask(d, c as u64)
        }
    }
}

fn int_range(d: Ty) -> (i128, i128) {
    let b = d.bits();
    if d.signed() {
        (-(1i128 << (b - 1)), (1i128 << (b - 1)) - 1)
    } else {
        (0, (1i128 << b) - 1)
    }
}

fn clamp_int(d: Ty, _x: i128, signed_src: bool, raw: u64) -> u64 {
    let v: i128 = if signed_src { raw as i64 as i128 } else { raw as i128 };
    let (lo, hi) = int_range(d);
    v.clamp(lo, hi) as u64
}

#[inline(always)]
pub fn mask(t: Ty, v: u64) -> u64 {
    match t.bits() {
        64 => v,
        b => v & ((1u64 << b) - 1),
    }
}

/// Rounds an exact-in-f64 f32 arithmetic result to f32 with `rnd`, flushing if `ftz`.
#[inline(always)]
pub fn round32(x: f64, rnd: Rnd, ftz: bool) -> u64 {
    let f = if matches!(rnd, Rnd::Default | Rnd::N) { x as f32 } else { f64_to_f32(x, rnd) };
    let f = if ftz && f != 0.0 && f.abs() < f32::MIN_POSITIVE { 0.0f32.copysign(f) } else { f };
    f.to_bits() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_round_trip_and_rounding() {
        for x in [0.0, 1.0, -2.5, 65504.0, 6.1035156e-5, 5.9604645e-8, 0.1, 1.0 / 3.0] {
            let h = f64_to_small(x, 5, 10, Rnd::N);
            let back = small_to_f64(h, 5, 10);
            assert!((back - x).abs() <= x.abs() * 1e-3 + 6e-8, "{x} -> {h:#x} -> {back}");
        }
        assert_eq!(f64_to_small(1.0, 5, 10, Rnd::N), 0x3c00);
        assert_eq!(f64_to_small(65520.0, 5, 10, Rnd::N), 0x7c00);
        assert_eq!(f64_to_small(1.0 + 1.0 / 2048.0, 5, 10, Rnd::N), 0x3c00); // tie to even
        assert_eq!(f64_to_small(1.0 + 3.0 / 2048.0, 5, 10, Rnd::N), 0x3c02);
        assert_eq!(f64_to_small(1.0, 8, 7, Rnd::N), 0x3f80);
        assert_eq!(f64_to_small(-3.0, 8, 7, Rnd::N), 0xc040);
    }

    #[test]
    fn f32_directed_rounding() {
        let x = 1.0f64 + 1e-10;
        assert_eq!(f64_to_f32(x, Rnd::P), f32::from_bits(1.0f32.to_bits() + 1));
        assert_eq!(f64_to_f32(x, Rnd::M), 1.0);
        assert_eq!(f64_to_f32(-x, Rnd::Z), -1.0);
        assert_eq!(f64_to_f32(-x, Rnd::M), -f32::from_bits(1.0f32.to_bits() + 1));
    }

    #[test]
    fn cvt_float_to_int_modes_and_saturation() {
        let v = (-2.5f32).to_bits() as u64;
        assert_eq!(
            cvt(CvtMode { d: Ty::S32, s: Ty::F32, rnd: Rnd::N, int_rnd: true, sat: false, ftz: false }, v)
                as u32 as i32,
            -2
        );
        assert_eq!(
            cvt(CvtMode { d: Ty::S32, s: Ty::F32, rnd: Rnd::Z, int_rnd: true, sat: false, ftz: false }, v)
                as u32 as i32,
            -2
        );
        assert_eq!(
            cvt(CvtMode { d: Ty::S32, s: Ty::F32, rnd: Rnd::M, int_rnd: true, sat: false, ftz: false }, v)
                as u32 as i32,
            -3
        );
        assert_eq!(
            cvt(CvtMode { d: Ty::U32, s: Ty::F32, rnd: Rnd::P, int_rnd: true, sat: false, ftz: false }, v),
            0
        );
        assert_eq!(
            cvt(
                CvtMode { d: Ty::S32, s: Ty::F32, rnd: Rnd::N, int_rnd: true, sat: false, ftz: false },
                (1e20f32).to_bits() as u64
            ),
            0x7fff_ffff
        );
        assert_eq!(
            cvt(
                CvtMode { d: Ty::S64, s: Ty::S32, rnd: Rnd::Default, int_rnd: false, sat: false, ftz: false },
                0xffff_fffe
            ),
            (-2i64) as u64
        );
        assert_eq!(
            cvt(
                CvtMode { d: Ty::U8, s: Ty::S32, rnd: Rnd::Default, int_rnd: false, sat: true, ftz: false },
                300
            ),
            255
        );
    }
}
