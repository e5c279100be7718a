//! Optimizer state in safetensors files, for runs that resume exactly.
//!
//! [`Optimizer::state`] gives an [`OptimState`]: tensors
//! named `<param>.<buffer>` (`momentum_buffer`, `exp_avg`, `exp_avg_sq`) in the
//! parameters' own dtype, so restoring is bit for bit, plus JSON metadata with the
//! step counts and hyperparameters.
//!
//! A checkpoint ([`save_checkpoint`]) holds the model weights under their own names
//! and the optimizer state under the prefix `optim.`, with the metadata JSON under
//! the metadata key `optim`. It is written atomically: a temporary file in the same
//! folder, fsync, rename, so a crash never leaves a half-written checkpoint.
//! Loading goes through the project's one reader
//! ([`tapegrad_autograd::safetensors`]): errors name the file and the tensor;
//! nothing panics on a bad file.

use crate::optimizer::Optimizer;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use tapegrad_autograd::safetensors::{SafeTensorsFile, SafetensorsError};
use tapegrad_autograd::{Float, Tensor};

/// Prefix of the optimizer's tensors in a checkpoint.
pub const PREFIX: &str = "optim.";
/// Metadata key of the optimizer's JSON in a checkpoint.
pub const META_KEY: &str = "optim";

/// Why a state could not be saved or restored. Every variant names its file.
#[derive(Debug)]
pub enum StateError {
    Io {
        path: String,
        source: std::io::Error,
    },
    /// Not a readable, valid safetensors file (the reader's error names the file).
    File(SafetensorsError),
    /// Metadata that is not JSON, or a state that cannot be serialised.
    Format {
        path: String,
        msg: String,
    },
    Missing {
        path: String,
        tensor: String,
    },
    Shape {
        path: String,
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    Dtype {
        path: String,
        tensor: String,
        found: String,
    },
    /// A well-formed state that does not fit this optimizer or model.
    Mismatch {
        path: String,
        msg: String,
    },
}

impl StateError {
    pub(crate) fn mismatch(path: &str, msg: String) -> Self {
        StateError::Mismatch { path: path.to_string(), msg }
    }
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Io { path, source } => write!(f, "{path}: {source}"),
            StateError::File(e) => write!(f, "{e}"),
            StateError::Format { path, msg } => write!(f, "{path}: not a valid checkpoint: {msg}"),
            StateError::Missing { path, tensor } => write!(f, "{path}: tensor `{tensor}` is missing"),
            StateError::Shape { path, tensor, expected, found } => {
                write!(f, "{path}: tensor `{tensor}` has shape {found:?}, expected {expected:?}")
            }
            StateError::Dtype { path, tensor, found } => {
                write!(f, "{path}: tensor `{tensor}` has dtype {found}, expected F32 or F64")
            }
            StateError::Mismatch { path, msg } => write!(f, "{path}: {msg}"),
        }
    }
}

impl std::error::Error for StateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StateError::Io { source, .. } => Some(source),
            StateError::File(e) => e.source(),
            _ => None,
        }
    }
}

/// One tensor of a state: little-endian bytes as safetensors stores them.
#[derive(Clone, Debug, PartialEq)]
pub struct StateTensor {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl StateTensor {
    /// Stores `values` exactly, in `T`'s dtype.
    pub fn from_values<T: Float>(name: impl Into<String>, shape: &[usize], values: &[T]) -> Self {
        let (dtype, bytes) = if T::DTYPE == "F64" {
            (Dtype::F64, values.iter().flat_map(|v| v.to_f64().to_le_bytes()).collect())
        } else {
            (Dtype::F32, values.iter().flat_map(|v| (v.to_f64() as f32).to_le_bytes()).collect())
        };
        StateTensor { name: name.into(), dtype, shape: shape.to_vec(), bytes }
    }

    /// The values as `T` (F32 or F64 stored; exact when the dtypes agree).
    pub fn values<T: Float>(&self) -> Option<Vec<T>> {
        match self.dtype {
            Dtype::F32 => {
                let it = self.bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()));
                Some(it.map(|v| T::from_f64(v as f64)).collect())
            }
            Dtype::F64 => {
                let it = self.bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()));
                Some(it.map(T::from_f64).collect())
            }
            _ => None,
        }
    }
}

/// An optimizer's state: metadata JSON and named buffers.
#[derive(Clone, Debug)]
pub struct OptimState {
    /// Where the state came from (a file path, or `<memory>`), for error messages.
    pub source: String,
    /// Prefix of the tensor names in the source (`optim.` in a checkpoint), for errors.
    pub prefix: String,
    pub meta: Value,
    pub tensors: Vec<StateTensor>,
}

impl OptimState {
    pub fn new(meta: Value) -> Self {
        OptimState { source: "<memory>".into(), prefix: String::new(), meta, tensors: Vec::new() }
    }

    /// The buffer `name` as `T`, checked to have `shape`.
    pub fn values<T: Float>(&self, name: &str, shape: &[usize]) -> Result<Vec<T>, StateError> {
        let path = self.source.clone();
        let tensor = format!("{}{name}", self.prefix);
        let Some(t) = self.tensors.iter().find(|t| t.name == name) else {
            return Err(StateError::Missing { path, tensor });
        };
        if t.shape != shape {
            return Err(StateError::Shape { path, tensor, expected: shape.into(), found: t.shape.clone() });
        }
        t.values().ok_or_else(|| StateError::Dtype { path, tensor, found: format!("{:?}", t.dtype) })
    }
}

