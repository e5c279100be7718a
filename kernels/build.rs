//! Compiles every `cuda/*.cu` to PTX with nvcc (`-O3 -arch=compute_80`) and embeds the
//! result; without nvcc, embeds the committed `ptx/<name>.ptx` instead. A new kernel
//! file needs no edit here: the folder is globbed.
//!
//! - `NVCC` names the compiler; otherwise `$CUDA_HOME/bin/nvcc`, `nvcc` on `PATH`, and the
//!   pinned wheels `.ci/run` installs (`~/.cache/tapegrad/cuda-13.0`) are tried.
//! - `TAPEGRAD_REQUIRE_NVCC=1` (CI) makes a missing compiler a build error.
//! - `TAPEGRAD_UPDATE_PTX=1` writes the compiled PTX over the committed files.
//!
//! The test `committed_ptx_is_fresh` fails when the committed PTX differs from what the
//! compiler produces, so the two cannot drift.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const FLAGS: &[&str] = &["-ptx", "-O3", "-arch=compute_80", "-std=c++17"];

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let cuda_dir = root.join("cuda");
    let ptx_dir = root.join("ptx");
    println!("cargo:rerun-if-changed={}", cuda_dir.display());
    println!("cargo:rerun-if-changed={}", ptx_dir.display());
    for var in ["NVCC", "CUDA_HOME", "TAPEGRAD_REQUIRE_NVCC", "TAPEGRAD_UPDATE_PTX", "PATH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo::rustc-check-cfg=cfg(tapegrad_nvcc)");

    let mut sources: Vec<PathBuf> = fs::read_dir(&cuda_dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    sources.retain(|p| p.extension().is_some_and(|e| e == "cu"));
    sources.sort();
    for entry in fs::read_dir(&cuda_dir).into_iter().flatten().flatten() {
        println!("cargo:rerun-if-changed={}", entry.path().display());
    }

    let nvcc = find_nvcc();
    let required = env::var("TAPEGRAD_REQUIRE_NVCC").is_ok_and(|v| v == "1");
    if nvcc.is_none() && required {
        panic!(
            "TAPEGRAD_REQUIRE_NVCC=1 but no nvcc was found (set NVCC, or install the pinned CUDA 13.0 \
             wheels as .ci/run does)"
        );
    }
    let update = env::var("TAPEGRAD_UPDATE_PTX").is_ok_and(|v| v == "1");

    let mut table =
        String::from("/// (module name, PTX text) for every `kernels/cuda/*.cu`, sorted by name.\n");
    table.push_str("pub static MODULES: &[(&str, &str)] = &[\n");
    for src in &sources {
        let name = src.file_stem().unwrap().to_string_lossy().to_string();
        let committed = ptx_dir.join(format!("{name}.ptx"));
        let embedded = match &nvcc {
            Some(nvcc) => {
                let ptx = out.join(format!("{name}.ptx"));
                compile(nvcc, src, &cuda_dir, &ptx);
                if update {
                    fs::create_dir_all(&ptx_dir).unwrap();
                    fs::copy(&ptx, &committed).unwrap();
                }
                ptx
            }
            None => {
                if !committed.exists() {
                    panic!(
                        "{} has no committed PTX ({}) and no nvcc was found to compile it",
                        src.display(),
                        committed.display()
                    );
                }
                committed
            }
        };
        table.push_str(&format!("    ({name:?}, include_str!({:?})),\n", embedded.display().to_string()));
    }
    table.push_str("];\n");
    table.push_str(&format!("/// True when this build compiled the `.cu` files (false: the committed PTX).\npub const FROM_NVCC: bool = {};\n", nvcc.is_some()));
    table.push_str(&format!(
        "/// The committed PTX folder, for the freshness test.\npub const COMMITTED_DIR: &str = {:?};\n",
        ptx_dir.display().to_string()
    ));
    fs::write(out.join("ptx_modules.rs"), table).unwrap();
    if nvcc.is_some() {
        println!("cargo:rustc-cfg=tapegrad_nvcc");
    }
}

fn compile(nvcc: &Path, src: &Path, include: &Path, ptx: &Path) {
    let output = Command::new(nvcc)
        .args(FLAGS)
        .arg("-I")
        .arg(include)
        .arg(src)
        .arg("-o")
        .arg(ptx)
        .output()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", nvcc.display()));
    if !output.status.success() {
        panic!(
            "nvcc failed on {}:\n{}{}",
            src.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn find_nvcc() -> Option<PathBuf> {
    if let Ok(p) = env::var("NVCC") {
        return Some(PathBuf::from(p));
    }
    if let Ok(home) = env::var("CUDA_HOME") {
        let p = Path::new(&home).join("bin/nvcc");
        if p.exists() {
            return Some(p);
        }
    }
    if let Ok(path) = env::var("PATH") {
        for dir in env::split_paths(&path) {
            let p = dir.join("nvcc");
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let home = env::var("HOME").ok()?;
    let venv = Path::new(&home).join(".cache/tapegrad/cuda-13.0/lib");
    for py in fs::read_dir(venv).ok()?.flatten() {
        let p = py.path().join("site-packages/nvidia/cu13/bin/nvcc");
        if p.is_file() {
            return Some(p);
        }
    }
    None
}
