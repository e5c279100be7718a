//! A simulated GPU: an interpreter for the PTX nvcc 13 emits for tapegrad's kernels.
//!
//! `SimGpu` holds global memory and loaded modules. `load_module` parses and decodes PTX
//! once (an unsupported instruction is an error naming it and its line); `launch` runs a
//! grid, its blocks spread over host threads, each block's threads interpreted with
//! CUDA's meeting rules (warp shuffles and votes with their member masks, block
//! barriers) and checked: arguments that do not fit the `.param` list (number, size,
//! integer or float), out-of-bounds and misaligned accesses, barriers some threads
//! skip, masks naming exited threads, deadlocks and shared-memory races are errors that
//! name the kernel, block, thread and PTX line.
//!
//! ```no_run
//! use tapegrad_ptx_sim::{Arg, LaunchDims, SimGpu};
//! let gpu = SimGpu::new();
//! gpu.load_module("m", &std::fs::read_to_string("k.ptx").unwrap()).unwrap();
//! let x = gpu.alloc(1024 * 4).unwrap();
//! let dims = LaunchDims { grid: [4, 1, 1], block: [256, 1, 1], shared_bytes: 0 };
//! gpu.launch("m", "scale", dims, &[Arg::Ptr(x), Arg::F32(2.0), Arg::U32(1024)]).unwrap();
//! ```

mod alu;
mod approx;
mod check;
mod decode;
mod exec;
mod float;
mod inst;
mod memory;
mod parse;
mod stamp;
mod trace;
mod warp;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use decode::Kernel;
use exec::{Block, Launch};
use memory::{Global, Snapshot};

/// An error with a complete human message.
pub struct SimError {
    msg: String,
}

impl SimError {
    pub(crate) fn new(msg: String) -> SimError {
        SimError { msg }
    }
    pub fn message(&self) -> &str {
        &self.msg
    }
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::fmt::Debug for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for SimError {}

#[derive(Clone, Copy, Debug)]
pub struct LaunchDims {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    /// Dynamic shared memory (`.extern .shared`) per block, in bytes.
    pub shared_bytes: u32,
}

/// A kernel argument, in `.param` order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arg {
    Ptr(u64),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
}

