//! Scheduling one block: every ready thread runs until it meets others; `activemask`
//! waits until the rest of its warp has stopped and returns the lanes that reached it; a warp-level
//! meeting (`shfl.sync`, `vote.sync`, `bar.warp.sync`) completes when every thread its
//! member mask names waits at the same instruction with the same mask; a barrier
//! completes when every live thread of the block waits at one (for the aligned `bar.sync`
//! every thread, at the same instruction). A mask that names an
//! exited thread, a barrier some threads exited without reaching, or threads waiting
//! for each other at different meetings is an error naming kernel, block, instruction
//! and threads.

use crate::exec::{rd, Block, State};
use crate::inst::*;
use crate::SimError;

impl Block<'_> {
    pub fn run(&mut self) -> Result<(), SimError> {
        let nwarps = self.nthreads.div_ceil(32);
        loop {
            let mut progress = false;
            for w in 0..nwarps {
                for t in w * 32..((w + 1) * 32).min(self.nthreads) {
                    if self.state[t] == State::Ready {
                        self.run_thread(t)?;
                        progress = true;
                    }
                }
                if self.trace.is_some() {
                    self.trace_warp(w);
                }
                progress |= self.meet_warp(w)?;
            }
            if !progress {
                if self.state.iter().all(|s| *s == State::Exited) {
                    return self.check_unwritten();
                }
                self.barrier_or_deadlock()?;
            }
        }
    }

    /// An error if some thread read shared memory that no thread had written (`check.rs`).
    fn check_unwritten(&mut self) -> Result<(), SimError> {
        match self.shadow.take_unwritten() {
            Some(u) => Err(SimError::new(format!("{}: {}", self.at(u.thread, u.pc), u.message()))),
            None => Ok(()),
        }
    }

    fn block_name(&self) -> String {
        let (k, c) = (&self.l.kernel.name, self.ctaid);
        format!("kernel `{k}`: block ({},{},{})", c[0], c[1], c[2])
    }

    fn inst_name(&self, pc: usize) -> String {
        let k = self.l.kernel;
        format!("`{}` at line {}", k.opcodes[pc], k.insts[pc].line)
    }

    fn mask_of(&self, t: usize) -> u32 {
        let i = &self.l.kernel.insts[self.pc[t] as usize];
        let o = match i.op {
            Op::Shfl(_) => i.a[3],
            Op::Vote(_) => i.a[1],
            _ => i.a[0],
        };
        let nr = self.l.kernel.nregs;
        rd(&self.regs[t * nr..(t + 1) * nr], o, &self.ctx(t)) as u32
    }

    /// Completes the warp-level meetings of warp `w` whose threads have all arrived.
    fn meet_warp(&mut self, w: usize) -> Result<bool, SimError> {
        let (lo, hi) = (w * 32, ((w + 1) * 32).min(self.nthreads));
        let insts = &self.l.kernel.insts;
        let mut progress = false;
        for t in lo..hi {
            if self.state[t] != State::Sync || matches!(insts[self.pc[t] as usize].op, Op::Bar { .. }) {
                continue;
            }
            let pc = self.pc[t] as usize;
            if insts[pc].op == Op::Activemask {
                // The threads of the warp converged here: every other live thread has
                // stopped (at a meeting) or exited, so the group is those at this pc.
                let lanes: Vec<usize> = (lo..hi)
                    .filter(|&u| self.state[u] == State::Sync && self.pc[u] as usize == pc)
                    .map(|u| u - lo)
                    .collect();
                if self.trace.is_some() {
                    self.trace_meeting(&format!("warp {w}: lanes"), pc, &ranges(&lanes));
                }
                self.collective(pc, lo, &lanes);
                progress = true;
                continue;
            }
            let mask = self.mask_of(t);
            if mask & (1 << (t - lo)) == 0 {
                return Err(SimError::new(format!(
                    "{}, warp {w}: {}: lane {} executes it with member mask {mask:#010x}, which does not include itself",
                    self.block_name(),
                    self.inst_name(pc),
                    t - lo
                )));
            }
            let lanes: Vec<usize> = (0..32).filter(|l| mask >> l & 1 != 0).collect();
            let missing: Vec<usize> = lanes.iter().copied().filter(|l| lo + l >= hi).collect();
            if !missing.is_empty() {
                return Err(SimError::new(format!(
                    "{}, warp {w}: {}: member mask {mask:#010x} names lanes {} that do not exist (the block has {} threads)",
                    self.block_name(),
                    self.inst_name(pc),
                    ranges(&missing),
                    self.nthreads
                )));
            }
            let exited: Vec<usize> =
                lanes.iter().copied().filter(|l| self.state[lo + l] == State::Exited).collect();
            if !exited.is_empty() {
                return Err(SimError::new(format!(
                    "{}, warp {w}: {}: member mask {mask:#010x} names lanes {} which exited without reaching it",
                    self.block_name(),
                    self.inst_name(pc),
                    ranges(&exited)
                )));
            }
            let ready = lanes.iter().all(|l| {
                self.state[lo + l] == State::Sync
                    && self.pc[lo + l] as usize == pc
                    && self.mask_of(lo + l) == mask
            });
            if ready {
                if self.trace.is_some() {
                    self.trace_meeting(&format!("warp {w}: lanes"), pc, &ranges(&lanes));
                }
                self.collective(pc, lo, &lanes);
                progress = true;
            }
        }
        Ok(progress)
    }

    /// Executes a completed warp meeting for threads `lo + lanes`.
    fn collective(&mut self, pc: usize, lo: usize, lanes: &[usize]) {
        let i = self.l.kernel.insts[pc];
        let nr = self.l.kernel.nregs;
        let read = |b: &Self, t: usize, o: Opnd| rd(&b.regs[t * nr..(t + 1) * nr], o, &b.ctx(t));
        let mut out: Vec<(usize, u64, u64)> = Vec::with_capacity(lanes.len());
        match i.op {
            Op::Shfl(mode) => {
                for &l in lanes {
                    let t = lo + l;
                    let (b, c) = (read(self, t, i.a[1]) as i64 & 31, read(self, t, i.a[2]) as i64);
                    let seg = (c >> 8) & 31;
                    let cval = c & 31;
                    let max_lane = (l as i64 & seg) | (cval & !seg);
                    let min_lane = l as i64 & seg;
                    let (j, ok) = match mode {
                        ShflMode::Up => (l as i64 - b, l as i64 - b >= max_lane),
                        ShflMode::Down => (l as i64 + b, l as i64 + b <= max_lane),
                        ShflMode::Bfly => (l as i64 ^ b, (l as i64 ^ b) <= max_lane),
                        ShflMode::Idx => {
                            let j = min_lane | (b & !seg);
                            (j, j <= max_lane)
                        }
                    };
                    let j = if ok { j as usize } else { l };
                    let src = (lo + j).min(self.nthreads - 1);
                    out.push((t, read(self, src, i.a[0]) & 0xffff_ffff, ok as u64));
                }
            }
            Op::Vote(mode) => {
                let preds: Vec<bool> = lanes.iter().map(|&l| read(self, lo + l, i.a[0]) != 0).collect();
                let ballot = lanes.iter().zip(&preds).filter(|(_, p)| **p).fold(0u64, |m, (l, _)| m | 1 << l);
                let v = match mode {
                    VoteMode::Ballot => ballot,
                    VoteMode::All => preds.iter().all(|p| *p) as u64,
                    VoteMode::Any => preds.iter().any(|p| *p) as u64,
                    VoteMode::Uni => (preds.iter().all(|p| *p) || preds.iter().all(|p| !*p)) as u64,
                };
                out.extend(lanes.iter().map(|&l| (lo + l, v, 0)));
            }
            Op::Activemask => {
                let m = lanes.iter().fold(0u64, |m, l| m | 1 << l);
                out.extend(lanes.iter().map(|&l| (lo + l, m, 0)));
            }
            _ => out.extend(lanes.iter().map(|&l| (lo + l, 0, 0))),
        }
        if i.op == Op::WarpSync {
            // __syncwarp() orders the warp's shared-memory accesses (`check.rs`)
            self.shadow.warp_sync(lo / 32);
        }
        for (t, v, p) in out {
            if !matches!(i.op, Op::WarpSync) {
                self.regs[t * nr + i.d[0] as usize] = v;
                if matches!(i.op, Op::Shfl(_)) {
                    self.regs[t * nr + i.d[1] as usize] = p;
                }
                self.regs[t * nr] = 0;
            }
            self.pc[t] += 1;
            self.state[t] = State::Ready;
            self.count += 1;
        }
    }

    /// Nothing can run: either every live thread waits at a barrier (complete it, or fail
    /// if the barrier is aligned and some threads skipped it) or the block is stuck.
    fn barrier_or_deadlock(&mut self) -> Result<(), SimError> {
        let insts = &self.l.kernel.insts;
        let live: Vec<usize> = (0..self.nthreads).filter(|&t| self.state[t] != State::Exited).collect();
        let at_bar = live.iter().all(|&t| {
            self.state[t] == State::Sync && matches!(insts[self.pc[t] as usize].op, Op::Bar { .. })
        });
        if at_bar {
            // An aligned barrier (`bar.sync`, what `__syncthreads()` compiles to) must be
            // executed by every thread of the block at this same instruction; otherwise
            // the PTX ISA leaves the behaviour undefined, so it is an error here. A
            // non-aligned `barrier.sync` waits for the threads that have not exited.
            let aligned = live.iter().find(|&&t| insts[self.pc[t] as usize].op == Op::Bar { aligned: true });
            let exited: Vec<usize> = (0..self.nthreads).filter(|&t| self.state[t] == State::Exited).collect();
            if let Some(&a) = aligned {
                if !exited.is_empty() {
                    return Err(SimError::new(format!(
                        "{}: {}: threads {} wait at this barrier, but threads {} exited without reaching it",
                        self.block_name(),
                        self.inst_name(self.pc[a] as usize),
                        ranges(&live),
                        ranges(&exited)
                    )));
                }
                let elsewhere: Vec<usize> =
                    live.iter().copied().filter(|&t| self.pc[t] != self.pc[a]).collect();
                if !elsewhere.is_empty() {
                    return Err(SimError::new(format!(
                        "{}: {}: an aligned barrier must be reached by the whole block at one instruction, but threads {} wait at {}",
                        self.block_name(),
                        self.inst_name(self.pc[a] as usize),
                        ranges(&elsewhere),
                        self.inst_name(self.pc[elsewhere[0]] as usize)
                    )));
                }
            }
            for &t in &live {
                self.pc[t] += 1;
                self.state[t] = State::Ready;
                self.count += 1;
            }
            self.check_unwritten()?;
            self.shadow.barrier();
            if self.trace.is_some() {
                let what = format!("block ({},{},{}): threads", self.ctaid[0], self.ctaid[1], self.ctaid[2]);
                self.trace_meeting(&what, self.pc[live[0]] as usize - 1, &ranges(&live));
                self.trace_shared();
            }
            return Ok(());
        }
        // Group the waiting threads by instruction for the message.
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        for &t in &live {
            let pc = self.pc[t] as usize;
            match groups.iter_mut().find(|g| g.0 == pc) {
                Some(g) => g.1.push(t),
                None => groups.push((pc, vec![t])),
            }
        }
        let waits: Vec<String> = groups
            .iter()
            .map(|(pc, ts)| format!("threads {} wait at {}", ranges(ts), self.inst_name(*pc)))
            .collect();
        Err(SimError::new(format!(
            "{}: deadlock: no thread can proceed: {}",
            self.block_name(),
            waits.join("; ")
        )))
    }
}

/// "0-15, 17, 19-20"
pub fn ranges(v: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if i == j { v[i].to_string() } else { format!("{}-{}", v[i], v[j]) });
        i = j + 1;
    }
    out.join(", ")
}
