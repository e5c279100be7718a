//! Every entry point, one test each (test builds only): each `.entry` of every PTX
//! module runs through the simulated GPU (and the real one when there is one) on small
//! odd shapes, through its typed launcher (so with the launch geometry the backend
//! computes), against its CPU reference.
//!
//! The tests are generated from the PTX (`build.rs` writes `entry_tests.rs`, one test
//! per entry calling [`run`]), so an entry without a row in [`CASES`] is a failing test
//! named after it; [`every_entry_has_one_case_and_every_case_an_entry`] lists them all.
//! A case is one of the family tests' generic checkers (`<family>::tests::check…`) on
//! a shape that takes that entry; after it, [`run`] asserts that the entry really was
//! launched ([`GpuContext::launched`]), so a case that runs another kernel fails.
//!
//! `cargo test -p tapegrad-kernels gpu::coverage::` runs them; one family:
//! `gpu::coverage::entries::softmax::`.

use super::attention::tests as attention;
use super::broadcast::tests as broadcast;
use super::dropout::tests as dropout;
use super::elementwise::tests as elementwise;
use super::gemm::tests as gemm;
use super::index::tests as index;
use super::layernorm::tests as layernorm;
use super::loss::tests as loss;
use super::lstm::tests as lstm;
use super::permute::tests as permute;
use super::reduce::tests as reduce;
use super::select::tests as select;
use super::softmax::tests as softmax;
use super::update::tests as update;
use super::{ptx, test_contexts, GpuContext, Kernel, FAMILIES};
use crate::attention::AttentionShape;
use std::sync::Arc;

type Check = fn(&Arc<GpuContext>);

/// Attention: heads of odd size, rows shorter than a warp, fewer queries than keys.
const ATTN: AttentionShape = AttentionShape { batch: 2, queries: 3, seq: 7, heads: 3, head_dim: 5 };
/// Broadcast operands whose sums down take one thread per output (≤ 32 terms each) …
const BC_THREAD: (&[usize], &[usize]) = (&[3, 1, 5], &[4, 1]);
/// … and one block per output (35 and 33 terms, few outputs).
const BC_BLOCK: (&[usize], &[usize]) = (&[1, 33], &[35, 1]);
/// Row kernels (`inner` 1) and column kernels (`inner` > 1) of `[outer, n, inner]`.
const ROWS: (usize, usize, usize) = (5, 7, 1);
const COLS: (usize, usize, usize) = (3, 9, 5);
/// Gather/scatter source `[outer, len, inner]`.
const IDX: (usize, usize, usize) = (2, 5, 3);
/// Elements of the one-thread-per-element kernels.
const N: usize = 37;

