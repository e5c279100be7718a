//! One reader, the format's rules: the tensors tile the data section (no gap, no
//! trailing bytes), the header is capped, a directory is not a file, and every
//! reader (model weights, optimizer checkpoints) accepts exactly what the
//! `safetensors` crate accepts, with errors that name the file and the tensor.

use tapegrad::autograd::Tensor;
use tapegrad::models::safetensors_io::{SafeTensorsFile, SafetensorsError, MAX_HEADER_LEN};
use tapegrad::optim::{load_checkpoint, save_checkpoint};

#[path = "support/safetensors_files.rs"]
mod files;
use files::{raw, TempDir};

fn open_err(dir: &TempDir, name: &str, bytes: &[u8]) -> SafetensorsError {
    let path = dir.write(name, bytes);
    let e = SafeTensorsFile::open(&path).err().unwrap_or_else(|| panic!("{name} was accepted"));
    assert!(e.to_string().contains(name), "the error names the file: {e}");
    e
}

#[test]
fn a_gap_in_the_data_section_is_an_error_naming_both_tensors() {
    let dir = TempDir::new("gap");
    let h = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}"#;
    let e = open_err(&dir, "gap.safetensors", &raw(h, &[0; 16]));
    assert!(matches!(&e, SafetensorsError::Gap { name, begin: 12, end: 8, .. } if name == "b"), "{e:?}");
    assert!(e.to_string().contains("`a`") && e.to_string().contains("`b`"), "{e}");
    // a gap before the first tensor
    let h = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
    let e = open_err(&dir, "lead.safetensors", &raw(h, &[0; 8]));
    assert!(matches!(&e, SafetensorsError::Gap { begin: 4, end: 0, .. }), "{e:?}");
}

#[test]
fn trailing_bytes_are_an_error() {
    let dir = TempDir::new("trailing");
    let h = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let e = open_err(&dir, "trail.safetensors", &raw(h, &[0; 11]));
    assert!(matches!(e, SafetensorsError::TrailingBytes { extra: 3, end: 8, data_len: 11, .. }), "{e:?}");
    // no tensors but data
    let e = open_err(&dir, "empty.safetensors", &raw("{}", &[1, 2]));
    assert!(matches!(e, SafetensorsError::TrailingBytes { extra: 2, .. }), "{e:?}");
}

#[test]
fn a_header_over_the_limit_is_refused_before_it_is_read() {
    let dir = TempDir::new("cap");
    // A sparse file as long as the header claims: refused by the cap, not parsed.
    let path = dir.0.join("big.safetensors");
    let len = MAX_HEADER_LEN + 1;
    std::fs::write(&path, len.to_le_bytes()).unwrap();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(8 + len).unwrap();
    let e = SafeTensorsFile::open(&path).err().expect("refused");
    assert!(matches!(e, SafetensorsError::HeaderTooLarge { header_len, .. } if header_len == len), "{e:?}");
    assert!(e.to_string().contains("big.safetensors") && e.to_string().contains("limit"), "{e}");
}

#[test]
fn a_directory_is_not_a_safetensors_file() {
    let dir = TempDir::new("dir");
    let path = dir.0.join("model.safetensors");
    std::fs::create_dir(&path).unwrap();
    let e = SafeTensorsFile::open(&path).err().expect("a directory has no tensors");
    let msg = e.to_string();
    assert!(matches!(e, SafetensorsError::IsADirectory { .. }), "{e:?}");
    assert!(msg.contains("model.safetensors") && msg.contains("directory"), "{msg}");
    assert!(!msg.contains("No such device"), "{msg}");
}

