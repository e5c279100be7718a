//! The evaluation forward of one (b, h) pair in f32 (no P kept, no dropout), on the
//! GEMM micro-kernel's own packed panels: nothing is packed twice, and no T×T block is
//! written out.
//!
//! With the micro-kernel's MR × NR tile (AVX2 6×16, AVX-512 12×32):
//!
//! ```text
//! ka  = K  (T,d)  packed as an A operand: ⌈T/MR⌉ panels of MR keys, depth d
//! qb  = Qᵀ (d,Tq) packed as a B operand:  ⌈Tq/NR⌉ panels of NR queries, depth d
//! va  = Vᵀ (d,T)  packed as an A operand: ⌈d/MR⌉ panels of MR columns of V, depth T
//! for each panel of NR queries:
//!   pt  = Sᵀ (T,NR) = K Qᵀ   ⌈T/MR⌉ tiles of depth d, stored one under the next, which
//!                            is already the packed-B layout of Pᵀ for the product below
//!   pt  = E = e^{scale·Sᵀ + mask − max} down each column (mask[j] on row j), and the
//!         columns' sums: Pᵀ = E / sums, the softmax without its division
//!   ot  = Vᵀ E (d,NR)        ⌈d/MR⌉ tiles of depth T
//!   o   ← its columns over their sums, transposed: these queries' rows of O (Tq,d)
//! ```
//!
//! The division by the sums moves from P's T entries a query to O's d.
//! A panel of Sᵀ is T·NR floats (16 KiB at T = 256 on AVX2), so the scores stay in L1
//! from the first product through the softmax to the second. Rows of a partial key
//! panel past T and columns of a partial query panel past Tq are zero-padded operands:
//! their scores are never read (the softmax and the second product stop at row T) and
//! their outputs never stored. The general path (`attention_forward_with`, saving P)
//! computes the same O with the driver's products; the tests hold the two to the plain
//! loops of `attention_forward_reference`.

use super::{AttentionShape, Qkv};
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
use crate::sgemm::avx2::Avx2;
#[cfg(target_arch = "x86_64")]
use crate::sgemm::avx512::Avx512;
use crate::sgemm::driver::{pack_a, pack_b, CStart, Kernel};
use crate::sgemm::{Isa, Portable};
use crate::softmax;
use crate::threads::SharedMut;

/// Whether a pair with `queries` queries is worth the panels path on `isa`'s micro-kernel:
/// at least one full panel of NR queries. With fewer, a panel computes NR columns of
/// scores, exponentials and outputs for the few it keeps (for a single query 16 times the
/// work on AVX2), while the row path packs V as it stands and exponentiates only the
/// scores it keeps.
pub(super) fn pays(isa: Isa, queries: usize) -> bool {
    queries >= crate::sgemm::tile_shape(isa).1
}

/// Sizes of one pair: keys T, queries Tq, head size d, and the row stride of q, k and v
/// (the hidden size nh·d).
#[derive(Clone, Copy, Debug)]
pub(super) struct PairShape {
    pub seq: usize,
    pub queries: usize,
    pub head_dim: usize,
    pub stride: usize,
}

/// One pair's operands: its head's columns of q, k and v (each slice starting at the
/// pair's first element, rows `stride` apart), its key mask (T, additive), and where its
/// output goes.
pub(super) struct Head<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub mask: Option<&'a [f32]>,
    pub out: OutRows<'a>,
}

impl PairShape {
    /// The shape every pair of `s` has.
    pub(super) fn of(s: AttentionShape) -> PairShape {
        PairShape { seq: s.seq, queries: s.queries, head_dim: s.head_dim, stride: s.hidden() }
    }
}

impl<'a> Head<'a> {
    /// Pair `pair` of `s` (batch item `pair / nh`, head `pair % nh`): its head's columns of q,
    /// k and v, its item's key mask, and its rows of o.
    pub(super) fn of(
        s: AttentionShape,
        pair: usize,
        qkv: Qkv<&'a [f32]>,
        key_mask: Option<&'a [f32]>,
        o: &'a SharedMut<f32>,
    ) -> Head<'a> {
        let (qo, ko, t) = (s.q_offset(pair), s.kv_offset(pair), s.seq);
        Head {
            q: &qkv.q[qo..],
            k: &qkv.k[ko..],
            v: &qkv.v[ko..],
            mask: key_mask.map(|m| &m[(pair / s.heads) * t..][..t]),
            out: OutRows { o, at: qo, stride: s.hidden() },
        }
    }
}

/// Where a pair's O goes: its head's d columns of each row of o (B, Tq, nh·d), row i of the
/// pair at `at + i·stride`.
pub(super) struct OutRows<'a> {
    pub o: &'a SharedMut<f32>,
    pub at: usize,
    pub stride: usize,
}

