//! One block's state and the per-thread interpreter loop: a thread runs until it reaches
//! an instruction where threads meet (`bar.sync`, `shfl.sync`, `vote.sync`,
//! `bar.warp.sync`) or exits; `warp.rs` completes those meetings.

use crate::alu::*;
use crate::check::Shadow;
use crate::decode::Kernel;
use crate::float::{cvt, mask};
use crate::inst::*;
use crate::memory::{Accessor, BlockTag, Conflict, Global, Snapshot, LOCAL_WINDOW, SHARED_WINDOW};
use crate::stamp::{missing_sync, Access};
use crate::SimError;

/// What every block of a launch shares.
pub struct Launch<'a> {
    pub kernel: &'a Kernel,
    pub mem: &'a Snapshot,
    pub global: &'a Global,
    pub params: &'a [u8],
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_bytes: usize,
    /// This launch's number, for the owners of global words (`memory.rs`).
    pub number: u32,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum State {
    Ready,
    /// Waiting at the sync instruction its `pc` points to.
    Sync,
    Exited,
}

pub struct Block<'a> {
    pub l: &'a Launch<'a>,
    pub ctaid: [u32; 3],
    pub nthreads: usize,
    pub regs: Vec<u64>,
    pub local: Vec<u8>,
    pub shared: Vec<u8>,
    pub shadow: Shadow,
    pub pc: Vec<u32>,
    pub state: Vec<State>,
    pub hint: usize,
    pub count: u64,
    pub trace: Option<crate::trace::Tracer>,
}

enum Loc {
    Global(usize, usize),
    Shared(usize),
    Local(usize),
    Param(usize),
}

#[inline(always)]
pub fn rd(r: &[u64], o: Opnd, c: &Ctx) -> u64 {
    match o {
        Opnd::Reg(i) => r[i as usize],
        Opnd::Imm(v) => v,
        Opnd::Sreg(s) => c.sreg(s),
    }
}

pub struct Ctx {
    pub tid: [u32; 3],
    pub ntid: [u32; 3],
    pub ctaid: [u32; 3],
    pub nctaid: [u32; 3],
    pub flat: u32,
}

impl Ctx {
    fn sreg(&self, s: Sreg) -> u64 {
        let lane = self.flat % 32;
        (match s {
            Sreg::Tid(d) => self.tid[d as usize],
            Sreg::Ntid(d) => self.ntid[d as usize],
            Sreg::Ctaid(d) => self.ctaid[d as usize],
            Sreg::Nctaid(d) => self.nctaid[d as usize],
            Sreg::Laneid => lane,
            Sreg::Warpid => self.flat / 32,
            Sreg::Nwarpid => (self.ntid[0] * self.ntid[1] * self.ntid[2]).div_ceil(32),
            Sreg::LanemaskEq => 1 << lane,
            Sreg::LanemaskLt => (1u32 << lane) - 1,
            Sreg::LanemaskLe => ((1u64 << (lane + 1)) - 1) as u32,
            Sreg::LanemaskGt => !(((1u64 << (lane + 1)) - 1) as u32),
            Sreg::LanemaskGe => !((1u32 << lane) - 1),
        }) as u64
    }
}