/// The optimizer checkpoints (the BiLSTM's `model.safetensors`) are read by the
/// same reader: errors name the file and the tensor, never the crate's bare names.
#[test]
fn checkpoint_errors_name_file_and_tensor_not_library_variants() {
    let dir = TempDir::new("ckpt");
    let w = Tensor::<f32>::param(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let b = Tensor::<f32>::param(vec![0.5; 3], &[3]);
    let weights = vec![("fc.weight".to_string(), w), ("fc.bias".to_string(), b)];
    let good = dir.0.join("good.safetensors");
    save_checkpoint(&good, &weights, None).unwrap();
    load_checkpoint(&good, &weights, None).unwrap();

    let bytes = std::fs::read(&good).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap().to_string();
    let data = &bytes[8 + n..];
    assert!(header.contains("[2,3]"), "{header}");
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        // the shape no longer fits the offsets (the crate: `TensorInvalidInfo`)
        ("shape.safetensors", raw(&header.replace("[2,3]", "[2,2]"), data), vec!["`fc.weight`", "[2, 2]"]),
        // a cut file (the crate: `MetadataIncompleteBuffer`)
        ("cut.safetensors", bytes[..bytes.len() - 4].to_vec(), vec!["`fc.weight`", "truncated"]),
        // one extra byte (the crate: `MetadataIncompleteBuffer`)
        ("extra.safetensors", [&bytes[..], &[0]].concat(), vec!["1 bytes after the last tensor"]),
    ];
    for (name, bytes, mentions) in cases {
        let path = dir.write(name, &bytes);
        let e = load_checkpoint(&path, &weights, None).unwrap_err().to_string();
        assert!(e.contains(name), "{e}");
        for m in mentions {
            assert!(e.contains(m), "`{m}` in: {e}");
        }
        for bare in ["TensorInvalidInfo", "InvalidOffset", "MetadataIncompleteBuffer"] {
            assert!(!e.contains(bare), "{e}");
        }
    }
    // A gap, which the crate reports as an `InvalidOffset` of the tensor after it.
    let h = r#"{"fc.bias":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"fc.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[16,40]}}"#;
    let path = dir.write("gap.safetensors", &raw(h, &[0; 40]));
    let e = load_checkpoint(&path, &weights, None).unwrap_err().to_string();
    assert!(e.contains("gap.safetensors") && e.contains("`fc.bias`") && e.contains("`fc.weight`"), "{e}");
    assert!(!e.contains("InvalidOffset"), "{e}");
}

/// Our verdict and the crate's, on the same bytes, for hand-picked edge cases
/// (the property tests in `fuzz_safetensors.rs` do the same on mutated files).
#[test]
fn accepted_exactly_when_the_crate_accepts() {
    let dir = TempDir::new("agree");
    let f32x = |n: usize| vec![0u8; 4 * n];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("valid", raw(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, &f32x(2))),
        ("empty", raw("{}", &[])),
        ("padded", raw(r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}   "#, &f32x(1))),
        ("leading space", raw(r#" {"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, &f32x(1))),
        (
            "zero-size first",
            raw(
                r#"{"z":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                &f32x(1),
            ),
        ),
        (
            "zero-size last",
            raw(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"z":{"dtype":"U8","shape":[0,3],"data_offsets":[4,4]}}"#,
                &f32x(1),
            ),
        ),
        (
            "zero-size inside",
            raw(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}"#,
                &f32x(2),
            ),
        ),
        ("scalar", raw(r#"{"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]}}"#, &[0; 8])),
        ("u32", raw(r#"{"s":{"dtype":"U32","shape":[2],"data_offsets":[0,8]}}"#, &[0; 8])),
        (
            "metadata",
            raw(
                r#"{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                &f32x(1),
            ),
        ),
        ("metadata number", raw(r#"{"__metadata__":{"k":1}}"#, &[])),
        (
            "duplicate key",
            raw(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                &f32x(2),
            ),
        ),
        ("extra field", raw(r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}"#, &f32x(1))),
        ("gap", raw(r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, &f32x(2))),
        ("trailing", raw(r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, &f32x(2))),
        (
            "overlap",
            raw(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                &f32x(3),
            ),
        ),
        ("size", raw(r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, &f32x(2))),
        ("negative", raw(r#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, &f32x(1))),
        ("float dim", raw(r#"{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}"#, &f32x(1))),
        ("not utf8", [&8u64.to_le_bytes()[..], &[b'{', 0xff, 0xfe, b'}', b' ', b' ', b' ', b' ']].concat()),
    ];
    for (name, bytes) in cases {
        let path = dir.write("case.safetensors", &bytes);
        let ours = SafeTensorsFile::open(&path);
        let theirs = safetensors::SafeTensors::deserialize(&bytes);
        assert_eq!(
            ours.is_ok(),
            theirs.is_ok(),
            "{name}: ours {:?}, the crate's {:?}",
            ours.err(),
            theirs.err()
        );
        if let Ok(f) = ours {
            let st = theirs.unwrap();
            let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
            names.sort();
            assert_eq!(f.names().collect::<Vec<_>>(), names, "{name}");
        }
    }
}
