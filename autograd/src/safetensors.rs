//! The one safetensors reader: memory-mapped, validated by the `safetensors`
//! crate, with errors that name the file and the tensor.
//!
//! The format: an 8-byte little-endian header length N, N bytes of JSON
//! (`{"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//! "__metadata__": {"key": "value"}}`), then the data section; offsets are relative
//! to its start. The tensors must tile the data section exactly: no gap, no
//! overlap, no trailing bytes; the header is at most 100 MB.
//!
//! Whether a file is accepted is decided by the crate alone
//! (`SafeTensors::read_metadata`, the same validation `deserialize` runs), so every
//! reader of the project (model weights, optimizer state, the GloVe cache) applies
//! the same rules. When the crate rejects a file, [`diagnose`] finds what is wrong
//! in words (which tensor, which offsets): the crate's own errors name no file and,
//! for a bad size, no tensor. Nothing here panics or allocates in proportion to a
//! number read from the file: data stays in the map, and every declared length is
//! checked against the file's size first.
//!
//! `F32` tensors read as `Tensor<f32>` (and `F64` as `Tensor<f64>`) are zero-copy
//! views into the map ([`Tensor::from_mmap`]); other float dtypes (`F16`, `BF16`,
//! `F64`↔`F32`) are converted.

use crate::{Float, Tensor};
use memmap2::Mmap;
use safetensors::tensor::Metadata;
use safetensors::SafeTensors;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Element types, as the crate defines them (`F32`, `BF16`, `I64`, `BOOL`, …).
pub use safetensors::Dtype;

/// The largest header accepted (the crate's limit).
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// Everything that can go wrong reading, loading or writing safetensors.
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: is a directory, not a safetensors file")]
    IsADirectory { path: PathBuf },
    #[error("{path}: truncated: {len} bytes, fewer than the 8-byte header length")]
    Truncated { path: PathBuf, len: usize },
    #[error("{path}: header length {header_len} is over the {MAX_HEADER_LEN}-byte limit (not a safetensors file?)")]
    HeaderTooLarge { path: PathBuf, header_len: u64 },
    #[error("{path}: header length {header_len} goes beyond the end of the file ({file_len} bytes)")]
    HeaderBeyondFile { path: PathBuf, header_len: u64, file_len: usize },
    #[error("{path}: invalid header: {msg}")]
    InvalidHeader { path: PathBuf, msg: String },
    #[error("{path}: tensor `{name}`: unknown dtype `{dtype}`")]
    UnknownDtype { path: PathBuf, name: String, dtype: String },
    #[error(
        "{path}: tensor `{name}`: data offsets {begin}..{end} are out of range of the \
         {data_len}-byte data section (truncated file?)"
    )]
    OffsetsOutOfRange { path: PathBuf, name: String, begin: usize, end: usize, data_len: usize },
    #[error("{path}: tensors `{first}` and `{second}` overlap in the data section")]
    Overlap { path: PathBuf, first: String, second: String },
    #[error("{path}: tensor `{name}` starts at byte {begin} of the data section, but {after} ends at byte {end}: the bytes between belong to no tensor")]
    Gap { path: PathBuf, name: String, begin: usize, after: String, end: usize },
    #[error("{path}: {extra} bytes after the last tensor (the data section is {data_len} bytes, the tensors end at {end})")]
    TrailingBytes { path: PathBuf, extra: usize, end: usize, data_len: usize },
    #[error(
        "{path}: tensor `{name}`: shape {shape:?} of {dtype} needs {} bytes, \
         its data offsets span {actual}", .expected.map_or("more than 2^64".into(), |e| e.to_string())
    )]
    SizeMismatch {
        path: PathBuf,
        name: String,
        shape: Vec<usize>,
        dtype: String,
        /// `None`: the size overflows.
        expected: Option<usize>,
        actual: usize,
    },
    #[error("{path}: no tensor named `{name}`")]
    NotFound { path: PathBuf, name: String },
    #[error("{path}: tensor `{name}` has dtype {dtype}, which cannot be read as {wanted}")]
    WrongDtype { path: PathBuf, name: String, dtype: String, wanted: &'static str },
    #[error("{path}: tensor `{name}`: {msg}")]
    BadValue { path: PathBuf, name: String, msg: String },
    #[error("{path}: does not fit the model:{}", mismatch_list(.missing, .unexpected, .mis_shaped))]
    Mismatch {
        path: PathBuf,
        /// Parameters of the model that the file lacks.
        missing: Vec<String>,
        /// Tensors of the file that no parameter takes.
        unexpected: Vec<String>,
        /// `(name, shape in the model, shape in the file)`.
        mis_shaped: Vec<(String, Vec<usize>, Vec<usize>)>,
    },
}

