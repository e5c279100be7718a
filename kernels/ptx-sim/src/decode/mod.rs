//! Parsed functions → `Kernel`s of compact instructions. Registers become slot indices
//! (each `{ }` scope may declare its own), symbols become offsets into shared, local or
//! parameter memory, labels become instruction indices, and `.func` calls are inlined
//! (their `ret` a branch to the call's end). An instruction outside the supported set is
//! an error naming it and its line.

use std::collections::HashMap;

use crate::inst::*;
use crate::parse::{Function, InstText, Module, Operand, Stmt, VarDecl};
use crate::SimError;

mod opcodes;

/// A decoded `.entry`.
#[derive(Debug)]
pub struct Kernel {
    pub name: String,
    /// Each `.param`, in order, where it lies in the parameter buffer.
    pub params: Vec<Param>,
    pub param_bytes: usize,
    pub insts: Vec<Inst>,
    /// Each instruction's opcode as written, for messages.
    pub opcodes: Vec<String>,
    pub nregs: usize,
    pub static_shared: usize,
    /// Where `.extern .shared` (dynamic) memory starts.
    pub dyn_shared_off: usize,
    pub local_bytes: usize,
}

/// One `.param` of an entry.
#[derive(Debug)]
pub struct Param {
    /// Byte offset in the parameter buffer.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// The declared type (`.u64`, `.f32`, …); of the elements for an array (a struct
    /// passed by value, `.b8 s[16]`).
    pub ty: String,
    /// Array length (1 for a scalar).
    pub len: u32,
}

#[derive(Clone, Copy)]
enum Name {
    Reg(u32),
    Shared(u64),
    Local(u64),
    Param(u64),
}

pub(super) struct Decoder<'m> {
    module: &'m Module,
    kernel: &'m str,
    insts: Vec<Inst>,
    opcodes: Vec<String>,
    scopes: Vec<HashMap<String, Name>>,
    nregs: u32,
    shared: usize,
    local: usize,
    call_depth: Vec<String>,
}

fn align_up(x: usize, a: usize) -> usize {
    x.div_ceil(a.max(1)) * a.max(1)
}

pub fn decode_module(m: &Module) -> Result<Vec<Kernel>, SimError> {
    let mut out = Vec::new();
    for f in m.functions.iter().filter(|f| f.is_entry) {
        out.push(decode_entry(m, f)?);
    }
    Ok(out)
}

fn decode_entry(m: &Module, f: &Function) -> Result<Kernel, SimError> {
    let Some(body) = &f.body else {
        return Err(SimError::new(format!("line {}: entry `{}` has no body", f.line, f.name)));
    };
    let mut d = Decoder {
        module: m,
        kernel: &f.name,
        insts: Vec::new(),
        opcodes: Vec::new(),
        scopes: vec![HashMap::new()],
        nregs: 1, // slot 0 is the sink `_`
        shared: 0,
        local: 0,
        call_depth: vec![f.name.clone()],
    };
    let (mut params, mut off) = (Vec::new(), 0usize);
    for p in &f.params {
        off = align_up(off, p.align as usize);
        params.push(Param { offset: off, size: p.bytes(), ty: p.ty.clone(), len: p.len });
        d.scopes[0].insert(p.name.clone(), Name::Param(off as u64));
        off += p.bytes();
    }
    let mut dyn_align = 16;
    for (v, ext) in &m.shared {
        if *ext {
            dyn_align = dyn_align.max(v.align as usize);
        } else {
            d.declare_var(v)?;
        }
    }
    let body = body.clone();
    d.emit_body(&body)?;
    let dyn_shared_off = align_up(d.shared, dyn_align);
    for (v, ext) in &m.shared {
        if *ext {
            d.scopes[0].insert(v.name.clone(), Name::Shared(dyn_shared_off as u64));
        }
    }
    // Dynamic shared symbols are resolved after the body, so patch the placeholders.
    let insts = std::mem::take(&mut d.insts);
    let insts = insts
        .into_iter()
        .map(|mut i| {
            let fix = |o: &mut Opnd| {
                if *o == Opnd::Imm(DYN_SHARED_MARK) {
                    *o = Opnd::Imm(dyn_shared_off as u64);
                }
            };
            i.a.iter_mut().for_each(fix);
            fix(&mut i.addr);
            i
        })
        .collect();
    Ok(Kernel {
        name: f.name.clone(),
        params,
        param_bytes: off,
        insts,
        opcodes: d.opcodes,
        nregs: d.nregs as usize,
        static_shared: d.shared,
        dyn_shared_off,
        local_bytes: d.local,
    })
}

