//! The decoded, compact instruction form the interpreter executes: registers are slot
//! indices, symbols are resolved to offsets, branch targets to instruction indices.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ty {
    B8,
    B16,
    B32,
    B64,
    U8,
    U16,
    U32,
    U64,
    S8,
    S16,
    S32,
    S64,
    F16,
    BF16,
    F32,
    F64,
    Pred,
}

impl Ty {
    pub fn parse(s: &str) -> Option<Ty> {
        Some(match s {
            "b8" => Ty::B8,
            "b16" => Ty::B16,
            "b32" => Ty::B32,
            "b64" => Ty::B64,
            "u8" => Ty::U8,
            "u16" => Ty::U16,
            "u32" => Ty::U32,
            "u64" => Ty::U64,
            "s8" => Ty::S8,
            "s16" => Ty::S16,
            "s32" => Ty::S32,
            "s64" => Ty::S64,
            "f16" => Ty::F16,
            "bf16" => Ty::BF16,
            "f32" => Ty::F32,
            "f64" => Ty::F64,
            "pred" => Ty::Pred,
            _ => return None,
        })
    }
    pub fn bits(self) -> u32 {
        match self {
            Ty::B8 | Ty::U8 | Ty::S8 | Ty::Pred => 8,
            Ty::B16 | Ty::U16 | Ty::S16 | Ty::F16 | Ty::BF16 => 16,
            Ty::B32 | Ty::U32 | Ty::S32 | Ty::F32 => 32,
            Ty::B64 | Ty::U64 | Ty::S64 | Ty::F64 => 64,
        }
    }
    pub fn bytes(self) -> usize {
        self.bits() as usize / 8
    }
    pub fn signed(self) -> bool {
        matches!(self, Ty::S8 | Ty::S16 | Ty::S32 | Ty::S64)
    }
    pub fn is_float(self) -> bool {
        matches!(self, Ty::F16 | Ty::BF16 | Ty::F32 | Ty::F64)
    }
    /// The value of a register read at this type: truncated, sign-extended if signed.
    #[inline(always)]
    pub fn ext(self, v: u64) -> u64 {
        match self.bits() {
            64 => v,
            b if self.signed() => (((v << (64 - b)) as i64) >> (64 - b)) as u64,
            b => v & ((1u64 << b) - 1),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sreg {
    Tid(u8),
    Ntid(u8),
    Ctaid(u8),
    Nctaid(u8),
    Laneid,
    Warpid,
    Nwarpid,
    LanemaskEq,
    LanemaskLt,
    LanemaskLe,
    LanemaskGt,
    LanemaskGe,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Opnd {
    Reg(u32),
    Imm(u64),
    Sreg(Sreg),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Space {
    Global,
    Shared,
    Local,
    Param,
    Generic,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Rnd {
    /// No rounding modifier given (the instruction's default).
    Default,
    N,
    Z,
    M,
    P,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IOp {
    Add,
    Sub,
    MulLo,
    MulHi,
    Min,
    Max,
    And,
    Or,
    Xor,
    Shl,
    Shr,
    Div,
    Rem,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IUn {
    Abs,
    Neg,
    Not,
    Cnot,
    Popc,
    Clz,
    Brev,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FOp {
    Add,
    Sub,
    Mul,
    Div,
    DivApprox,
    Min,
    Max,
    Fma,
    Copysign,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FUn {
    Abs,
    Neg,
    Sqrt,
    SqrtApprox,
    Rsqrt,
    Rcp,
    RcpApprox,
    Ex2,
    Lg2,
    Sin,
    Cos,
    Tanh,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Lo,
    Ls,
    Hi,
    Hs,
    Equ,
    Neu,
    Ltu,
    Leu,
    Gtu,
    Geu,
    Num,
    Nan,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BoolOp {
    And,
    Or,
    Xor,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AtomOp {
    Add,
    Min,
    Max,
    Exch,
    Cas,
    And,
    Or,
    Xor,
    Inc,
    Dec,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ShflMode {
    Up,
    Down,
    Bfly,
    Idx,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VoteMode {
    All,
    Any,
    Uni,
    Ballot,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TestOp {
    Finite,
    Infinite,
    Number,
    NotANumber,
    Normal,
    Subnormal,
}

/// A float arithmetic instruction's operation and modifiers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FloatMode {
    pub op: FOp,
    pub ty: Ty,
    pub rnd: Rnd,
    pub ftz: bool,
    pub sat: bool,
}

/// `cvt`'s types and modifiers; `int_rnd` marks `.rni/.rzi/.rmi/.rpi`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CvtMode {
    pub d: Ty,
    pub s: Ty,
    pub rnd: Rnd,
    pub int_rnd: bool,
    pub sat: bool,
    pub ftz: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    Mov(Ty),
    /// `mov.bN d, {a, b, ..}`: concatenates `n` parts of `bits` each, lowest first.
    Pack {
        n: u8,
        bits: u8,
    },
    /// `mov.bN {d0, d1, ..}, a`: splits.
    Unpack {
        n: u8,
        bits: u8,
    },
    Int {
        op: IOp,
        ty: Ty,
    },
    IntUn {
        op: IUn,
        ty: Ty,
    },
    /// `.wide` multiply: sources of type `ty`, destination twice as wide.
    MulWide(Ty),
    MadLo(Ty),
    MadHi(Ty),
    MadWide(Ty),
    Float(FloatMode),
    FloatUn {
        op: FUn,
        ty: Ty,
        ftz: bool,
    },
    Setp {
        cmp: Cmp,
        ty: Ty,
        comb: Option<BoolOp>,
        neg_c: bool,
        two: bool,
        ftz: bool,
    },
    Selp(Ty),
    Pred(BoolOp),
    Cvt(CvtMode),
    Cvta {
        to: bool,
        space: Space,
    },
    Shf {
        left: bool,
        clamp: bool,
    },
    Bfe(Ty),
    Bfi(Ty),
    Prmt,
    Lop3,
    Testp(TestOp, Ty),
    Ld {
        space: Space,
        ty: Ty,
        n: u8,
    },
    St {
        space: Space,
        ty: Ty,
        n: u8,
    },
    Atom {
        space: Space,
        op: AtomOp,
        ty: Ty,
        ret: bool,
    },
    Bra,
    Exit,
    /// `bar.sync`/`barrier.sync` 0; `aligned` (`bar.sync` is): every thread of the block
    /// must execute this same instruction.
    Bar {
        aligned: bool,
    },
    WarpSync,
    Shfl(ShflMode),
    Vote(VoteMode),
    Activemask,
    Nop,
}

pub const NO_GUARD: u32 = u32::MAX;

/// One decoded instruction. Sources in `a`, destinations in `d` (vectors use several),
/// the address of a memory access in `addr + off`, a branch's target in `target`.
#[derive(Clone, Copy, Debug)]
pub struct Inst {
    pub op: Op,
    pub guard: u32,
    pub guard_neg: bool,
    pub d: [u32; 4],
    pub a: [Opnd; 4],
    pub addr: Opnd,
    pub off: i64,
    pub target: u32,
    pub line: u32,
}
