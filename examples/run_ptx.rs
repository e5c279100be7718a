//! Runs one entry point of any PTX file nvcc emits on the simulated GPU.
//!
//! ```text
//! cargo run --release --example run_ptx -- kernel.ptx ENTRY --grid 4,1,1 --block 256,1,1 \
//!     [--shared BYTES] [--input in.safetensors] --arg x --arg 'y:f32[1024]' --arg u32:1024 \
//!     --arg f32:0.5 --output out.safetensors
//! ```
//!
//! Parameters are given in the entry's order, each `--arg` one of:
//! - `NAME`: the tensor NAME of the `--input` file, copied to a device buffer (a pointer);
//! - `NAME:DTYPE[N]`: a new zero-filled buffer of N elements (DTYPE: f32, f64, f16, bf16,
//!   i32, u32, i64, u64, u8, i8);
//! - `TYPE:VALUE`: a scalar (TYPE: u32, i32, u64, i64, f32, f64).
//!
//! After the launch every buffer is written to `--output` (a safetensors file, written
//! atomically), input tensors with their shapes. A fault (out-of-bounds access, barrier
//! skipped, shuffle mask naming exited lanes, shared-memory race) is reported with the
//! kernel, block, thread and PTX line.

#[path = "support/cli.rs"]
mod cli;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use tapegrad_ptx_sim::{Arg, LaunchDims, SimGpu};

const USAGE: &str = "usage: run_ptx FILE.ptx ENTRY --grid X,Y,Z --block X,Y,Z [--shared BYTES] \
[--input IN.safetensors] --arg NAME | --arg NAME:DTYPE[N] | --arg TYPE:VALUE ... --output OUT.safetensors";

#[derive(Debug, PartialEq)]
enum ArgSpec {
    Input(String),
    New { name: String, dtype: Dtype, len: usize },
    Scalar(Arg),
}

#[derive(Debug)]
struct Options {
    ptx: PathBuf,
    entry: String,
    dims: LaunchDims,
    input: Option<PathBuf>,
    output: PathBuf,
    args: Vec<ArgSpec>,
}

fn dims3(flag: &str, s: &str) -> Result<[u32; 3], String> {
    let v: Vec<u32> = s
        .split(',')
        .map(|x| x.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{flag} {s}: expected X,Y,Z"))?;
    match v.as_slice() {
        [x] => Ok([*x, 1, 1]),
        [x, y] => Ok([*x, *y, 1]),
        [x, y, z] => Ok([*x, *y, *z]),
        _ => Err(format!("{flag} {s}: expected X,Y,Z")),
    }
}

fn dtype(s: &str) -> Option<Dtype> {
    Some(match s {
        "f32" => Dtype::F32,
        "f64" => Dtype::F64,
        "f16" => Dtype::F16,
        "bf16" => Dtype::BF16,
        "i32" => Dtype::I32,
        "u32" => Dtype::U32,
        "i64" => Dtype::I64,
        "u64" => Dtype::U64,
        "u8" => Dtype::U8,
        "i8" => Dtype::I8,
        _ => return None,
    })
}

/// Bytes that `n` elements of `dtype` take (sub-byte types such as F4 pack; safetensors
/// rejects a tensor whose bits do not fill whole bytes).
fn byte_len(dtype: Dtype, n: usize) -> usize {
    (n * dtype.bitsize()).div_ceil(8)
}

fn arg_spec(s: &str) -> Result<ArgSpec, String> {
    let bad = |why: &str| format!("--arg {s}: {why}");
    let Some((head, tail)) = s.split_once(':') else { return Ok(ArgSpec::Input(s.to_string())) };
    if let Some(spec) = tail.strip_suffix(']') {
        let (dt, n) = spec.split_once('[').ok_or_else(|| bad("expected NAME:DTYPE[N]"))?;
        let dtype = dtype(dt).ok_or_else(|| bad("unknown dtype"))?;
        let len = n.parse().map_err(|_| bad("bad element count"))?;
        return Ok(ArgSpec::New { name: head.to_string(), dtype, len });
    }
    let num = |what: &str| bad(&format!("`{tail}` is not a valid {what}"));
    Ok(ArgSpec::Scalar(match head {
        "u32" => Arg::U32(tail.parse().map_err(|_| num("u32"))?),
        "i32" => Arg::I32(tail.parse().map_err(|_| num("i32"))?),
        "u64" => Arg::U64(tail.parse().map_err(|_| num("u64"))?),
        "i64" => Arg::I64(tail.parse().map_err(|_| num("i64"))?),
        "f32" => Arg::F32(tail.parse().map_err(|_| num("f32"))?),
        "f64" => Arg::F64(tail.parse().map_err(|_| num("f64"))?),
        _ => return Err(bad("unknown scalar type (u32, i32, u64, i64, f32, f64)")),
    }))
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut pos = Vec::new();
    let (mut grid, mut block, mut shared) = (None, None, 0u32);
    let (mut input, mut output, mut specs) = (None, None, Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--grid" => grid = Some(dims3(a, &val()?)?),
            "--block" => block = Some(dims3(a, &val()?)?),
            "--shared" => {
                shared = val()?.parse().map_err(|_| "--shared: expected a byte count".to_string())?
            }
            "--input" => input = Some(PathBuf::from(val()?)),
            "--output" => output = Some(PathBuf::from(val()?)),
            "--arg" => specs.push(arg_spec(&val()?)?),
            f if f.starts_with("--") => return Err(format!("unknown flag {f}")),
            p => pos.push(p.to_string()),
        }
    }
    let [ptx, entry] = <[String; 2]>::try_from(pos).map_err(|_| "expected FILE.ptx and ENTRY".to_string())?;
    Ok(Options {
        ptx: PathBuf::from(ptx),
        entry,
        dims: LaunchDims {
            grid: grid.ok_or("--grid is required")?,
            block: block.ok_or("--block is required")?,
            shared_bytes: shared,
        },
        input,
        output: output.ok_or("--output is required")?,
        args: specs,
    })
}

