//! safetensors I/O: every malformed file is a clear error naming the file (and
//! the tensor), never a panic; round trips, zero-copy views, dtype conversion,
//! atomic saving and the loader's all-at-once mismatch report.

use std::collections::BTreeMap;
use std::path::Path;
use tapegrad::autograd::Tensor;
use tapegrad::models::layers::Linear;
use tapegrad::models::module::{join, Module};
use tapegrad::models::safetensors_io::{load_into, save, LoadOptions, SafeTensorsFile, SafetensorsError};

#[path = "support/safetensors_files.rs"]
mod files;
use files::{raw, TempDir};

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Opens `bytes` written as `name`, expecting an error whose message names the
/// file and every string of `mentions`.
fn open_err(dir: &TempDir, name: &str, bytes: &[u8], mentions: &[&str]) -> SafetensorsError {
    let path = dir.write(name, bytes);
    let err = match SafeTensorsFile::open(&path) {
        Ok(_) => panic!("{name}: a malformed file was accepted"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(msg.contains(name), "the error must name the file: {msg}");
    for m in mentions {
        assert!(msg.contains(m), "the error must mention `{m}`: {msg}");
    }
    err
}

#[test]
fn missing_file() {
    let dir = TempDir::new("missing");
    let err = SafeTensorsFile::open(dir.0.join("nope.safetensors")).err().expect("no file, no tensors");
    assert!(matches!(err, SafetensorsError::Io { .. }));
    assert!(err.to_string().contains("nope.safetensors"), "{err}");
}

#[test]
fn truncated_before_the_header_length() {
    let dir = TempDir::new("trunc8");
    let err = open_err(&dir, "short.safetensors", &[1, 2, 3], &["truncated"]);
    assert!(matches!(err, SafetensorsError::Truncated { len: 3, .. }));
    open_err(&dir, "empty.safetensors", &[], &["truncated"]);
}

#[test]
fn header_length_beyond_the_file() {
    let dir = TempDir::new("hlen");
    let mut bytes = raw(r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, &[0; 4]);
    bytes[..8].copy_from_slice(&1000u64.to_le_bytes());
    let err = open_err(&dir, "hlen.safetensors", &bytes, &["1000"]);
    assert!(matches!(err, SafetensorsError::HeaderBeyondFile { header_len: 1000, .. }));
    // a length so large that adding 8 overflows: over the 100 MB limit
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    open_err(&dir, "huge.safetensors", &bytes, &["limit"]);
}

#[test]
fn invalid_header_json() {
    let dir = TempDir::new("json");
    let err = open_err(&dir, "json.safetensors", &raw(r#"{"a": {"dtype": "F32", "#, &[]), &["JSON"]);
    assert!(matches!(err, SafetensorsError::InvalidHeader { .. }));
    open_err(&dir, "array.safetensors", &raw("[1, 2]", &[]), &["not an object"]);
    open_err(
        &dir,
        "noshape.safetensors",
        &raw(r#"{"w":{"dtype":"F32","data_offsets":[0,4]}}"#, &[0; 4]),
        &["`w`", "shape"],
    );
    open_err(
        &dir,
        "badoff.safetensors",
        &raw(r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#, &[0; 4]),
        &["`w`", "data_offsets"],
    );
    open_err(&dir, "meta.safetensors", &raw(r#"{"__metadata__":{"k":1}}"#, &[]), &["metadata `k`"]);
}

#[test]
fn offsets_out_of_range() {
    let dir = TempDir::new("range");
    // the data section is 8 bytes, the tensor claims 0..16: a truncated file
    let h = r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
    let err = open_err(&dir, "range.safetensors", &raw(h, &[0; 8]), &["`w`", "0..16", "8-byte"]);
    assert!(matches!(err, SafetensorsError::OffsetsOutOfRange { end: 16, data_len: 8, .. }));
    // begin after end
    let h = r#"{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}"#;
    open_err(&dir, "reversed.safetensors", &raw(h, &[0; 8]), &["`w`", "8..4"]);
}

#[test]
fn overlapping_offsets() {
    let dir = TempDir::new("overlap");
    let h = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
    let err = open_err(&dir, "overlap.safetensors", &raw(h, &[0; 12]), &["`a`", "`b`", "overlap"]);
    assert!(matches!(err, SafetensorsError::Overlap { .. }));
}

#[test]
fn unknown_dtype() {
    let dir = TempDir::new("dtype");
    let h = r#"{"w":{"dtype":"F13","shape":[1],"data_offsets":[0,4]}}"#;
    let err = open_err(&dir, "dtype.safetensors", &raw(h, &[0; 4]), &["`w`", "F13"]);
    assert!(matches!(err, SafetensorsError::UnknownDtype { .. }));
}

#[test]
fn shape_size_mismatch() {
    let dir = TempDir::new("size");
    let h = r#"{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}"#;
    let err = open_err(&dir, "size.safetensors", &raw(h, &[0; 20]), &["`w`", "[2, 3]", "24", "20"]);
    assert!(matches!(err, SafetensorsError::SizeMismatch { expected: Some(24), actual: 20, .. }));
    // a shape whose byte size overflows
    let h = r#"{"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#;
    open_err(&dir, "overflow.safetensors", &raw(h, &[0; 8]), &["`w`"]);
}

#[test]
fn wrong_dtype_and_unknown_name_are_errors() {
    let dir = TempDir::new("reads");
    let h = r#"{"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},"x":{"dtype":"F32","shape":[1],"data_offsets":[16,20]}}"#;
    let mut data: Vec<u8> = [3i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
    data.extend(f32_bytes(&[1.5]));
    let f = SafeTensorsFile::open(dir.write("reads.safetensors", &raw(h, &data))).unwrap();
    assert_eq!(f.tensor_i64("ids").unwrap(), (vec![3, -1], vec![2]));
    let e = f.tensor::<f32>("ids").unwrap_err().to_string();
    assert!(e.contains("`ids`") && e.contains("I64") && e.contains("reads.safetensors"), "{e}");
    let e = f.tensor_i64("x").unwrap_err().to_string();
    assert!(e.contains("`x`") && e.contains("F32"), "{e}");
    let e = f.tensor_usize("ids").unwrap_err().to_string();
    assert!(e.contains("`ids`") && e.contains("negative"), "{e}");
    let e = f.tensor::<f32>("nothing").unwrap_err().to_string();
    assert!(e.contains("`nothing`") && e.contains("reads.safetensors"), "{e}");
}

#[test]
fn half_precision_and_f64_convert() {
    let dir = TempDir::new("half");
    // f16: 1.0 = 0x3C00, -2.0 = 0xC000; bf16: 0.5 = 0x3F00, 3.0 = 0x4040
    let h = r#"{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]},"d":{"dtype":"F64","shape":[1],"data_offsets":[8,16]}}"#;
    let mut data: Vec<u8> =
        [0x3C00u16, 0xC000, 0x3F00, 0x4040].iter().flat_map(|v| v.to_le_bytes()).collect();
    data.extend(0.1f64.to_le_bytes());
    let f = SafeTensorsFile::open(dir.write("half.safetensors", &raw(h, &data))).unwrap();
    assert_eq!(f.tensor::<f32>("h").unwrap().to_vec(), vec![1.0, -2.0]);
    assert_eq!(f.tensor::<f64>("b").unwrap().to_vec(), vec![0.5, 3.0]);
    assert_eq!(f.tensor::<f32>("d").unwrap().to_vec(), vec![0.1f32]);
    let d64 = f.tensor::<f64>("d").unwrap();
    assert_eq!(d64.to_vec(), vec![0.1f64]);
}

#[test]
fn save_round_trip_zero_copy_and_atomic() {
    let dir = TempDir::new("save");
    let path = dir.0.join("model.safetensors");
    let a = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let b = Tensor::<f32>::from_vec(vec![-0.5], &[1]);
    let mut meta = BTreeMap::new();
    meta.insert("config".to_string(), r#"{"hidden_size": 3}"#.to_string());
    save(&path, &[("w.a".into(), a.clone()), ("w.b".into(), b.clone())], &meta).unwrap();
    std::fs::write(&path, b"garbage").unwrap();
    // saving over an existing file replaces it whole
    save(&path, &[("w.a".into(), a.clone()), ("w.b".into(), b.clone())], &meta).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(&dir.0).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temporary file may be left: {leftovers:?}");

    let f = SafeTensorsFile::open(&path).unwrap();
    assert_eq!(f.metadata()["config"], r#"{"hidden_size": 3}"#);
    assert_eq!(f.names().collect::<Vec<_>>(), vec!["w.a", "w.b"]);
    let ta = f.tensor::<f32>("w.a").unwrap();
    assert!(ta.is_mapped(), "an aligned F32 tensor is a view into the map");
    assert_eq!(ta.shape(), &[2, 3]);
    assert_eq!(ta.to_vec(), a.to_vec());
    assert_eq!(f.tensor::<f64>("w.b").unwrap().to_vec(), vec![-0.5]);

    // the file is a valid safetensors file for the reference implementation too
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("w.a").unwrap().shape(), &[2, 3]);
    assert_eq!(st.tensor("w.a").unwrap().data(), &f32_bytes(&a.to_vec())[..]);
    let (_, md) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(md.metadata().as_ref().unwrap()["config"], r#"{"hidden_size": 3}"#);

    // duplicate names are refused
    let e =
        save(dir.0.join("dup.safetensors"), &[("x".into(), b.clone()), ("x".into(), b)], &meta).unwrap_err();
    assert!(e.to_string().contains("`x`"), "{e}");
}

/// Two Linear layers named `enc` and `head`.
struct Two {
    enc: Linear<f32>,
    head: Linear<f32>,
}
impl Module<f32> for Two {
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor<f32>)) {
        self.enc.visit_params(&join(prefix, "enc"), f);
        self.head.visit_params(&join(prefix, "head"), f);
    }
}
fn two() -> Two {
    let lin = |o: usize, i: usize| {
        Linear::from_weights(
            Tensor::param(vec![0.0; o * i], &[o, i]),
            Some(Tensor::param(vec![0.0; o], &[o])),
        )
    };
    Two { enc: lin(3, 2), head: lin(1, 3) }
}

fn write_tensors(path: &Path, tensors: &[(&str, Vec<usize>)]) {
    let ts: Vec<(String, Tensor<f32>)> = tensors
        .iter()
        .map(|(n, s)| {
            let len: usize = s.iter().product();
            (n.to_string(), Tensor::from_vec((0..len).map(|i| i as f32 + 1.0).collect(), s))
        })
        .collect();
    save(path, &ts, &BTreeMap::new()).unwrap();
}

#[test]
fn loader_reports_every_mismatch_at_once() {
    let dir = TempDir::new("loader");
    let path = dir.0.join("bad.safetensors");
    // enc.weight mis-shaped, enc.bias missing, head.* fine, extra.x unexpected
    write_tensors(
        &path,
        &[
            ("enc.weight", vec![2, 3]),
            ("head.weight", vec![1, 3]),
            ("head.bias", vec![1]),
            ("extra.x", vec![2]),
        ],
    );
    let model = two();
    let err = load_into(&model, &SafeTensorsFile::open(&path).unwrap(), &LoadOptions::default()).unwrap_err();
    match &err {
        SafetensorsError::Mismatch { missing, unexpected, mis_shaped, .. } => {
            assert_eq!(missing, &["enc.bias"]);
            assert_eq!(unexpected, &["extra.x"]);
            assert_eq!(mis_shaped, &[("enc.weight".to_string(), vec![3, 2], vec![2, 3])]);
        }
        other => panic!("expected a mismatch report, got {other}"),
    }
    let msg = err.to_string();
    for m in ["bad.safetensors", "enc.bias", "extra.x", "enc.weight", "[3, 2]", "[2, 3]"] {
        assert!(msg.contains(m), "the report must mention `{m}`: {msg}");
    }
    assert!(model.head.weight.to_vec().iter().all(|&v| v == 0.0), "a failed load changes nothing");
}

#[test]
fn loader_maps_prefixes_and_keeps_views_until_written() {
    let dir = TempDir::new("loader_ok");
    let path = dir.0.join("ok.safetensors");
    // the file lacks the model's `model.` prefix and has a buffer to ignore
    write_tensors(&path, &[("enc.weight", vec![3, 2]), ("enc.bias", vec![3]), ("enc.position_ids", vec![1])]);
    struct Wrapped(Two);
    impl Module<f32> for Wrapped {
        fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor<f32>)) {
            self.0.visit_params(&join(prefix, "model"), f);
        }
    }
    let model = Wrapped(two());
    let opts = LoadOptions {
        allow_missing: vec!["model.head.".into()],
        ignore_unexpected: vec![".position_ids".into()],
        optional_prefix: Some("model.".into()),
    };
    let file = SafeTensorsFile::open(&path).unwrap();
    let report = load_into(&model, &file, &opts).unwrap();
    assert_eq!(report.loaded, vec!["model.enc.weight", "model.enc.bias"]);
    assert_eq!(report.missing_allowed, vec!["model.head.weight", "model.head.bias"]);
    assert_eq!(report.ignored, vec!["enc.position_ids"]);
    let w = &model.0.enc.weight;
    assert!(w.is_mapped() && w.tracks_grad(), "a loaded parameter is a trainable view");
    assert_eq!(w.to_vec(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    w.data_mut()[0] = 42.0; // an optimizer step: copy-on-write
    assert!(!w.is_mapped());
    assert_eq!(file.tensor::<f32>("enc.weight").unwrap().to_vec()[0], 1.0, "the file is untouched");
}

/// A weight that is NaN or infinite is refused by the loader, naming the file, the tensor
/// and the element, in every float dtype (f32 at any place of a block, f16, bf16, f64);
/// the model is left as it was, and finite values (the largest, the subnormals) pass.
#[test]
fn loader_refuses_non_finite_weights() {
    let dir = TempDir::new("nonfinite");
    let model = two();
    let good = [1.0f32, f32::MAX, f32::MIN_POSITIVE / 2.0, -0.0, 5.0, 6.0];
    let header = |dtype: &str, width: usize| {
        format!(
            r#"{{"enc.weight":{{"dtype":"{dtype}","shape":[3,2],"data_offsets":[0,{w}]}},"enc.bias":{{"dtype":"{dtype}","shape":[3],"data_offsets":[{w},{e}]}},"head.weight":{{"dtype":"{dtype}","shape":[1,3],"data_offsets":[{e},{h}]}},"head.bias":{{"dtype":"{dtype}","shape":[1],"data_offsets":[{h},{end}]}}}}"#,
            w = 6 * width,
            e = 9 * width,
            h = 12 * width,
            end = 13 * width
        )
    };
    // enc.weight's element `at` replaced by `bad` (as bytes of the dtype), the rest finite
    let cases: Vec<(&str, Vec<u8>, usize)> = vec![
        ("F32", f32_bytes(&[good[0], good[1], good[2], good[3], f32::NAN, good[5]]), 4),
        ("F32", f32_bytes(&[f32::NEG_INFINITY, good[1], good[2], good[3], good[4], good[5]]), 0),
        (
            "F16",
            [0x3C00u16, 0x3C00, 0x7C00, 0x3C00, 0x3C00, 0x3C00]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            2,
        ),
        (
            "BF16",
            [0x3F80u16, 0x7FC0, 0x3F80, 0x3F80, 0x3F80, 0x3F80]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            1,
        ),
        (
            "F64",
            [1.0f64, 1.0, 1.0, 1.0, 1.0, f64::INFINITY].iter().flat_map(|v| v.to_le_bytes()).collect(),
            5,
        ),
    ];
    for (i, (dtype, weight, at)) in cases.into_iter().enumerate() {
        let width = weight.len() / 6;
        let mut data = weight;
        data.extend(std::iter::repeat_n(0u8, 7 * width)); // the other tensors: zeros
        let name = format!("nan{i}.safetensors");
        let path = dir.write(&name, &raw(&header(dtype, width), &data));
        let err =
            load_into(&model, &SafeTensorsFile::open(&path).unwrap(), &LoadOptions::default()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, SafetensorsError::BadValue { .. }), "{dtype}: {msg}");
        for m in [name.as_str(), "enc.weight", &format!("element {at} ")] {
            assert!(msg.contains(m), "{dtype}: the error must name `{m}`: {msg}");
        }
        assert!(model.enc.weight.to_vec().iter().all(|&v| v == 0.0), "a failed load changes nothing");
    }
    // finite extremes load; a NaN past the first 1,024-element block is found at its place
    let path =
        dir.write("finite.safetensors", &raw(&header("F32", 4), &[f32_bytes(&good), vec![0; 28]].concat()));
    load_into(&model, &SafeTensorsFile::open(&path).unwrap(), &LoadOptions::default()).unwrap();
    let mut long = vec![0.5f32; 3000];
    long[2500] = f32::NAN;
    let h = r#"{"x":{"dtype":"F32","shape":[3000],"data_offsets":[0,12000]}}"#;
    let f = SafeTensorsFile::open(dir.write("long.safetensors", &raw(h, &f32_bytes(&long)))).unwrap();
    let msg = f.check_finite("x").unwrap_err().to_string();
    assert!(msg.contains("element 2500 "), "{msg}");
}
