//! Which instruction set the f32 fast kernels run on, and the one switch that forces it.
//!
//! Three paths: AVX-512F (the 12x32 GEMM micro-kernel and everything it packs for), AVX2+FMA
//! (the 6x16 GEMM micro-kernel and the 8-wide elementwise, softmax, layer norm, loss, LSTM cell
//! and update kernels), and the portable path (scalar / auto-vectorised code any CPU runs). By
//! default every family uses the best path the CPU has ([`detected`]; `TAPEGRAD_NO_AVX512=1`
//! leaves out AVX-512). Families without an AVX-512 kernel of their own use their AVX2 kernel
//! there.
//!
//! [`force`] overrides the choice for the whole process, pool workers included, until its guard
//! drops: every family then takes the best path it has at or below the forced one. Forcing holds
//! a process-wide lock, so two forcing sections never interleave; kernels called from other
//! threads meanwhile run the forced path too (all paths compute the same function, to rounding),
//! which is why tests that force live in their own binary (`kernels/tests/isa_paths.rs`).
//!
//! Each family records which path it dispatched to ([`note`]; one relaxed atomic add per kernel
//! call), so a test can check that forcing took effect ([`hits`]).

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// An instruction-set path, ordered from the most portable up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Scalar / auto-vectorised code for any CPU.
    Portable = 0,
    /// AVX2 and FMA.
    Avx2 = 1,
    /// AVX-512F (with AVX2 and FMA).
    Avx512 = 2,
}

impl Isa {
    /// Every path, the widest first.
    pub const ALL: [Isa; 3] = [Isa::Avx512, Isa::Avx2, Isa::Portable];

    /// "avx512", "avx2" or "portable".
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }
}

/// Whether this CPU can run `isa`'s kernels (regardless of `TAPEGRAD_NO_AVX512`).
pub fn cpu_supports(isa: Isa) -> bool {
    match isa {
        Isa::Portable => true,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => cpu_supports(Isa::Avx2) && is_x86_feature_detected!("avx512f"),
        #[cfg(not(target_arch = "x86_64"))]
        _ => false,
    }
}

/// The best path this CPU supports, without AVX-512 when `TAPEGRAD_NO_AVX512` is set
/// (decided once).
pub fn detected() -> Isa {
    static DETECTED: OnceLock<Isa> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        let no512 = std::env::var_os("TAPEGRAD_NO_AVX512").is_some();
        Isa::ALL
            .into_iter()
            .find(|&i| cpu_supports(i) && !(no512 && i == Isa::Avx512))
            .unwrap_or(Isa::Portable)
    })
}

/// 0: nothing forced; otherwise 1 + the forced `Isa`.
static FORCED: AtomicU8 = AtomicU8::new(0);
static FORCE_LOCK: Mutex<()> = Mutex::new(());

/// The path kernels use now: the forced one while a [`force`] guard lives, else [`detected`].
#[inline]
pub fn active() -> Isa {
    match FORCED.load(Ordering::Relaxed) {
        1 => Isa::Portable,
        2 => Isa::Avx2,
        3 => Isa::Avx512,
        _ => detected(),
    }
}

/// Makes every kernel family run `isa` (or the best path it has below it), in every thread,
/// until the returned guard drops; then the previous choice is back. Waits while another
/// thread holds a guard.
///
/// # Panics
/// If this CPU cannot run `isa`.
pub fn force(isa: Isa) -> Forced {
    assert!(cpu_supports(isa), "isa::force: this CPU cannot run the {} kernels", isa.name());
    let lock = FORCE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let prev = FORCED.swap(isa as u8 + 1, Ordering::SeqCst);
    Forced { prev, _lock: lock }
}

/// The guard of [`force`]: restores the previous choice when dropped.
pub struct Forced {
    prev: u8,
    _lock: MutexGuard<'static, ()>,
}

impl Drop for Forced {
    fn drop(&mut self) {
        FORCED.store(self.prev, Ordering::SeqCst);
    }
}

/// The kernel families that dispatch on the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `sgemm`, single and batched (sequential, split and team products).
    Sgemm,
    /// `sgemm_prepacked` against a `PackedB`.
    Prepacked,
    /// `elementwise` activations (on `vecmath`).
    Elementwise,
    Softmax,
    LayerNorm,
    /// `loss` (cross-entropy).
    Loss,
    /// The fused LSTM cell (`lstm`).
    Lstm,
    /// The fused optimizer updates (`update`).
    Update,
    /// Fused attention (its products).
    Attention,
    /// `bf16gemm` (its `Avx512` path is AVX512-BF16: [`Family::cpu_supports`]).
    Bf16Gemm,
}

impl Family {
    pub const ALL: [Family; 10] = [
        Family::Sgemm,
        Family::Prepacked,
        Family::Elementwise,
        Family::Softmax,
        Family::LayerNorm,
        Family::Loss,
        Family::Lstm,
        Family::Update,
        Family::Attention,
        Family::Bf16Gemm,
    ];

    /// The paths this family has kernels for, the widest first.
    pub fn paths(self) -> &'static [Isa] {
        match self {
            Family::Sgemm | Family::Prepacked | Family::Attention => &Isa::ALL,
            Family::Bf16Gemm => &Isa::ALL,
            _ => &[Isa::Avx2, Isa::Portable],
        }
    }

    /// Whether this CPU can run this family's `path` kernel: [`cpu_supports`], and for the
    /// bf16 GEMM's AVX-512 path also AVX512-BF16 (without it that family runs portable).
    pub fn cpu_supports(self, path: Isa) -> bool {
        match (self, path) {
            (Family::Bf16Gemm, Isa::Avx512) => crate::bf16gemm::cpu_has_avx512bf16(),
            _ => cpu_supports(path),
        }
    }

    /// The path this family takes when `isa` is active.
    pub fn path_for(self, isa: Isa) -> Isa {
        self.paths().iter().copied().find(|&p| p <= isa).unwrap_or(Isa::Portable)
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::Sgemm => "sgemm",
            Family::Prepacked => "prepacked",
            Family::Elementwise => "elementwise",
            Family::Softmax => "softmax",
            Family::LayerNorm => "layernorm",
            Family::Loss => "loss",
            Family::Lstm => "lstm",
            Family::Update => "update",
            Family::Attention => "attention",
            Family::Bf16Gemm => "bf16gemm",
        }
    }
}

static HITS: [[AtomicUsize; 3]; 10] = [const { [const { AtomicUsize::new(0) }; 3] }; 10];

/// Records that `family` dispatched a call to its `isa` path.
#[inline]
pub fn note(family: Family, isa: Isa) {
    HITS[family as usize][isa as usize].fetch_add(1, Ordering::Relaxed);
}

/// How many calls `family` has dispatched to `isa` since the process started.
pub fn hits(family: Family, isa: Isa) -> usize {
    HITS[family as usize][isa as usize].load(Ordering::Relaxed)
}