/// (module, entry, the case that runs it), every entry of every module.
#[rustfmt::skip]
const CASES: &[(&str, &str, Check)] = &[
    ("attention", "attn_probs_f32", |c| attention::check::<f32>(c, ATTN)),
    ("attention", "attn_probs_f64", |c| attention::check::<f64>(c, ATTN)),
    ("attention", "attn_probs_bwd_f32", |c| attention::check::<f32>(c, ATTN)),
    ("attention", "attn_probs_bwd_f64", |c| attention::check::<f64>(c, ATTN)),
    ("broadcast", "binary_f32", |c| broadcast::check::<f32>(c, BC_THREAD.0, BC_THREAD.1)),
    ("broadcast", "binary_f64", |c| broadcast::check::<f64>(c, BC_THREAD.0, BC_THREAD.1)),
    ("broadcast", "expand_f32", |c| broadcast::check::<f32>(c, BC_THREAD.0, BC_THREAD.1)),
    ("broadcast", "expand_f64", |c| broadcast::check::<f64>(c, BC_THREAD.0, BC_THREAD.1)),
    ("broadcast", "sum_to_thread_f32", |c| broadcast::check::<f32>(c, BC_THREAD.0, BC_THREAD.1)),
    ("broadcast", "sum_to_thread_f64", |c| broadcast::check::<f64>(c, BC_THREAD.0, BC_THREAD.1)),
    ("broadcast", "sum_to_block_f32", |c| broadcast::check::<f32>(c, BC_BLOCK.0, BC_BLOCK.1)),
    ("broadcast", "sum_to_block_f64", |c| broadcast::check::<f64>(c, BC_BLOCK.0, BC_BLOCK.1)),
    ("dropout", "dropout_fwd_f32", |c| dropout::check::<f32>(c, N)),
    ("dropout", "dropout_fwd_f64", |c| dropout::check::<f64>(c, N)),
    ("dropout", "dropout_bwd_f32", |c| dropout::check::<f32>(c, N)),
    ("dropout", "dropout_bwd_f64", |c| dropout::check::<f64>(c, N)),
    ("elementwise", "unary_fwd_f32", |c| elementwise::check::<f32>(c, N)),
    ("elementwise", "unary_fwd_f64", |c| elementwise::check::<f64>(c, N)),
    ("elementwise", "unary_bwd_f32", |c| elementwise::check::<f32>(c, N)),
    ("elementwise", "unary_bwd_f64", |c| elementwise::check::<f64>(c, N)),
    ("gemm", "gemm_naive_f32", |c| gemm::check::<f32>(c, (2, 5, 7, 3))),
    ("gemm", "gemm_naive_f64", |c| gemm::check::<f64>(c, (2, 5, 7, 3))),
    ("gemm", "gemm_tiled_f32", |c| gemm::check::<f32>(c, (2, 5, 7, 3))),
    ("gemm", "gemm_tiled_f64", |c| gemm::check::<f64>(c, (2, 5, 7, 3))),
    ("index", "index_select_f32", |c| index::check_select_add::<f32>(c, IDX, N)),
    ("index", "index_select_f64", |c| index::check_select_add::<f64>(c, IDX, N)),
    ("index", "index_add_f32", |c| index::check_select_add::<f32>(c, IDX, N)),
    ("index", "index_add_f64", |c| index::check_select_add::<f64>(c, IDX, N)),
    ("index", "gather_f32", |c| index::check_gather_scatter::<f32>(c, IDX, 3)),
    ("index", "gather_f64", |c| index::check_gather_scatter::<f64>(c, IDX, 3)),
    ("index", "scatter_add_f32", |c| index::check_gather_scatter::<f32>(c, IDX, 3)),
    ("index", "scatter_add_f64", |c| index::check_gather_scatter::<f64>(c, IDX, 3)),
    ("layernorm", "layernorm_fwd_f32", |c| layernorm::check::<f32>(c, 3, 7)),
    ("layernorm", "layernorm_fwd_f64", |c| layernorm::check::<f64>(c, 3, 7)),
    ("layernorm", "layernorm_bwd_dx_f32", |c| layernorm::check::<f32>(c, 3, 7)),
    ("layernorm", "layernorm_bwd_dx_f64", |c| layernorm::check::<f64>(c, 3, 7)),
    ("layernorm", "layernorm_bwd_params_f32", |c| layernorm::check::<f32>(c, 3, 7)),
    ("layernorm", "layernorm_bwd_params_f64", |c| layernorm::check::<f64>(c, 3, 7)),
    ("layernorm", "layernorm_sum_parts_f32", |c| layernorm::check::<f32>(c, 3, 7)),
    ("layernorm", "layernorm_sum_parts_f64", |c| layernorm::check::<f64>(c, 3, 7)),
    ("loss", "ce_rows_f32", |c| loss::check_cross_entropy::<f32>(c, 5, 3)),
    ("loss", "ce_rows_f64", |c| loss::check_cross_entropy::<f64>(c, 5, 3)),
    ("loss", "ce_mean_f32", |c| loss::check_cross_entropy::<f32>(c, 5, 3)),
    ("loss", "ce_mean_f64", |c| loss::check_cross_entropy::<f64>(c, 5, 3)),
    ("loss", "ce_bwd_f32", |c| loss::check_cross_entropy::<f32>(c, 5, 3)),
    ("loss", "ce_bwd_f64", |c| loss::check_cross_entropy::<f64>(c, 5, 3)),
    ("loss", "bce_partial_f32", |c| loss::check_pointwise::<f32>(c, N)),
    ("loss", "bce_partial_f64", |c| loss::check_pointwise::<f64>(c, N)),
    ("loss", "mse_partial_f32", |c| loss::check_pointwise::<f32>(c, N)),
    ("loss", "mse_partial_f64", |c| loss::check_pointwise::<f64>(c, N)),
    ("loss", "mean_finish_f32", |c| loss::check_pointwise::<f32>(c, N)),
    ("loss", "mean_finish_f64", |c| loss::check_pointwise::<f64>(c, N)),
    ("loss", "bce_bwd_f32", |c| loss::check_pointwise::<f32>(c, N)),
    ("loss", "bce_bwd_f64", |c| loss::check_pointwise::<f64>(c, N)),
    ("loss", "mse_bwd_f32", |c| loss::check_pointwise::<f32>(c, N)),
    ("loss", "mse_bwd_f64", |c| loss::check_pointwise::<f64>(c, N)),
    ("lstm", "lstm_cell_fwd_f32", |c| lstm::check_cell::<f32>(c, 5, 7, 3)),
    ("lstm", "lstm_cell_fwd_f64", |c| lstm::check_cell::<f64>(c, 5, 7, 3)),
    ("lstm", "lstm_cell_bwd_f32", |c| lstm::check_cell::<f32>(c, 5, 7, 3)),
    ("lstm", "lstm_cell_bwd_f64", |c| lstm::check_cell::<f64>(c, 5, 7, 3)),
    ("lstm", "lstm_interleave_f32", |c| lstm::check_interleave::<f32>(c, 5, 7)),
    ("lstm", "lstm_interleave_f64", |c| lstm::check_interleave::<f64>(c, 5, 7)),
    ("lstm", "lstm_split_f32", |c| lstm::check_interleave::<f32>(c, 5, 7)),
    ("lstm", "lstm_split_f64", |c| lstm::check_interleave::<f64>(c, 5, 7)),
    ("permute", "permute_f32", |c| permute::check_permute::<f32>(c, &[2, 3, 4, 5], &[3, 2, 1, 0])),
    ("permute", "permute_f64", |c| permute::check_permute::<f64>(c, &[2, 3, 4, 5], &[3, 2, 1, 0])),
    ("permute", "transpose_f32", |c| permute::check_permute::<f32>(c, &[3, 5, 7], &[0, 2, 1])),
    ("permute", "transpose_f64", |c| permute::check_permute::<f64>(c, &[3, 5, 7], &[0, 2, 1])),
    ("permute", "slab_f32", |c| permute::check_slabs::<f32>(c, (3, 5), &[2, 7, 1], &[(2, 7)])),
    ("permute", "slab_f64", |c| permute::check_slabs::<f64>(c, (3, 5), &[2, 7, 1], &[(2, 7)])),
    ("reduce", "sum_rows_f32", |c| reduce::check::<f32>(c, ROWS)),
    ("reduce", "sum_rows_f64", |c| reduce::check::<f64>(c, ROWS)),
    ("reduce", "sum_cols_f32", |c| reduce::check::<f32>(c, COLS)),
    ("reduce", "sum_cols_f64", |c| reduce::check::<f64>(c, COLS)),
    ("reduce", "max_rows_f32", |c| reduce::check::<f32>(c, ROWS)),
    ("reduce", "max_rows_f64", |c| reduce::check::<f64>(c, ROWS)),
    ("reduce", "max_cols_f32", |c| reduce::check::<f32>(c, COLS)),
    ("reduce", "max_cols_f64", |c| reduce::check::<f64>(c, COLS)),
    ("reduce", "max_bwd_f32", |c| reduce::check::<f32>(c, COLS)),
    ("reduce", "max_bwd_f64", |c| reduce::check::<f64>(c, COLS)),
    ("select", "masked_fill_f32", |c| select::check::<f32>(c, N)),
    ("select", "masked_fill_f64", |c| select::check::<f64>(c, N)),
    ("select", "masked_fill_bwd_f32", |c| select::check::<f32>(c, N)),
    ("select", "masked_fill_bwd_f64", |c| select::check::<f64>(c, N)),
    ("select", "where_f32", |c| select::check::<f32>(c, N)),
    ("select", "where_f64", |c| select::check::<f64>(c, N)),
    ("select", "where_bwd_f32", |c| select::check::<f32>(c, N)),
    ("select", "where_bwd_f64", |c| select::check::<f64>(c, N)),
    ("softmax", "softmax_fwd_rows_f32", |c| softmax::check::<f32>(c, ROWS)),
    ("softmax", "softmax_fwd_rows_f64", |c| softmax::check::<f64>(c, ROWS)),
    ("softmax", "softmax_bwd_rows_f32", |c| softmax::check::<f32>(c, ROWS)),
    ("softmax", "softmax_bwd_rows_f64", |c| softmax::check::<f64>(c, ROWS)),
    ("softmax", "softmax_fwd_cols_f32", |c| softmax::check::<f32>(c, COLS)),
    ("softmax", "softmax_fwd_cols_f64", |c| softmax::check::<f64>(c, COLS)),
    ("softmax", "softmax_bwd_cols_f32", |c| softmax::check::<f32>(c, COLS)),
    ("softmax", "softmax_bwd_cols_f64", |c| softmax::check::<f64>(c, COLS)),
    ("update", "adam_f32", |c| update::check_adam::<f32>(c, N)),
    ("update", "adam_f64", |c| update::check_adam::<f64>(c, N)),
    ("update", "sgd_f32", |c| update::check_sgd::<f32>(c, N)),
    ("update", "sgd_f64", |c| update::check_sgd::<f64>(c, N)),
    ("update", "sumsq_partial_f32", |c| update::check_norm_and_clip::<f32>(c, &[5, 0, N])),
    ("update", "sumsq_partial_f64", |c| update::check_norm_and_clip::<f64>(c, &[5, 0, N])),
    ("update", "norm_finish", |c| update::check_norm_and_clip::<f32>(c, &[5, 0, N])),
    ("update", "clip_scale_f32", |c| update::check_norm_and_clip::<f32>(c, &[5, 0, N])),
    ("update", "clip_scale_f64", |c| update::check_norm_and_clip::<f64>(c, &[5, 0, N])),
    ("update", "clip_value_f32", |c| update::check_clip_value_and_add::<f32>(c, N)),
    ("update", "clip_value_f64", |c| update::check_clip_value_and_add::<f64>(c, N)),
    ("update", "add_assign_f32", |c| update::check_clip_value_and_add::<f32>(c, N)),
    ("update", "add_assign_f64", |c| update::check_clip_value_and_add::<f64>(c, N)),
];

