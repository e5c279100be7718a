//! A launcher that runs nothing and checks every launch against the PTX (tests only):
//! the arguments must match the entry's `.param` list in number, order and type, and
//! the block must suit the kernels' reductions (a multiple of 32, at most 1024). With
//! no GPU here, this is how each typed launcher's arguments are proven to fit its
//! kernel; the simulated GPU then checks what the kernels compute.

use super::launcher::{DevPtr, GpuError, Kernel, KernelArg, LaunchDims, Launcher};
use super::{ptx, GpuContext};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A context whose launches are checked, not run (memory is fake; reads give zeros).
pub fn context() -> Arc<GpuContext> {
    GpuContext::new(Box::new(ParamCheck { next: AtomicU64::new(1 << 20) }))
}

struct ParamCheck {
    next: AtomicU64,
}

/// The `.param` types of `entry` in `ptx`, in order (`u64`, `u32`, `f32`, …).
fn param_types<'a>(ptx: &'a str, entry: &str) -> Option<Vec<&'a str>> {
    let start = ptx.find(&format!(".entry {entry}("))?;
    let body = &ptx[start..];
    let end = body.find(')')?;
    Some(
        body[..end]
            .lines()
            .filter_map(|l| l.trim().strip_prefix(".param ."))
            .map(|rest| rest.split([' ', '\t']).next().unwrap_or(rest))
            .collect(),
    )
}

fn arg_type(a: &KernelArg) -> &'static str {
    match a {
        KernelArg::Ptr(_) | KernelArg::U64(_) => "u64",
        KernelArg::I64(_) => "s64",
        KernelArg::U32(_) => "u32",
        KernelArg::I32(_) => "s32",
        KernelArg::F32(_) => "f32",
        KernelArg::F64(_) => "f64",
    }
}

impl Launcher for ParamCheck {
    fn name(&self) -> String {
        "parameter check (runs nothing)".into()
    }
    fn alloc(&self, bytes: usize) -> Result<DevPtr, GpuError> {
        Ok(self.next.fetch_add((bytes as u64).next_multiple_of(256), Ordering::Relaxed))
    }
    fn free(&self, _: DevPtr) -> Result<(), GpuError> {
        Ok(())
    }
    fn copy_to_device(&self, _: DevPtr, _: &[u8]) -> Result<(), GpuError> {
        Ok(())
    }
    fn copy_to_host(&self, _: DevPtr, dst: &mut [u8]) -> Result<(), GpuError> {
        dst.fill(0);
        Ok(())
    }
    fn copy_on_device(&self, _: DevPtr, _: DevPtr, _: usize) -> Result<(), GpuError> {
        Ok(())
    }
    fn memset(&self, _: DevPtr, _: u8, _: usize) -> Result<(), GpuError> {
        Ok(())
    }
    fn launch(&self, kernel: Kernel, dims: LaunchDims, args: &[KernelArg]) -> Result<(), GpuError> {
        let fail = |message: String| Err(GpuError::Launch { kernel: kernel.entry.into(), message });
        let Some(module) = ptx::module(kernel.module) else {
            return fail(format!("no PTX module {}", kernel.module));
        };
        let Some(params) = param_types(module, kernel.entry) else {
            return fail(format!("no entry in {}.ptx", kernel.module));
        };
        let given: Vec<&str> = args.iter().map(arg_type).collect();
        // nvcc declares signed integer parameters .u32/.u64 too
        let same = params.len() == given.len()
            && params
                .iter()
                .zip(&given)
                .all(|(p, g)| p == g || (*p == "u32" && *g == "s32") || (*p == "u64" && *g == "s64"));
        if !same {
            return fail(format!("PTX takes {params:?}, the launcher passes {given:?}"));
        }
        let threads = dims.block.iter().product::<u32>();
        if !dims.block[0].is_multiple_of(32) || threads > 1024 || dims.grid.contains(&0) {
            return fail(format!("bad launch geometry {dims:?}"));
        }
        Ok(())
    }
    fn synchronize(&self) -> Result<(), GpuError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_param_types() {
        let ptx = ".visible .entry k_f32(\n\t.param .u32 a,\n\t.param .f32 b,\n\t.param .u64 c\n)\n{\n}";
        assert_eq!(param_types(ptx, "k_f32"), Some(vec!["u32", "f32", "u64"]));
        assert_eq!(param_types(ptx, "k_f64"), None);
    }

    #[test]
    fn a_wrong_argument_list_is_an_error() {
        let ctx = context();
        let k = Kernel { module: "elementwise", entry: "unary_fwd_f32" };
        let good =
            [KernelArg::U32(0), KernelArg::F32(0.0), KernelArg::Ptr(1), KernelArg::Ptr(2), KernelArg::U64(3)];
        ctx.launch(k, LaunchDims::linear(1, 256), &good).unwrap();
        let mut bad = good;
        bad[1] = KernelArg::F64(0.0);
        assert!(ctx
            .launch(k, LaunchDims::linear(1, 256), &bad)
            .unwrap_err()
            .to_string()
            .contains("PTX takes"));
        assert!(ctx.launch(k, LaunchDims::linear(1, 256), &good[..4]).is_err());
        assert!(ctx.launch(k, LaunchDims::linear(1, 100), &good).is_err());
    }
}
