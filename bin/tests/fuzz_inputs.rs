//! Fuzzing the program's inputs on stable Rust: property tests that mutate
//! checkpoint folders (weights, optimizer state, run.json, vocab.json), GloVe
//! text and caches, and aclImdb archives (plain and gzipped), asserting that
//! nothing panics, every error names its file, no input makes one allocation
//! larger than a small multiple of the bytes it holds, and each case answers
//! within seconds.
//!
//! `PROPTEST_CASES=20000 cargo test --release -p finetune-imdb --test fuzz_inputs`
//! for a long run.

#[path = "../../tests/support/peak_alloc.rs"]
mod peak_alloc;

mod data_common;

use data_common::*;
use finetune_imdb::data::glove::Glove;
use finetune_imdb::data::imdb::{read_imdb, Split};
use finetune_imdb::train::evaluate::{load_checkpoint_task, predict};
use peak_alloc::{cases, peak_of, PeakAlloc};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;
use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

const BOTH: &[Split] = &[Split::Train, Split::Test];

/// Byte-level damage to a file.
#[derive(Clone, Debug)]
enum Bytes {
    Flip(Index, u8),
    Set(Index, u8),
    Truncate(Index),
    Insert(Index, Vec<u8>),
}

fn bytes_mutation() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        (any::<Index>(), 1..=255u8).prop_map(|(i, b)| Bytes::Flip(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Bytes::Set(i, b)),
        any::<Index>().prop_map(Bytes::Truncate),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Bytes::Insert(i, b)),
    ]
}

fn damage(bytes: &mut Vec<u8>, m: &Bytes) {
    let len = bytes.len();
    match m {
        Bytes::Flip(i, b) if len > 0 => bytes[i.index(len)] ^= b,
        Bytes::Set(i, b) if len > 0 => bytes[i.index(len)] = *b,
        Bytes::Truncate(i) => bytes.truncate(i.index(len + 1)),
        Bytes::Insert(i, b) => {
            let at = i.index(len + 1);
            bytes.splice(at..at, b.iter().copied());
        }
        _ => {}
    }
}

/// The properties every case checks: no panic (a panic fails the case), quick,
/// bounded allocation. Returns `f`'s result.
fn bounded<R>(what: &str, input_bytes: usize, f: impl FnOnce() -> R) -> Result<R, TestCaseError> {
    let t0 = Instant::now();
    let (r, peak) = peak_of(f);
    let elapsed = t0.elapsed();
    prop_assert!(elapsed < Duration::from_secs(10), "{what}: took {elapsed:?}");
    let cap = 16 * input_bytes + (4 << 20);
    prop_assert!(peak <= cap, "{what}: one allocation of {peak} bytes for {input_bytes} bytes of input");
    Ok(r)
}

// ---- checkpoint folders ----------------------------------------------------

/// A BiLSTM checkpoint folder written by a one-epoch run of the program on the
/// fixture set (made once per test process).
fn seed_checkpoint() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("tapegrad-fuzz-ckpt-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        let data = fixture_dir(&root);
        let words = ["great", "movie", "loved", "bad", "boring", "review", "number", "positive", "negative"];
        let glove: String =
            words.iter().enumerate().map(|(i, w)| format!("{w} {i}.5 -0.25 0.125 1\n")).collect();
        fs::write(root.join("glove.4d.txt"), glove).unwrap();
        let out = root.join("run");
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_finetune-imdb"))
            .args(["train", "--data"])
            .arg(&data)
            .arg("--embeddings")
            .arg(root.join("glove.4d.txt"))
            .arg("--out")
            .arg(&out)
            .arg("--cache")
            .arg(root.join("cache"))
            .args(["--hidden", "4", "--layers", "1", "--batch-size", "16", "--epochs", "1", "--quiet"])
            .env("TAPEGRAD_NUM_THREADS", "1")
            .output()
            .unwrap();
        assert!(o.status.success(), "seed run: {}", String::from_utf8_lossy(&o.stderr));
        out.join("last")
    })
}

const CHECKPOINT_FILES: [&str; 4] = ["model.safetensors", "optimizer.safetensors", "run.json", "vocab.json"];

/// Damage to a checkpoint folder: bytes of one file, a JSON value of run.json or
/// vocab.json replaced, a file removed or replaced by a folder.
#[derive(Clone, Debug)]
enum Damage {
    Bytes(usize, Vec<Bytes>),
    JsonValue(usize, Index, Value),
    Remove(usize),
    Folder(usize),
}

