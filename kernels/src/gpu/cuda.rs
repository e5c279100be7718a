//! The real GPU: [`Launcher`] over cudarc's driver API (feature `cuda`).
//!
//! One context (the device's primary one) and one stream per device. Modules are
//! loaded from the embedded PTX on first use (the driver JIT-compiles `compute_80`
//! PTX for the device at hand) and their functions cached. Launches, device-to-device
//! copies and memsets are asynchronous on the stream; a copy from or to the host is queued
//! on it too and then waits for it.
//!
//! The driver library is loaded at run time: on a machine without it,
//! [`CudaLauncher::new`] returns [`GpuError::Unavailable`] saying so, instead of the
//! panic `CudaContext::new` would give.

use super::launcher::{DevPtr, GpuError, Kernel, KernelArg, LaunchDims, Launcher};
use cudarc::driver::{result, sys, CudaContext, CudaStream, DriverError};
use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::sync::{Arc, Mutex};

pub struct CudaLauncher {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    name: String,
    modules: Mutex<Loaded>,
}

/// Module name → loaded module; (module, entry) → function.
#[derive(Default)]
struct Loaded {
    modules: HashMap<&'static str, ModuleHandle>,
    functions: HashMap<Kernel, FunctionHandle>,
}

struct ModuleHandle(sys::CUmodule);
struct FunctionHandle(sys::CUfunction);
// SAFETY: driver handles are plain pointers valid in any thread that binds the context;
// every use below binds it first and goes through the Mutex.
unsafe impl Send for ModuleHandle {}
unsafe impl Send for FunctionHandle {}

fn driver(op: &str, e: DriverError) -> GpuError {
    GpuError::Driver { op: op.to_string(), message: format!("{e:?}") }
}

