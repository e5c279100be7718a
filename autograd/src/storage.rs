//! Where a tensor's numbers live: the [`Device`], and [`Storage`], one buffer on it.
//!
//! `Storage<T>` is `Cpu(CpuStorage)` (owned memory, or a read-only view into a memory
//! map: pretrained weights that are never copied unless written) or `Cuda(CudaStorage)`
//! (a `GpuBuffer` on one device's context). Every kernel family is a method of the
//! [`Backend`](crate::backend::Backend) trait, which both implement and `Storage`
//! dispatches (`backend/dispatch.rs`).
//!
//! Each CUDA device has one context per process ([`context`]): the registry below is
//! the only place a device becomes a context.

use crate::alloc::HostBuffer;
use memmap2::Mmap;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use tapegrad_kernels::gpu::{GpuContext, GpuError};
use tapegrad_kernels::Float;

pub use crate::backend::CudaStorage;

/// The device a tensor lives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    #[default]
    Cpu,
    /// CUDA device ordinal n (`cuda:n`).
    Cuda(usize),
    /// The simulated GPU (`sim`): the CUDA backend's PTX run by the interpreter of
    /// `kernels/ptx-sim` on the CPU, through the same buffers, allocator, launch
    /// geometry and kernels as a real GPU. Slow; for tests and for learning.
    Sim,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::Sim => write!(f, "sim"),
        }
    }
}

/// A device name that is not `cpu`, `cuda`, `cuda:N` or `sim`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown device `{0}`: expected cpu, cuda, cuda:N (N a device number) or sim (the simulated GPU)")]
pub struct ParseDeviceError(pub String);

impl FromStr for Device {
    type Err = ParseDeviceError;
    /// `cpu`, `cuda` (= `cuda:0`), `cuda:N` or `sim`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseDeviceError(s.to_string());
        match s.trim() {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            "sim" => Ok(Device::Sim),
            t => {
                let n = t.strip_prefix("cuda:").ok_or_else(bad)?;
                n.parse().map(Device::Cuda).map_err(|_| bad())
            }
        }
    }
}

/// The context of a GPU device: created on first use, then shared by every buffer on
/// it for the life of the process. The ONE function that maps a device to a context.
pub fn context(device: Device) -> Result<Arc<GpuContext>, GpuError> {
    let mut map = registry().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(ctx) = map.get(&device) {
        return Ok(ctx.clone());
    }
    let ctx = match device {
        Device::Cpu => return Err(GpuError::Unavailable("the CPU has no GPU context".into())),
        Device::Cuda(n) => tapegrad_kernels::gpu::cuda_context(n)?,
        Device::Sim => tapegrad_kernels::gpu::sim_context(),
    };
    map.insert(device, ctx.clone());
    Ok(ctx)
}

/// Puts `ctx` in the registry as `device`'s context (before its first use): for
/// launchers other than the cudarc one (the simulated GPU, tests' fakes). Returns
/// false, changing nothing, if the device already has a context.
pub fn register_context(device: Device, ctx: Arc<GpuContext>) -> bool {
    assert!(device != Device::Cpu, "register_context: the CPU has no GPU context");
    let mut map = registry().lock().unwrap_or_else(|p| p.into_inner());
    if map.contains_key(&device) {
        return false;
    }
    map.insert(device, ctx);
    true
}

fn registry() -> &'static Mutex<HashMap<Device, Arc<GpuContext>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<Device, Arc<GpuContext>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Checks that `device` can be used, with a message for a person if not (the CLI
/// calls this before any work starts).
pub fn check_device(device: Device) -> Result<(), GpuError> {
    match device {
        Device::Cpu => Ok(()),
        d => context(d).map(|_| ()),
    }
}

/// A buffer on the CPU.
pub enum CpuStorage<T: tapegrad_kernels::gpu::DeviceRepr> {
    /// Owned memory: a block of the host caching allocator (op results), or an
    /// adopted `Vec` (see [`crate::alloc`]).
    Owned(HostBuffer<T>),
    /// Little-endian elements of type `T` inside a shared read-only map.
    Mapped(MappedSlice<T>),
}

