//! Opcode text (`ld.global.v4.f32`, `setp.lt.and.s32`, ...) → `Op`: which instructions
//! and modifiers the interpreter supports. Anything else is an error naming the opcode.

use super::{Decoder, RET_LABEL};
use crate::inst::*;
use crate::parse::{InstText, Operand};
use crate::SimError;

impl Decoder<'_> {
    /// Decodes one instruction; returns a label to patch into its `target`.
    pub(super) fn inst(&mut self, it: &InstText) -> Result<Option<String>, SimError> {
        let parts: Vec<&str> = it.opcode.split('.').collect();
        let has = |m: &str| parts[1..].contains(&m);
        let tys: Vec<Ty> = parts[1..].iter().filter_map(|p| Ty::parse(p)).collect();
        let ty = tys.last().copied().unwrap_or(Ty::B32);
        let ops = &it.operands;
        let line = it.line;
        let unsupported = || self.err(line, format!("unsupported instruction `{}`", it.opcode));
        let rnd = if has("rn") {
            Rnd::N
        } else if has("rz") {
            Rnd::Z
        } else if has("rm") {
            Rnd::M
        } else if has("rp") {
            Rnd::P
        } else {
            Rnd::Default
        };
        let (ftz, sat) = (has("ftz"), has("sat"));
        let base = parts[0];
        let op = match base {
            "mov" => match (&ops.first(), &ops.get(1)) {
                (Some(Operand::Vector(v)), _) => {
                    Op::Unpack { n: v.len() as u8, bits: (ty.bits() / v.len() as u32) as u8 }
                }
                (_, Some(Operand::Vector(v))) => {
                    Op::Pack { n: v.len() as u8, bits: (ty.bits() / v.len() as u32) as u8 }
                }
                _ => Op::Mov(ty),
            },
            "add" | "sub" | "mul" | "div" | "rem" | "min" | "max" | "and" | "or" | "xor" | "shl" | "shr"
                if ty == Ty::Pred =>
            {
                match base {
                    "and" => Op::Pred(BoolOp::And),
                    "or" => Op::Pred(BoolOp::Or),
                    "xor" => Op::Pred(BoolOp::Xor),
                    _ => return Err(unsupported()),
                }
            }
            "add" | "sub" | "mul" | "div" | "min" | "max" | "fma" | "mad" | "copysign" if ty.is_float() => {
                let fop = match base {
                    "add" => FOp::Add,
                    "sub" => FOp::Sub,
                    "mul" => FOp::Mul,
                    "div" if has("approx") || has("full") => FOp::DivApprox,
                    "div" => FOp::Div,
                    "min" => FOp::Min,
                    "max" => FOp::Max,
                    "copysign" => FOp::Copysign,
                    _ => FOp::Fma,
                };
                if has("NaN") || has("xorsign") || has("abs") || parts.iter().any(|p| p.ends_with("x2")) {
                    return Err(unsupported());
                }
                Op::Float(FloatMode { op: fop, ty, rnd, ftz, sat })
            }
            "mul" | "mad" if has("wide") => {
                if base == "mul" {
                    Op::MulWide(ty)
                } else {
                    Op::MadWide(ty)
                }
            }
            "mad" if has("hi") => Op::MadHi(ty),
            "mad" => Op::MadLo(ty),
            "add" | "sub" | "mul" | "div" | "rem" | "min" | "max" | "and" | "or" | "xor" | "shl" | "shr" => {
                if sat || has("cc") || parts.iter().any(|p| p.ends_with("x2")) {
                    return Err(unsupported());
                }
                let iop = match base {
                    "add" => IOp::Add,
                    "sub" => IOp::Sub,
                    "mul" if has("hi") => IOp::MulHi,
                    "mul" => IOp::MulLo,
                    "div" => IOp::Div,
                    "rem" => IOp::Rem,
                    "min" => IOp::Min,
                    "max" => IOp::Max,
                    "and" => IOp::And,
                    "or" => IOp::Or,
                    "xor" => IOp::Xor,
                    "shl" => IOp::Shl,
                    _ => IOp::Shr,
                };
                Op::Int { op: iop, ty }
            }
            "abs" | "neg" if ty.is_float() => {
                Op::FloatUn { op: if base == "abs" { FUn::Abs } else { FUn::Neg }, ty, ftz }
            }
            "abs" | "neg" | "not" | "cnot" | "popc" | "clz" | "brev" => {
                let u = match base {
                    "abs" => IUn::Abs,
                    "neg" => IUn::Neg,
                    "not" => IUn::Not,
                    "cnot" => IUn::Cnot,
                    "popc" => IUn::Popc,
                    "clz" => IUn::Clz,
                    _ => IUn::Brev,
                };
                Op::IntUn { op: u, ty }
            }
            "sqrt" | "rsqrt" | "rcp" | "ex2" | "lg2" | "sin" | "cos" | "tanh" if ty.is_float() => {
                let approx = has("approx");
                let u = match base {
                    "sqrt" if approx => FUn::SqrtApprox,
                    "sqrt" => FUn::Sqrt,
                    "rsqrt" => FUn::Rsqrt,
                    "rcp" if approx => FUn::RcpApprox,
                    "rcp" => FUn::Rcp,
                    "ex2" => FUn::Ex2,
                    "lg2" => FUn::Lg2,
                    "sin" => FUn::Sin,
                    "cos" => FUn::Cos,
                    _ => FUn::Tanh,
                };
                Op::FloatUn { op: u, ty, ftz }
            }
            "setp" => {
                let cmp = cmp_of(parts.get(1).copied().unwrap_or("")).ok_or_else(unsupported)?;
                let comb = if has("and") {
                    Some(BoolOp::And)
                } else if has("or") {
                    Some(BoolOp::Or)
                } else if has("xor") {
                    Some(BoolOp::Xor)
                } else {
                    None
                };
                let two = ops.len() == if comb.is_some() { 5 } else { 4 };
                let neg_c =
                    comb.is_some() && matches!(ops.last(), Some(Operand::Name(n)) if n.starts_with('!'));
                Op::Setp { cmp, ty, comb, neg_c, two, ftz }
            }
            "selp" => Op::Selp(ty),
            "cvt" if tys.len() == 2 => {
                let int_rnd = parts.iter().any(|p| matches!(*p, "rni" | "rzi" | "rmi" | "rpi"));
                let rnd = match parts.iter().find(|p| matches!(**p, "rni" | "rzi" | "rmi" | "rpi")) {
                    Some(&"rni") => Rnd::N,
                    Some(&"rzi") => Rnd::Z,
                    Some(&"rmi") => Rnd::M,
                    Some(&"rpi") => Rnd::P,
                    _ => rnd,
                };
                if has("relu") || has("satfinite") {
                    return Err(unsupported());
                }
                Op::Cvt(CvtMode { d: tys[0], s: tys[1], rnd, int_rnd, sat, ftz })
            }
            "cvta" => {
                let space = space_of(&parts).ok_or_else(unsupported)?;
                Op::Cvta { to: has("to"), space }
            }
            "shf" => Op::Shf { left: has("l"), clamp: has("clamp") },
            "bfe" => Op::Bfe(ty),
            "bfi" => Op::Bfi(ty),
            "prmt" if parts.len() == 2 => Op::Prmt,
            "lop3" => Op::Lop3,
            "testp" => {
                let t = match parts.get(1).copied() {
                    Some("finite") => TestOp::Finite,
                    Some("infinite") => TestOp::Infinite,
                    Some("number") => TestOp::Number,
                    Some("notanumber") => TestOp::NotANumber,
                    Some("normal") => TestOp::Normal,
                    Some("subnormal") => TestOp::Subnormal,
                    _ => return Err(unsupported()),
                };
                Op::Testp(t, ty)
            }
            "ld" | "ldu" | "st" => {
                if has("const") || has("tex") {
                    return Err(unsupported());
                }
                let space = space_of(&parts).unwrap_or(Space::Generic);
                let n = if has("v4") {
                    4
                } else if has("v2") {
                    2
                } else {
                    1
                };
                if base == "st" {
                    Op::St { space, ty, n }
                } else {
                    Op::Ld { space, ty, n }
                }
            }
            "atom" | "red" => {
                let space = space_of(&parts).unwrap_or(Space::Generic);
                let aop = match parts.iter().find_map(|p| atom_of(p)) {
                    Some(a) => a,
                    None => return Err(unsupported()),
                };
                if parts.iter().any(|p| p.starts_with('v') && p.len() == 2) {
                    return Err(unsupported());
                }
                Op::Atom { space, op: aop, ty, ret: base == "atom" }
            }
            "bra" => Op::Bra,
            // Inside an inlined `.func`, `ret` continues after the call.
            "ret" if self.call_depth.len() > 1 => {
                self.push(Op::Bra, it)?;
                return Ok(Some(RET_LABEL.to_string()));
            }
            "ret" | "exit" => Op::Exit,
            "bar" | "barrier" if has("warp") => Op::WarpSync,
            // `bar.sync` is `barrier.sync.aligned` (PTX ISA, "bar, barrier").
            "bar" | "barrier" if ops.len() <= 1 && !has("arrive") && !has("red") => {
                Op::Bar { aligned: base == "bar" || has("aligned") }
            }
            "shfl" if has("sync") && ty.bits() == 32 => Op::Shfl(match () {
                _ if has("up") => ShflMode::Up,
                _ if has("down") => ShflMode::Down,
                _ if has("bfly") => ShflMode::Bfly,
                _ => ShflMode::Idx,
            }),
            "vote" if has("sync") => Op::Vote(match () {
                _ if has("all") => VoteMode::All,
                _ if has("any") => VoteMode::Any,
                _ if has("uni") => VoteMode::Uni,
                _ => VoteMode::Ballot,
            }),
            "activemask" => Op::Activemask,
            "membar" | "fence" => Op::Nop,
            "call" => {
                self.call(it)?;
                return Ok(None);
            }
            _ => return Err(unsupported()),
        };
        self.operands(op, it, ty)
    }
}