impl CudaLauncher {
    /// The CUDA device `ordinal`, or why it cannot be had (no driver library, no
    /// device, a driver error).
    pub fn new(ordinal: usize) -> Result<Self, GpuError> {
        // SAFETY: only probes whether the library can be loaded.
        if !unsafe { sys::is_culib_present() } {
            return Err(GpuError::Unavailable(
                "the CUDA driver library (libcuda.so) is not installed on this machine".into(),
            ));
        }
        result::init()
            .map_err(|e| GpuError::Unavailable(format!("the CUDA driver failed to start: {e:?}")))?;
        let count = result::device::get_count().map_err(|e| driver("cuDeviceGetCount", e))?;
        if ordinal >= count.max(0) as usize {
            return Err(GpuError::Unavailable(format!(
                "there is no CUDA device {ordinal} (this machine has {count})"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| driver("cuDevicePrimaryCtxRetain", e))?;
        let stream = ctx.new_stream().map_err(|e| driver("cuStreamCreate", e))?;
        let device_name = ctx.name().unwrap_or_else(|_| "unknown device".into());
        Ok(CudaLauncher {
            ctx,
            stream,
            name: format!("cuda:{ordinal} ({device_name})"),
            modules: Mutex::new(Loaded::default()),
        })
    }

    /// The stream this launcher issues every launch and copy on (one per device).
    ///
    /// For code that issues its own work in order with ours on the same device: the
    /// GPU benches (`benches/gpu/`) run cuBLAS on it, so that
    /// [`GpuContext::synchronize`](super::GpuContext::synchronize) waits for both. Work
    /// issued on it must only touch memory whose buffers outlive that work.
    pub fn stream(&self) -> Arc<CudaStream> {
        self.stream.clone()
    }

    fn bind(&self) -> Result<(), GpuError> {
        self.ctx.bind_to_thread().map_err(|e| driver("cuCtxSetCurrent", e))
    }

    fn function(&self, kernel: Kernel) -> Result<sys::CUfunction, GpuError> {
        let mut guard = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        let Loaded { modules, functions } = &mut *guard;
        if let Some(f) = functions.get(&kernel) {
            return Ok(f.0);
        }
        let module = match modules.get(kernel.module) {
            Some(m) => m.0,
            None => {
                let ptx = super::ptx::module(kernel.module).ok_or_else(|| GpuError::Launch {
                    kernel: kernel.entry.into(),
                    message: format!("no PTX module `{}` is embedded", kernel.module),
                })?;
                let image = CString::new(ptx).expect("PTX text has no NUL bytes");
                // SAFETY: a NUL-terminated PTX image; the context is bound.
                let m = unsafe { result::module::load_data(image.as_ptr() as *const c_void) }
                    .map_err(|e| driver(&format!("loading PTX module {}", kernel.module), e))?;
                modules.insert(kernel.module, ModuleHandle(m));
                m
            }
        };
        let name = CString::new(kernel.entry).expect("entry names have no NUL bytes");
        // SAFETY: `module` is loaded and not unloaded while the launcher lives.
        let f = unsafe { result::module::get_function(module, name) }
            .map_err(|e| driver(&format!("finding entry {} in {}", kernel.entry, kernel.module), e))?;
        functions.insert(kernel, FunctionHandle(f));
        Ok(f)
    }
}

impl Launcher for CudaLauncher {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn alloc(&self, bytes: usize) -> Result<DevPtr, GpuError> {
        self.bind()?;
        // SAFETY: plain allocation in the bound context.
        unsafe { result::malloc_sync(bytes) }.map_err(|e| match e.0 {
            sys::cudaError_enum::CUDA_ERROR_OUT_OF_MEMORY => {
                GpuError::OutOfMemory { bytes, device: self.name() }
            }
            _ => driver("cuMemAlloc", e),
        })
    }

    fn free(&self, ptr: DevPtr) -> Result<(), GpuError> {
        self.bind()?;
        self.synchronize()?;
        // SAFETY: `ptr` came from `alloc` and no pending work uses it (synchronised).
        unsafe { result::free_sync(ptr) }.map_err(|e| driver("cuMemFree", e))
    }

    // Both copies go on our stream, then wait for it. Not the synchronous cuMemcpyHtoD: it
    // runs on the legacy default stream, which our non-blocking stream (cudarc's
    // `new_stream`) does not wait for, and from pageable memory it returns once `src` is
    // staged, before the DMA lands ("API synchronization behavior" in the driver API's
    // docs), so a kernel launched next on our stream could read `dst` before it is written.
    // On our stream the copy follows the work before it and precedes the work after it.

    fn copy_to_device(&self, dst: DevPtr, src: &[u8]) -> Result<(), GpuError> {
        self.bind()?;
        // SAFETY: `dst` holds at least `src.len()` bytes (the buffer layer checks lengths);
        // `src` is borrowed for this call only, so the stream is waited for before returning.
        unsafe { result::memcpy_htod_async(dst, src, self.stream.cu_stream()) }
            .map_err(|e| driver("cuMemcpyHtoDAsync", e))?;
        self.synchronize()
    }

    fn copy_to_host(&self, src: DevPtr, dst: &mut [u8]) -> Result<(), GpuError> {
        self.bind()?;
        // SAFETY: `src` holds at least `dst.len()` bytes; the copy runs after the work queued
        // before it, and `dst` is complete once the stream is waited for.
        unsafe { result::memcpy_dtoh_async(dst, src, self.stream.cu_stream()) }
            .map_err(|e| driver("cuMemcpyDtoHAsync", e))?;
        self.synchronize()
    }

    fn copy_on_device(&self, dst: DevPtr, src: DevPtr, bytes: usize) -> Result<(), GpuError> {
        self.bind()?;
        // SAFETY: both ranges are inside live buffers (checked by the buffer layer).
        unsafe { result::memcpy_dtod_async(dst, src, bytes, self.stream.cu_stream()) }
            .map_err(|e| driver("cuMemcpyDtoDAsync", e))
    }

    fn memset(&self, dst: DevPtr, value: u8, bytes: usize) -> Result<(), GpuError> {
        self.bind()?;
        // SAFETY: the range is inside a live buffer.
        unsafe { result::memset_d8_async(dst, value, bytes, self.stream.cu_stream()) }
            .map_err(|e| driver("cuMemsetD8Async", e))
    }

    fn launch(&self, kernel: Kernel, dims: LaunchDims, args: &[KernelArg]) -> Result<(), GpuError> {
        self.bind()?;
        let f = self.function(kernel)?;
        // The driver takes one pointer per parameter, to a value of the parameter's size.
        let mut values: Vec<u64> = args
            .iter()
            .map(|a| match *a {
                KernelArg::Ptr(p) | KernelArg::U64(p) => p,
                KernelArg::I64(v) => v as u64,
                KernelArg::U32(v) => v as u64,
                KernelArg::I32(v) => v as u32 as u64,
                KernelArg::F32(v) => v.to_bits() as u64,
                KernelArg::F64(v) => v.to_bits(),
            })
            .collect();
        // Little-endian: a 4-byte parameter reads the low half of its u64 slot.
        let mut params: Vec<*mut c_void> = values.iter_mut().map(|v| v as *mut u64 as *mut c_void).collect();
        let [gx, gy, gz] = dims.grid;
        let [bx, by, bz] = dims.block;
        // SAFETY: `f` is a loaded function; `params` matches its parameter list (the
        // typed launchers pass exactly the entry's parameters); `values` outlives the call.
        unsafe {
            result::launch_kernel(
                f,
                (gx, gy, gz),
                (bx, by, bz),
                dims.shared_bytes,
                self.stream.cu_stream(),
                &mut params,
            )
        }
        .map_err(|e| GpuError::Launch { kernel: kernel.entry.into(), message: format!("{e:?}") })
    }

    fn synchronize(&self) -> Result<(), GpuError> {
        self.bind()?;
        self.stream.synchronize().map_err(|e| driver("cuStreamSynchronize", e))
    }
}