fn json_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(Value::from(0)),
        Just(Value::from(-1)),
        Just(Value::from(1e300)),
        Just(Value::from(u64::MAX)),
        Just(Value::from(1_000_000_000u64)),
        Just(Value::from(100_000u64)),
        Just(Value::from(2.0)),
        Just(Value::from("bert")),
        Just(Value::from("")),
        Just(Value::Array(vec![])),
        Just(serde_json::json!({})),
        any::<i64>().prop_map(Value::from),
    ]
}

fn checkpoint_damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => (0..4usize, prop::collection::vec(bytes_mutation(), 1..3)).prop_map(|(f, m)| Damage::Bytes(f, m)),
        4 => (2..4usize, any::<Index>(), json_value()).prop_map(|(f, i, v)| Damage::JsonValue(f, i, v)),
        1 => (0..4usize).prop_map(Damage::Remove),
        1 => (0..4usize).prop_map(Damage::Folder),
    ]
}

/// Every leaf of a JSON document, as a pointer (`/args/lr`).
fn leaves(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => m.iter().for_each(|(k, v)| leaves(v, format!("{at}/{k}"), out)),
        Value::Array(a) if !a.is_empty() => {
            a.iter().enumerate().for_each(|(i, v)| leaves(v, format!("{at}/{i}"), out))
        }
        _ => out.push(at),
    }
}

fn apply_damage(dir: &Path, d: &Damage) {
    match d {
        Damage::Bytes(f, ms) => {
            let p = dir.join(CHECKPOINT_FILES[*f]);
            // (an earlier damage may have removed the file)
            if let Ok(mut b) = fs::read(&p) {
                ms.iter().for_each(|m| damage(&mut b, m));
                fs::write(p, b).unwrap();
            }
        }
        Damage::JsonValue(f, i, v) => {
            let p = dir.join(CHECKPOINT_FILES[*f]);
            let Some(mut doc) = fs::read(&p).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            else {
                return;
            };
            let mut ptrs = Vec::new();
            leaves(&doc, String::new(), &mut ptrs);
            let ptr = &ptrs[i.index(ptrs.len())];
            *doc.pointer_mut(ptr).unwrap() = v.clone();
            fs::write(p, serde_json::to_vec(&doc).unwrap()).unwrap();
        }
        Damage::Remove(f) => {
            let _ = fs::remove_file(dir.join(CHECKPOINT_FILES[*f]));
        }
        Damage::Folder(f) => {
            let p = dir.join(CHECKPOINT_FILES[*f]);
            let _ = fs::remove_file(&p);
            let _ = fs::create_dir(p);
        }
    }
}

fn folder_bytes(dir: &Path) -> usize {
    let files = CHECKPOINT_FILES.iter().filter_map(|f| fs::metadata(dir.join(f)).ok());
    files.filter(|m| m.is_file()).map(|m| m.len() as usize).sum()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(400), ..ProptestConfig::default() })]

    #[test]
    fn damaged_checkpoint_folders_never_panic(damages in prop::collection::vec(checkpoint_damage(), 1..3)) {
        let seed = seed_checkpoint();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("last");
        fs::create_dir(&dir).unwrap();
        for f in CHECKPOINT_FILES {
            fs::copy(seed.join(f), dir.join(f)).unwrap();
        }
        for d in &damages {
            apply_damage(&dir, d);
        }
        let size = folder_bytes(&dir);
        let (task, state) = bounded("checkpoint", size, || {
            let task = load_checkpoint_task(&dir, tapegrad_autograd::Device::Cpu, None).and_then(|(task, _)| predict(&task, &["a fine film".into()], None));
            let state = tapegrad_optim::read_optim_state(dir.join("optimizer.safetensors"));
            (task, state)
        })?;
        if let Err(e) = task {
            let msg = format!("{e:#}");
            prop_assert!(msg.contains(&*tmp.path().to_string_lossy()), "the error names the folder: {}", msg);
        }
        if let Err(e) = state {
            prop_assert!(e.to_string().contains("optimizer.safetensors"), "{}", e);
        }
    }
}

// ---- GloVe ------------------------------------------------------------------

fn glove_token() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (-1000i32..1000).prop_map(|v| format!("{}", v as f32 / 64.0)),
        1 => prop::sample::select(vec!["nan", "inf", "-inf", "1e39", "-", "", "x", "1,5", "０", "1e", ".", "+"])
            .prop_map(str::to_string),
        1 => "[a-zé\\t\\r ]{0,4}",
    ]
}