/// `len` elements of `T` at `byte_offset` in `map`, checked for bounds and alignment.
pub struct MappedSlice<T> {
    map: Arc<Mmap>,
    byte_offset: usize,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Float> MappedSlice<T> {
    /// A view of `len` elements at `byte_offset`; `None` when out of bounds,
    /// misaligned for `T`, or on a big-endian host (then the caller copies).
    pub fn new(map: Arc<Mmap>, byte_offset: usize, len: usize) -> Option<Self> {
        let bytes = len.checked_mul(std::mem::size_of::<T>())?;
        let end = byte_offset.checked_add(bytes)?;
        let aligned = (map.as_ptr() as usize + byte_offset).is_multiple_of(std::mem::align_of::<T>());
        (end <= map.len() && aligned && cfg!(target_endian = "little")).then_some(MappedSlice {
            map,
            byte_offset,
            len,
            _t: PhantomData,
        })
    }
}

impl<T: Float> CpuStorage<T> {
    pub fn as_slice(&self) -> &[T] {
        match self {
            CpuStorage::Owned(v) => v,
            CpuStorage::Mapped(m) => {
                // SAFETY: `MappedSlice::new` checked bounds and alignment, T is a plain
                // float, and the map is read-only and kept alive by the Arc. (As with any
                // mmap, the file must not be truncated by another process meanwhile.)
                unsafe { std::slice::from_raw_parts(m.map.as_ptr().add(m.byte_offset) as *const T, m.len) }
            }
        }
    }

    /// Mutable numbers; a mapped view is copied into owned memory first.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        if let CpuStorage::Mapped(_) = self {
            let owned = HostBuffer::from_slice(self.as_slice());
            *self = CpuStorage::Owned(owned);
        }
        match self {
            CpuStorage::Owned(v) => v,
            CpuStorage::Mapped(_) => unreachable!("copied above"),
        }
    }
}

impl<T> Clone for MappedSlice<T> {
    fn clone(&self) -> Self {
        MappedSlice { map: self.map.clone(), byte_offset: self.byte_offset, len: self.len, _t: PhantomData }
    }
}

/// A tensor's buffer, on the CPU or a CUDA device.
pub enum Storage<T: Float> {
    Cpu(CpuStorage<T>),
    Cuda(CudaStorage<T>),
}

impl<T: Float> Storage<T> {
    /// Owned CPU memory: `v`'s own, not copied.
    pub fn from_vec(v: Vec<T>) -> Self {
        Storage::Cpu(CpuStorage::Owned(HostBuffer::from_vec(v)))
    }

    /// `host` on `device` (a GPU error goes to the device's sticky error; an
    /// unusable device panics, since no context exists to keep the error in).
    pub fn from_host(host: Vec<T>, device: Device) -> Self {
        match device {
            Device::Cpu => Storage::from_vec(host),
            d => {
                let ctx = context(d).unwrap_or_else(|e| panic!("{d}: {e}"));
                Storage::Cuda(CudaStorage::from_host(&ctx, d, &host))
            }
        }
    }

    /// The CPU numbers, or `None` on a GPU.
    pub fn cpu_slice(&self) -> Option<&[T]> {
        match self {
            Storage::Cpu(c) => Some(c.as_slice()),
            Storage::Cuda(_) => None,
        }
    }

    /// True when the numbers are a view into a memory map (not yet copied).
    pub fn is_mapped(&self) -> bool {
        matches!(self, Storage::Cpu(CpuStorage::Mapped(_)))
    }

    /// A copy on `device` (the same numbers, moved through the host when the
    /// devices differ). Panics with the source device's sticky error, if it has one
    /// (like `to_vec`).
    pub fn to_device(&self, device: Device) -> Self {
        use crate::backend::Backend;
        if self.device() == device {
            return self.duplicate();
        }
        let host = self.to_host().unwrap_or_else(|e| panic!("copying to {device}: {e}"));
        Storage::from_host(host, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_print() {
        assert_eq!("cpu".parse(), Ok(Device::Cpu));
        assert_eq!("cuda".parse(), Ok(Device::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(Device::Cuda(3)));
        assert_eq!(Device::Cuda(3).to_string(), "cuda:3");
        assert_eq!(Device::Cpu.to_string(), "cpu");
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", "CPU"] {
            let e = bad.parse::<Device>().unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}`")) && e.contains("cuda:N"), "{e}");
        }
    }

    #[test]
    fn a_missing_gpu_is_an_error_not_a_panic() {
        assert!(check_device(Device::Cpu).is_ok());
        // no machine has 1001 GPUs (and this one may have none: then cuda:0 fails too)
        let e = check_device(Device::Cuda(1000)).unwrap_err();
        assert!(e.to_string().contains("no CUDA device"), "{e}");
    }
}