impl<'a> Block<'a> {
    pub fn new(l: &'a Launch<'a>, ctaid: [u32; 3]) -> Block<'a> {
        let n = (l.block[0] * l.block[1] * l.block[2]) as usize;
        let k = l.kernel;
        Block {
            l,
            ctaid,
            nthreads: n,
            regs: vec![0; n * k.nregs],
            local: vec![0; n * k.local_bytes],
            shared: vec![0; l.shared_bytes],
            shadow: Shadow::new(l.shared_bytes),
            pc: vec![0; n],
            state: vec![State::Ready; n],
            hint: 0,
            count: 0,
            trace: None,
        }
    }

    pub fn ctx(&self, t: usize) -> Ctx {
        let b = self.l.block;
        let t32 = t as u32;
        Ctx {
            tid: [t32 % b[0], (t32 / b[0]) % b[1], t32 / (b[0] * b[1])],
            ntid: b,
            ctaid: self.ctaid,
            nctaid: self.l.grid,
            flat: t32,
        }
    }

    /// "kernel `k`: thread (x,y,z) of block (x,y,z): `opcode` at line L: "
    pub fn at(&self, t: usize, pc: usize) -> String {
        let c = self.ctx(t);
        let k = self.l.kernel;
        format!(
            "kernel `{}`: thread ({},{},{}) of block ({},{},{}): `{}` at line {}",
            k.name,
            c.tid[0],
            c.tid[1],
            c.tid[2],
            c.ctaid[0],
            c.ctaid[1],
            c.ctaid[2],
            k.opcodes[pc],
            k.insts[pc].line
        )
    }

    fn resolve(
        &mut self,
        t: usize,
        pc: usize,
        space: Space,
        addr: u64,
        size: usize,
        write: bool,
    ) -> Result<Loc, SimError> {
        let err = |b: &Self, m: String| SimError::new(format!("{}: {m}", b.at(t, pc)));
        let kind = if write { "store" } else { "load" };
        if !addr.is_multiple_of(size as u64) {
            return Err(err(self, format!("misaligned {size}-byte {kind} at address {addr:#x}")));
        }
        let space = match space {
            Space::Generic if (SHARED_WINDOW..SHARED_WINDOW + self.shared.len() as u64).contains(&addr) => {
                return self.resolve(t, pc, Space::Shared, addr - SHARED_WINDOW, size, write);
            }
            Space::Generic
                if (LOCAL_WINDOW..LOCAL_WINDOW + self.l.kernel.local_bytes as u64).contains(&addr) =>
            {
                return self.resolve(t, pc, Space::Local, addr - LOCAL_WINDOW, size, write);
            }
            Space::Generic => Space::Global,
            s => s,
        };
        let within = |len: usize| addr.checked_add(size as u64).is_some_and(|e| e <= len as u64);
        match space {
            Space::Global => match self.l.mem.lookup(addr, size, &mut self.hint) {
                Ok(i) => Ok(Loc::Global(i, (addr - self.l.mem.bufs[i].base) as usize)),
                Err(m) => Err(err(self, format!("out-of-bounds global {kind}: {m}"))),
            },
            Space::Shared if within(self.shared.len()) => Ok(Loc::Shared(addr as usize)),
            Space::Shared => Err(err(self, format!("out-of-bounds shared {kind} of {size} bytes at offset {addr:#x} (the block has {} bytes of shared memory)", self.shared.len()))),
            Space::Local if within(self.l.kernel.local_bytes) => Ok(Loc::Local(t * self.l.kernel.local_bytes + addr as usize)),
            Space::Local => Err(err(self, format!("out-of-bounds local {kind} at offset {addr:#x}"))),
            Space::Param if !write && within(self.l.params.len()) => Ok(Loc::Param(addr as usize)),
            _ => Err(err(self, format!("bad parameter {kind} at offset {addr:#x}"))),
        }
    }

    /// A plain global access checked against the words' stamps in this launch
    /// (`memory.rs`).
    fn claim(
        &self,
        t: usize,
        pc: usize,
        buf: usize,
        off: usize,
        size: usize,
        write: bool,
    ) -> Result<(), SimError> {
        let [gx, gy, _] = self.l.grid;
        let (gx, gy) = (gx as usize, gy as usize);
        let c = self.ctaid.map(|v| v as usize);
        let block = BlockTag::new(self.l.number, c[0] + gx * (c[1] + gy * c[2]));
        let b = &self.l.mem.bufs[buf];
        let access =
            Access { thread: t, epoch: self.shadow.epoch(), warp_epoch: self.shadow.warp_epoch(t / 32) };
        let by = Accessor { block, access };
        let coords = |tag: BlockTag| {
            let o = tag.block().unwrap_or(0);
            format!("({},{},{})", o % gx, o / gx % gy, o / (gx * gy))
        };
        b.claim(off, size, by, write).map_err(|conflict| {
            let what = if write { "writes" } else { "reads" };
            let whose = match conflict {
                Conflict::Block(other) => format!(
                    "which block {} wrote in this launch: blocks run in no order, so an output must have one \
                     owner and no block may read another's",
                    coords(other)
                ),
                Conflict::ReadBy(other) => format!(
                    "which {} read in this launch: blocks run in no order, so no block may write what \
                     another reads",
                    match other.block() {
                        Some(_) => format!("block {}", coords(other)),
                        None => "other blocks".to_string(),
                    }
                ),
                Conflict::Race(race) => match race.other() {
                    Some((o, did)) => format!(
                        "which thread {o} (warp {}) of this block {did} with no {} between",
                        o / 32,
                        missing_sync(t, o)
                    ),
                    None => {
                        "which threads of several warps of this block read with no barrier between".into()
                    }
                },
            };
            SimError::new(format!(
                "{}: {what} {size} bytes at {:#x} (buffer {:#x}), {whose}",
                self.at(t, pc),
                b.base + off as u64,
                b.base
            ))
        })
    }

    fn load(&mut self, t: usize, pc: usize, space: Space, addr: u64, size: usize) -> Result<u64, SimError> {
        Ok(match self.resolve(t, pc, space, addr, size, false)? {
            Loc::Global(i, off) => {
                self.claim(t, pc, i, off, size, false)?;
                self.l.mem.bufs[i].load(off, size)
            }
            Loc::Shared(off) => {
                self.shadow
                    .access(t, pc, off, size, false)
                    .map_err(|m| SimError::new(format!("{}: {m}", self.at(t, pc))))?;
                le_load(&self.shared[off..off + size])
            }
            Loc::Local(off) => le_load(&self.local[off..off + size]),
            Loc::Param(off) => le_load(&self.l.params[off..off + size]),
        })
    }

    fn store(
        &mut self,
        t: usize,
        pc: usize,
        space: Space,
        addr: u64,
        size: usize,
        v: u64,
    ) -> Result<(), SimError> {
        match self.resolve(t, pc, space, addr, size, true)? {
            Loc::Global(i, off) => {
                self.claim(t, pc, i, off, size, true)?;
                self.l.mem.bufs[i].store(off, size, v)
            }
            Loc::Shared(off) => {
                self.shadow
                    .access(t, pc, off, size, true)
                    .map_err(|m| SimError::new(format!("{}: {m}", self.at(t, pc))))?;
                le_store(&mut self.shared[off..off + size], v);
            }
            Loc::Local(off) => le_store(&mut self.local[off..off + size], v),
            Loc::Param(_) => unreachable!("resolve rejects parameter stores"),
        }
        Ok(())
    }

    /// `atom`/`red` at instruction `pc` on `addr` with operands `b` (and `c` for cas).
    fn atomic(&mut self, t: usize, pc: usize, addr: u64, b: u64, c: u64) -> Result<u64, SimError> {
        let Op::Atom { space, op, ty, .. } = self.l.kernel.insts[pc].op else {
            unreachable!("atomic on a non-atom")
        };
        let size = ty.bytes();
        Ok(match self.resolve(t, pc, space, addr, size, true)? {
            Loc::Global(i, off) => {
                let buf = &self.l.mem.bufs[i];
                if size == 4 {
                    let w = &buf.words[off / 4];
                    let r = w.fetch_update(
                        std::sync::atomic::Ordering::Relaxed,
                        std::sync::atomic::Ordering::Relaxed,
                        |o| Some(atom_new(op, ty, o as u64, b, c) as u32),
                    );
                    r.unwrap_or_else(|o| o) as u64
                } else {
                    let _g = self.l.global.lock64(addr);
                    let old = buf.load(off, size);
                    buf.store(off, size, atom_new(op, ty, old, b, c));
                    old
                }
            }
            Loc::Shared(off) => {
                self.shadow.atomic(off, size);
                let old = le_load(&self.shared[off..off + size]);
                let new = atom_new(op, ty, old, b, c);
                le_store(&mut self.shared[off..off + size], new);
                old
            }
            Loc::Local(off) => {
                let old = le_load(&self.local[off..off + size]);
                let new = atom_new(op, ty, old, b, c);
                le_store(&mut self.local[off..off + size], new);
                old
            }
            _ => {
                return Err(SimError::new(format!(
                    "{}: atomic on this state space is not supported",
                    self.at(t, pc)
                )))
            }
        })
    }

    /// Runs thread `t` from its pc until it waits at a sync instruction or exits.
    pub fn run_thread(&mut self, t: usize) -> Result<(), SimError> {
        let k = self.l.kernel;
        let insts = &k.insts[..];
        let nr = k.nregs;
        let c = self.ctx(t);
        let mut all = std::mem::take(&mut self.regs);
        let res = self.run_regs(t, &mut all[t * nr..(t + 1) * nr], insts, &c);
        self.regs = all;
        res
    }

    fn run_regs(&mut self, t: usize, r: &mut [u64], insts: &[Inst], c: &Ctx) -> Result<(), SimError> {
        let mut pc = self.pc[t] as usize;
        let mut n = 0u64;
        let res = loop {
            let Some(i) = insts.get(pc) else {
                self.state[t] = State::Exited;
                break Ok(());
            };
            n += 1;
            if let Some(tr) = &mut self.trace {
                tr.paths[t].push(pc as u32);
            }
            if i.guard != NO_GUARD && (r[i.guard as usize] != 0) == i.guard_neg {
                pc += 1;
                continue;
            }
            let a0 = rd(r, i.a[0], c);
            let d0 = i.d[0] as usize;
            match i.op {
                Op::Mov(ty) => r[d0] = mask(ty, a0),
                Op::Pack { n: parts, bits } => {
                    let m = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
                    let mut v = 0;
                    for k in 0..parts as usize {
                        v |= (rd(r, i.a[k], c) & m) << (k * bits as usize);
                    }
                    r[d0] = v;
                }
                Op::Unpack { n: parts, bits } => {
                    let m = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
                    for k in 0..parts as usize {
                        r[i.d[k] as usize] = (a0 >> (k * bits as usize)) & m;
                    }
                }
                Op::Int { op, ty } => r[d0] = int_op(op, ty, ty.ext(a0), ty.ext(rd(r, i.a[1], c))),
                Op::IntUn { op, ty } => r[d0] = int_un(op, ty, a0),
                Op::MulWide(ty) => r[d0] = mul_wide(ty, ty.ext(a0), ty.ext(rd(r, i.a[1], c))),
                Op::MadLo(ty) => {
                    let p = int_op(IOp::MulLo, ty, ty.ext(a0), ty.ext(rd(r, i.a[1], c)));
                    r[d0] = mask(ty, p.wrapping_add(rd(r, i.a[2], c)));
                }
                Op::MadHi(ty) => {
                    let p = int_op(IOp::MulHi, ty, ty.ext(a0), ty.ext(rd(r, i.a[1], c)));
                    r[d0] = mask(ty, p.wrapping_add(rd(r, i.a[2], c)));
                }
                Op::MadWide(ty) => {
                    let p = mul_wide(ty, ty.ext(a0), ty.ext(rd(r, i.a[1], c)));
                    r[d0] = mask(wide(ty), p.wrapping_add(rd(r, i.a[2], c)));
                }
                Op::Float(m) => {
                    r[d0] = float_op(m, a0, rd(r, i.a[1], c), rd(r, i.a[2], c));
                }
                Op::FloatUn { op, ty, ftz } => r[d0] = float_un(op, ty, ftz, a0),
                Op::Setp { cmp, ty, comb, neg_c, two, ftz } => {
                    let p = compare(cmp, ty, ftz, a0, rd(r, i.a[1], c));
                    let (p, q) = match comb {
                        Some(op) => {
                            let cv = (rd(r, i.a[2], c) != 0) ^ neg_c;
                            (bool_op(op, p, cv), bool_op(op, !p, cv))
                        }
                        None => (p, !p),
                    };
                    r[d0] = p as u64;
                    if two {
                        r[i.d[1] as usize] = q as u64;
                    }
                }
                Op::Selp(ty) => r[d0] = mask(ty, if rd(r, i.a[2], c) != 0 { a0 } else { rd(r, i.a[1], c) }),
                Op::Pred(op) => r[d0] = bool_op(op, a0 != 0, rd(r, i.a[1], c) != 0) as u64,
                Op::Cvt(m) => r[d0] = cvt(m, a0),
                Op::Cvta { to, space } => {
                    let w = match space {
                        Space::Shared => SHARED_WINDOW,
                        Space::Local => LOCAL_WINDOW,
                        _ => 0,
                    };
                    r[d0] = if to { a0.wrapping_sub(w) } else { a0.wrapping_add(w) };
                }
                Op::Shf { left, clamp } => r[d0] = shf(left, clamp, a0, rd(r, i.a[1], c), rd(r, i.a[2], c)),
                Op::Bfe(ty) => r[d0] = bfe(ty, a0, rd(r, i.a[1], c), rd(r, i.a[2], c)),
                Op::Bfi(ty) => r[d0] = bfi(ty, a0, rd(r, i.a[1], c), rd(r, i.a[2], c), rd(r, i.a[3], c)),
                Op::Prmt => r[d0] = prmt(a0, rd(r, i.a[1], c), rd(r, i.a[2], c)),
                Op::Lop3 => r[d0] = lop3(a0, rd(r, i.a[1], c), rd(r, i.a[2], c), rd(r, i.a[3], c)),
                Op::Testp(op, ty) => r[d0] = testp(op, ty, a0) as u64,
                Op::Ld { space, ty, n: nv } => {
                    let size = ty.bytes();
                    let base = rd(r, i.addr, c).wrapping_add(i.off as u64);
                    if nv > 1 && !base.is_multiple_of((size * nv as usize) as u64) {
                        break Err(SimError::new(format!(
                            "{}: misaligned vector load at {base:#x}",
                            self.at(t, pc)
                        )));
                    }
                    for k in 0..nv as usize {
                        match self.load(t, pc, space, base + (k * size) as u64, size) {
                            Ok(v) => r[i.d[k] as usize] = ty.ext(v),
                            Err(e) => return self.fail(t, pc, n, e),
                        }
                    }
                }
                Op::St { space, ty, n: nv } => {
                    let size = ty.bytes();
                    let base = rd(r, i.addr, c).wrapping_add(i.off as u64);
                    if nv > 1 && !base.is_multiple_of((size * nv as usize) as u64) {
                        break Err(SimError::new(format!(
                            "{}: misaligned vector store at {base:#x}",
                            self.at(t, pc)
                        )));
                    }
                    for k in 0..nv as usize {
                        let v = mask(ty, rd(r, i.a[k], c));
                        if let Err(e) = self.store(t, pc, space, base + (k * size) as u64, size, v) {
                            return self.fail(t, pc, n, e);
                        }
                    }
                }
                Op::Atom { ty, ret, .. } => {
                    let addr = rd(r, i.addr, c).wrapping_add(i.off as u64);
                    match self.atomic(t, pc, addr, a0, rd(r, i.a[1], c)) {
                        Ok(old) if ret => r[d0] = ty.ext(old),
                        Ok(_) => {}
                        Err(e) => return self.fail(t, pc, n, e),
                    }
                }
                Op::Bra => {
                    pc = i.target as usize;
                    continue;
                }
                Op::Exit => {
                    self.state[t] = State::Exited;
                    break Ok(());
                }
                Op::Nop => {}
                Op::Bar { .. } | Op::WarpSync | Op::Shfl(_) | Op::Vote(_) | Op::Activemask => {
                    // Counted when the meeting completes.
                    n -= 1;
                    self.state[t] = State::Sync;
                    break Ok(());
                }
            }
            pc += 1;
        };
        r[0] = 0;
        self.pc[t] = pc as u32;
        self.count += n;
        res
    }

    fn fail(&mut self, t: usize, pc: usize, n: u64, e: SimError) -> Result<(), SimError> {
        self.pc[t] = pc as u32;
        self.count += n;
        Err(e)
    }
}