/// Elements past two blocks of 256, for the one-block grids below.
const N_BLOCKS: usize = 600;

/// Cases whose launches take several blocks along each grid dimension the launchers use:
/// elements past one block (f32; the f64 entries are the same templates), GEMM tiles past
/// one along n, m and the batch, transpose tiles past one, rows past one block's worth.
#[rustfmt::skip]
const MANY_BLOCKS: &[(&str, Check)] = &[
    ("elementwise", |c| elementwise::check::<f32>(c, N_BLOCKS)),
    ("dropout", |c| dropout::check::<f32>(c, N_BLOCKS)),
    ("select", |c| select::check::<f32>(c, N_BLOCKS)),
    ("adam", |c| update::check_adam::<f32>(c, N_BLOCKS)),
    ("sgd", |c| update::check_sgd::<f32>(c, N_BLOCKS)),
    ("norm and clip", |c| update::check_norm_and_clip::<f32>(c, &[5, 0, N_BLOCKS])),
    ("clip value and add", |c| update::check_clip_value_and_add::<f32>(c, N_BLOCKS)),
    ("pointwise losses", |c| loss::check_pointwise::<f32>(c, N_BLOCKS)),
    ("index select and add", |c| index::check_select_add::<f32>(c, (3, 50, 4), N_BLOCKS)),
    ("gemm", |c| gemm::check::<f32>(c, (3, 70, 130, 5))),
    ("transpose", |c| permute::check_permute::<f32>(c, &[3, 40, 70], &[0, 2, 1])),
    ("permute", |c| permute::check_permute::<f32>(c, &[4, 5, 6, 7], &[3, 2, 1, 0])),
    ("broadcast", |c| broadcast::check::<f32>(c, &[7, 1, 100], &[9, 1])),
    ("lstm cell", |c| lstm::check_cell::<f32>(c, 5, 70, 3)),
];