fn mismatch_list(
    missing: &[String],
    unexpected: &[String],
    mis_shaped: &[(String, Vec<usize>, Vec<usize>)],
) -> String {
    let mut s = String::new();
    if !missing.is_empty() {
        s += &format!(" missing {}: {};", missing.len(), missing.join(", "));
    }
    if !unexpected.is_empty() {
        s += &format!(" unexpected {}: {};", unexpected.len(), unexpected.join(", "));
    }
    for (name, model, file) in mis_shaped {
        s += &format!(" `{name}` is {model:?} in the model but {file:?} in the file;");
    }
    s.pop();
    s
}

/// The format's spelling of a dtype (`"F32"`, `"BF16"`, `"BOOL"`).
pub fn dtype_name(d: Dtype) -> String {
    d.to_string()
}

/// One tensor's entry in the header.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Byte range within the data section.
    pub begin: usize,
    pub end: usize,
}

/// A validated header: where the data section starts, the tensors, the metadata.
#[derive(Clone, Debug)]
pub struct Header {
    pub data_start: usize,
    pub tensors: BTreeMap<String, TensorInfo>,
    pub metadata: BTreeMap<String, String>,
}

/// Validates the bytes of a whole safetensors file (`path` only names it in
/// errors): accepted exactly when the crate accepts them.
pub fn parse_header(path: &Path, bytes: &[u8]) -> Result<Header, SafetensorsError> {
    // Cheap checks first, so the crate never sees a header it would refuse to size.
    let _ = header_bounds(path, bytes)?;
    let (header_len, meta) = match SafeTensors::read_metadata(bytes) {
        Ok(ok) => ok,
        Err(e) => return Err(diagnose(path, bytes, &e)),
    };
    Ok(header_from(header_len, &meta))
}

fn header_from(header_len: usize, meta: &Metadata) -> Header {
    let tensors = meta
        .tensors()
        .into_iter()
        .map(|(name, info)| {
            let (begin, end) = info.data_offsets;
            (name, TensorInfo { dtype: info.dtype, shape: info.shape.clone(), begin, end })
        })
        .collect();
    let metadata = meta.metadata().clone().unwrap_or_default().into_iter().collect();
    Header { data_start: 8 + header_len, tensors, metadata }
}

/// `8 + N`, the data section's start, once the length field is checked against the
/// limit and the file size.
fn header_bounds(path: &Path, bytes: &[u8]) -> Result<usize, SafetensorsError> {
    let path_buf = || path.to_path_buf();
    if bytes.len() < 8 {
        return Err(SafetensorsError::Truncated { path: path_buf(), len: bytes.len() });
    }
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    if header_len > MAX_HEADER_LEN {
        return Err(SafetensorsError::HeaderTooLarge { path: path_buf(), header_len });
    }
    let data_start = 8 + header_len as usize; // ≤ 8 + 10⁸: no overflow
    if data_start > bytes.len() {
        return Err(SafetensorsError::HeaderBeyondFile {
            path: path_buf(),
            header_len,
            file_len: bytes.len(),
        });
    }
    Ok(data_start)
}