/// A thread's buffers, 64-byte aligned, grown to the largest pair it has met.
#[derive(Default)]
pub(super) struct Scratch {
    buf: Vec<f32>,
}

/// The five buffers of the module doc, each starting on a 64-byte line.
struct Bufs {
    ka: *mut f32,
    qb: *mut f32,
    va: *mut f32,
    pt: *mut f32,
    ot: *mut f32,
}

impl Scratch {
    fn bufs<K: Kernel>(&mut self, s: PairShape) -> Bufs {
        let up = |n: usize, to: usize| n.div_ceil(to) * to;
        let line = |n: usize| up(n, 16); // floats, so every buffer starts 64 bytes on
        let (t_pad, d_pad) = (up(s.seq, K::MR), up(s.head_dim, K::MR));
        let lens = [
            line(t_pad * s.head_dim),                // ka
            line(up(s.queries, K::NR) * s.head_dim), // qb
            line(d_pad * s.seq),                     // va
            line(t_pad * K::NR),                     // pt
            line(d_pad * K::NR),                     // ot
        ];
        let total: usize = lens.iter().sum::<usize>() + 16;
        if self.buf.len() < total {
            self.buf = vec![0.0; total];
        }
        let base = self.buf.as_mut_ptr();
        let mut at = base.align_offset(64);
        let mut next = |len: usize| {
            // SAFETY: at + len ≤ total (the lengths sum to total − 16, and align_offset < 16).
            let p = unsafe { base.add(at) };
            at += len;
            p
        };
        Bufs { ka: next(lens[0]), qb: next(lens[1]), va: next(lens[2]), pt: next(lens[3]), ot: next(lens[4]) }
    }
}

/// O (Tq,d) of one pair into its rows of o, with the micro-kernel of `isa` (one the CPU
/// supports): the module doc's loop.
///
/// # Safety
/// No other thread writes this pair's columns of o (`head.out`'s d columns of its Tq rows)
/// while this runs.
pub(super) unsafe fn eval_pair(isa: Isa, s: PairShape, head: &Head, scratch: &mut Scratch) {
    check(s, head);
    // SAFETY: the operands cover their extents (checked above; o by `SharedMut::range`),
    // the CPU runs `isa`, and the caller owns the pair's columns of o.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => eval_pair_avx512(s, head, scratch),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Isa::Avx2 => eval_pair_avx2(s, head, scratch),
            _ => eval_pair_with::<Portable>(s, head, scratch),
        }
    }
}