impl Arg {
    fn bytes(&self) -> Vec<u8> {
        match *self {
            Arg::Ptr(v) | Arg::U64(v) => v.to_le_bytes().to_vec(),
            Arg::I64(v) => v.to_le_bytes().to_vec(),
            Arg::F64(v) => v.to_le_bytes().to_vec(),
            Arg::U32(v) => v.to_le_bytes().to_vec(),
            Arg::I32(v) => v.to_le_bytes().to_vec(),
            Arg::F32(v) => v.to_le_bytes().to_vec(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct LaunchStats {
    /// Instructions executed, summed over threads (a guarded-off instruction counts).
    pub thread_instructions: u64,
}

/// A decoded module, with its source lines for traces.
struct Loaded {
    kernels: Vec<Kernel>,
    source: Arc<Vec<String>>,
}

/// The simulated device: global memory and loaded modules. `Send + Sync`.
pub struct SimGpu {
    global: Global,
    modules: RwLock<HashMap<String, Arc<Loaded>>>,
    host_threads: usize,
}

impl Default for SimGpu {
    fn default() -> Self {
        Self::new()
    }
}

/// The most threads a block may have, as on every CUDA GPU since sm_20 (so at most 1,024
/// along x and along y; z at most 64).
const MAX_BLOCK_THREADS: u32 = 1024;
/// The grid's extents along x, y and z on every GPU since sm_30: a launch beyond them fails
/// on a real GPU (`CUDA_ERROR_INVALID_VALUE`), so it fails here too.
const MAX_GRID: [u32; 3] = [i32::MAX as u32, 65_535, 65_535];
/// The most shared memory a block may use, static and dynamic together, unless the launch
/// opts in to more with `cuFuncSetAttribute(…MAX_DYNAMIC_SHARED_SIZE_BYTES…)` (up to 163 KiB
/// on sm_80), which tapegrad's CUDA launcher never does: 48 KiB on every GPU. A launch that
/// would fail on a real GPU for want of that opt-in fails here too.
const MAX_SHARED: usize = 48 * 1024;

impl SimGpu {
    /// Blocks run on `std::thread::available_parallelism()` host threads.
    pub fn new() -> SimGpu {
        SimGpu::with_host_threads(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    pub fn with_host_threads(n: usize) -> SimGpu {
        SimGpu { global: Global::default(), modules: RwLock::default(), host_threads: n.max(1) }
    }

    /// A device address, 256-byte aligned; allocations are separated by unmapped gaps
    /// and zero-filled.
    pub fn alloc(&self, bytes: usize) -> Result<u64, SimError> {
        self.global.alloc(bytes)
    }

    pub fn free(&self, ptr: u64) -> Result<(), SimError> {
        self.global.free(ptr)
    }

    pub fn write(&self, dst: u64, src: &[u8]) -> Result<(), SimError> {
        let (b, off) = self.global.find(dst, src.len(), "write to device")?;
        b.write_bytes(off, src);
        Ok(())
    }

    pub fn read(&self, src: u64, dst: &mut [u8]) -> Result<(), SimError> {
        let (b, off) = self.global.find(src, dst.len(), "read from device")?;
        b.read_bytes(off, dst);
        Ok(())
    }

    pub fn copy(&self, dst: u64, src: u64, bytes: usize) -> Result<(), SimError> {
        let mut tmp = vec![0u8; bytes];
        self.read(src, &mut tmp)?;
        self.write(dst, &tmp)
    }

    pub fn memset(&self, dst: u64, value: u8, bytes: usize) -> Result<(), SimError> {
        let (b, off) = self.global.find(dst, bytes, "memset on device")?;
        b.fill(off, bytes, value);
        Ok(())
    }

    /// Parses and decodes `ptx` once under `name` (replacing a module of that name).
    pub fn load_module(&self, name: &str, ptx: &str) -> Result<(), SimError> {
        let wrap = |e: SimError| SimError::new(format!("module `{name}`: {e}"));
        let m = parse::parse(ptx).map_err(wrap)?;
        let kernels = decode::decode_module(&m).map_err(wrap)?;
        let source = Arc::new(ptx.lines().map(str::to_string).collect());
        self.modules
            .write()
            .expect("modules lock")
            .insert(name.to_string(), Arc::new(Loaded { kernels, source }));
        Ok(())
    }

    pub fn has_module(&self, name: &str) -> bool {
        self.modules.read().expect("modules lock").contains_key(name)
    }

    /// The `.entry` names of a module (empty if it is not loaded).
    pub fn entries(&self, module: &str) -> Vec<String> {
        let mods = self.modules.read().expect("modules lock");
        mods.get(module).map_or(Vec::new(), |m| m.kernels.iter().map(|k| k.name.clone()).collect())
    }

    /// The byte sizes of an entry's `.param`s, in order.
    pub fn params(&self, module: &str, entry: &str) -> Option<Vec<usize>> {
        let mods = self.modules.read().expect("modules lock");
        let k = mods.get(module)?.kernels.iter().find(|k| k.name == entry)?;
        Some(k.params.iter().map(|p| p.size).collect())
    }

    /// Runs `entry` of `module` over the grid and waits for it.
    pub fn launch(
        &self,
        module: &str,
        entry: &str,
        dims: LaunchDims,
        args: &[Arg],
    ) -> Result<LaunchStats, SimError> {
        let (m, params) = self.prepare(module, entry, dims, args)?;
        let k = m.kernels.iter().find(|k| k.name == entry).expect("prepared");
        let mem = Snapshot::new(&self.global);
        let launch = self.launch_state(k, &mem, &params, dims);
        self.run_grid(&launch, None)
    }

    /// Like `launch`, blocks one after another on this thread, returning with the stats a
    /// readable trace: per warp the instructions each group of lanes ran (divergent
    /// paths apart), the meetings, and shared memory after each barrier. For small
    /// launches (teaching, debugging).
    pub fn launch_traced(
        &self,
        module: &str,
        entry: &str,
        dims: LaunchDims,
        args: &[Arg],
    ) -> Result<(LaunchStats, String), SimError> {
        let (m, params) = self.prepare(module, entry, dims, args)?;
        let k = m.kernels.iter().find(|k| k.name == entry).expect("prepared");
        let mem = Snapshot::new(&self.global);
        let launch = self.launch_state(k, &mem, &params, dims);
        let mut out = String::new();
        let stats = self.run_grid(&launch, Some((&m.source, &mut out)))?;
        Ok((stats, out))
    }

    /// Finds the entry and checks arguments and dimensions before any work.
    fn prepare(
        &self,
        module: &str,
        entry: &str,
        dims: LaunchDims,
        args: &[Arg],
    ) -> Result<(Arc<Loaded>, Vec<u8>), SimError> {
        let m =
            self.modules.read().expect("modules lock").get(module).cloned().ok_or_else(|| {
                SimError::new(format!("launch of `{entry}`: module `{module}` is not loaded"))
            })?;
        let k = m
            .kernels
            .iter()
            .find(|k| k.name == entry)
            .ok_or_else(|| SimError::new(format!("launch: module `{module}` has no entry `{entry}`")))?;
        let params = pack_params(k, args)?;
        check_dims(k, dims)?;
        let shared_bytes = shared_size(k, dims);
        if shared_bytes > MAX_SHARED {
            return Err(SimError::new(format!(
                "launch of `{entry}`: {shared_bytes} bytes of shared memory per block exceed the {MAX_SHARED}-byte \
                 limit of a launch that has not opted in to more (cuFuncSetAttribute)"
            )));
        }
        Ok((m.clone(), params))
    }

    fn launch_state<'a>(
        &'a self,
        k: &'a Kernel,
        mem: &'a Snapshot,
        params: &'a [u8],
        dims: LaunchDims,
    ) -> Launch<'a> {
        Launch {
            kernel: k,
            mem,
            global: &self.global,
            params,
            grid: dims.grid,
            block: dims.block,
            shared_bytes: shared_size(k, dims),
            number: self.global.next_launch(),
        }
    }

    /// Runs every block of the grid: on the host threads, or serially with a trace.
    fn run_grid(
        &self,
        launch: &Launch<'_>,
        trace: Option<(&Arc<Vec<String>>, &mut String)>,
    ) -> Result<LaunchStats, SimError> {
        if let Some((source, out)) = trace {
            let g = launch.grid;
            let mut stats = LaunchStats::default();
            for b in 0..g[0] as usize * g[1] as usize * g[2] as usize {
                let mut blk = Block::new(launch, block_index(g, b));
                blk.trace = Some(trace::Tracer {
                    paths: vec![Vec::new(); blk.nthreads],
                    out: String::new(),
                    source: source.clone(),
                });
                let r = blk.run();
                let tr = blk.trace.take().expect("tracer");
                let c = blk.ctaid;
                out.push_str(&format!("=== block ({},{},{}) ===\n{}", c[0], c[1], c[2], tr.out));
                stats.thread_instructions += blk.count;
                r?;
            }
            return Ok(stats);
        }
        let g = launch.grid;
        let nblocks = g[0] as usize * g[1] as usize * g[2] as usize;
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let count = AtomicU64::new(0);
        let first_err: Mutex<Option<(usize, SimError)>> = Mutex::new(None);
        let worker = || {
            while !failed.load(Ordering::Relaxed) {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= nblocks {
                    break;
                }
                let mut blk = Block::new(launch, block_index(g, b));
                let r = blk.run();
                count.fetch_add(blk.count, Ordering::Relaxed);
                if let Err(e) = r {
                    failed.store(true, Ordering::Relaxed);
                    let mut fe = first_err.lock().expect("error lock");
                    if fe.as_ref().is_none_or(|(i, _)| b < *i) {
                        *fe = Some((b, e));
                    }
                }
            }
        };
        let threads = self.host_threads.min(nblocks);
        if threads <= 1 {
            worker();
        } else {
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(worker);
                }
            });
        }
        if let Some((_, e)) = first_err.into_inner().expect("error lock") {
            return Err(e);
        }
        Ok(LaunchStats { thread_instructions: count.load(Ordering::Relaxed) })
    }
}

/// Static shared memory, then the dynamic part (aligned) if the launch asks for one.
fn shared_size(k: &Kernel, dims: LaunchDims) -> usize {
    match dims.shared_bytes {
        0 => k.static_shared,
        d => k.dyn_shared_off + d as usize,
    }
}

/// The (x, y, z) index of the `b`-th block, x fastest.
fn block_index(g: [u32; 3], b: usize) -> [u32; 3] {
    let (gx, gy) = (g[0] as usize, g[1] as usize);
    [(b % gx) as u32, ((b / gx) % gy) as u32, (b / (gx * gy)) as u32]
}

fn pack_params(k: &Kernel, args: &[Arg]) -> Result<Vec<u8>, SimError> {
    if args.len() != k.params.len() {
        return Err(SimError::new(format!(
            "launch of `{}`: {} arguments given, the entry has {} parameters",
            k.name,
            args.len(),
            k.params.len()
        )));
    }
    let mut buf = vec![0u8; k.param_bytes];
    for (i, (a, p)) in args.iter().zip(&k.params).enumerate() {
        let b = a.bytes();
        if b.len() != p.size {
            return Err(SimError::new(format!(
                "launch of `{}`: parameter {i} is {} bytes, but argument {a:?} is {} bytes",
                k.name,
                p.size,
                b.len()
            )));
        }
        if !fits(a, p) {
            return Err(SimError::new(format!(
                "launch of `{}`: parameter {i} is declared `{}`, but argument {a:?} is {}",
                k.name,
                p.ty,
                if matches!(a, Arg::F32(_) | Arg::F64(_)) { "a float" } else { "an integer or pointer" }
            )));
        }
        buf[p.offset..p.offset + p.size].copy_from_slice(&b);
    }
    Ok(buf)
}

/// Whether an argument of the right size also has the parameter's kind: a float for
/// `.f32`/`.f64`, an integer or pointer for `.u`/`.s` (nvcc declares C's signed
/// integers `.u32`/`.u64` too, so signedness is not checked); `.b` types take either.
/// An array parameter (a struct by value) is checked by size only.
fn fits(a: &Arg, p: &decode::Param) -> bool {
    if p.len != 1 || p.ty.starts_with(".b") {
        return true;
    }
    let float = p.ty.starts_with(".f");
    matches!(a, Arg::F32(_) | Arg::F64(_)) == float
}

fn check_dims(k: &Kernel, d: LaunchDims) -> Result<(), SimError> {
    let threads = d.block.iter().map(|&x| x as u64).product::<u64>();
    let grid_fits = d.grid.iter().zip(MAX_GRID).all(|(&g, max)| g <= max);
    if d.grid.contains(&0)
        || d.block.contains(&0)
        || threads > MAX_BLOCK_THREADS as u64
        || d.block[2] > 64
        || !grid_fits
    {
        return Err(SimError::new(format!(
            "launch of `{}`: invalid launch dimensions grid {:?} block {:?} (none 0; block at most \
             {MAX_BLOCK_THREADS} threads, z at most 64; grid at most {MAX_GRID:?})",
            k.name, d.grid, d.block
        )));
    }
    Ok(())
}