/// A placeholder for the dynamic shared base before the static layout is known.
const DYN_SHARED_MARK: u64 = 0xD1A5_0000_0000_0000;

fn special(name: &str) -> Option<Sreg> {
    let dim = |s: &str| match s {
        "x" => Some(0u8),
        "y" => Some(1),
        "z" => Some(2),
        _ => None,
    };
    let (base, comp) = name.split_once('.').map_or((name, None), |(b, c)| (b, Some(c)));
    Some(match (base, comp) {
        ("%tid", Some(c)) => Sreg::Tid(dim(c)?),
        ("%ntid", Some(c)) => Sreg::Ntid(dim(c)?),
        ("%ctaid", Some(c)) => Sreg::Ctaid(dim(c)?),
        ("%nctaid", Some(c)) => Sreg::Nctaid(dim(c)?),
        ("%laneid", None) => Sreg::Laneid,
        ("%warpid", None) => Sreg::Warpid,
        ("%nwarpid", None) => Sreg::Nwarpid,
        ("%lanemask_eq", None) => Sreg::LanemaskEq,
        ("%lanemask_lt", None) => Sreg::LanemaskLt,
        ("%lanemask_le", None) => Sreg::LanemaskLe,
        ("%lanemask_gt", None) => Sreg::LanemaskGt,
        ("%lanemask_ge", None) => Sreg::LanemaskGe,
        _ => return None,
    })
}

