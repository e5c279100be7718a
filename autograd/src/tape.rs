//! The tape: every op's result records its inputs and a backward closure, written
//! next to the op's forward. `backward` walks the recorded ops in reverse order of
//! creation, which is a valid reverse topological order because an op's inputs
//! always exist before its output.
//!
//! There is no global tape: the graph hangs off the tensors themselves (`Rc`), so
//! each thread has its own graphs, and everything a step recorded is freed when
//! backward has used it (each closure runs once and is dropped).

use crate::backend::Backend;
use crate::storage::Storage;
use crate::Tensor;
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use tapegrad_kernels::Float;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

type BackwardFn<T> = Box<dyn FnOnce(&Tensor<T>)>;

/// What produced a non-leaf tensor.
pub(crate) struct Op<T: Float> {
    inputs: Vec<Tensor<T>>,
    backward: BackwardFn<T>,
}

pub(crate) struct Node<T: Float> {
    pub(crate) id: u64,
    pub(crate) shape: Vec<usize>,
    pub(crate) data: RefCell<Rc<Storage<T>>>,
    /// dL/d(this), accumulated with `+=`. Kept for leaves, freed for intermediates.
    pub(crate) grad: RefCell<Option<Storage<T>>>,
    pub(crate) requires_grad: Cell<bool>,
    op: RefCell<Option<Op<T>>>,
    /// Name of the op that produced this node; kept after the op is freed.
    op_name: &'static str,
}

impl<T: Float> Node<T> {
    pub(crate) fn leaf(data: Rc<Storage<T>>, shape: Vec<usize>, requires_grad: bool) -> Self {
        Node {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shape,
            data: RefCell::new(data),
            grad: RefCell::new(None),
            requires_grad: Cell::new(requires_grad),
            op: RefCell::new(None),
            op_name: "leaf",
        }
    }
    pub(crate) fn is_leaf(&self) -> bool {
        self.op_name == "leaf"
    }
    pub(crate) fn op_name(&self) -> &'static str {
        self.op_name
    }
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops record to the tape on this thread.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Runs `f` without recording (evaluation, optimizer updates, backward itself).
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = NoGradGuard::new();
    f()
}

/// Disables recording on this thread until dropped (restores the previous mode).
pub struct NoGradGuard {
    prev: bool,
}

impl NoGradGuard {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let prev = GRAD_ENABLED.with(|g| g.replace(false));
        NoGradGuard { prev }
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.prev));
    }
}

impl<T: Float> Tensor<T> {
    /// The result of an op whose numbers are `value` (a constant computed by the
    /// forward; the result shares its storage, so a backward closure may capture
    /// `value` to reuse the output without keeping the graph alive).
    ///
    /// If recording is on and any input needs a gradient, the op is put on the tape
    /// with `backward`, which receives dL/d(output) and must add each input's
    /// gradient with [`Tensor::accumulate_grad`]. Otherwise the closure is dropped
    /// at once and the result is a constant.
    pub fn from_op(
        name: &'static str,
        value: Tensor<T>,
        inputs: &[&Tensor<T>],
        backward: impl FnOnce(&Tensor<T>) + 'static,
    ) -> Tensor<T> {
        crate::profile::forward_done(name);
        if !is_grad_enabled() || !inputs.iter().any(|t| t.tracks_grad()) {
            return value;
        }
        let mut node = Node::leaf(value.0.data.borrow().clone(), value.shape().to_vec(), true);
        node.op = RefCell::new(Some(Op {
            inputs: inputs.iter().map(|&t| t.clone()).collect(),
            backward: Box::new(backward),
        }));
        node.op_name = name;
        Tensor(Rc::new(node))
    }

