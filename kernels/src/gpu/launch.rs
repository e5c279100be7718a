//! Launch geometry shared by the typed launchers (so the simulated GPU runs exactly
//! the grids a real one does).

use super::launcher::LaunchDims;

/// Threads per block of the 1-D (grid-stride) kernels.
pub const BLOCK: u32 = 256;
/// At most this many blocks for a grid-stride launch: enough to fill any current GPU
/// (132 SMs × 2048 threads ≈ 1,056 blocks of 256), beyond which threads just loop.
pub const MAX_BLOCKS: usize = 4096;

/// A grid-stride launch over `n` elements.
pub fn linear(n: usize) -> LaunchDims {
    let blocks = n.div_ceil(BLOCK as usize).clamp(1, MAX_BLOCKS);
    LaunchDims::linear(blocks as u32, BLOCK)
}

/// One block of `threads` per row, `rows` rows (row kernels: softmax, layer norm, losses).
/// Rows beyond the 2³¹−1 grid limit are looped over by the kernel (grid-stride over rows).
pub fn rows(rows: usize, threads: u32) -> LaunchDims {
    let blocks = rows.clamp(1, i32::MAX as usize);
    LaunchDims::linear(blocks as u32, threads)
}

/// Grid dimensions stop here (y and z are limited to 65,535); kernels loop beyond.
const MAX_GRID_YZ: usize = 65_535;

/// The tiled GEMM (`gemm.cu`): 16×16 threads per 64×64 tile of C, tiles of n along x,
/// of m along y, batch items along z (each clamped; the kernel loops over the rest).
pub fn gemm_tiles(batch: usize, m: usize, n: usize) -> LaunchDims {
    let x = n.div_ceil(64).clamp(1, i32::MAX as usize);
    let y = m.div_ceil(64).clamp(1, MAX_GRID_YZ);
    let z = batch.clamp(1, MAX_GRID_YZ);
    LaunchDims { grid: [x as u32, y as u32, z as u32], block: [16, 16, 1], shared_bytes: 0 }
}

/// Threads for a one-block-per-row kernel over rows of `n`: a power of two from 32 to
/// 1024, about one per element (row kernels stride over longer rows).
pub fn row_threads(n: usize) -> u32 {
    n.next_power_of_two().clamp(32, 1024) as u32
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
}
