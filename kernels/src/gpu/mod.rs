//! The GPU side of the kernels: CUDA C in `kernels/cuda/<family>.cu`, compiled to PTX
//! by `build.rs` and embedded; a typed launcher per family in `gpu/<family>.rs`, named
//! after its CPU twin `kernels/src/<family>.rs` and taking the same arguments with
//! [`GpuBuffer`]s in place of slices.
//!
//! ```text
//!   typed launchers (gpu/<family>.rs)   shapes → grid, block, shared bytes, args
//!   GpuBuffer<T>, GpuContext            typed memory, caching allocator (allocator.rs)
//!   ───────────── Launcher trait ─────────────   (launcher.rs: the one narrow seam)
//!   CudaLauncher (cuda.rs, cudarc)       SimLauncher (the PTX interpreter)
//! ```
//!
//! Everything above the trait is shared by both launchers.

pub mod allocator;
pub mod attention;
pub mod broadcast;
pub mod buffer;
#[cfg(test)]
mod coverage;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod dropout;
pub mod elementwise;
pub mod gemm;
pub mod index;
pub mod launch;
pub mod launcher;
pub mod layernorm;
pub mod loss;
pub mod lstm;
pub mod permute;
pub mod ptx;
pub mod reduce;
pub mod select;
pub mod sim;
pub mod softmax;
#[cfg(test)]
pub(crate) mod testing;
pub mod update;

pub use buffer::{DeviceRepr, GpuBuffer, GpuContext};
pub use launcher::{DevPtr, GpuError, Kernel, KernelArg, LaunchDims, Launcher};

use crate::Float;
use std::sync::Arc;

/// Every family: (PTX module, the entry points its launchers use). The tests check
/// that each exists in the module and that no module has an entry left out here.
pub const FAMILIES: &[(&str, &[&str])] = &[
    ("attention", attention::ENTRIES),
    ("broadcast", broadcast::ENTRIES),
    ("dropout", dropout::ENTRIES),
    ("elementwise", elementwise::ENTRIES),
    ("gemm", gemm::ENTRIES),
    ("index", index::ENTRIES),
    ("layernorm", layernorm::ENTRIES),
    ("loss", loss::ENTRIES),
    ("lstm", lstm::ENTRIES),
    ("permute", permute::ENTRIES),
    ("reduce", reduce::ENTRIES),
    ("select", select::ENTRIES),
    ("softmax", softmax::ENTRIES),
    ("update", update::ENTRIES),
];

/// The f32 or f64 name of an entry point, for element type `T`.
pub fn pick<T: Float>(f32_entry: &'static str, f64_entry: &'static str) -> &'static str {
    if T::DTYPE == "F32" {
        f32_entry
    } else {
        f64_entry
    }
}

/// A scalar kernel argument of element type `T`.
pub fn scalar<T: Float>(v: f64) -> KernelArg {
    if T::DTYPE == "F32" {
        KernelArg::F32(v as f32)
    } else {
        KernelArg::F64(v)
    }
}

/// A count or index as the kernels take it (`u64`).
pub fn count(n: usize) -> KernelArg {
    KernelArg::U64(n as u64)
}

/// The real CUDA device `ordinal`, or why there is none (no driver library, no such
/// device, or a build without the `cuda` feature).
pub fn cuda_context(ordinal: usize) -> Result<Arc<GpuContext>, GpuError> {
    #[cfg(feature = "cuda")]
    {
        Ok(GpuContext::new(Box::new(cuda::CudaLauncher::new(ordinal)?)))
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = ordinal;
        Err(GpuError::Unavailable("tapegrad was built without the `cuda` feature".into()))
    }
}

/// The simulated GPU (the PTX interpreter) as a device of its own.
pub fn sim_context() -> Arc<GpuContext> {
    GpuContext::new(Box::new(sim::SimLauncher::new()))
}

/// The devices the GPU tests run on here: the simulated GPU always, and the first
/// CUDA device when there is one (says so when there is none).
pub fn test_contexts() -> Vec<Arc<GpuContext>> {
    let mut out = vec![sim_context()];
    match cuda_context(0) {
        Ok(ctx) => out.push(ctx),
        Err(e) => eprintln!("GPU tests: no real GPU here ({e}); running on the simulated GPU only"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_exists_and_none_is_unlisted() {
        for (module, listed) in FAMILIES {
            let ptx = ptx::module(module).unwrap_or_else(|| panic!("no PTX module {module}"));
            let found = ptx::entries(ptx);
            for e in *listed {
                assert!(found.contains(e), "{module}.ptx has no entry {e}");
            }
            for e in &found {
                assert!(listed.contains(e), "{module}.ptx entry {e} is not listed in its family's ENTRIES");
            }
        }
        for (name, _) in ptx::MODULES {
            assert!(FAMILIES.iter().any(|(m, _)| m == name), "module {name} is in no family");
        }
    }

    #[test]
    fn no_device_is_an_error_not_a_panic() {
        // On a machine without libcuda (CI) this must be a clear error.
        if let Err(e) = cuda_context(0) {
            assert!(matches!(e, GpuError::Unavailable(_)), "{e}");
            assert!(!e.to_string().is_empty());
        }
        let e = cuda_context(1_000).err().expect("no machine has 1001 GPUs");
        assert!(e.to_string().contains("no CUDA device"), "{e}");
    }
}
