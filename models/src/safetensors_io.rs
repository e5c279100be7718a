//! safetensors files: memory-mapped reading, loading into a [`Module`], atomic saving.
//!
//! The format: an 8-byte little-endian header length N, N bytes of JSON
//! (`{"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//! "__metadata__": {"key": "value"}}`), then the data section; offsets are relative
//! to its start. The header is parsed here by hand so that every malformed input
//! becomes an error naming the file and the tensor, never a panic.
//!
//! `F32` tensors read as `Tensor<f32>` (and `F64` as `Tensor<f64>`) are zero-copy
//! views into the map; other float dtypes (`F16`, `BF16`, `F64`↔`F32`) are converted.

use crate::module::Module;
use memmap2::Mmap;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tapegrad_autograd::{Float, Tensor};

/// Everything that can go wrong reading, loading or writing safetensors.
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: truncated: {len} bytes, fewer than the 8-byte header length")]
    Truncated { path: PathBuf, len: usize },
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
    #[error(
        "{path}: tensor `{name}`: shape {shape:?} of {dtype} needs {expected} bytes, \
         its data offsets span {actual}"
    )]
    SizeMismatch {
        path: PathBuf,
        name: String,
        shape: Vec<usize>,
        dtype: String,
        expected: usize,
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

/// Element types of the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl Dtype {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "F64" => Dtype::F64,
            "F32" => Dtype::F32,
            "F16" => Dtype::F16,
            "BF16" => Dtype::BF16,
            "I64" => Dtype::I64,
            "I32" => Dtype::I32,
            "I16" => Dtype::I16,
            "I8" => Dtype::I8,
            "U8" => Dtype::U8,
            "BOOL" => Dtype::Bool,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F64 => "F64",
            Dtype::F32 => "F32",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::I64 => "I64",
            Dtype::I32 => "I32",
            Dtype::I16 => "I16",
            Dtype::I8 => "I8",
            Dtype::U8 => "U8",
            Dtype::Bool => "BOOL",
        }
    }
    pub fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 => 8,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F16 | Dtype::BF16 | Dtype::I16 => 2,
            Dtype::I8 | Dtype::U8 | Dtype::Bool => 1,
        }
    }
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

/// An open, validated safetensors file, memory-mapped.
pub struct SafeTensorsFile {
    path: PathBuf,
    map: Arc<Mmap>,
    data_start: usize,
    tensors: BTreeMap<String, TensorInfo>,
    metadata: BTreeMap<String, String>,
}