/// One device buffer and how to write it back.
struct Buffer {
    name: String,
    ptr: u64,
    dtype: Dtype,
    shape: Vec<usize>,
}

fn run(o: &Options) -> Result<String, String> {
    let ptx = std::fs::read_to_string(&o.ptx).map_err(|e| format!("{}: {e}", o.ptx.display()))?;
    let in_bytes = match &o.input {
        Some(p) => std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => Vec::new(),
    };
    let inputs = match &o.input {
        Some(p) => Some(SafeTensors::deserialize(&in_bytes).map_err(|e| format!("{}: {e}", p.display()))?),
        None => None,
    };
    let gpu = SimGpu::new();
    gpu.load_module("m", &ptx).map_err(|e| format!("{}: {e}", o.ptx.display()))?;
    if !gpu.entries("m").contains(&o.entry) {
        return Err(format!(
            "{} has no entry `{}` (entries: {})",
            o.ptx.display(),
            o.entry,
            gpu.entries("m").join(", ")
        ));
    }
    let (mut args, mut bufs) = (Vec::new(), Vec::<Buffer>::new());
    for spec in &o.args {
        match spec {
            ArgSpec::Scalar(a) => args.push(*a),
            ArgSpec::Input(name) => {
                let t = inputs.as_ref().ok_or_else(|| format!("--arg {name} needs --input"))?;
                let v = t.tensor(name).map_err(|_| {
                    format!("{}: no tensor `{name}`", o.input.as_ref().expect("input").display())
                })?;
                let ptr = gpu.alloc(v.data().len().max(1)).map_err(|e| e.to_string())?;
                gpu.write(ptr, v.data()).map_err(|e| e.to_string())?;
                bufs.push(Buffer { name: name.clone(), ptr, dtype: v.dtype(), shape: v.shape().to_vec() });
                args.push(Arg::Ptr(ptr));
            }
            ArgSpec::New { name, dtype, len } => {
                let ptr = gpu.alloc(byte_len(*dtype, *len).max(1)).map_err(|e| e.to_string())?;
                bufs.push(Buffer { name: name.clone(), ptr, dtype: *dtype, shape: vec![*len] });
                args.push(Arg::Ptr(ptr));
            }
        }
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    for b in &bufs {
        if names.insert(&b.name, 1).is_some() {
            return Err(format!("buffer `{}` is given twice", b.name));
        }
    }
    let t0 = std::time::Instant::now();
    let stats = gpu.launch("m", &o.entry, o.dims, &args).map_err(|e| e.to_string())?;
    let secs = t0.elapsed().as_secs_f64();
    let mut data = Vec::new();
    for b in &bufs {
        let mut v = vec![0u8; byte_len(b.dtype, b.shape.iter().product())];
        gpu.read(b.ptr, &mut v).map_err(|e| e.to_string())?;
        data.push((b.name.clone(), b.dtype, b.shape.clone(), v));
    }
    write_atomically(&o.output, &data)?;
    Ok(format!(
        "{}: {} thread-instructions in {secs:.3} s; {} buffers written to {}",
        o.entry,
        stats.thread_instructions,
        data.len(),
        o.output.display()
    ))
}

fn write_atomically(path: &Path, data: &[(String, Dtype, Vec<usize>, Vec<u8>)]) -> Result<(), String> {
    let views = data
        .iter()
        .map(|(n, d, s, v)| safetensors::tensor::TensorView::new(*d, s.clone(), v).map(|t| (n.clone(), t)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let bytes = safetensors::serialize(views, None).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("safetensors.tmp");
    std::fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

fn main() {
    let args = cli::Cli::new(USAGE).into_args();
    let o = match parse_options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    match run(&o) {
        Ok(msg) => println!("{msg}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn arguments_are_parsed_and_bad_ones_named() {
        assert_eq!(arg_spec("x").unwrap(), ArgSpec::Input("x".into()));
        assert_eq!(
            arg_spec("y:f64[7]").unwrap(),
            ArgSpec::New { name: "y".into(), dtype: Dtype::F64, len: 7 }
        );
        assert!(matches!(arg_spec("u32:1024").unwrap(), ArgSpec::Scalar(Arg::U32(1024))));
        assert!(arg_spec("f32:abc").unwrap_err().contains("`abc` is not a valid f32"));
        assert!(arg_spec("q16:1").unwrap_err().contains("unknown scalar type"));
        let e = parse_options(&strings(&["k.ptx", "e", "--block", "32", "--output", "o"])).unwrap_err();
        assert!(e.contains("--grid is required"), "{e}");
        assert!(parse_options(&strings(&["k.ptx", "--grid", "1,2,3,4"]))
            .unwrap_err()
            .contains("expected X,Y,Z"));
    }

    #[test]
    fn runs_a_kernel_from_safetensors_to_safetensors() {
        let dir = std::env::temp_dir().join(format!("run_ptx_test_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let x: Vec<u8> = (0..50).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(Dtype::F32, vec![5, 10], &x).unwrap();
        std::fs::write(dir.join("in.safetensors"), safetensors::serialize([("x", view)], None).unwrap())
            .unwrap();
        let ptx = concat!(env!("CARGO_MANIFEST_DIR"), "/kernels/ptx-sim/tests/ptx/teach.ptx");
        let (input, output) = (dir.join("in.safetensors"), dir.join("out.safetensors"));
        let o = parse_options(&strings(&[
            ptx,
            "block_sum",
            "--grid",
            "1,1,1",
            "--block",
            "64",
            "--input",
            input.to_str().unwrap(),
            "--arg",
            "x",
            "--arg",
            "sum:f32[1]",
            "--arg",
            "i32:50",
            "--output",
            output.to_str().unwrap(),
        ]))
        .unwrap();
        run(&o).unwrap();
        let bytes = std::fs::read(&output).unwrap();
        let out = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(out.tensor("x").unwrap().shape(), &[5, 10]);
        assert_eq!(out.tensor("sum").unwrap().data(), 1225f32.to_le_bytes());
        // A fault is reported with the kernel and line, and nothing is written.
        let bad = Options {
            args: vec![o.args[0].clone_input(), ArgSpec::Scalar(Arg::U64(64)), ArgSpec::Scalar(Arg::I32(50))],
            ..o
        };
        std::fs::remove_file(&output).unwrap();
        let e = run(&bad).unwrap_err();
        assert!(e.contains("kernel `block_sum`") && e.contains("out-of-bounds global store"), "{e}");
        assert!(!output.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    impl ArgSpec {
        fn clone_input(&self) -> ArgSpec {
            match self {
                ArgSpec::Input(n) => ArgSpec::Input(n.clone()),
                _ => unreachable!("test helper for inputs"),
            }
        }
    }
}
