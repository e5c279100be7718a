//! Launch geometry shared by the typed launchers (so the simulated GPU runs exactly
//! the grids a real one does).

use super::launcher::{KernelArg, LaunchDims};
use std::cell::Cell;

/// Threads per block of the 1-D (grid-stride) kernels.
pub const BLOCK: u32 = 256;
/// At most this many blocks for a grid-stride launch: enough to fill any current GPU
/// (132 SMs × 2048 threads ≈ 1,056 blocks of 256), beyond which threads just loop.
pub const MAX_BLOCKS: usize = 4096;

thread_local! {
    /// The most blocks along any grid dimension, below the limits here: lowered by tests
    /// ([`with_grid_cap`]) to show that every kernel loops over what its grid does not cover.
    static GRID_CAP: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// `blocks` clamped to 1 ..= `max` (and the test cap, if lower).
fn clamp_blocks(blocks: usize, max: usize) -> usize {
    blocks.clamp(1, max.min(GRID_CAP.get()).max(1))
}

/// Runs `f` with every grid of this thread's launches cut to at most `cap` blocks a
/// dimension (tests: a kernel must give the same results on any grid).
#[cfg(test)]
pub(crate) fn with_grid_cap<R>(cap: usize, f: impl FnOnce() -> R) -> R {
    let old = GRID_CAP.replace(cap);
    let r = f();
    GRID_CAP.set(old);
    r
}

/// A grid-stride launch over `n` elements.
pub fn linear(n: usize) -> LaunchDims {
    let blocks = clamp_blocks(n.div_ceil(BLOCK as usize), MAX_BLOCKS);
    LaunchDims::linear(blocks as u32, BLOCK)
}

/// One block of `threads` per row, `rows` rows (row kernels: softmax, layer norm, losses).
/// Rows beyond the 2³¹−1 grid limit are looped over by the kernel (grid-stride over rows).
pub fn rows(rows: usize, threads: u32) -> LaunchDims {
    let blocks = clamp_blocks(rows, i32::MAX as usize);
    LaunchDims::linear(blocks as u32, threads)
}

/// Grid dimensions stop here (y and z are limited to 65,535); kernels loop beyond.
const MAX_GRID_YZ: usize = 65_535;

/// The tiled GEMM (`gemm.cu`): 32×8 threads per 64×64 tile of C, tiles of n along x,
/// of m along y, batch items along z (each clamped; the kernel loops over the rest).
pub fn gemm_tiles(batch: usize, m: usize, n: usize) -> LaunchDims {
    let x = clamp_blocks(n.div_ceil(64), i32::MAX as usize);
    let y = clamp_blocks(m.div_ceil(64), MAX_GRID_YZ);
    let z = clamp_blocks(batch, MAX_GRID_YZ);
    LaunchDims { grid: [x as u32, y as u32, z as u32], block: [32, 8, 1], shared_bytes: 0 }
}

/// The batched 32×32-tile transpose (`permute.cu`): 32×8 threads a tile, `tiles` tiles
/// along x (clamped at 2¹⁶; the kernel loops over the rest).
pub fn transpose_tiles(tiles: usize) -> LaunchDims {
    LaunchDims { grid: [clamp_blocks(tiles, 1 << 16) as u32, 1, 1], block: [32, 8, 1], shared_bytes: 0 }
}

/// Threads per block for a row kernel over rows of `n` elements: a warp for short rows,
/// up to 256 for long ones (always a multiple of 32, as `block_sum` needs).
pub fn row_threads(n: usize) -> u32 {
    if n >= 2048 {
        256
    } else if n >= 256 {
        128
    } else {
        32
    }
}

/// The most dims a strided kernel takes (`RANK` in `broadcast.cu`, `permute.cu`).
pub const RANK: usize = 6;

/// A strided walk over `shape` (row-major order) reading `K` operands, each with its
/// own element strides: the description the broadcast and permute kernels take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Strided<const K: usize> {
    pub shape: Vec<usize>,
    pub strides: [Vec<usize>; K],
}