impl SafeTensorsFile {
    /// Maps and validates `path`: header length, JSON, dtypes, shapes against
    /// offsets, offsets within the data section and not overlapping.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SafetensorsError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| SafetensorsError::Io { path: path.clone(), source };
        let file = File::open(&path).map_err(io)?;
        // SAFETY: the map is read-only; as with any mmap, the file must not be
        // truncated by another process while it is mapped.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let (data_start, tensors, metadata) = parse_header(&path, &map)?;
        Ok(SafeTensorsFile { path, map: Arc::new(map), data_start, tensors, metadata })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.get(name)
    }
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
    /// The `__metadata__` strings.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    fn entry(&self, name: &str) -> Result<(&TensorInfo, &[u8]), SafetensorsError> {
        let info = self
            .tensors
            .get(name)
            .ok_or_else(|| SafetensorsError::NotFound { path: self.path.clone(), name: name.into() })?;
        Ok((info, &self.map[self.data_start + info.begin..self.data_start + info.end]))
    }

    /// A float tensor as a constant `Tensor<T>`: a zero-copy view when the file's
    /// dtype is `T`'s and the data is aligned, else converted (F64, F32, F16, BF16).
    pub fn tensor<T: Float>(&self, name: &str) -> Result<Tensor<T>, SafetensorsError> {
        let (info, bytes) = self.entry(name)?;
        if info.dtype.name() == T::DTYPE {
            if let Some(t) = Tensor::from_mmap(self.map.clone(), self.data_start + info.begin, &info.shape) {
                return Ok(t);
            }
        }
        let v: Vec<T> = match info.dtype {
            Dtype::F32 => le_values(bytes, |b| T::from_f64(f32::from_le_bytes(b) as f64)),
            Dtype::F64 => le_values(bytes, |b| T::from_f64(f64::from_le_bytes(b))),
            Dtype::F16 => le_values(bytes, |b| T::from_f64(half::f16::from_le_bytes(b).to_f64())),
            Dtype::BF16 => le_values(bytes, |b| T::from_f64(half::bf16::from_le_bytes(b).to_f64())),
            other => {
                return Err(SafetensorsError::WrongDtype {
                    path: self.path.clone(),
                    name: name.into(),
                    dtype: other.name().into(),
                    wanted: T::DTYPE,
                })
            }
        };
        Ok(Tensor::from_vec(v, &info.shape))
    }

    /// An integer (or bool) tensor's values and shape (token ids, labels).
    pub fn tensor_i64(&self, name: &str) -> Result<(Vec<i64>, Vec<usize>), SafetensorsError> {
        let (info, bytes) = self.entry(name)?;
        let v: Vec<i64> = match info.dtype {
            Dtype::I64 => le_values(bytes, i64::from_le_bytes),
            Dtype::I32 => le_values(bytes, |b| i32::from_le_bytes(b) as i64),
            Dtype::I16 => le_values(bytes, |b| i16::from_le_bytes(b) as i64),
            Dtype::I8 => bytes.iter().map(|&b| b as i8 as i64).collect(),
            Dtype::U8 | Dtype::Bool => bytes.iter().map(|&b| b as i64).collect(),
            other => {
                return Err(SafetensorsError::WrongDtype {
                    path: self.path.clone(),
                    name: name.into(),
                    dtype: other.name().into(),
                    wanted: "integers",
                })
            }
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
}

fn le_values<const N: usize, V>(bytes: &[u8], f: impl Fn([u8; N]) -> V) -> Vec<V> {
    bytes.chunks_exact(N).map(|c| f(c.try_into().expect("chunks_exact gives N bytes"))).collect()
}

type Header = (usize, BTreeMap<String, TensorInfo>, BTreeMap<String, String>);

fn parse_header(path: &Path, bytes: &[u8]) -> Result<Header, SafetensorsError> {
    let path_buf = || path.to_path_buf();
    let invalid = |msg: String| SafetensorsError::InvalidHeader { path: path_buf(), msg };
    if bytes.len() < 8 {
        return Err(SafetensorsError::Truncated { path: path_buf(), len: bytes.len() });
    }
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let data_start =
        usize::try_from(header_len).ok().and_then(|n| n.checked_add(8)).filter(|&e| e <= bytes.len());
    let Some(data_start) = data_start else {
        return Err(SafetensorsError::HeaderBeyondFile {
            path: path_buf(),
            header_len,
            file_len: bytes.len(),
        });
    };
    let json: Value =
        serde_json::from_slice(&bytes[8..data_start]).map_err(|e| invalid(format!("JSON: {e}")))?;
    let Value::Object(entries) = json else { return Err(invalid("the JSON is not an object".into())) };
    let data_len = bytes.len() - data_start;
    let mut tensors = BTreeMap::new();
    let mut metadata = BTreeMap::new();
    for (name, entry) in entries {
        if name == "__metadata__" {
            let Value::Object(m) = entry else {
                return Err(invalid("`__metadata__` is not an object".into()));
            };
            for (k, v) in m {
                let Value::String(v) = v else {
                    return Err(invalid(format!("metadata `{k}` is not a string")));
                };
                metadata.insert(k, v);
            }
            continue;
        }
        let bad = |what: &str| invalid(format!("tensor `{name}`: {what}"));
        let dtype_str = entry.get("dtype").and_then(Value::as_str).ok_or_else(|| bad("no string `dtype`"))?;
        let dtype = Dtype::parse(dtype_str).ok_or_else(|| SafetensorsError::UnknownDtype {
            path: path_buf(),
            name: name.clone(),
            dtype: dtype_str.into(),
        })?;
        let shape: Vec<usize> = entry
            .get("shape")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok())).collect())
            .ok_or_else(|| bad("`shape` is not a list of non-negative integers"))?;
        let offsets: Vec<usize> = entry
            .get("data_offsets")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok())).collect())
            .filter(|o: &Vec<usize>| o.len() == 2)
            .ok_or_else(|| bad("`data_offsets` is not a pair of non-negative integers"))?;
        let (begin, end) = (offsets[0], offsets[1]);
        if begin > end || end > data_len {
            return Err(SafetensorsError::OffsetsOutOfRange { path: path_buf(), name, begin, end, data_len });
        }
        let expected = shape.iter().try_fold(dtype.size(), |acc, &d| acc.checked_mul(d));
        if expected != Some(end - begin) {
            return Err(SafetensorsError::SizeMismatch {
                path: path_buf(),
                name,
                shape,
                dtype: dtype.name().into(),
                expected: expected.unwrap_or(usize::MAX),
                actual: end - begin,
            });
        }
        tensors.insert(name, TensorInfo { dtype, shape, begin, end });
    }
    // Overlaps: sort the non-empty ranges by start and compare neighbours.
    let mut ranges: Vec<(&String, &TensorInfo)> = tensors.iter().filter(|(_, i)| i.end > i.begin).collect();
    ranges.sort_by_key(|(_, i)| (i.begin, i.end));
    for w in ranges.windows(2) {
        if w[1].1.begin < w[0].1.end {
            return Err(SafetensorsError::Overlap {
                path: path_buf(),
                first: w[0].0.clone(),
                second: w[1].0.clone(),
            });
        }
    }
    Ok((data_start, tensors, metadata))
}

