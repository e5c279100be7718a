//! The PTX modules built from `kernels/cuda/*.cu` (see `kernels/build.rs`), embedded
//! in the binary: a launcher loads a module by name on its first launch.

include!(concat!(env!("OUT_DIR"), "/ptx_modules.rs"));

/// The PTX text of module `name` (the stem of its `.cu` file).
pub fn module(name: &str) -> Option<&'static str> {
    MODULES.iter().find(|(n, _)| *n == name).map(|(_, ptx)| *ptx)
}

/// The `.entry` names declared in a PTX text, in order.
pub fn entries(ptx: &str) -> Vec<&str> {
    ptx.lines()
        .filter_map(|l| {
            l.trim_start().strip_prefix(".visible .entry ").or_else(|| l.trim_start().strip_prefix(".entry "))
        })
        .map(|rest| rest.split(['(', ' ']).next().unwrap_or(rest).trim())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed PTX is what the compiler produces from the committed sources
    /// (run with nvcc; CI requires it). Refresh with `TAPEGRAD_UPDATE_PTX=1 cargo build -p tapegrad-kernels`.
    #[test]
    fn committed_ptx_is_fresh() {
        if !FROM_NVCC {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "CI must build the kernels with nvcc (TAPEGRAD_REQUIRE_NVCC=1)"
            );
            eprintln!("SKIPPED committed_ptx_is_fresh: this build embedded the committed PTX (no nvcc)");
            return;
        }
        for (name, ptx) in MODULES {
            let path = std::path::Path::new(COMMITTED_DIR).join(format!("{name}.ptx"));
            let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (run TAPEGRAD_UPDATE_PTX=1 cargo build -p tapegrad-kernels)", path.display())
            });
            assert!(
                committed == *ptx,
                "{} differs from what nvcc produces from cuda/{name}.cu; run TAPEGRAD_UPDATE_PTX=1 cargo build -p tapegrad-kernels",
                path.display()
            );
        }
    }

    /// Every module targets PTX ISA ≤ 9.0 (the newest the CUDA 13.0 driver, 580, loads) and sm_80.
    #[test]
    fn ptx_isa_is_loadable_by_the_target_driver() {
        for (name, ptx) in MODULES {
            let version = ptx
                .lines()
                .find_map(|l| l.strip_prefix(".version "))
                .unwrap_or_else(|| panic!("{name}: no .version"));
            let (major, minor) = version.trim().split_once('.').expect("x.y");
            let v = (major.parse::<u32>().unwrap(), minor.parse::<u32>().unwrap());
            assert!(v <= (9, 0), "{name}.ptx is PTX ISA {version}, newer than 9.0");
            assert!(ptx.contains(".target sm_80"), "{name}.ptx does not target sm_80");
        }
    }

    #[test]
    fn entries_are_found() {
        let ptx = ".version 9.0\n.visible .entry foo_f32(\n\t.param .u64 a\n)\n{\n}\n.visible .entry bar(\n)";
        assert_eq!(entries(ptx), vec!["foo_f32", "bar"]);
    }
}
