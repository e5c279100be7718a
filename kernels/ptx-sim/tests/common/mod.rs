//! Helpers for the kernel tests: load a committed PTX file, move typed slices.
#![allow(dead_code)]

use tapegrad_ptx_sim::{LaunchDims, SimGpu};

pub fn gpu_with(module: &str) -> SimGpu {
    let gpu = SimGpu::with_host_threads(2);
    let path = format!("{}/tests/ptx/{module}.ptx", env!("CARGO_MANIFEST_DIR"));
    let ptx = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    gpu.load_module(module, &ptx).unwrap_or_else(|e| panic!("{e}"));
    gpu
}

pub trait Pod: Copy + Default {
    const SIZE: usize;
    fn to_le(self, out: &mut Vec<u8>);
    fn from_le(b: &[u8]) -> Self;
}
macro_rules! pod {
    ($($t:ty),*) => {$(
        impl Pod for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn to_le(self, out: &mut Vec<u8>) { out.extend_from_slice(&self.to_le_bytes()) }
            fn from_le(b: &[u8]) -> Self { <$t>::from_le_bytes(b.try_into().unwrap()) }
        }
    )*};
}
pod!(f32, f64, u32, i32, u64, i64);

pub fn upload<T: Pod>(gpu: &SimGpu, v: &[T]) -> u64 {
    let mut b = Vec::new();
    v.iter().for_each(|x| x.to_le(&mut b));
    let p = gpu.alloc(b.len().max(1)).unwrap();
    gpu.write(p, &b).unwrap();
    p
}

pub fn zeros<T: Pod>(gpu: &SimGpu, n: usize) -> u64 {
    gpu.alloc((n * T::SIZE).max(1)).unwrap()
}

pub fn download<T: Pod>(gpu: &SimGpu, p: u64, n: usize) -> Vec<T> {
    let mut b = vec![0u8; n * T::SIZE];
    gpu.read(p, &mut b).unwrap();
    b.chunks(T::SIZE).map(T::from_le).collect()
}

pub fn dims(grid: u32, block: u32, shared: u32) -> LaunchDims {
    LaunchDims { grid: [grid, 1, 1], block: [block, 1, 1], shared_bytes: shared }
}

/// A deterministic pseudo-random stream (xorshift) for inputs.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 16) as u32
    }
    /// Uniform in [lo, hi).
    pub fn f32(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * (self.next_u32() as f32 / 4294967296.0)
    }
}
