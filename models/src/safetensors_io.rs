//! safetensors files: loading into a [`Module`], atomic saving.
//!
//! Reading is the project's one reader, [`tapegrad_autograd::safetensors`]
//! (memory-mapped, validated by the `safetensors` crate, errors naming file and
//! tensor), re-exported here; this module matches a file's names to a model's
//! parameters ([`load_into`]) and writes files ([`save`]).

use crate::module::Module;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::Path;
pub use tapegrad_autograd::safetensors::{
    diagnose, dtype_name, parse_header, Dtype, Header, SafeTensorsFile, SafetensorsError, TensorInfo,
    MAX_HEADER_LEN,
};
use tapegrad_autograd::{Float, Tensor};

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
/// reported together in one [`SafetensorsError::Mismatch`], and a tensor holding a NaN or
/// an infinity is refused by name; nothing is changed then.
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
                let info = file.info(&found).expect("found among the file's names");
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
        return Err(SafetensorsError::Mismatch {
            path: file.path().to_path_buf(),
            missing,
            unexpected,
            mis_shaped,
        });
    }
    // Read everything before changing anything, so a bad dtype or a NaN leaves the model
    // as it was.
    for (_, found, _) in &plan {
        file.check_finite(found)?;
    }
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
    tapegrad_fsio::write_file(path, |w| {
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
        Ok(())
    })
    .map_err(io)
}