/// Why the crate rejected `bytes`, in words that name the file and the tensor.
/// Only called on a rejected file; it never accepts one.
pub fn diagnose(path: &Path, bytes: &[u8], crate_error: &safetensors::SafeTensorError) -> SafetensorsError {
    let path_buf = || path.to_path_buf();
    let invalid = |msg: String| SafetensorsError::InvalidHeader { path: path_buf(), msg };
    let data_start = match header_bounds(path, bytes) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let header = &bytes[8..data_start];
    let text = match std::str::from_utf8(header) {
        Ok(t) => t,
        Err(e) => return invalid(format!("not UTF-8: {e}")),
    };
    let entries = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return invalid("the JSON is not an object".into()),
        Err(e) => return invalid(format!("JSON: {e}")),
    };
    let data_len = bytes.len() - data_start;
    let mut tensors: Vec<(String, TensorInfo)> = Vec::new();
    for (name, entry) in entries {
        if name == "__metadata__" {
            let Value::Object(m) = entry else { return invalid("`__metadata__` is not an object".into()) };
            if let Some((k, _)) = m.iter().find(|(_, v)| !v.is_string()) {
                return invalid(format!("metadata `{k}` is not a string"));
            }
            continue;
        }
        if let Some(d) = entry.get("dtype").and_then(Value::as_str) {
            if serde_json::from_value::<Dtype>(Value::String(d.into())).is_err() {
                return SafetensorsError::UnknownDtype { path: path_buf(), name, dtype: d.into() };
            }
        }
        let naturals = |key: &str, len: Option<usize>| {
            let a = entry.get(key).and_then(Value::as_array);
            a.is_some_and(|a| a.iter().all(|d| d.is_u64()) && len.is_none_or(|n| a.len() == n))
        };
        if !naturals("shape", None) {
            return invalid(format!("tensor `{name}`: `shape` is not a list of non-negative integers"));
        }
        if !naturals("data_offsets", Some(2)) {
            return invalid(format!(
                "tensor `{name}`: `data_offsets` is not a pair of non-negative integers"
            ));
        }
        let info: safetensors::tensor::TensorInfo = match serde_json::from_value(entry) {
            Ok(i) => i,
            Err(e) => return invalid(format!("tensor `{name}`: {e}")),
        };
        let (begin, end) = info.data_offsets;
        if begin > end || end > data_len {
            return SafetensorsError::OffsetsOutOfRange { path: path_buf(), name, begin, end, data_len };
        }
        let bits = info.shape.iter().try_fold(info.dtype.bitsize(), |acc, &d| acc.checked_mul(d));
        if bits.is_some_and(|b| b % 8 != 0) {
            let dtype = dtype_name(info.dtype);
            return invalid(format!(
                "tensor `{name}`: shape {:?} of {dtype} does not fill whole bytes",
                info.shape
            ));
        }
        let expected = bits.map(|b| b / 8);
        if expected != Some(end - begin) {
            return SafetensorsError::SizeMismatch {
                path: path_buf(),
                name,
                dtype: dtype_name(info.dtype),
                shape: info.shape,
                expected,
                actual: end - begin,
            };
        }
        tensors.push((name, TensorInfo { dtype: info.dtype, shape: info.shape, begin, end }));
    }
    // The tensors, in data order, must tile the data section.
    tensors.sort_by(|a, b| (a.1.begin, a.1.end, &a.0).cmp(&(b.1.begin, b.1.end, &b.0)));
    let mut pos = 0;
    let mut prev: Option<&str> = None;
    for (name, info) in &tensors {
        if info.begin < pos {
            let first = prev.unwrap_or_default().to_string();
            return SafetensorsError::Overlap { path: path_buf(), first, second: name.clone() };
        }
        if info.begin > pos {
            let after = prev.map_or("the header".to_string(), |p| format!("tensor `{p}`"));
            return SafetensorsError::Gap {
                path: path_buf(),
                name: name.clone(),
                begin: info.begin,
                after,
                end: pos,
            };
        }
        pos = info.end;
        prev = Some(name);
    }
    if pos < data_len {
        return SafetensorsError::TrailingBytes {
            path: path_buf(),
            extra: data_len - pos,
            end: pos,
            data_len,
        };
    }
    invalid(crate_error_in_words(crate_error))
}

