//! Every committed PTX module loads, and the loader's errors name what they reject.
mod common;
use tapegrad_ptx_sim::SimGpu;

#[test]
fn every_committed_module_loads() {
    for m in ["elementwise", "index", "reduce", "sgemm", "chacha", "faults", "teach", "handwritten"] {
        let gpu = common::gpu_with(m);
        assert!(gpu.has_module(m));
        assert!(!gpu.entries(m).is_empty(), "{m} has no entries");
    }
}

#[test]
fn unsupported_instruction_is_named_with_its_line() {
    let ptx = ".version 9.0\n.target sm_80\n.address_size 64\n.visible .entry k(\n.param .u64 p\n)\n{\n.reg .b32 %r<3>;\nmul24.lo.s32 %r1, %r2, %r2;\nret;\n}\n";
    let e = SimGpu::new().load_module("m", ptx).unwrap_err().to_string();
    assert!(e.contains("unsupported instruction `mul24.lo.s32`") && e.contains("line 9"), "{e}");
}

#[test]
fn unknown_register_and_label_are_errors() {
    let base = ".version 9.0\n.target sm_80\n.address_size 64\n.visible .entry k()\n{\n.reg .b32 %r<3>;\n";
    let e = SimGpu::new()
        .load_module("m", &format!("{base}add.s32 %r1, %r9, 1;\nret;\n}}\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown register `%r9`") && e.contains("line 7"), "{e}");
    let e = SimGpu::new().load_module("m", &format!("{base}bra $L_nowhere;\n}}\n")).unwrap_err().to_string();
    assert!(e.contains("unknown label `$L_nowhere`"), "{e}");
}

/// The simulator models the error of `ex2.approx.f32`, `rcp.approx.f32` and
/// `rcp.approx.ftz.f64` (`src/approx.rs`) and computes every other approximate instruction
/// exactly: the engine's kernels must use no other, or their tests on the simulator would
/// stop showing what a GPU computes.
#[test]
fn approximate_instructions_the_engine_uses_are_modelled() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ptx");
    let modelled = [
        "ex2.approx.ftz.f32",
        "ex2.approx.f32",
        "rcp.approx.ftz.f32",
        "rcp.approx.f32",
        "rcp.approx.ftz.f64",
    ];
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "ptx") {
            continue;
        }
        for (n, line) in std::fs::read_to_string(&path).unwrap().lines().enumerate() {
            let Some(op) = line.split_whitespace().next() else { continue };
            let approximate = op.contains(".approx")
                || op.contains(".full")
                || ["rsqrt", "lg2", "sin", "cos", "tanh"].contains(&op.split('.').next().unwrap());
            if approximate {
                assert!(modelled.contains(&op), "{}:{}: `{op}` is not modelled", path.display(), n + 1);
                seen += 1;
            }
        }
    }
    assert!(seen > 50, "the engine's PTX has {seen} approximate instructions: is {dir:?} right?");
}
