//! Typed device buffers and the context they live in.

use super::allocator::{CachingAllocator, PoolStats};
use super::launcher::{DevPtr, GpuError, Kernel, KernelArg, LaunchDims, Launcher};
use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

/// One device: its launcher and the caching allocator over it. Shared (`Arc`) by
/// every buffer on the device.
pub struct GpuContext {
    launcher: Box<dyn Launcher>,
    pool: CachingAllocator,
    /// The first error of an operation whose caller could not return it (a tensor op),
    /// kept until the next synchronising call reports it: CUDA's own "sticky error"
    /// model, so ops stay infallible and a failure still surfaces as an error.
    error: Mutex<Option<GpuError>>,
    /// Every kernel launched without error so far, once each (see [`GpuContext::launched`]).
    launched: Mutex<BTreeSet<Kernel>>,
}

impl GpuContext {
    pub fn new(launcher: Box<dyn Launcher>) -> Arc<Self> {
        Arc::new(GpuContext {
            launcher,
            pool: CachingAllocator::default(),
            error: Default::default(),
            launched: Default::default(),
        })
    }

    /// Records `e` as this device's sticky error (the first one is kept).
    pub fn poison(&self, e: GpuError) {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
    }

    /// The sticky error, if an earlier operation failed (see [`GpuContext::poison`]).
    pub fn check(&self) -> Result<(), GpuError> {
        match &*self.error.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// The device in words, for messages.
    pub fn name(&self) -> String {
        self.launcher.name()
    }

    pub fn launch(&self, kernel: Kernel, dims: LaunchDims, args: &[KernelArg]) -> Result<(), GpuError> {
        self.launcher.launch(kernel, dims, args)?;
        // an uncontended lock and a lookup per launch: noise beside a launch's cost
        self.launched.lock().unwrap_or_else(|p| p.into_inner()).insert(kernel);
        Ok(())
    }

    /// The kernels this device has launched without error so far, each once: how the
    /// coverage tests (`gpu/coverage.rs`) prove that a case ran the entry point it names.
    pub fn launched(&self) -> BTreeSet<Kernel> {
        self.launched.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits for everything issued so far (benchmarks time with this).
    pub fn synchronize(&self) -> Result<(), GpuError> {
        self.launcher.synchronize()
    }

    /// Returns the allocator's cached blocks to the device.
    pub fn empty_cache(&self) -> Result<(), GpuError> {
        self.pool.empty(self.launcher.as_ref())
    }

    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }
}

/// Element types a device buffer can hold: plain bytes with no invalid patterns.
///
/// # Safety
/// Every bit pattern of `size_of::<Self>()` bytes must be a valid value.
pub unsafe trait DeviceRepr: Copy + Default + Send + Sync + 'static {}
unsafe impl DeviceRepr for f32 {}
unsafe impl DeviceRepr for f64 {}
unsafe impl DeviceRepr for u8 {}
unsafe impl DeviceRepr for u32 {}
unsafe impl DeviceRepr for i32 {}
unsafe impl DeviceRepr for u64 {}
unsafe impl DeviceRepr for i64 {}

fn as_bytes<T: DeviceRepr>(v: &[T]) -> &[u8] {
    // SAFETY: T is plain data (DeviceRepr); the byte view covers exactly the slice.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

fn as_bytes_mut<T: DeviceRepr>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: as above, and every byte pattern is a valid T.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, std::mem::size_of_val(v)) }
}

