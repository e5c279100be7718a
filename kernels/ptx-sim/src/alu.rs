//! The arithmetic of one instruction on register values (u64 bit patterns), with PTX
//! semantics: integer widths and signedness, `.hi/.wide`, float rounding, `.ftz`, `.sat`,
//! comparisons, bit manipulation and atomic read-modify-write.

use crate::approx;
use crate::float::{f64_to_f32, from_f64, ftz32, mask, round32, saturate, to_f64};
use crate::inst::*;

/// Integer binary op on operands already extended to the type (`Ty::ext`).
#[inline(always)]
pub fn int_op(op: IOp, ty: Ty, a: u64, b: u64) -> u64 {
    let bits = ty.bits();
    let s = ty.signed();
    let r = match op {
        IOp::Add => a.wrapping_add(b),
        IOp::Sub => a.wrapping_sub(b),
        IOp::MulLo => a.wrapping_mul(b),
        IOp::MulHi => mul_hi(ty, a, b),
        IOp::Min if s => (a as i64).min(b as i64) as u64,
        IOp::Min => a.min(b),
        IOp::Max if s => (a as i64).max(b as i64) as u64,
        IOp::Max => a.max(b),
        IOp::And => a & b,
        IOp::Or => a | b,
        IOp::Xor => a ^ b,
        IOp::Shl => {
            let n = b & 0xffff_ffff;
            if n >= bits as u64 {
                0
            } else {
                a << n
            }
        }
        IOp::Shr => {
            let n = (b & 0xffff_ffff).min(bits as u64);
            if s {
                ((a as i64) >> n.min(63)) as u64
            } else if n >= 64 {
                0
            } else {
                mask(ty, a) >> n
            }
        }
        IOp::Div if b == 0 => u64::MAX,
        IOp::Div if s => (a as i64).wrapping_div(b as i64) as u64,
        IOp::Div => a / b,
        IOp::Rem if b == 0 => a,
        IOp::Rem if s => (a as i64).wrapping_rem(b as i64) as u64,
        IOp::Rem => a % b,
    };
    mask(ty, r)
}

fn mul_hi(ty: Ty, a: u64, b: u64) -> u64 {
    let bits = ty.bits();
    if bits == 64 {
        if ty.signed() {
            ((a as i64 as i128 * b as i64 as i128) >> 64) as u64
        } else {
            ((a as u128 * b as u128) >> 64) as u64
        }
    } else if ty.signed() {
        ((a as i64).wrapping_mul(b as i64) >> bits) as u64
    } else {
        a.wrapping_mul(b) >> bits
    }
}

/// `mul.wide`: the full product of two `ty` values, twice as wide.
#[inline(always)]
pub fn mul_wide(ty: Ty, a: u64, b: u64) -> u64 {
    if ty.signed() {
        (a as i64).wrapping_mul(b as i64) as u64
    } else {
        a.wrapping_mul(b)
    }
}

pub fn wide(ty: Ty) -> Ty {
    match ty {
        Ty::S16 => Ty::S32,
        Ty::U16 => Ty::U32,
        Ty::S32 => Ty::S64,
        _ => Ty::U64,
    }
}

pub fn int_un(op: IUn, ty: Ty, a: u64) -> u64 {
    let bits = ty.bits();
    if ty == Ty::Pred {
        return (a == 0) as u64;
    }
    match op {
        IUn::Abs => mask(ty, (a as i64).wrapping_abs() as u64),
        IUn::Neg => mask(ty, a.wrapping_neg()),
        IUn::Not => mask(ty, !a),
        IUn::Cnot => (mask(ty, a) == 0) as u64,
        IUn::Popc => mask(ty, a).count_ones() as u64,
        IUn::Clz => (mask(ty, a).leading_zeros() - (64 - bits)) as u64,
        IUn::Brev => mask(ty, a).reverse_bits() >> (64 - bits),
    }
}