/// Every kernel covers what its grid does not by looping (over elements, rows, tiles and
/// batch items), so its results do not depend on the grid: with every grid cut to one
/// block a dimension (`launch::with_grid_cap`), every case above and the larger ones of
/// [`MANY_BLOCKS`] still match their CPU references. The limits themselves (4,096 blocks
/// of elements, 65,535 along y and z) are too large to reach in a test on the simulator.
#[test]
fn every_case_gives_the_same_results_on_a_one_block_grid() {
    for ctx in test_contexts() {
        super::launch::with_grid_cap(1, || {
            for (module, entry, check) in CASES {
                eprintln!("{module}.{entry} on {}", ctx.name());
                check(&ctx);
            }
            for (what, check) in MANY_BLOCKS {
                eprintln!("{what} on {}", ctx.name());
                check(&ctx);
            }
        });
    }
}

/// Runs the case of `module`.`entry` on every test device (each a fresh one, so the
/// record holds this case's launches only) and checks that it launched that entry.
fn run(module: &'static str, entry: &'static str) {
    let cases: Vec<Check> = CASES.iter().filter(|c| (c.0, c.1) == (module, entry)).map(|c| c.2).collect();
    let [check] = cases[..] else {
        panic!(
            "{module}.{entry} has {} coverage cases, not one: give it one row in CASES \
             (kernels/src/gpu/coverage.rs)",
            cases.len()
        )
    };
    for ctx in test_contexts() {
        check(&ctx);
        let launched = ctx.launched();
        assert!(
            launched.contains(&Kernel { module, entry }),
            "the case for {module}.{entry} did not launch it on {}; it launched {:?}",
            ctx.name(),
            launched.iter().map(|k| format!("{}.{}", k.module, k.entry)).collect::<Vec<_>>()
        );
    }
}