/// The crate's error, for the rare rejection [`diagnose`] cannot pin down.
fn crate_error_in_words(e: &safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::InvalidHeader(e) => format!("the header is not UTF-8: {e}"),
        E::InvalidHeaderDeserialization(e) => format!("the header is not a safetensors JSON header: {e}"),
        E::HeaderTooLarge => format!("the header is over {MAX_HEADER_LEN} bytes"),
        E::HeaderTooSmall | E::InvalidHeaderLength => "the header length does not fit the file".into(),
        E::TensorInvalidInfo => "a tensor's shape does not match its data offsets".into(),
        E::InvalidOffset(name) => format!("tensor `{name}` does not start where the previous one ends"),
        E::MetadataIncompleteBuffer => "the tensors do not cover the data section exactly".into(),
        E::ValidationOverflow => "a tensor's size overflows".into(),
        E::MisalignedSlice => "a tensor of a sub-byte dtype does not fill whole bytes".into(),
        other => format!("rejected by the safetensors crate: {other}"),
    }
}

/// An open, validated safetensors file, memory-mapped.
pub struct SafeTensorsFile {
    path: PathBuf,
    map: Arc<Mmap>,
    header: Header,
}

impl SafeTensorsFile {
    /// Maps and validates `path` (see [`parse_header`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SafetensorsError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| SafetensorsError::Io { path: path.clone(), source };
        let file = File::open(&path).map_err(io)?;
        // A directory opens as a file on Unix, then fails to map with ENODEV.
        if file.metadata().map_err(io)?.is_dir() {
            return Err(SafetensorsError::IsADirectory { path });
        }
        // SAFETY: the map is read-only; as with any mmap, the file must not be
        // truncated by another process while it is mapped (ours are only ever
        // replaced by an atomic rename).
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let header = parse_header(&path, &map)?;
        Ok(SafeTensorsFile { path, map: Arc::new(map), header })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.header.tensors.keys().map(String::as_str)
    }
    /// How many numbers the file's tensors hold, all together: what a model built from
    /// a config may at most need, checked before it is allocated.
    pub fn numel(&self) -> u128 {
        self.header.tensors.values().map(|i| i.shape.iter().map(|&d| d as u128).product::<u128>()).sum()
    }
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.header.tensors.get(name)
    }
    pub fn contains(&self, name: &str) -> bool {
        self.header.tensors.contains_key(name)
    }
    /// The `__metadata__` strings.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.header.metadata
    }

    /// The whole mapped file, for readers that keep their own views into it.
    pub fn map(&self) -> &Arc<Mmap> {
        &self.map
    }

    /// Where tensor `name`'s bytes lie in [`SafeTensorsFile::map`].
    pub fn byte_range(&self, name: &str) -> Option<std::ops::Range<usize>> {
        let info = self.header.tensors.get(name)?;
        Some(self.header.data_start + info.begin..self.header.data_start + info.end)
    }

    /// A tensor's entry and its bytes (little-endian, as stored).
    pub fn raw(&self, name: &str) -> Result<(&TensorInfo, &[u8]), SafetensorsError> {
        let info = self
            .header
            .tensors
            .get(name)
            .ok_or_else(|| SafetensorsError::NotFound { path: self.path.clone(), name: name.into() })?;
        let start = self.header.data_start;
        Ok((info, &self.map[start + info.begin..start + info.end]))
    }

    /// Refuses a float tensor holding a NaN or an infinity, naming the first one: weights
    /// read as a model's are finite numbers (one pass over the bytes; integer tensors pass).
    pub fn check_finite(&self, name: &str) -> Result<(), SafetensorsError> {
        let (info, bytes) = self.raw(name)?;
        // a float is non-finite when its exponent bits are all ones
        fn first<const N: usize>(bytes: &[u8], non_finite: impl Fn([u8; N]) -> bool) -> Option<usize> {
            let word = |c: &[u8]| std::array::from_fn(|i| c[i]);
            let blocks = bytes.chunks(N * 1024);
            for (b, block) in blocks.enumerate() {
                // branch-free over a block (vectorised), then the exact place only if needed
                if block.chunks_exact(N).fold(false, |any, c| any | non_finite(word(c))) {
                    let at = block.chunks_exact(N).position(|c| non_finite(word(c)))?;
                    return Some(b * 1024 + at);
                }
            }
            None
        }
        let bad = match info.dtype {
            Dtype::F32 => first::<4>(bytes, |b| u32::from_le_bytes(b) & 0x7f80_0000 == 0x7f80_0000),
            Dtype::F64 => {
                first::<8>(bytes, |b| u64::from_le_bytes(b) & 0x7ff0_0000_0000_0000 == 0x7ff0_0000_0000_0000)
            }
            Dtype::F16 => first::<2>(bytes, |b| u16::from_le_bytes(b) & 0x7c00 == 0x7c00),
            Dtype::BF16 => first::<2>(bytes, |b| u16::from_le_bytes(b) & 0x7f80 == 0x7f80),
            _ => None,
        };
        match bad {
            None => Ok(()),
            Some(i) => Err(SafetensorsError::BadValue {
                path: self.path.clone(),
                name: name.into(),
                msg: format!("element {i} is not a finite number (NaN or infinity): not usable as a weight"),
            }),
        }
    }

    /// A float tensor as a constant `Tensor<T>`: a zero-copy view when the file's
    /// dtype is `T`'s and the data is aligned, else converted (F64, F32, F16, BF16).
    pub fn tensor<T: Float>(&self, name: &str) -> Result<Tensor<T>, SafetensorsError> {
        let (info, bytes) = self.raw(name)?;
        if dtype_name(info.dtype) == T::DTYPE {
            let offset = self.header.data_start + info.begin;
            if let Some(t) = Tensor::from_mmap(self.map.clone(), offset, &info.shape) {
                return Ok(t);
            }
        }
        let v: Vec<T> = match info.dtype {
            Dtype::F32 => le_values(bytes, |b| T::from_f64(f32::from_le_bytes(b) as f64)),
            Dtype::F64 => le_values(bytes, |b| T::from_f64(f64::from_le_bytes(b))),
            Dtype::F16 => le_values(bytes, |b| T::from_f64(half::f16::from_le_bytes(b).to_f64())),
            Dtype::BF16 => le_values(bytes, |b| T::from_f64(half::bf16::from_le_bytes(b).to_f64())),
            other => return Err(self.wrong_dtype(name, other, T::DTYPE)),
        };
        Ok(Tensor::from_vec(v, &info.shape))
    }

    /// An integer (or bool) tensor's values and shape (token ids, labels).
    pub fn tensor_i64(&self, name: &str) -> Result<(Vec<i64>, Vec<usize>), SafetensorsError> {
        let (info, bytes) = self.raw(name)?;
        let v: Vec<i64> = match info.dtype {
            Dtype::I64 => le_values(bytes, i64::from_le_bytes),
            Dtype::I32 => le_values(bytes, |b| i32::from_le_bytes(b) as i64),
            Dtype::I16 => le_values(bytes, |b| i16::from_le_bytes(b) as i64),
            Dtype::I8 => bytes.iter().map(|&b| b as i8 as i64).collect(),
            Dtype::U8 | Dtype::BOOL => bytes.iter().map(|&b| b as i64).collect(),
            other => return Err(self.wrong_dtype(name, other, "integers")),
        };
        Ok((v, info.shape.clone()))
    }

    /// Non-negative integers as indices (token ids, class labels).
    pub fn tensor_usize(&self, name: &str) -> Result<(Vec<usize>, Vec<usize>), SafetensorsError> {
        let (v, shape) = self.tensor_i64(name)?;
        let v = v.into_iter().map(usize::try_from).collect::<Result<Vec<_>, _>>().map_err(|_| {
            SafetensorsError::BadValue {
                path: self.path.clone(),
                name: name.into(),
                msg: "negative value where an index is expected".into(),
            }
        })?;
        Ok((v, shape))
    }

    fn wrong_dtype(&self, name: &str, dtype: Dtype, wanted: &'static str) -> SafetensorsError {
        SafetensorsError::WrongDtype {
            path: self.path.clone(),
            name: name.into(),
            dtype: dtype_name(dtype),
            wanted,
        }
    }
}

fn le_values<const N: usize, V>(bytes: &[u8], f: impl Fn([u8; N]) -> V) -> Vec<V> {
    bytes.chunks_exact(N).map(|c| f(c.try_into().expect("chunks_exact gives N bytes"))).collect()
}