/// Float binary/ternary op (`c` only for fma/mad).
pub fn float_op(m: FloatMode, a: u64, b: u64, c: u64) -> u64 {
    let FloatMode { op, ty, rnd, ftz, sat } = m;
    let near = matches!(rnd, Rnd::Default | Rnd::N);
    if ty == Ty::F32 {
        let (mut x, mut y, mut z) =
            (f32::from_bits(a as u32), f32::from_bits(b as u32), f32::from_bits(c as u32));
        if ftz {
            x = ftz32(x as f64) as f32;
            y = ftz32(y as f64) as f32;
            z = ftz32(z as f64) as f32;
        }
        let r: u64 = match op {
            FOp::Add if near => (x + y).to_bits() as u64,
            FOp::Sub if near => (x - y).to_bits() as u64,
            FOp::Mul if near => (x * y).to_bits() as u64,
            FOp::Fma if near => x.mul_add(y, z).to_bits() as u64,
            FOp::Div | FOp::DivApprox if near => (x / y).to_bits() as u64,
            // Directed rounding: the exact result in f64 (exact for + - ×; fma and ÷
            // round twice, within one f32 ulp of the directed result), rounded once more.
            FOp::Add => round32(x as f64 + y as f64, rnd, false),
            FOp::Sub => round32(x as f64 - y as f64, rnd, false),
            FOp::Mul => round32(x as f64 * y as f64, rnd, false),
            FOp::Fma => round32((x as f64).mul_add(y as f64, z as f64), rnd, false),
            FOp::Div | FOp::DivApprox => round32(x as f64 / y as f64, rnd, false),
            FOp::Min => x.min(y).to_bits() as u64,
            FOp::Max => x.max(y).to_bits() as u64,
            FOp::Copysign => y.copysign(x).to_bits() as u64,
        };
        let mut f = f32::from_bits(r as u32);
        if ftz {
            f = ftz32(f as f64) as f32;
        }
        if sat {
            f = saturate(f as f64) as f32;
        }
        return f.to_bits() as u64;
    }
    let (x, y, z) = (to_f64(ty, a), to_f64(ty, b), to_f64(ty, c));
    if ty == Ty::F64 {
        let r = match op {
            FOp::Add => directed(x + y, two_sum(x, y), rnd),
            FOp::Sub => directed(x - y, two_sum(x, -y), rnd),
            FOp::Mul => directed(x * y, x.mul_add(y, -(x * y)), rnd),
            FOp::Fma => x.mul_add(y, z),
            FOp::Div | FOp::DivApprox => x / y,
            FOp::Min => x.min(y),
            FOp::Max => x.max(y),
            FOp::Copysign => y.copysign(x),
        };
        let r = if sat { saturate(r) } else { r };
        return r.to_bits();
    }
    // f16/bf16: computed exactly enough in f64 (a product or sum of two 11-bit values is
    // exact), rounded once to the format.
    let r = match op {
        FOp::Add => x + y,
        FOp::Sub => x - y,
        FOp::Mul => x * y,
        FOp::Fma => x.mul_add(y, z),
        FOp::Div | FOp::DivApprox => x / y,
        FOp::Min => x.min(y),
        FOp::Max => x.max(y),
        FOp::Copysign => y.copysign(x),
    };
    from_f64(ty, if sat { saturate(r) } else { r }, rnd)
}

fn two_sum(a: f64, b: f64) -> f64 {
    let s = a + b;
    let bb = s - a;
    (a - (s - bb)) + (b - bb)
}

/// Moves a round-to-nearest f64 result `r` with rounding error `err` (exact − r) one ulp
/// in the direction the mode asks for.
fn directed(r: f64, err: f64, rnd: Rnd) -> f64 {
    let up = |r: f64| r.next_up();
    let down = |r: f64| r.next_down();
    match rnd {
        Rnd::P if err > 0.0 => up(r),
        Rnd::M if err < 0.0 => down(r),
        Rnd::Z if err < 0.0 && r > 0.0 => down(r),
        Rnd::Z if err > 0.0 && r < 0.0 => up(r),
        _ => r,
    }
}