/// `len` elements of `T` in a device's global memory, returned to its caching
/// allocator on drop. An empty buffer holds no memory (its pointer is 0).
pub struct GpuBuffer<T: DeviceRepr> {
    ctx: Arc<GpuContext>,
    ptr: DevPtr,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: DeviceRepr> GpuBuffer<T> {
    /// `len` elements whose values are whatever the memory held (every kernel that
    /// takes an output writes all of it).
    pub fn uninit(ctx: &Arc<GpuContext>, len: usize) -> Result<Self, GpuError> {
        let bytes = len * std::mem::size_of::<T>();
        let ptr = if bytes == 0 { 0 } else { ctx.pool.alloc(ctx.launcher.as_ref(), bytes)? };
        Ok(GpuBuffer { ctx: ctx.clone(), ptr, len, _t: PhantomData })
    }

    /// `len` zero bytes' worth of elements (0.0 for floats).
    pub fn zeros(ctx: &Arc<GpuContext>, len: usize) -> Result<Self, GpuError> {
        let b = Self::uninit(ctx, len)?;
        if len > 0 {
            ctx.launcher.memset(b.ptr, 0, b.bytes())?;
        }
        Ok(b)
    }

    /// A copy of `host` on the device.
    pub fn from_host(ctx: &Arc<GpuContext>, host: &[T]) -> Result<Self, GpuError> {
        let b = Self::uninit(ctx, host.len())?;
        if !host.is_empty() {
            ctx.launcher.copy_to_device(b.ptr, as_bytes(host))?;
        }
        Ok(b)
    }

    /// The elements, copied back to the host (waits for pending work).
    pub fn to_host(&self) -> Result<Vec<T>, GpuError> {
        let mut out = vec![T::default(); self.len];
        if self.len > 0 {
            self.ctx.launcher.copy_to_host(self.ptr, as_bytes_mut(&mut out))?;
        }
        Ok(out)
    }

    /// Overwrites this buffer with `host` (same length).
    pub fn write(&mut self, host: &[T]) -> Result<(), GpuError> {
        assert_eq!(host.len(), self.len, "GpuBuffer::write: length mismatch");
        if self.len > 0 {
            self.ctx.launcher.copy_to_device(self.ptr, as_bytes(host))?;
        }
        Ok(())
    }

    /// A new buffer with the same elements (a device-to-device copy).
    pub fn try_clone(&self) -> Result<Self, GpuError> {
        let b = Self::uninit(&self.ctx, self.len)?;
        if self.len > 0 {
            self.ctx.launcher.copy_on_device(b.ptr, self.ptr, self.bytes())?;
        }
        Ok(b)
    }

    /// Copies `len` elements from `src[src_offset..]` into `self[offset..]`.
    pub fn copy_from(
        &mut self,
        offset: usize,
        src: &GpuBuffer<T>,
        src_offset: usize,
        len: usize,
    ) -> Result<(), GpuError> {
        assert!(
            offset + len <= self.len && src_offset + len <= src.len,
            "GpuBuffer::copy_from: out of range"
        );
        if len > 0 {
            let size = std::mem::size_of::<T>() as u64;
            let bytes = len * std::mem::size_of::<T>();
            self.ctx.launcher.copy_on_device(
                self.ptr + offset as u64 * size,
                src.ptr + src_offset as u64 * size,
                bytes,
            )?;
        }
        Ok(())
    }

    /// Sets every byte to zero.
    pub fn zero(&mut self) -> Result<(), GpuError> {
        if self.len > 0 {
            self.ctx.launcher.memset(self.ptr, 0, self.bytes())?;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn bytes(&self) -> usize {
        self.len * std::mem::size_of::<T>()
    }
    pub fn ptr(&self) -> DevPtr {
        self.ptr
    }
    /// The buffer as a kernel argument (its device address).
    pub fn arg(&self) -> KernelArg {
        KernelArg::Ptr(self.ptr)
    }
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }
}

impl<T: DeviceRepr> Drop for GpuBuffer<T> {
    fn drop(&mut self) {
        if self.len > 0 {
            self.ctx.pool.release(self.ptr, self.bytes());
        }
    }
}

impl<T: DeviceRepr> std::fmt::Debug for GpuBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuBuffer({} × {} on {})", self.len, std::any::type_name::<T>(), self.ctx.name())
    }
}