/// How names of a file meet names of a model.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Model parameters that may be absent from the file (names starting with one
    /// of these prefixes keep their initial values), e.g. a new `classifier.` head.
    pub allow_missing: Vec<String>,
    /// File tensors that may go unused: names ending with one of these suffixes
    /// (`.position_ids` buffers) or starting with one of these prefixes.
    pub ignore_unexpected: Vec<String>,
    /// A prefix the model's names may carry and the file's may lack, or the other
    /// way round (`"bert."`: Hugging Face base-model files have no `bert.` prefix).
    pub optional_prefix: Option<String>,
}

/// What a successful load did.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Model parameter names that received numbers from the file.
    pub loaded: Vec<String>,
    /// Parameters absent from the file that were allowed to be (kept their init).
    pub missing_allowed: Vec<String>,
    /// File tensors that were ignored.
    pub ignored: Vec<String>,
}

/// Loads every parameter of `model` from `file`, matching names exactly or up to
/// `opts.optional_prefix`. Parameters become views into the map (copy-on-write)
/// when the dtypes match. All missing, unexpected and mis-shaped tensors are
/// reported together in one [`SafetensorsError::Mismatch`]; nothing is changed then.
pub fn load_into<T: Float>(
    model: &(impl Module<T> + ?Sized),
    file: &SafeTensorsFile,
    opts: &LoadOptions,
) -> Result<LoadReport, SafetensorsError> {
    let params = model.named_parameters();
    let mut used = HashSet::new();
    let (mut missing, mut mis_shaped, mut report) = (Vec::new(), Vec::new(), LoadReport::default());
    let mut plan = Vec::new();
    for (name, p) in &params {
        let mut candidates = vec![name.clone()];
        if let Some(pre) = &opts.optional_prefix {
            match name.strip_prefix(pre.as_str()) {
                Some(rest) => candidates.push(rest.to_string()),
                None => candidates.push(format!("{pre}{name}")),
            }
        }
        match candidates.into_iter().find(|c| file.contains(c)) {
            Some(found) => {
                let info = &file.tensors[&found];
                if info.shape != p.shape() {
                    mis_shaped.push((name.clone(), p.shape().to_vec(), info.shape.clone()));
                } else {
                    plan.push((p.clone(), found.clone(), name.clone()));
                }
                used.insert(found);
            }
            None if opts.allow_missing.iter().any(|pre| name.starts_with(pre.as_str())) => {
                report.missing_allowed.push(name.clone())
            }
            None => missing.push(name.clone()),
        }
    }
    let mut unexpected = Vec::new();
    for name in file.names().filter(|n| !used.contains(*n)) {
        let ignored = opts
            .ignore_unexpected
            .iter()
            .any(|pat| name.ends_with(pat.as_str()) || name.starts_with(pat.as_str()));
        if ignored {
            report.ignored.push(name.to_string());
        } else {
            unexpected.push(name.to_string());
        }
    }
    if !missing.is_empty() || !unexpected.is_empty() || !mis_shaped.is_empty() {
        return Err(SafetensorsError::Mismatch { path: file.path.clone(), missing, unexpected, mis_shaped });
    }
    // Read everything before changing anything, so a bad dtype leaves the model as it was.
    let values = plan.iter().map(|(_, found, _)| file.tensor::<T>(found)).collect::<Result<Vec<_>, _>>()?;
    for ((p, _, name), v) in plan.into_iter().zip(values) {
        p.set_data(&v);
        report.loaded.push(name);
    }
    Ok(report)
}