impl<const K: usize> Strided<K> {
    /// The same walk with size-1 dims dropped and adjacent dims merged wherever every
    /// operand's stride allows (`s[k] = s[k+1]·d[k+1]`, zeros included). The element
    /// order is unchanged, so kernels see the fewest dims that describe it.
    pub fn simplify(shape: &[usize], strides: [&[usize]; K]) -> Self {
        let mut out = Strided { shape: Vec::new(), strides: std::array::from_fn(|_| Vec::new()) };
        for k in 0..shape.len() {
            if shape[k] == 1 {
                continue;
            }
            let mergeable = !out.shape.is_empty()
                && (0..K).all(|o| *out.strides[o].last().unwrap() == strides[o][k] * shape[k]);
            if mergeable {
                let last = out.shape.len() - 1;
                out.shape[last] *= shape[k];
                (0..K).for_each(|o| out.strides[o][last] = strides[o][k]);
            } else {
                out.shape.push(shape[k]);
                (0..K).for_each(|o| out.strides[o].push(strides[o][k]));
            }
        }
        out
    }

    /// The kernel parameters: the shape, then each operand's strides, each as [`RANK`]
    /// u64s padded on the left with size-1 dims; `None` when more than [`RANK`] dims
    /// remain after [`Strided::simplify`].
    pub fn params(&self) -> Option<Vec<KernelArg>> {
        let r = self.shape.len();
        if r > RANK {
            return None;
        }
        let pad = |v: &[usize], fill: usize| {
            let mut p = vec![fill as u64; RANK - r];
            p.extend(v.iter().map(|&x| x as u64));
            p.into_iter().map(KernelArg::U64)
        };
        let mut out: Vec<KernelArg> = pad(&self.shape, 1).collect();
        for s in &self.strides {
            out.extend(pad(s, 0));
        }
        Some(out)
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Row-major element strides of `shape`.
pub fn row_major(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_covers_small_and_caps_large() {
        assert_eq!(linear(0).grid[0], 1);
        assert_eq!(linear(1).grid[0], 1);
        assert_eq!(linear(257).grid[0], 2);
        assert_eq!(linear(1 << 40).grid[0] as usize, MAX_BLOCKS);
        assert_eq!(linear(5).block[0], BLOCK);
    }

    #[test]
    fn gemm_tiles_cover_and_clamp() {
        assert_eq!(gemm_tiles(1, 1, 1).grid, [1, 1, 1]);
        assert_eq!(gemm_tiles(3, 65, 129).grid, [3, 2, 3]);
        assert_eq!(gemm_tiles(100_000, 1 << 23, 64).grid, [1, 65_535, 65_535]);
        assert_eq!(gemm_tiles(2, 0, 0).grid, [1, 1, 2]);
    }

    #[test]
    fn strided_walks_merge_and_pad() {
        // a (2,3,4) contiguous, b (1,3,4) broadcast along dim 0: the last two merge
        let s = Strided::simplify(&[2, 3, 4], [&[12, 4, 1], &[0, 4, 1]]);
        assert_eq!(s, Strided { shape: vec![2, 12], strides: [vec![12, 1], vec![0, 1]] });
        let p = s.params().unwrap();
        assert_eq!(p.len(), 3 * RANK);
        assert_eq!(p[RANK - 1], KernelArg::U64(12));
        assert_eq!(p[0], KernelArg::U64(1));
        assert_eq!(p[RANK], KernelArg::U64(0));
        // size-1 dims vanish; a transpose does not merge
        let t = Strided::simplify(&[1, 3, 1, 5], [&[15, 1, 5, 3]]);
        assert_eq!(t.shape, vec![3, 5]);
        assert_eq!(t.strides[0], vec![1, 3]);
        assert!(Strided::simplify(&[2; 7], [&[64, 1, 32, 2, 16, 4, 8]]).params().is_none());
        assert_eq!(row_major(&[2, 3, 4]), vec![12, 4, 1]);
    }
}