/// Unary float ops. The approximate ones that the engine's kernels use err as far as their
/// documented bounds allow (`approx.rs`); the others are computed in f64 and rounded.
pub fn float_un(op: FUn, ty: Ty, ftz: bool, a: u64) -> u64 {
    if let FUn::Abs | FUn::Neg = op {
        let sign = 1u64 << (ty.bits() - 1);
        let mut v = if op == FUn::Abs { a & !sign } else { a ^ sign };
        if ftz && ty == Ty::F32 {
            v = (ftz32(f32::from_bits(v as u32) as f64) as f32).to_bits() as u64;
        }
        return mask(ty, v);
    }
    let mut x = to_f64(ty, a);
    if ftz && ty == Ty::F32 {
        x = ftz32(x);
    }
    if ty == Ty::F32 {
        let xf = x as f32;
        match op {
            FUn::Ex2 => return approx::ex2_f32(xf, ftz).to_bits() as u64,
            FUn::RcpApprox => return approx::rcp_f32(xf, ftz).to_bits() as u64,
            _ => {}
        }
        let r = match op {
            FUn::Sqrt | FUn::SqrtApprox => xf.sqrt() as f64,
            FUn::Rcp => (1.0 / xf) as f64,
            _ => un_f64(op, x),
        };
        return round32(r, Rnd::N, ftz);
    }
    if ty == Ty::F64 {
        if op == FUn::RcpApprox {
            return approx::rcp_ftz_f64(a); // `.ftz` is the only form for f64
        }
        let r = match op {
            FUn::Sqrt | FUn::SqrtApprox => x.sqrt(),
            FUn::Rcp | FUn::RcpApprox => 1.0 / x,
            _ => un_f64(op, x),
        };
        return r.to_bits();
    }
    from_f64(ty, un_f64(op, x), Rnd::N)
}

fn un_f64(op: FUn, x: f64) -> f64 {
    match op {
        FUn::Sqrt | FUn::SqrtApprox => x.sqrt(),
        FUn::Rsqrt => 1.0 / x.sqrt(),
        FUn::Rcp | FUn::RcpApprox => 1.0 / x,
        FUn::Ex2 => x.exp2(),
        FUn::Lg2 => x.log2(),
        FUn::Sin => x.sin(),
        FUn::Cos => x.cos(),
        FUn::Tanh => x.tanh(),
        FUn::Abs => x.abs(),
        FUn::Neg => -x,
    }
}

pub fn compare(cmp: Cmp, ty: Ty, ftz: bool, a: u64, b: u64) -> bool {
    if ty.is_float() {
        let (mut x, mut y) = (to_f64(ty, a), to_f64(ty, b));
        if ftz && ty == Ty::F32 {
            x = ftz32(x);
            y = ftz32(y);
        }
        let nan = x.is_nan() || y.is_nan();
        return match cmp {
            Cmp::Eq => x == y,
            Cmp::Ne => !nan && x != y,
            Cmp::Lt | Cmp::Lo => x < y,
            Cmp::Le | Cmp::Ls => x <= y,
            Cmp::Gt | Cmp::Hi => x > y,
            Cmp::Ge | Cmp::Hs => x >= y,
            Cmp::Equ => nan || x == y,
            Cmp::Neu => nan || x != y,
            Cmp::Ltu => nan || x < y,
            Cmp::Leu => nan || x <= y,
            Cmp::Gtu => nan || x > y,
            Cmp::Geu => nan || x >= y,
            Cmp::Num => !nan,
            Cmp::Nan => nan,
        };
    }
    let (a, b) = (ty.ext(a), ty.ext(b));
    let (sa, sb) = (a as i64, b as i64);
    let signed = ty.signed();
    match cmp {
        Cmp::Eq | Cmp::Equ => a == b,
        Cmp::Ne | Cmp::Neu => a != b,
        Cmp::Lt | Cmp::Ltu if signed => sa < sb,
        Cmp::Le | Cmp::Leu if signed => sa <= sb,
        Cmp::Gt | Cmp::Gtu if signed => sa > sb,
        Cmp::Ge | Cmp::Geu if signed => sa >= sb,
        Cmp::Lt | Cmp::Ltu | Cmp::Lo => a < b,
        Cmp::Le | Cmp::Leu | Cmp::Ls => a <= b,
        Cmp::Gt | Cmp::Gtu | Cmp::Hi => a > b,
        Cmp::Ge | Cmp::Geu | Cmp::Hs => a >= b,
        Cmp::Num => true,
        Cmp::Nan => false,
    }
}