fn glove_line() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["the", "a b", "é", "1.0", "<unk>", "x\ty", ""]),
        prop::collection::vec(glove_token(), 0..6),
    )
        .prop_map(|(w, v)| std::iter::once(w.to_string()).chain(v).collect::<Vec<_>>().join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1000), ..ProptestConfig::default() })]

    #[test]
    fn glove_lines_never_panic(lines in prop::collection::vec(glove_line(), 0..12), dim in prop::option::of(1..5usize)) {
        let text = lines.join("\n");
        let path = Path::new("fuzz.glove.txt");
        let r = bounded("glove text", text.len(), || Glove::from_reader(Cursor::new(text.as_bytes()), path, dim))?;
        match r {
            Ok(g) => {
                prop_assert!(g.len() <= lines.len() && g.dim() >= 1);
                prop_assert_eq!(g.vectors().len(), g.len() * g.dim());
            }
            Err(e) => prop_assert!(e.to_string().starts_with("fuzz.glove.txt"), "{}", e),
        }
    }

    #[test]
    fn damaged_glove_caches_never_panic(damages in prop::collection::vec(bytes_mutation(), 1..4)) {
        let tmp = tempfile::tempdir().unwrap();
        let text = "the 0.5 1 -2\nfilm 1 2 3\na 0 0 0.25\n";
        let g = Glove::from_reader(Cursor::new(text.as_bytes()), Path::new("g.txt"), None).unwrap();
        let path = tmp.path().join("glove.safetensors");
        g.write_cache(&path, Some("1:2")).unwrap();
        let mut bytes = fs::read(&path).unwrap();
        damages.iter().for_each(|d| damage(&mut bytes, d));
        fs::write(&path, &bytes).unwrap();
        match bounded("glove cache", bytes.len(), || Glove::from_cache(&path))? {
            Ok(g) => prop_assert_eq!(g.vectors().len(), g.len() * g.dim()),
            Err(e) => prop_assert!(e.to_string().contains("glove.safetensors"), "{}", e),
        }
    }
}

// ---- archives -----------------------------------------------------------------

/// A small aclImdb archive (both splits, both classes), plain tar.
fn small_tar() -> Vec<u8> {
    // The hand-written reviews (ids below 100) and the files to skip.
    let id =
        |f: &FixtureFile| f.rel.rsplit('/').next().and_then(|n| n.split('_').next()?.parse::<u32>().ok());
    let files: Vec<FixtureFile> =
        fixture_files().into_iter().filter(|f| id(f).is_none_or(|i| i < 100)).collect();
    let mut builder = tar::Builder::new(Vec::new());
    for f in &files {
        let mut h = tar::Header::new_gnu();
        h.set_size(f.bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder.append_data(&mut h, format!("aclImdb/{}", f.rel), &f.bytes[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(600), ..ProptestConfig::default() })]

    #[test]
    fn damaged_archives_never_panic(
        damages in prop::collection::vec(bytes_mutation(), 1..4),
        gzipped in any::<bool>(),
        damage_compressed in any::<bool>(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let mut tar = small_tar();
        let bytes = if gzipped && damage_compressed {
            let mut gz = gzip(&tar);
            damages.iter().for_each(|d| damage(&mut gz, d));
            gz
        } else {
            damages.iter().for_each(|d| damage(&mut tar, d));
            if gzipped { gzip(&tar) } else { tar }
        };
        let name = if gzipped { "fuzz.tar.gz" } else { "fuzz.tar" };
        let path = tmp.path().join(name);
        fs::write(&path, &bytes).unwrap();
        match bounded("archive", bytes.len(), || read_imdb(&path, BOTH))? {
            Ok(d) => prop_assert!(d.train.len() + d.test.len() <= 10 + bytes.len() / 512),
            Err(e) => prop_assert!(e.to_string().contains(name), "{}", e),
        }
    }
}

/// What the checkpoint fuzzing found: a `run.json` whose model is far larger than
/// its weights made the loader build that model (a 160 GB allocation for hidden
/// 100000) before it read a single weight.
#[test]
fn a_run_json_claiming_a_huge_model_is_refused_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("last");
    fs::create_dir(&dir).unwrap();
    for f in CHECKPOINT_FILES {
        fs::copy(seed_checkpoint().join(f), dir.join(f)).unwrap();
    }
    let run = dir.join("run.json");
    let mut doc: Value = serde_json::from_slice(&fs::read(&run).unwrap()).unwrap();
    doc["spec"]["hidden"] = Value::from(100_000);
    fs::write(&run, serde_json::to_vec(&doc).unwrap()).unwrap();
    let (r, peak) = peak_of(|| load_checkpoint_task(&dir, tapegrad_autograd::Device::Cpu, None).map(|_| ()));
    let msg = format!("{:#}", r.unwrap_err());
    assert!(
        msg.contains("run.json") && msg.contains("hidden 100000") && msg.contains("model.safetensors"),
        "{msg}"
    );
    assert!(peak < 1 << 24, "allocated {peak} bytes at once");
}
