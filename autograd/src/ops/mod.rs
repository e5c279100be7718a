//! The differentiable ops. Each file holds a family of ops; each op's forward and
//! its backward closure stand together, with the derivative written as math in
//! the doc comment. Backward closures run with recording off, so they are free to
//! use tensor ops on the incoming gradient `g` = dL/d(output).

pub(crate) mod attention;
mod binary;
mod device;
mod dropout;
mod index;
mod linear;
mod loss;
pub(crate) mod lstm_cell;
mod matmul;
pub(crate) mod norm;
mod reduce;
mod set_data;
mod shape;
mod softmax;
mod unary;

/// Resolves a PyTorch-style dim (negative counts from the end) for a tensor of `rank`.
pub(crate) fn dim(d: isize, rank: usize, op: &str) -> usize {
    let r = rank as isize;
    let resolved = if d < 0 { d + r } else { d };
    assert!((0..r).contains(&resolved), "{op}: dim {d} is out of range for a tensor of rank {rank}");
    resolved as usize
}

/// `[outer, n, inner]` sizes around dim `d` of `shape`.
pub(crate) fn split_at_dim(shape: &[usize], d: usize) -> (usize, usize, usize) {
    (shape[..d].iter().product(), shape[d], shape[d + 1..].iter().product())
}

/// Panics, naming the op and both devices, unless every tensor is on one device.
pub(crate) fn same_device<T: tapegrad_kernels::Float>(op: &str, ts: &[&crate::Tensor<T>]) {
    if let Some(first) = ts.first() {
        let d = first.device();
        if let Some(t) = ts.iter().find(|t| t.device() != d) {
            panic!(
                "{op}: operands on different devices ({d} and {}); move them with .to(device) first",
                t.device()
            );
        }
    }
}

/// The output buffer of a product `C = A·B` (`beta = 0`) of `n` elements beside
/// `like`: left as it comes (unzeroed) when the product writes all of it, zeros when
/// the inner dimension is 0 (the product then writes nothing: C = 0).
pub(crate) fn product_out<T: tapegrad_kernels::Float>(
    like: &crate::storage::Storage<T>,
    n: usize,
    inner: usize,
) -> crate::storage::Storage<T> {
    use crate::backend::Backend;
    if inner > 0 {
        like.uninit_like(n)
    } else {
        like.full_like(n, T::ZERO)
    }
}
