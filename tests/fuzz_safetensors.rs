//! Fuzzing the safetensors reader on stable Rust: property tests that mutate
//! valid files (bytes flipped, set, cut, inserted; the length field rewritten;
//! digits of the header's shapes and offsets changed) and assert that the reader
//! never panics, accepts exactly what the `safetensors` crate accepts, names the
//! file in every error, reads every tensor of an accepted file, allocates at most
//! a small multiple of the file's size, and answers quickly.
//!
//! `PROPTEST_CASES=100000 cargo test --release --test fuzz_safetensors` for a long run.

#[path = "support/peak_alloc.rs"]
mod peak_alloc;

use peak_alloc::{cases, peak_of, PeakAlloc};
use proptest::prelude::*;
use proptest::sample::Index;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tapegrad::models::safetensors_io::{Dtype, SafeTensorsFile, SafetensorsError};

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

const DTYPES: [Dtype; 10] = [
    Dtype::F32,
    Dtype::F64,
    Dtype::F16,
    Dtype::BF16,
    Dtype::I64,
    Dtype::I32,
    Dtype::I16,
    Dtype::U8,
    Dtype::BOOL,
    Dtype::U32,
];

/// A valid file written by the crate: up to 5 tensors of up to 3 small dims.
fn valid_file() -> impl Strategy<Value = Vec<u8>> {
    let tensor = (0..DTYPES.len(), prop::collection::vec(0..5usize, 0..3), any::<u8>());
    (prop::collection::vec(tensor, 0..5), any::<bool>()).prop_map(|(tensors, with_meta)| {
        let data: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
            .into_iter()
            .enumerate()
            .map(|(i, (d, shape, fill))| {
                let dtype = DTYPES[d];
                let n: usize = shape.iter().product::<usize>() * dtype.bitsize() / 8;
                let bytes =
                    (0..n).map(|k| fill.wrapping_add(k as u8) & if dtype == Dtype::BOOL { 1 } else { 0xff });
                (format!("layer.{i}.weight"), dtype, shape, bytes.collect())
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView)> = data
            .iter()
            .map(|(n, d, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        let meta = with_meta.then(|| HashMap::from([("format".to_string(), "pt".to_string())]));
        safetensors::serialize(views, meta).unwrap()
    })
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Truncate(Index),
    Insert(Index, Vec<u8>),
    Length(u64),
    LengthDelta(i16),
    /// Rewrite a digit of the header (shapes, offsets) or add one.
    Digit(Index, u8, bool),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 1..=255u8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        prop_oneof![Just(0u64), Just(u64::MAX), Just(100_000_001), any::<u64>()].prop_map(Mutation::Length),
        (-40..40i16).prop_map(Mutation::LengthDelta),
        (any::<Index>(), 0..10u8, any::<bool>()).prop_map(|(i, d, add)| Mutation::Digit(i, d, add)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len();
    match m {
        Mutation::Flip(i, b) if len > 0 => bytes[i.index(len)] ^= b,
        Mutation::Set(i, b) if len > 0 => bytes[i.index(len)] = *b,
        Mutation::Truncate(i) => bytes.truncate(i.index(len + 1)),
        Mutation::Insert(i, b) => {
            let at = i.index(len + 1);
            bytes.splice(at..at, b.iter().copied());
        }
        Mutation::Length(n) if len >= 8 => bytes[..8].copy_from_slice(&n.to_le_bytes()),
        Mutation::LengthDelta(d) if len >= 8 => {
            let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()).wrapping_add(*d as i64 as u64);
            bytes[..8].copy_from_slice(&n.to_le_bytes());
        }
        Mutation::Digit(i, d, add) => {
            let digits: Vec<usize> = (0..len).filter(|&k| bytes[k].is_ascii_digit()).collect();
            if !digits.is_empty() {
                let at = digits[i.index(digits.len())];
                if *add {
                    bytes.insert(at, b'0' + d);
                } else {
                    bytes[at] = b'0' + d;
                }
            }
        }
        _ => {}
    }
}

/// Reads every tensor of an accepted file; the element count of each.
fn read_all(f: &SafeTensorsFile) -> Result<Vec<usize>, SafetensorsError> {
    let names: Vec<String> = f.names().map(str::to_string).collect();
    let mut counts = Vec::new();
    for name in names {
        let dtype = f.info(&name).unwrap().dtype;
        let n = match dtype {
            Dtype::F32 | Dtype::F64 | Dtype::F16 | Dtype::BF16 => f.tensor::<f32>(&name)?.numel(),
            Dtype::I64 | Dtype::I32 | Dtype::I16 | Dtype::I8 | Dtype::U8 | Dtype::BOOL => {
                f.tensor_i64(&name)?.0.len()
            }
            _ => match f.tensor::<f32>(&name) {
                Err(SafetensorsError::WrongDtype { .. }) => f.info(&name).unwrap().shape.iter().product(),
                other => panic!("`{name}` of {dtype:?}: {:?}", other.map(|t| t.numel())),
            },
        };
        counts.push(n);
    }
    Ok(counts)
}

struct Scratch(PathBuf);
impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tapegrad-fuzz-st-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn check(dir: &Scratch, bytes: &[u8]) -> Result<(), TestCaseError> {
    let path = dir.0.join("fuzz.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let t0 = Instant::now();
    let (ours, peak) = peak_of(|| SafeTensorsFile::open(&path).map(|f| (read_all(&f), f.names().count())));
    let elapsed = t0.elapsed();
    let theirs = safetensors::SafeTensors::deserialize(bytes);
    prop_assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    prop_assert!(
        peak <= 8 * bytes.len() + (1 << 20),
        "allocated {peak} bytes at once for a {}-byte file",
        bytes.len()
    );
    match (ours, theirs) {
        (Ok((counts, n)), Ok(st)) => {
            let counts = counts.expect("every tensor of an accepted file reads");
            prop_assert_eq!(n, st.len());
            for (name, view) in st.tensors() {
                let info_n: usize = view.shape().iter().product();
                prop_assert!(counts.contains(&info_n), "`{}`", name);
            }
        }
        (Err(e), Err(_)) => {
            let msg = e.to_string();
            prop_assert!(msg.contains("fuzz.safetensors"), "the error names the file: {}", msg);
            for bare in ["TensorInvalidInfo", "InvalidOffset", "MetadataIncompleteBuffer"] {
                prop_assert!(!msg.contains(bare), "{}", msg);
            }
        }
        (ours, theirs) => prop_assert!(
            false,
            "verdicts differ: ours {:?}, the crate's {:?}",
            ours.map(|(_, n)| n).err(),
            theirs.map(|st| st.len()).err()
        ),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(4000), ..ProptestConfig::default() })]

    #[test]
    fn mutated_files_never_panic_and_agree_with_the_crate(
        file in valid_file(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let dir = Scratch::new("mutated");
        let mut bytes = file;
        for m in &mutations {
            apply(&mut bytes, m);
        }
        check(&dir, &bytes)?;
    }

    #[test]
    fn valid_files_are_accepted(file in valid_file()) {
        let dir = Scratch::new("valid");
        let path = dir.0.join("v.safetensors");
        std::fs::write(&path, &file).unwrap();
        prop_assert!(SafeTensorsFile::open(&path).is_ok());
        check(&dir, &file)?;
    }
}