/// Asserts that the pair is not empty and its operands cover their extents.
fn check(s: PairShape, head: &Head) {
    let (t, tq, d, hid) = (s.seq, s.queries, s.head_dim, s.stride);
    assert!(t > 0 && tq > 0 && d > 0, "eval_pair: empty pair {s:?}");
    let ext = |rows: usize| (rows - 1) * hid + d;
    assert!(
        head.q.len() >= ext(tq) && head.k.len() >= ext(t) && head.v.len() >= ext(t),
        "eval_pair: short operands"
    );
    assert!(head.mask.is_none_or(|m| m.len() == t), "eval_pair: the mask needs T values");
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn eval_pair_avx512(s: PairShape, head: &Head, scratch: &mut Scratch) {
    eval_pair_with::<Avx512>(s, head, scratch)
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[target_feature(enable = "avx2,fma")]
unsafe fn eval_pair_avx2(s: PairShape, head: &Head, scratch: &mut Scratch) {
    eval_pair_with::<Avx2>(s, head, scratch)
}

/// # Safety
/// As [`eval_pair`]'s checks; the CPU supports `K`'s features.
#[inline(always)]
unsafe fn eval_pair_with<K: Kernel>(s: PairShape, head: &Head, scratch: &mut Scratch) {
    let (t, tq, d, hid) = (s.seq, s.queries, s.head_dim, s.stride);
    let (scale, out) = ((1.0 / (d as f64).sqrt()) as f32, &head.out);
    let (mr, nr) = (K::MR, K::NR);
    let Bufs { ka, qb, va, pt, ot } = scratch.bufs::<K>(s);
    // ka: K (T,d) row-major as A; qb: Qᵀ (d,Tq) as B (column-major: Qᵀ(p,i) = q[i·hid + p]);
    // va: Vᵀ (d,T) as A (column-major: Vᵀ(c,j) = v[j·hid + c])
    pack_a::<K>(t, d, head.k.as_ptr(), hid, 1, ka);
    pack_b::<K>(d, tq, head.q.as_ptr(), 1, hid, qb);
    pack_a::<K>(d, t, head.v.as_ptr(), 1, hid, va);
    const { assert!(K::NR <= 32, "the sums' buffer below holds 32 columns") };
    let mut sums = [0.0f32; 32];
    let sums = &mut sums[..nr];
    for (qp, i0) in (0..tq).step_by(nr).enumerate() {
        // Sᵀ (T,NR): key panel kp's tile is rows kp·MR.. of the panel (row stride NR)
        for kp in 0..t.div_ceil(mr) {
            K::tile(d, ka.add(kp * mr * d), qb.add(qp * nr * d), pt.add(kp * mr * nr), nr, CStart::OVERWRITE);
        }
        // E = e^{scale·Sᵀ + mask − max} down each of the NR columns (the T real rows), and
        // the columns' sums: Pᵀ = E / sums
        let e = std::slice::from_raw_parts_mut(pt, t * nr);
        softmax::scaled_exp_cols(e, nr, scale, head.mask, sums);
        // Oᵀ·sums (d,NR) = Vᵀ (d,T) · E (T,NR), E read as the packed B panel it already is
        for cp in 0..d.div_ceil(mr) {
            K::tile(t, va.add(cp * mr * t), pt, ot.add(cp * mr * nr), nr, CStart::OVERWRITE);
        }
        // O's rows i0.. ← Oᵀ's columns, each divided by its sum (d divisions, not T)
        for (i, &sum) in sums.iter().enumerate().take(tq - i0) {
            let inv = 1.0 / sum;
            let at = out.at + (i0 + i) * out.stride;
            let row = out.o.range(at..at + d);
            for (c, x) in row.iter_mut().enumerate() {
                *x = *ot.add(c * nr + i) * inv;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The panels path at each kernel family's geometry with the portable arithmetic (AVX2's
    //! 6 × 16, AVX-512's 12 × 32, and a 4 × 8 tile that leaves partial panels everywhere), on
    //! every CPU: every pair of a batch of several heads against the plain loops.

    use super::*;
    use crate::attention::attention_forward_reference;
    use crate::sgemm::driver::Generic;
    use crate::sgemm::Avx512Shaped;
    use rand::{RngExt, SeedableRng};

    /// O of every pair of `s`, one after another, through the panels at `K`'s geometry.
    fn eval_all<K: Kernel>(s: AttentionShape, qkv: Qkv<&[f32]>, mask: Option<&[f32]>) -> Vec<f32> {
        let shape = PairShape::of(s);
        let mut o = vec![f32::NAN; s.q_numel()]; // every element is written
        let o = SharedMut::new(&mut o);
        let mut scratch = Scratch::default(); // reused, as a thread reuses it
        for pair in 0..s.pairs() {
            let head = Head::of(s, pair, qkv, mask, &o);
            check(shape, &head);
            // SAFETY: checked above; `K` is portable here; pairs run one at a time.
            unsafe { eval_pair_with::<K>(shape, &head, &mut scratch) };
        }
        // SAFETY: no slice of `o` is alive any more.
        unsafe { o.range(0..s.q_numel()) }.to_vec()
    }

    #[test]
    fn panels_match_the_loops_at_every_geometry() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(23);
        for (batch, queries, seq, heads, head_dim) in [
            (1, 1, 1, 1, 1),
            (1, 32, 32, 1, 12), // exactly one AVX-512 tile of queries and of keys
            (2, 33, 70, 2, 32), // MiniLM's head size, partial last panels
            (2, 40, 13, 3, 7),  // more queries than keys, d < MR
            (1, 64, 100, 2, 13),
        ] {
            let s = AttentionShape { batch, queries, seq, heads, head_dim };
            let mut rand = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.5..1.5)).collect() };
            let (q, k, v) = (rand(s.q_numel()), rand(s.kv_numel()), rand(s.kv_numel()));
            // the last third of each sequence is padding
            let mask: Vec<f32> = (0..batch * seq)
                .map(|i| if i % seq >= seq - seq / 3 && i % seq > 0 { -1e30 } else { 0.0 })
                .collect();
            let widen = |x: &[f32]| -> Vec<f64> { x.iter().map(|&v| v as f64).collect() };
            let (q64, k64, v64, mask64) = (widen(&q), widen(&k), widen(&v), widen(&mask));
            for masked in [false, true] {
                let mut want = vec![0.0f64; s.q_numel()];
                let qkv64 = Qkv { q: &q64[..], k: &k64[..], v: &v64[..] };
                attention_forward_reference(s, qkv64, masked.then_some(&mask64[..]), None, &mut want);
                let qkv = Qkv { q: &q[..], k: &k[..], v: &v[..] };
                let mask = masked.then_some(&mask[..]);
                for (name, got) in [
                    ("portable 6x16", eval_all::<Portable>(s, qkv, mask)),
                    ("avx-512's 12x32", eval_all::<Avx512Shaped>(s, qkv, mask)),
                    ("4x8", eval_all::<Generic<4, 8, 8, 5, 16>>(s, qkv, mask)),
                ] {
                    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (g as f64 - w).abs() < 2e-5,
                            "{name} {s:?} mask {masked}: o[{i}] = {g}, want {w}"
                        );
                    }
                }
            }
        }
    }
}