pub fn bool_op(op: BoolOp, a: bool, b: bool) -> bool {
    match op {
        BoolOp::And => a && b,
        BoolOp::Or => a || b,
        BoolOp::Xor => a ^ b,
    }
}

pub fn testp(t: TestOp, ty: Ty, a: u64) -> bool {
    let x = to_f64(ty, a);
    let sub = match ty {
        Ty::F32 => (f32::from_bits(a as u32)).is_subnormal(),
        Ty::F64 => x.is_subnormal(),
        _ => x != 0.0 && x.abs() < (2.0f64).powi(-14),
    };
    match t {
        TestOp::Finite => x.is_finite(),
        TestOp::Infinite => x.is_infinite(),
        TestOp::Number => !x.is_nan(),
        TestOp::NotANumber => x.is_nan(),
        TestOp::Normal => x.is_finite() && x != 0.0 && !sub,
        TestOp::Subnormal => sub,
    }
}

/// `shf.{l,r}.{wrap,clamp}.b32 d, a, b, c`: a funnel shift of `b:a` by `c`.
pub fn shf(left: bool, clamp: bool, a: u64, b: u64, c: u64) -> u64 {
    let n = if clamp { (c as u32).min(32) } else { c as u32 & 31 } as u64;
    let v = (b & 0xffff_ffff) << 32 | (a & 0xffff_ffff);
    if left {
        ((v << n) >> 32) & 0xffff_ffff
    } else {
        (v >> n) & 0xffff_ffff
    }
}

pub fn bfe(ty: Ty, a: u64, pos: u64, len: u64) -> u64 {
    let bits = ty.bits() as u64;
    let (pos, len) = (pos & 0xff, len & 0xff);
    let a = mask(ty, a);
    let sbit = if ty.signed() && len > 0 { (a >> (pos + len - 1).min(bits - 1)) & 1 } else { 0 };
    let mut d = 0u64;
    for i in 0..bits {
        let bit = if i < len && pos + i < bits { (a >> (pos + i)) & 1 } else { sbit };
        d |= bit << i;
    }
    d
}

pub fn bfi(ty: Ty, a: u64, b: u64, pos: u64, len: u64) -> u64 {
    let bits = ty.bits() as u64;
    let (pos, len) = (pos & 0xff, len & 0xff);
    let mut d = mask(ty, b);
    for i in 0..len {
        if pos + i >= bits {
            break;
        }
        d = (d & !(1 << (pos + i))) | (((a >> i) & 1) << (pos + i));
    }
    d
}

/// `prmt.b32 d, a, b, c` (default mode): picks bytes of `{b, a}` by `c`'s nibbles.
pub fn prmt(a: u64, b: u64, c: u64) -> u64 {
    let bytes = ((b & 0xffff_ffff) << 32) | (a & 0xffff_ffff);
    let mut d = 0u64;
    for i in 0..4 {
        let sel = (c >> (4 * i)) & 0xf;
        let byte = (bytes >> ((sel & 7) * 8)) & 0xff;
        let byte = if sel & 8 != 0 {
            if byte & 0x80 != 0 {
                0xff
            } else {
                0
            }
        } else {
            byte
        };
        d |= byte << (8 * i);
    }
    d
}

pub fn lop3(a: u64, b: u64, c: u64, lut: u64) -> u64 {
    let mut r = 0u64;
    for k in 0..8 {
        if (lut >> k) & 1 != 0 {
            let x = if k & 4 != 0 { a } else { !a };
            let y = if k & 2 != 0 { b } else { !b };
            let z = if k & 1 != 0 { c } else { !c };
            r |= x & y & z;
        }
    }
    r & 0xffff_ffff
}