/// One test per entry of every PTX module: `entries::<module>::<entry>`.
mod entries {
    include!(concat!(env!("OUT_DIR"), "/entry_tests.rs"));
}

/// The registry, the families' entry lists and the PTX agree: every entry of every
/// module (and of every family's ENTRIES) has exactly one case, every case names an
/// entry, and the generated tests are one per entry.
#[test]
fn every_entry_has_one_case_and_every_case_an_entry() {
    let mut all: Vec<(&str, &str)> = Vec::new();
    for (module, ptx) in ptx::MODULES {
        all.extend(ptx::entries(ptx).into_iter().map(|e| (*module, e)));
    }
    for (module, listed) in FAMILIES {
        all.extend(listed.iter().map(|e| (*module, *e)));
    }
    all.sort();
    all.dedup();
    let count = |m: &str, e: &str| CASES.iter().filter(|c| (c.0, c.1) == (m, e)).count();
    let missing: Vec<String> =
        all.iter().filter(|(m, e)| count(m, e) != 1).map(|(m, e)| format!("{m}.{e}")).collect();
    assert!(
        missing.is_empty(),
        "entry points without exactly one case in CASES (kernels/src/gpu/coverage.rs): {missing:?}"
    );
    let stale: Vec<String> =
        CASES.iter().filter(|c| !all.contains(&(c.0, c.1))).map(|c| format!("{}.{}", c.0, c.1)).collect();
    assert!(stale.is_empty(), "cases for entries that no PTX module has: {stale:?}");
    let mut generated = entries::GENERATED.to_vec();
    generated.sort();
    assert_eq!(generated, all, "the generated tests (build.rs) are not one per entry");
}