/// Writes named tensors (in `T`'s dtype, `F32` for `f32`) and string metadata to
/// `path` atomically: a temporary file in the same folder, fsync, then rename, so a
/// crash leaves either the old file or the new one.
pub fn save<T: Float>(
    path: impl AsRef<Path>,
    tensors: &[(String, Tensor<T>)],
    metadata: &BTreeMap<String, String>,
) -> Result<(), SafetensorsError> {
    let path = path.as_ref();
    let io = |source| SafetensorsError::Io { path: path.to_path_buf(), source };
    let mut seen = HashSet::new();
    if let Some((dup, _)) = tensors.iter().find(|(n, _)| !seen.insert(n.as_str())) {
        return Err(SafetensorsError::InvalidHeader {
            path: path.to_path_buf(),
            msg: format!("tensor `{dup}` is given twice"),
        });
    }
    let elem = std::mem::size_of::<T>();
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        let m = metadata.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        header.insert("__metadata__".into(), Value::Object(m));
    }
    let mut offset = 0usize;
    for (name, t) in tensors {
        let bytes = t.numel() * elem;
        let entry = serde_json::json!({"dtype": T::DTYPE, "shape": t.shape(), "data_offsets": [offset, offset + bytes]});
        header.insert(name.clone(), entry);
        offset += bytes;
    }
    let mut json = serde_json::to_vec(&Value::Object(header)).expect("a JSON map serialises");
    // Pad with spaces so the data section starts 8-byte aligned (zero-copy views).
    while !(8 + json.len()).is_multiple_of(8) {
        json.push(b' ');
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut w = std::io::BufWriter::new(File::create(&tmp)?);
        w.write_all(&(json.len() as u64).to_le_bytes())?;
        w.write_all(&json)?;
        for (_, t) in tensors {
            // copied back from a GPU (and its sticky error, if any, fails the save)
            let values = t.try_to_vec().map_err(|e| std::io::Error::other(e.to_string()))?;
            for v in values.iter() {
                if elem == 4 {
                    w.write_all(&(v.to_f64() as f32).to_le_bytes())?;
                } else {
                    w.write_all(&v.to_f64().to_le_bytes())?;
                }
            }
        }
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable (best effort: not every platform opens dirs).
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}