/// `meta[key]`, or an error naming the field.
pub(crate) fn meta_field<'a>(meta: &'a Value, key: &str, src: &str) -> Result<&'a Value, StateError> {
    meta.get(key).ok_or_else(|| StateError::mismatch(src, format!("metadata field `{key}` is missing")))
}

/// `meta[key]` as a number.
pub(crate) fn meta_f64(meta: &Value, key: &str, src: &str) -> Result<f64, StateError> {
    meta_field(meta, key, src)?
        .as_f64()
        .ok_or_else(|| StateError::mismatch(src, format!("metadata field `{key}` is not a number")))
}

/// Writes model `weights` (under their names) and optionally an optimizer state
/// (under `optim.`) to one safetensors file, atomically.
pub fn save_checkpoint<T: Float>(
    path: impl AsRef<Path>,
    weights: &[(String, Tensor<T>)],
    optim: Option<&OptimState>,
) -> Result<(), StateError> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let mut all: Vec<StateTensor> =
        weights.iter().map(|(n, t)| StateTensor::from_values(n.clone(), t.shape(), &t.to_vec())).collect();
    let mut metadata = HashMap::new();
    if let Some(s) = optim {
        all.extend(
            s.tensors.iter().map(|t| StateTensor { name: format!("{PREFIX}{}", t.name), ..t.clone() }),
        );
        metadata.insert(META_KEY.to_string(), s.meta.to_string());
    }
    let mut views = Vec::with_capacity(all.len());
    let mut names = std::collections::HashSet::new();
    for t in &all {
        if !names.insert(t.name.as_str()) {
            return Err(StateError::mismatch(&shown, format!("two tensors named `{}`", t.name)));
        }
        let view = TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
            .map_err(|e| StateError::Format { path: shown.clone(), msg: format!("`{}`: {e}", t.name) })?;
        views.push((t.name.clone(), view));
    }
    let bytes = safetensors::serialize(views, Some(metadata))
        .map_err(|e| StateError::Format { path: shown.clone(), msg: e.to_string() })?;
    tapegrad_fsio::write_bytes(path, &bytes).map_err(|source| StateError::Io { path: shown, source })
}

/// Opens and validates a checkpoint with the shared reader.
fn open(path: &Path) -> Result<SafeTensorsFile, StateError> {
    SafeTensorsFile::open(path).map_err(StateError::File)
}

/// Reads the optimizer state (`optim.*` tensors and the `optim` metadata) of a checkpoint.
pub fn read_optim_state(path: impl AsRef<Path>) -> Result<OptimState, StateError> {
    optim_state_from(&open(path.as_ref())?)
}

fn optim_state_from(file: &SafeTensorsFile) -> Result<OptimState, StateError> {
    let shown = file.path().display().to_string();
    let Some(json) = file.metadata().get(META_KEY) else {
        let msg = format!("no optimizer state (metadata key `{META_KEY}` is missing)");
        return Err(StateError::mismatch(&shown, msg));
    };
    let meta: Value = serde_json::from_str(json).map_err(|e| StateError::Format {
        path: shown.clone(),
        msg: format!("metadata `{META_KEY}`: {e}"),
    })?;
    let mut state = OptimState { source: shown, prefix: PREFIX.into(), meta, tensors: Vec::new() };
    for name in file.names().filter(|n| n.starts_with(PREFIX)) {
        let (info, bytes) = file.raw(name).map_err(StateError::File)?;
        let t = StateTensor {
            name: name[PREFIX.len()..].to_string(),
            dtype: info.dtype,
            shape: info.shape.clone(),
            bytes: bytes.to_vec(),
        };
        state.tensors.push(t);
    }
    Ok(state)
}

/// Restores model `weights` (by name, shape-checked) and, if given, the optimizer
/// state from a checkpoint written by [`save_checkpoint`]. Everything is validated
/// before anything is written: on error, weights and optimizer are unchanged.
pub fn load_checkpoint<T: Float>(
    path: impl AsRef<Path>,
    weights: &[(String, Tensor<T>)],
    optim: Option<&mut dyn Optimizer<T>>,
) -> Result<(), StateError> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let file = open(path)?;
    let mut values = Vec::with_capacity(weights.len());
    for (name, t) in weights {
        let Ok((info, bytes)) = file.raw(name) else {
            return Err(StateError::Missing { path: shown.clone(), tensor: name.clone() });
        };
        let st = StateTensor {
            name: name.clone(),
            dtype: info.dtype,
            shape: info.shape.clone(),
            bytes: bytes.to_vec(),
        };
        let one =
            OptimState { source: shown.clone(), prefix: String::new(), meta: Value::Null, tensors: vec![st] };
        values.push(one.values::<T>(name, t.shape())?);
    }
    if let Some(opt) = optim {
        opt.load_state(&optim_state_from(&file)?)?;
    }
    for ((_, t), v) in weights.iter().zip(values) {
        t.write_values(v); // on the weight's device
    }
    Ok(())
}

/// A state buffer's numbers on the host (copied back from a GPU). Panics with the
/// device's sticky error, like `Tensor::to_vec`.
pub fn host<T: Float>(s: &tapegrad_autograd::Storage<T>) -> Vec<T> {
    use tapegrad_autograd::backend::Backend;
    s.to_host().unwrap_or_else(|e| panic!("{}: {e}", s.device()))
}
