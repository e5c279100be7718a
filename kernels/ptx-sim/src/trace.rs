//! A readable trace of a launch, for people learning how a GPU runs a kernel: per warp,
//! the instructions each group of lanes ran between meetings (lanes that took different
//! paths are shown apart: divergence), the meetings themselves, and the shared memory
//! after each barrier. Only for small launches: `SimGpu::launch_traced`.

use std::fmt::Write;

use crate::exec::{Block, State};
use crate::warp::ranges;

/// Per-thread instructions executed since the warp's last report, and the text so far.
pub struct Tracer {
    pub paths: Vec<Vec<u32>>,
    pub out: String,
    /// The module's source lines, to print each instruction as written.
    pub source: std::sync::Arc<Vec<String>>,
}

impl Block<'_> {
    /// Reports what warp `w`'s lanes ran since its last report.
    pub fn trace_warp(&mut self, w: usize) {
        let Some(mut tr) = self.trace.take() else { return };
        let (lo, hi) = (w * 32, ((w + 1) * 32).min(self.nthreads));
        let mut groups: Vec<(Vec<u32>, Vec<usize>)> = Vec::new();
        for t in lo..hi {
            let p = std::mem::take(&mut tr.paths[t]);
            if p.is_empty() {
                continue;
            }
            match groups.iter_mut().find(|g| g.0 == p) {
                Some(g) => g.1.push(t - lo),
                None => groups.push((p, vec![t - lo])),
            }
        }
        if groups.len() > 1 {
            let _ = writeln!(tr.out, "warp {w}: lanes took {} different paths (divergence)", groups.len());
        }
        for (path, lanes) in &groups {
            let threads: Vec<usize> = lanes.iter().map(|l| lo + l).collect();
            let _ = writeln!(tr.out, "warp {w}, lanes {} (threads {}):", ranges(lanes), ranges(&threads));
            for &pc in path {
                let line = self.l.kernel.insts[pc as usize].line;
                let text = tr.source.get(line as usize - 1).map_or("", |s| s.trim());
                let _ = writeln!(tr.out, "    {line:>5}  {text}");
            }
            let t = lo + lanes[0];
            let end = match self.state[t] {
                State::Exited => "exited".to_string(),
                _ => {
                    let pc = self.pc[t] as usize;
                    format!("waits at line {}: `{}`", self.l.kernel.insts[pc].line, self.l.kernel.opcodes[pc])
                }
            };
            let _ = writeln!(tr.out, "    -> {end}");
        }
        self.trace = Some(tr);
    }

    /// Reports a completed meeting.
    pub fn trace_meeting(&mut self, what: &str, pc: usize, lanes: &str) {
        let line = self.l.kernel.insts[pc].line;
        let op = &self.l.kernel.opcodes[pc];
        if let Some(tr) = &mut self.trace {
            let _ = writeln!(tr.out, "{what} {lanes} meet at line {line} `{op}` and continue");
        }
    }

    /// After a barrier: the block's shared memory as 32-bit words (hex and as f32).
    pub fn trace_shared(&mut self) {
        let Some(tr) = &mut self.trace else { return };
        let words = self.shared.len() / 4;
        let _ = writeln!(tr.out, "shared memory after the barrier ({} bytes):", self.shared.len());
        for (i, w) in self.shared.chunks_exact(4).take(64).enumerate() {
            let v = u32::from_le_bytes(w.try_into().expect("4 bytes"));
            let _ = write!(tr.out, "  [{i:>3}] {v:#010x} {:>12.6}", f32::from_bits(v));
            if i % 4 == 3 {
                let _ = writeln!(tr.out);
            }
        }
        if words > 64 {
            let _ = writeln!(tr.out, "  ... {} more words", words - 64);
        }
        let _ = writeln!(tr.out);
    }
}