    /// dL/d(self) += g, if this tensor takes part in differentiation. `g` is only
    /// computed when needed, so a backward closure can write
    /// `x.accumulate_grad(|| expensive(g))` for each input.
    pub fn accumulate_grad(&self, g: impl FnOnce() -> Tensor<T>) {
        if !self.tracks_grad() {
            return;
        }
        let g = g();
        assert_eq!(
            g.shape(),
            self.shape(),
            "internal error: gradient shape {:?} for a tensor of shape {:?}",
            g.shape(),
            self.shape()
        );
        assert_eq!(
            g.device(),
            self.device(),
            "internal error: gradient on {} for a tensor on {}",
            g.device(),
            self.device()
        );
        let mut slot = self.0.grad.borrow_mut();
        match slot.as_mut() {
            None => *slot = Some(g.into_storage()), // the fresh gradient's buffer, not a copy
            Some(acc) => acc.add_assign(&g.storage()),
        }
    }

    /// dL/d(self) += g, with g written by a kernel that can accumulate for free (a
    /// product's `C = beta·C + A·B`): `write(buf, beta)` must set `buf = beta·buf + g`.
    /// Before any gradient, `buf` is `fresh()`, whose contents are not read (beta = 0),
    /// and it becomes the gradient; after, it is the gradient so far and beta = 1, so
    /// the sum costs no pass of its own (`accumulate_grad` would add g in one).
    pub fn accumulate_grad_with(
        &self,
        fresh: impl FnOnce() -> Storage<T>,
        write: impl FnOnce(&mut Storage<T>, f64),
    ) {
        if !self.tracks_grad() {
            return;
        }
        let mut slot = self.0.grad.borrow_mut();
        match slot.as_mut() {
            None => {
                let mut buf = fresh();
                assert_eq!(buf.len(), self.numel(), "internal error: a fresh gradient of the wrong size");
                write(&mut buf, 0.0);
                *slot = Some(buf);
            }
            Some(acc) => write(acc, 1.0),
        }
    }

    /// dL/d(self) += (whatever `add` adds), in place: `add` receives the gradient
    /// accumulated so far (zeros if there is none yet). For ops whose gradient covers only
    /// part of their input (`narrow`): they add into their slice instead of building a
    /// full-size gradient tensor that is mostly zeros just to add it.
    pub fn accumulate_grad_in_place(&self, add: impl FnOnce(&mut Storage<T>)) {
        if !self.tracks_grad() {
            return;
        }
        let mut slot = self.0.grad.borrow_mut();
        add(slot.get_or_insert_with(|| self.0.data.borrow().full_like(self.numel(), T::ZERO)));
    }
}

/// Reverse pass from `root` seeded with dL/d(root) = `seed`.
pub(crate) fn backward<T: Float>(root: &Tensor<T>, seed: Storage<T>) {
    if !root.tracks_grad() {
        panic!("backward(): the output does not depend on any tensor that requires grad");
    }
    // Collect every recorded op reachable from the root.
    let mut nodes: Vec<Tensor<T>> = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![root.clone()];
    while let Some(t) = stack.pop() {
        if !t.tracks_grad() || !seen.insert(t.id()) {
            continue;
        }
        if let Some(op) = t.0.op.borrow().as_ref() {
            stack.extend(op.inputs.iter().cloned());
        } else if !t.0.is_leaf() {
            panic!(
                "backward(): the graph through `{}` was already freed by an earlier backward",
                t.0.op_name
            );
        }
        nodes.push(t);
    }
    // Creation order is a topological order: walk it backwards.
    nodes.sort_by_key(|t| std::cmp::Reverse(t.id()));
    let shape = root.shape().to_vec();
    root.accumulate_grad(|| Tensor::from_storage(seed, &shape));
    let _no_grad = NoGradGuard::new();
    for t in nodes {
        let Some(op) = t.0.op.borrow_mut().take() else { continue };
        // An intermediate's gradient is consumed here and freed.
        let Some(g) = t.0.grad.borrow_mut().take() else { continue };
        let g = Tensor::from_storage(g, t.shape());
        drop(op.inputs);
        crate::profile::time_backward(t.0.op_name, || (op.backward)(&g));
    }
}
