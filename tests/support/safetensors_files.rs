//! The safetensors tests' files: a temporary folder per test, and raw files written byte by
//! byte (`#[path]`-included by `safetensors_errors.rs` and `safetensors_rules.rs`).
#![allow(dead_code)]

use std::path::PathBuf;

/// A fresh temporary folder for one test (removed at the end of the test).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tapegrad-st-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    /// Writes `bytes` to the file `name` in the folder.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A file from a header (JSON text) and a data section: the header's length as a
/// little-endian u64, the header, the data.
pub fn raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}