/// The new value of an atomic on `old` (`b`, and `c` for cas).
pub fn atom_new(op: AtomOp, ty: Ty, old: u64, b: u64, c: u64) -> u64 {
    let m = |v| mask(ty, v);
    if ty.is_float() {
        let (x, y) = (to_f64(ty, old), to_f64(ty, b));
        let r = match op {
            AtomOp::Add => x + y,
            AtomOp::Min => x.min(y),
            AtomOp::Max => x.max(y),
            AtomOp::Exch => return b,
            _ => return old,
        };
        return if ty == Ty::F32 { f64_to_f32(r, Rnd::N).to_bits() as u64 } else { from_f64(ty, r, Rnd::N) };
    }
    let (o, v) = (ty.ext(old), ty.ext(b));
    m(match op {
        AtomOp::Add => o.wrapping_add(v),
        AtomOp::Min | AtomOp::Max => int_op(if op == AtomOp::Min { IOp::Min } else { IOp::Max }, ty, o, v),
        AtomOp::Exch => v,
        AtomOp::Cas => {
            if m(o) == m(v) {
                c
            } else {
                o
            }
        }
        AtomOp::And => o & v,
        AtomOp::Or => o | v,
        AtomOp::Xor => o ^ v,
        AtomOp::Inc => {
            if m(o) >= m(v) {
                0
            } else {
                o + 1
            }
        }
        AtomOp::Dec => {
            if m(o) == 0 || m(o) > m(v) {
                v
            } else {
                o - 1
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_semantics() {
        assert_eq!(int_op(IOp::MulHi, Ty::U32, 0xffff_ffff, 0xffff_ffff), 0xffff_fffe);
        assert_eq!(int_op(IOp::MulHi, Ty::S32, Ty::S32.ext(0xffff_ffff), 2), 0xffff_ffff);
        assert_eq!(int_op(IOp::Shr, Ty::S32, Ty::S32.ext(0x8000_0000), 40), 0xffff_ffff);
        assert_eq!(int_op(IOp::Shl, Ty::B32, 1, 32), 0);
        assert_eq!(int_op(IOp::Div, Ty::S32, Ty::S32.ext(-7i32 as u32 as u64), 2), (-3i32) as u32 as u64);
        assert_eq!(int_op(IOp::Rem, Ty::S32, Ty::S32.ext(-7i32 as u32 as u64), 2), (-1i32) as u32 as u64);
        assert_eq!(int_un(IUn::Clz, Ty::B32, 1), 31);
        assert_eq!(int_un(IUn::Brev, Ty::B32, 1), 0x8000_0000);
        assert_eq!(bfe(Ty::S32, 0xf0, 4, 4), 0xffff_ffff);
        assert_eq!(bfe(Ty::U32, 0xf0, 4, 4), 0xf);
        assert_eq!(bfi(Ty::B32, 0x3, 0xff00, 0, 4), 0xff03);
        assert_eq!(prmt(0x4433_2211, 0x8877_6655, 0x0123), 0x1122_3344);
        assert_eq!(shf(true, false, 0x8000_0000, 0x1, 1), 0x3);
        assert_eq!(lop3(0xf0, 0xcc, 0xaa, 0x96), 0xf0 ^ 0xcc ^ 0xaa);
    }

    #[test]
    fn fma_is_fused() {
        let (a, b, c) = (1.0f32 + f32::EPSILON, 1.0f32 - f32::EPSILON, -1.0f32);
        let r = float_op(
            FloatMode { op: FOp::Fma, ty: Ty::F32, rnd: Rnd::N, ftz: false, sat: false },
            a.to_bits() as u64,
            b.to_bits() as u64,
            c.to_bits() as u64,
        );
        assert_eq!(f32::from_bits(r as u32), a.mul_add(b, c));
        assert_ne!(f32::from_bits(r as u32), a * b + c);
    }

    #[test]
    fn copysign_takes_the_sign_of_the_first_operand() {
        let r = float_op(
            FloatMode { op: FOp::Copysign, ty: Ty::F32, rnd: Rnd::Default, ftz: false, sat: false },
            (-1.0f32).to_bits() as u64,
            2.0f32.to_bits() as u64,
            0,
        );
        assert_eq!(f32::from_bits(r as u32), -2.0);
    }
}
