//! The launcher: the one narrow trait under everything device-side.
//!
//! A launcher owns a device's memory and runs kernels on it. It knows nothing of
//! element types, tensors or launch geometry: it moves bytes and starts entry points
//! of PTX modules with a grid, a block, dynamic shared memory and arguments. Two
//! implementations exist:
//!
//! - [`CudaLauncher`](super::cuda::CudaLauncher) (feature `cuda`): a real GPU through
//!   cudarc's driver API, one stream per device;
//! - [`SimLauncher`](super::sim::SimLauncher): the simulated GPU, our PTX interpreter
//!   (`kernels/ptx-sim`), which runs the same PTX on the CPU.
//!
//! Everything above this trait (buffers, the caching allocator, typed launchers and
//! their launch geometry) is shared, so the simulated GPU tests exactly the code a
//! real GPU runs.

use std::fmt;

/// An address in a device's global memory.
pub type DevPtr = u64;

/// One kernel parameter, in the order of the entry's `.param` list.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KernelArg {
    Ptr(DevPtr),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
}

/// Where a launch runs: `grid` blocks of `block` threads, with `shared_bytes` of
/// dynamic shared memory per block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchDims {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_bytes: u32,
}

impl LaunchDims {
    /// A 1-D launch of `grid` blocks of `block` threads, no dynamic shared memory.
    pub fn linear(grid: u32, block: u32) -> Self {
        LaunchDims { grid: [grid, 1, 1], block: [block, 1, 1], shared_bytes: 0 }
    }
    /// The same launch with `bytes` of dynamic shared memory per block.
    pub fn with_shared(self, bytes: u32) -> Self {
        LaunchDims { shared_bytes: bytes, ..self }
    }
}

/// A kernel: an entry point of one of the embedded PTX modules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kernel {
    /// The module, named after its source `kernels/cuda/<module>.cu`.
    pub module: &'static str,
    /// The `.entry` name inside it.
    pub entry: &'static str,
}

/// What can go wrong on a device: always a message for a person, never a panic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GpuError {
    /// No CUDA driver library on this machine, no device with that ordinal, or the
    /// backend was not compiled in.
    Unavailable(String),
    /// The device has no memory left for a buffer of this many bytes.
    OutOfMemory { bytes: usize, device: String },
    /// The driver (or the simulator) refused an operation.
    Driver { op: String, message: String },
    /// A launch failed; `kernel` names the entry point.
    Launch { kernel: String, message: String },
}

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuError::Unavailable(why) => write!(f, "no CUDA device: {why}"),
            GpuError::OutOfMemory { bytes, device } => {
                write!(f, "{device}: out of memory allocating {bytes} bytes")
            }
            GpuError::Driver { op, message } => write!(f, "{op} failed: {message}"),
            GpuError::Launch { kernel, message } => write!(f, "kernel {kernel} failed: {message}"),
        }
    }
}

impl std::error::Error for GpuError {}

/// The device under the shared GPU code: memory, copies, launches.
///
/// Copies and launches are ordered (one stream per device): a launch sees every copy
/// and launch issued before it. `copy_to_host` waits for all of them.
pub trait Launcher: Send + Sync {
    /// The device in words, for messages (`cuda:0 (NVIDIA H200)`, `simulated GPU`).
    fn name(&self) -> String;
    /// `bytes` of uninitialised device memory (`bytes` > 0).
    fn alloc(&self, bytes: usize) -> Result<DevPtr, GpuError>;
    /// Returns memory from [`Launcher::alloc`] to the device.
    fn free(&self, ptr: DevPtr) -> Result<(), GpuError>;
    /// Copies `src` to `dst`, after the work queued before and before the work queued
    /// after; returns once `src` is no longer read.
    fn copy_to_device(&self, dst: DevPtr, src: &[u8]) -> Result<(), GpuError>;
    /// Copies `src` into `dst` once the work queued before has finished; returns with
    /// `dst` complete.
    fn copy_to_host(&self, src: DevPtr, dst: &mut [u8]) -> Result<(), GpuError>;
    fn copy_on_device(&self, dst: DevPtr, src: DevPtr, bytes: usize) -> Result<(), GpuError>;
    fn memset(&self, dst: DevPtr, value: u8, bytes: usize) -> Result<(), GpuError>;
    /// Starts `kernel` (its module is loaded from the embedded PTX on first use).
    fn launch(&self, kernel: Kernel, dims: LaunchDims, args: &[KernelArg]) -> Result<(), GpuError>;
    /// Waits until everything issued so far has finished.
    fn synchronize(&self) -> Result<(), GpuError>;
}