/// The little-endian value of 1, 2, 4 or 8 bytes (the access sizes PTX has), zero-extended.
/// Matching the fixed sizes compiles to single loads, where a copy of `b.len()` bytes was a
/// `memcpy` call on every shared, local and parameter load.
fn le_load(b: &[u8]) -> u64 {
    match *b {
        [b0] => b0 as u64,
        [b0, b1] => u16::from_le_bytes([b0, b1]) as u64,
        [b0, b1, b2, b3] => u32::from_le_bytes([b0, b1, b2, b3]) as u64,
        [b0, b1, b2, b3, b4, b5, b6, b7] => u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
        _ => {
            let mut x = [0u8; 8];
            x[..b.len()].copy_from_slice(b);
            u64::from_le_bytes(x)
        }
    }
}

/// Stores the low `b.len()` bytes of `v` (1, 2, 4 or 8) little-endian, as [`le_load`] reads them.
fn le_store(b: &mut [u8], v: u64) {
    match b.len() {
        1 => b[0] = v as u8,
        2 => b.copy_from_slice(&(v as u16).to_le_bytes()),
        4 => b.copy_from_slice(&(v as u32).to_le_bytes()),
        8 => b.copy_from_slice(&v.to_le_bytes()),
        n => b.copy_from_slice(&v.to_le_bytes()[..n]),
    }
}