fn space_of(parts: &[&str]) -> Option<Space> {
    parts.iter().find_map(|p| match *p {
        "global" => Some(Space::Global),
        "shared" => Some(Space::Shared),
        "local" => Some(Space::Local),
        "param" => Some(Space::Param),
        _ => None,
    })
}

fn atom_of(p: &str) -> Option<AtomOp> {
    Some(match p {
        "add" => AtomOp::Add,
        "min" => AtomOp::Min,
        "max" => AtomOp::Max,
        "exch" => AtomOp::Exch,
        "cas" => AtomOp::Cas,
        "and" => AtomOp::And,
        "or" => AtomOp::Or,
        "xor" => AtomOp::Xor,
        "inc" => AtomOp::Inc,
        "dec" => AtomOp::Dec,
        _ => return None,
    })
}

fn cmp_of(s: &str) -> Option<Cmp> {
    Some(match s {
        "eq" => Cmp::Eq,
        "ne" => Cmp::Ne,
        "lt" => Cmp::Lt,
        "le" => Cmp::Le,
        "gt" => Cmp::Gt,
        "ge" => Cmp::Ge,
        "lo" => Cmp::Lo,
        "ls" => Cmp::Ls,
        "hi" => Cmp::Hi,
        "hs" => Cmp::Hs,
        "equ" => Cmp::Equ,
        "neu" => Cmp::Neu,
        "ltu" => Cmp::Ltu,
        "leu" => Cmp::Leu,
        "gtu" => Cmp::Gtu,
        "geu" => Cmp::Geu,
        "num" => Cmp::Num,
        "nan" => Cmp::Nan,
        _ => return None,
    })
}
