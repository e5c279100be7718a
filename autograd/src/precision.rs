//! The precision of the products of linear layers and attention on this thread: f32 (the
//! default) or bf16 mixed precision.
//!
//! ```text
//! bf16:  y  = bf16(x)·bf16(W)ᵀ + b          f32 sums (kernels::bf16gemm), f32 output
//!        dX = bf16(g)·bf16(W)                 the backward's products alike
//!        dW = bf16(g)ᵀ·bf16(x)                gradients f32
//!        S  = bf16(Q)·bf16(K)ᵀ,  O = bf16(P')·bf16(V)    attention, per head; its backward's
//!                                                         four products alike
//! ```
//!
//! Only the operands of `Tensor::linear`'s three products and `Tensor::attention`'s six are
//! rounded, in the GEMM's packing; every tensor stays f32, so the parameters are their own f32
//! master copies and the optimizer is unchanged. Everything else (attention's softmax and
//! dropout, layer norm, GELU, losses, `matmul`) runs in f32, as under PyTorch's
//! `torch.autocast(dtype=torch.bfloat16)` on the CPU. The mode is read when a linear or
//! attention op runs forward, and its backward uses the mode of its forward. f64 tensors (the
//! gradient checks' reference path) always compute in f64. bf16 runs on the CPU only:
//! [`check_device`].

use crate::Device;
use std::cell::Cell;
use std::fmt;

/// The arithmetic of the linear layers' and attention's products.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    /// f32 operands, f32 sums.
    #[default]
    F32,
    /// Operands rounded to bf16 (nearest even), f32 sums.
    Bf16,
}

impl Precision {
    /// `"f32"` or `"bf16"`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }

    /// Parses `"f32"` or `"bf16"`; an error names the accepted values.
    pub fn parse(s: &str) -> Result<Precision, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            _ => Err(format!("unknown precision {s:?} (expected f32 or bf16)")),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether `precision` can run on `device`: bf16 products exist on the CPU only.
pub fn check_device(precision: Precision, device: Device) -> Result<(), String> {
    match (precision, device) {
        (Precision::Bf16, d) if d != Device::Cpu => {
            Err(format!("--precision bf16 runs on the CPU only, not on {d} (use --precision f32 there)"))
        }
        _ => Ok(()),
    }
}

/// What `precision` buys on this CPU, when that is less than one might expect: bf16 without
/// AMX or AVX512-BF16 (absent, or switched off by `TAPEGRAD_NO_AVX512` or `isa::force`) runs
/// the f32 FMA kernel on bf16-rounded operands (`bf16gemm`'s AVX2 path) or the portable
/// kernel, so it gives bf16's numbers at about f32's speed or below. None for f32, and for
/// bf16 on bf16 arithmetic.
pub fn cpu_speed_note(precision: Precision) -> Option<String> {
    use tapegrad_kernels::bf16gemm::{cpu_has_amx, cpu_has_avx512bf16, path, Path};
    let p = match (precision, path()) {
        (Precision::F32, _) | (Precision::Bf16, Path::Amx | Path::Avx512Bf16) => return None,
        (Precision::Bf16, p) => p,
    };
    let why = match cpu_has_amx() || cpu_has_avx512bf16() {
        true => "this CPU's bf16 arithmetic is switched off here (TAPEGRAD_NO_AVX512)",
        false => "this CPU has neither AMX nor AVX512-BF16",
    };
    Some(format!(
        "{why}: the bf16 products run on the {} kernel, no faster than f32 \
         (the same numbers as with bf16 arithmetic)",
        p.name()
    ))
}

thread_local! {
    static PRODUCTS: Cell<Precision> = const { Cell::new(Precision::F32) };
}

/// The precision the linear and attention ops on this thread compute their products in now.
pub fn product_precision() -> Precision {
    PRODUCTS.with(|p| p.get())
}

/// Whether an op on `T` tensors starting now takes bf16 products: f32 tensors in bf16
/// precision (f64 always computes in f64).
pub(crate) fn bf16_products<T: tapegrad_kernels::Float>() -> bool {
    T::DTYPE == "F32" && product_precision() == Precision::Bf16
}

/// Runs the linear and attention ops of this thread in `precision` until the guard drops (then
/// the previous precision is back).
pub fn set_product_precision(precision: Precision) -> PrecisionGuard {
    PrecisionGuard { prev: PRODUCTS.with(|p| p.replace(precision)) }
}

/// The guard of [`set_product_precision`].
pub struct PrecisionGuard {
    prev: Precision,
}

impl Drop for PrecisionGuard {
    fn drop(&mut self) {
        PRODUCTS.with(|p| p.set(self.prev));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_note_only_for_bf16_without_bf16_arithmetic() {
        use tapegrad_kernels::bf16gemm::{path, Path};
        assert_eq!(cpu_speed_note(Precision::F32), None);
        let note = cpu_speed_note(Precision::Bf16);
        match path() {
            Path::Amx | Path::Avx512Bf16 => assert_eq!(note, None),
            p => assert!(note.is_some_and(|n| n.contains(p.name())), "path {p:?}"),
        }
    }

    #[test]
    fn parses_names_and_refuses_bf16_off_the_cpu() {
        assert_eq!(Precision::parse("bf16"), Ok(Precision::Bf16));
        assert_eq!(Precision::parse("f32").map(|p| p.to_string()), Ok("f32".to_string()));
        assert!(Precision::parse("fp16").unwrap_err().contains("expected f32 or bf16"));
        assert!(check_device(Precision::Bf16, Device::Cpu).is_ok());
        assert!(check_device(Precision::F32, Device::Sim).is_ok());
        let e = check_device(Precision::Bf16, Device::Sim).unwrap_err();
        assert!(e.contains("CPU only") && e.contains("sim"), "{e}");
    }

    #[test]
    fn the_guard_restores_the_previous_precision() {
        assert_eq!(product_precision(), Precision::F32);
        {
            let _outer = set_product_precision(Precision::Bf16);
            assert_eq!(product_precision(), Precision::Bf16);
            {
                let _inner = set_product_precision(Precision::F32);
                assert_eq!(product_precision(), Precision::F32);
            }
            assert_eq!(product_precision(), Precision::Bf16);
        }
        assert_eq!(product_precision(), Precision::F32);
    }
}