impl Decoder<'_> {
    fn err(&self, line: u32, msg: String) -> SimError {
        SimError::new(format!("line {line}: kernel `{}`: {msg}", self.kernel))
    }

    fn lookup(&self, name: &str) -> Option<Name> {
        self.scopes.iter().rev().find_map(|s| s.get(name).copied())
    }

    fn declare_var(&mut self, v: &VarDecl) -> Result<Name, SimError> {
        let n = match v.space.as_str() {
            ".shared" => {
                self.shared = align_up(self.shared, v.align as usize);
                let n = Name::Shared(self.shared as u64);
                self.shared += v.bytes();
                n
            }
            // `.local` variables and call-site `.param`s live in per-thread local memory.
            _ => {
                self.local = align_up(self.local, v.align.max(1) as usize);
                let n = Name::Local(self.local as u64);
                self.local += v.bytes().max(1);
                n
            }
        };
        self.scopes.last_mut().expect("scope").insert(v.name.clone(), n);
        Ok(n)
    }

    fn emit_body(&mut self, body: &[Stmt]) -> Result<(), SimError> {
        let mut labels: HashMap<String, u32> = HashMap::new();
        let mut fixups: Vec<(usize, String, u32)> = Vec::new();
        let depth = self.scopes.len();
        for s in body {
            match s {
                Stmt::Open => self.scopes.push(HashMap::new()),
                Stmt::Close => {
                    if self.scopes.len() > depth {
                        self.scopes.pop();
                    }
                }
                Stmt::Reg { names, .. } => {
                    for n in names {
                        let slot = self.nregs;
                        self.nregs += 1;
                        self.scopes.last_mut().expect("scope").insert(n.clone(), Name::Reg(slot));
                    }
                }
                Stmt::Var(v) => {
                    if v.len == 0 {
                        return Err(self.err(v.line, format!("unsized `{}` inside a function", v.name)));
                    }
                    self.declare_var(v)?;
                }
                Stmt::Label(l) => {
                    labels.insert(l.clone(), self.insts.len() as u32);
                }
                Stmt::Inst(it) => {
                    if let Some(label) = self.inst(it)? {
                        fixups.push((self.insts.len() - 1, label, it.line));
                    }
                }
            }
        }
        self.scopes.truncate(depth);
        let end = self.insts.len() as u32;
        for (i, l, line) in fixups {
            let t = if l == RET_LABEL { Some(end) } else { labels.get(&l).copied() };
            self.insts[i].target = t.ok_or_else(|| self.err(line, format!("unknown label `{l}`")))?;
        }
        Ok(())
    }

    fn reg(&self, name: &str, line: u32) -> Result<u32, SimError> {
        match self.lookup(name) {
            Some(Name::Reg(r)) => Ok(r),
            _ => Err(self.err(line, format!("unknown register `{name}`"))),
        }
    }

    fn dst(&self, o: &Operand, line: u32) -> Result<u32, SimError> {
        match o {
            Operand::Sink => Ok(0),
            Operand::Name(n) => self.reg(n, line),
            o => Err(self.err(line, format!("bad destination {o:?}"))),
        }
    }

    /// A source operand; float immediates are converted to the instruction's type.
    fn src(&self, o: &Operand, ty: Ty, line: u32) -> Result<Opnd, SimError> {
        Ok(match o {
            Operand::Name(n) => {
                if let Some(s) = special(n) {
                    return Ok(Opnd::Sreg(s));
                }
                match self.lookup(n) {
                    Some(Name::Reg(r)) => Opnd::Reg(r),
                    Some(Name::Shared(o)) => Opnd::Imm(o),
                    Some(Name::Local(o)) | Some(Name::Param(o)) => Opnd::Imm(o),
                    None if self.is_dyn_shared(n) => Opnd::Imm(DYN_SHARED_MARK),
                    None if n.starts_with('%') => {
                        return Err(self.err(line, format!("unknown register `{n}`")))
                    }
                    None => return Err(self.err(line, format!("unknown name `{n}`"))),
                }
            }
            Operand::Int(v) => Opnd::Imm(*v as u64),
            Operand::F32(b) if ty == Ty::F64 => Opnd::Imm((f32::from_bits(*b) as f64).to_bits()),
            Operand::F32(b) => Opnd::Imm(*b as u64),
            Operand::F64(b) if ty == Ty::F32 => Opnd::Imm((f64::from_bits(*b) as f32).to_bits() as u64),
            Operand::F64(b) => Opnd::Imm(*b),
            o => return Err(self.err(line, format!("bad source operand {o:?}"))),
        })
    }

    fn is_dyn_shared(&self, n: &str) -> bool {
        self.module.shared.iter().any(|(v, ext)| *ext && v.name == n)
    }

    /// An address operand: (base, offset, whether the base named a local symbol).
    fn addr(&self, o: &Operand, line: u32) -> Result<(Opnd, i64, Option<Name>), SimError> {
        match o {
            Operand::Addr(None, off) => Ok((Opnd::Imm(0), *off, None)),
            Operand::Addr(Some(n), off) => match self.lookup(n) {
                Some(Name::Reg(r)) => Ok((Opnd::Reg(r), *off, None)),
                Some(s @ (Name::Shared(o) | Name::Local(o) | Name::Param(o))) => {
                    Ok((Opnd::Imm(o), *off, Some(s)))
                }
                None if self.is_dyn_shared(n) => Ok((Opnd::Imm(DYN_SHARED_MARK), *off, None)),
                None => Err(self.err(line, format!("unknown name `{n}` in address"))),
            },
            o => Err(self.err(line, format!("expected an address, found {o:?}"))),
        }
    }

    fn push(&mut self, op: Op, it: &InstText) -> Result<&mut Inst, SimError> {
        let (guard, guard_neg) = match &it.guard {
            Some((p, neg)) => (self.reg(p, it.line)?, *neg),
            None => (NO_GUARD, false),
        };
        self.opcodes.push(it.opcode.clone());
        self.insts.push(Inst {
            op,
            guard,
            guard_neg,
            d: [0; 4],
            a: [Opnd::Imm(0); 4],
            addr: Opnd::Imm(0),
            off: 0,
            target: 0,
            line: it.line,
        });
        Ok(self.insts.last_mut().expect("pushed"))
    }

    /// Fills the operands of `op` (already decoded) and pushes it.
    fn operands(&mut self, op: Op, it: &InstText, ty: Ty) -> Result<Option<String>, SimError> {
        let (ops, line) = (&it.operands, it.line);
        let kname = self.kernel;
        let bad = || {
            SimError::new(format!("line {line}: kernel `{kname}`: `{}`: wrong operands {:?}", it.opcode, ops))
        };
        let mut inst = *self.push(op, it)?;
        self.insts.pop();
        self.opcodes.pop();
        let mut label = None;
        match op {
            Op::Bra => match ops.first() {
                Some(Operand::Name(l)) => label = Some(l.clone()),
                _ => return Err(bad()),
            },
            Op::Exit | Op::Nop => {}
            Op::Bar { .. } => {
                if let Some(o) = ops.first() {
                    if !matches!(o, Operand::Int(0)) {
                        return Err(self.err(line, "only barrier 0 is supported".into()));
                    }
                }
            }
            Op::WarpSync => inst.a[0] = self.src(ops.first().ok_or_else(bad)?, Ty::B32, line)?,
            Op::Ld { space, n, ty, .. } | Op::St { space, n, ty, .. } => {
                let is_ld = matches!(op, Op::Ld { .. });
                let (vals, at) =
                    if is_ld { (&ops[0], &ops.get(1)) } else { (ops.get(1).ok_or_else(bad)?, &ops.first()) };
                let (b, off, sym) = self.addr(at.ok_or_else(bad)?, line)?;
                inst.addr = b;
                inst.off = off;
                if space == Space::Param && matches!(sym, Some(Name::Local(_))) {
                    let s = Space::Local;
                    inst.op = if is_ld { Op::Ld { space: s, ty, n } } else { Op::St { space: s, ty, n } };
                }
                let names: Vec<Operand> = match vals {
                    Operand::Vector(v) => v
                        .iter()
                        .map(|s| if s == "_" { Operand::Sink } else { Operand::Name(s.clone()) })
                        .collect(),
                    o => vec![o.clone()],
                };
                if names.len() != n as usize {
                    return Err(bad());
                }
                for (k, o) in names.iter().enumerate() {
                    if is_ld {
                        inst.d[k] = self.dst(o, line)?;
                    } else {
                        inst.a[k] = self.src(o, ty, line)?;
                    }
                }
            }
            Op::Atom { ret, ty, .. } => {
                let s = if ret { 1 } else { 0 };
                if ret {
                    inst.d[0] = self.dst(&ops[0], line)?;
                }
                let (b, off, _) = self.addr(ops.get(s).ok_or_else(bad)?, line)?;
                inst.addr = b;
                inst.off = off;
                for (k, o) in ops[s + 1..].iter().enumerate() {
                    inst.a[k] = self.src(o, ty, line)?;
                }
            }
            Op::Unpack { n, .. } => {
                let Operand::Vector(v) = &ops[0] else { return Err(bad()) };
                for (k, s) in v.iter().enumerate().take(n as usize) {
                    inst.d[k] = if s == "_" { 0 } else { self.reg(s, line)? };
                }
                inst.a[0] = self.src(ops.get(1).ok_or_else(bad)?, ty, line)?;
            }
            Op::Pack { n, .. } => {
                inst.d[0] = self.dst(&ops[0], line)?;
                let Some(Operand::Vector(v)) = ops.get(1) else { return Err(bad()) };
                for (k, s) in v.iter().enumerate().take(n as usize) {
                    inst.a[k] = match s.parse::<u64>() {
                        Ok(imm) => Opnd::Imm(imm),
                        Err(_) => Opnd::Reg(self.reg(s, line)?),
                    };
                }
            }
            Op::Setp { two, comb, .. } => {
                let nd = if two { 2 } else { 1 };
                for (k, o) in ops.iter().take(nd).enumerate() {
                    inst.d[k] = self.dst(o, line)?;
                }
                inst.a[0] = self.src(ops.get(nd).ok_or_else(bad)?, ty, line)?;
                inst.a[1] = self.src(ops.get(nd + 1).ok_or_else(bad)?, ty, line)?;
                if comb.is_some() {
                    let Some(Operand::Name(c)) = ops.get(nd + 2) else { return Err(bad()) };
                    inst.a[2] = Opnd::Reg(self.reg(c.trim_start_matches('!'), line)?);
                }
            }
            Op::Shfl(_) => {
                // shfl.sync.mode.b32 d[|p], a, b, c, membermask
                let two = ops.len() == 6;
                let nd = if two { 2 } else { 1 };
                inst.d[0] = self.dst(&ops[0], line)?;
                inst.d[1] = if two { self.dst(&ops[1], line)? } else { 0 };
                if ops.len() != nd + 4 {
                    return Err(bad());
                }
                for k in 0..4 {
                    inst.a[k] = self.src(&ops[nd + k], Ty::B32, line)?;
                }
            }
            _ => {
                if ops.is_empty() || ops.len() > 5 {
                    return Err(bad());
                }
                inst.d[0] = self.dst(&ops[0], line)?;
                let sty = match op {
                    Op::Cvt(m) => m.s,
                    Op::Selp(t) => t,
                    _ => ty,
                };
                for (k, o) in ops[1..].iter().enumerate() {
                    let t = if matches!(op, Op::Selp(_)) && k == 2 { Ty::Pred } else { sty };
                    if let Operand::Name(n) = o {
                        if n.starts_with('!') {
                            return Err(self.err(line, format!("negated source `{n}` is not supported here")));
                        }
                    }
                    inst.a[k] = self.src(o, t, line)?;
                }
            }
        }
        self.insts.push(inst);
        self.opcodes.push(it.opcode.clone());
        Ok(label)
    }

    /// Inlines a `.func` call: the callee's params and return values alias the caller's
    /// call-site `.param` variables; its registers and labels are its own.
    fn call(&mut self, it: &InstText) -> Result<(), SimError> {
        let line = it.line;
        let mut rets = Vec::new();
        let mut args = Vec::new();
        let mut callee = None;
        for o in &it.operands {
            match (o, callee.is_some()) {
                (Operand::List(l), false) => rets = l.clone(),
                (Operand::List(l), true) => args = l.clone(),
                (Operand::Name(n), false) => callee = Some(n.clone()),
                _ => return Err(self.err(line, format!("bad call operands {:?}", it.operands))),
            }
        }
        let name = callee.ok_or_else(|| self.err(line, "call without a target".into()))?;
        let f =
            self.module.functions.iter().find(|f| f.name == name && f.body.is_some()).ok_or_else(|| {
                self.err(line, format!("call to `{name}`, which has no body in this module"))
            })?;
        if self.call_depth.contains(&name) {
            return Err(self.err(line, format!("recursive call to `{name}` is not supported")));
        }
        if it.guard.is_some() || f.rets.len() != rets.len() || f.params.len() != args.len() {
            return Err(self.err(line, format!("call to `{name}`: guard or argument count not supported")));
        }
        let mut frame = HashMap::new();
        for (decl, actual) in f.rets.iter().zip(&rets).chain(f.params.iter().zip(&args)) {
            let n = self
                .lookup(actual)
                .ok_or_else(|| self.err(line, format!("unknown call argument `{actual}`")))?;
            frame.insert(decl.name.clone(), n);
        }
        let saved = std::mem::replace(&mut self.scopes, vec![frame]);
        self.call_depth.push(name);
        let body = f.body.clone().expect("checked");
        let r = self.emit_body(&body);
        self.call_depth.pop();
        self.scopes = saved;
        r
    }
}

pub(super) const RET_LABEL: &str = "\0ret";
