//! The simulated GPU: [`Launcher`] over our PTX interpreter (`kernels/ptx-sim`).
//!
//! It runs the very PTX a real GPU loads, through the same buffers, caching allocator
//! and launch geometry, so CI (which has no GPU) proves the kernels' index math,
//! reductions, shuffles and barriers. Its checks go further than a GPU's: arguments
//! that do not fit the entry's `.param` list (number, size, integer or float) are an
//! error naming the parameter; an out-of-bounds or misaligned access, a barrier or
//! shuffle that some threads cannot reach (a full-mask shuffle in a partial warp
//! included), a shared-memory race, a read of shared memory no thread wrote and a global
//! word touched by two blocks of one launch (one owner per output) are errors
//! naming the kernel, the instruction and the thread; a launch beyond a GPU's limits is
//! refused as a GPU would refuse it; and fresh device memory holds 0xFF bytes (NaN), not
//! the interpreter's zeros, since a GPU's holds whatever was there.

use super::launcher::{DevPtr, GpuError, Kernel, KernelArg, LaunchDims, Launcher};
use tapegrad_ptx_sim::{Arg, LaunchDims as SimDims, SimError, SimGpu};

pub struct SimLauncher {
    gpu: SimGpu,
}

impl SimLauncher {
    /// A simulated GPU whose blocks run on all of this machine's cores.
    pub fn new() -> Self {
        SimLauncher { gpu: SimGpu::new() }
    }
}

impl Default for SimLauncher {
    fn default() -> Self {
        Self::new()
    }
}

fn driver(op: &str, e: SimError) -> GpuError {
    GpuError::Driver { op: op.into(), message: e.to_string() }
}

impl Launcher for SimLauncher {
    fn name(&self) -> String {
        "cuda-sim (the PTX interpreter)".into()
    }
    fn alloc(&self, bytes: usize) -> Result<DevPtr, GpuError> {
        let ptr = self.gpu.alloc(bytes).map_err(|e| driver("alloc", e))?;
        // A GPU's fresh memory holds whatever was there; the simulator's is zeroed. Filled
        // with 0xFF bytes (NaN as f32 and f64, −1 as an integer), a kernel or launcher that
        // reads memory nothing wrote shows it in the tests here, as it would on a GPU.
        self.gpu.memset(ptr, 0xFF, bytes).map_err(|e| driver("alloc", e))?;
        Ok(ptr)
    }
    fn free(&self, ptr: DevPtr) -> Result<(), GpuError> {
        self.gpu.free(ptr).map_err(|e| driver("free", e))
    }
    fn copy_to_device(&self, dst: DevPtr, src: &[u8]) -> Result<(), GpuError> {
        self.gpu.write(dst, src).map_err(|e| driver("copy to device", e))
    }
    fn copy_to_host(&self, src: DevPtr, dst: &mut [u8]) -> Result<(), GpuError> {
        self.gpu.read(src, dst).map_err(|e| driver("copy to host", e))
    }
    fn copy_on_device(&self, dst: DevPtr, src: DevPtr, bytes: usize) -> Result<(), GpuError> {
        self.gpu.copy(dst, src, bytes).map_err(|e| driver("copy on device", e))
    }
    fn memset(&self, dst: DevPtr, value: u8, bytes: usize) -> Result<(), GpuError> {
        self.gpu.memset(dst, value, bytes).map_err(|e| driver("memset", e))
    }
    fn launch(&self, kernel: Kernel, dims: LaunchDims, args: &[KernelArg]) -> Result<(), GpuError> {
        if !self.gpu.has_module(kernel.module) {
            let ptx = super::ptx::module(kernel.module).ok_or_else(|| GpuError::Launch {
                kernel: kernel.entry.into(),
                message: format!("no PTX module `{}` is embedded", kernel.module),
            })?;
            self.gpu
                .load_module(kernel.module, ptx)
                .map_err(|e| driver(&format!("loading PTX module {}", kernel.module), e))?;
        }
        let args: Vec<Arg> = args
            .iter()
            .map(|a| match *a {
                KernelArg::Ptr(p) => Arg::Ptr(p),
                KernelArg::U32(v) => Arg::U32(v),
                KernelArg::I32(v) => Arg::I32(v),
                KernelArg::U64(v) => Arg::U64(v),
                KernelArg::I64(v) => Arg::I64(v),
                KernelArg::F32(v) => Arg::F32(v),
                KernelArg::F64(v) => Arg::F64(v),
            })
            .collect();
        let dims = SimDims { grid: dims.grid, block: dims.block, shared_bytes: dims.shared_bytes };
        self.gpu
            .launch(kernel.module, kernel.entry, dims, &args)
            .map(|_| ())
            .map_err(|e| GpuError::Launch { kernel: kernel.entry.into(), message: e.to_string() })
    }
    fn synchronize(&self) -> Result<(), GpuError> {
        Ok(()) // every call above has finished when it returns
    }
}
