//! Ops against numbers computed by hand.

use tapegrad::autograd::{Norm, Tensor};

fn close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-9, "{a:?} vs {b:?}");
    }
}

#[test]
fn matmul_by_hand() {
    // [[1,2],[3,4]] · [[5,6],[7,8]] = [[19,22],[43,50]]
    let a = Tensor::<f64>::param(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let b = Tensor::<f64>::param(vec![5.0, 6.0, 7.0, 8.0], &[2, 2]);
    let c = a.matmul(&b);
    close(&c.to_vec(), &[19.0, 22.0, 43.0, 50.0]);
    // L = Σ C: dL/dA = 1·Bᵀ row sums = [[11,15],[11,15]], dL/dB = Aᵀ·1 = [[4,4],[6,6]]
    c.sum().backward();
    close(&a.grad().unwrap().to_vec(), &[11.0, 15.0, 11.0, 15.0]);
    close(&b.grad().unwrap().to_vec(), &[4.0, 4.0, 6.0, 6.0]);
}

#[test]
fn softmax_by_hand() {
    // softmax([0, ln 3]) = [1/4, 3/4]
    let x = Tensor::<f64>::from_vec(vec![0.0, 3f64.ln()], &[2]);
    close(&x.softmax(0).to_vec(), &[0.25, 0.75]);
    close(&x.log_softmax(0).to_vec(), &[0.25f64.ln(), 0.75f64.ln()]);
}

#[test]
fn cross_entropy_by_hand() {
    // logits [[0, ln 3]], target 1: loss = −ln(3/4); dL/dx = [1/4, 3/4 − 1]
    let x = Tensor::<f64>::param(vec![0.0, 3f64.ln(), 0.0, 0.0], &[2, 2]);
    let loss = x.cross_entropy(&[1, 0], None);
    // mean of −ln(3/4) and −ln(1/2)
    close(&[loss.item()], &[(-(0.75f64.ln()) - 0.5f64.ln()) / 2.0]);
    loss.backward();
    close(&x.grad().unwrap().to_vec(), &[0.125, -0.125, -0.25, 0.25]);
    // an ignored row contributes nothing, and N counts only the others
    let y = Tensor::<f64>::param(vec![0.0, 3f64.ln(), 0.0, 0.0], &[2, 2]);
    let loss = y.cross_entropy(&[1, 7], Some(7));
    close(&[loss.item()], &[-(0.75f64.ln())]);
    loss.backward();
    close(&y.grad().unwrap().to_vec(), &[0.25, -0.25, 0.0, 0.0]);
}

#[test]
fn layer_norm_by_hand() {
    // x = [1, 3]: μ = 2, σ² = 1, x̂ = [−1, 1]; y = x̂·w + b
    let x = Tensor::<f64>::from_vec(vec![1.0, 3.0], &[1, 2]);
    let w = Tensor::from_vec(vec![2.0, 3.0], &[2]);
    let b = Tensor::from_vec(vec![0.5, 0.5], &[2]);
    close(&x.layer_norm(Norm { weight: Some(&w), bias: Some(&b), eps: 0.0 }).to_vec(), &[-1.5, 3.5]);
}

#[test]
fn gelu_and_bce_by_hand() {
    let x = Tensor::<f64>::from_vec(vec![0.0, 1.0], &[2]);
    // gelu(1) = Φ(1) = 0.841344746...
    close(&x.gelu().to_vec(), &[0.0, 0.841_344_746_068_542_9]);
    // bce(x=0, t=1) = ln 2
    let l = Tensor::<f64>::from_vec(vec![0.0], &[1])
        .binary_cross_entropy_with_logits(&Tensor::from_vec(vec![1.0], &[1]));
    close(&[l.item()], &[2f64.ln()]);
}

#[test]
fn broadcasting_and_reductions_by_hand() {
    let a = Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let b = Tensor::from_vec(vec![10.0, 20.0, 30.0], &[3]);
    close(&a.add(&b).to_vec(), &[11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
    close(&a.sum_dims(&[0], false).to_vec(), &[5.0, 7.0, 9.0]);
    close(&a.mean_dims(&[-1], true).to_vec(), &[2.0, 5.0]);
    let (m, idx) = a.max_dim(1, false);
    close(&m.to_vec(), &[3.0, 6.0]);
    assert_eq!(idx, vec![2, 2]);
    close(&a.transpose(0, 1).to_vec(), &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    close(&a.narrow(1, 1, 2).to_vec(), &[2.0, 3.0, 5.0, 6.0]);
    close(&a.index_select(0, &[1, 1, 0]).to_vec(), &[4.0, 5.0, 6.0, 4.0, 5.0, 6.0, 1.0, 2.0, 3.0]);
}

#[test]
fn embedding_padding_row_gets_no_gradient() {
    // ids [1, 0, 1] with padding_idx 1: the sum's gradient counts row 0 once, row 1 never
    let w = Tensor::<f64>::param(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let e = w.embedding(&[1, 0, 1], &[3], Some(1));
    assert_eq!(e.shape(), &[3, 2]);
    assert_eq!(e.to_vec(), vec![3.0, 4.0, 1.0, 2.0, 3.0, 4.0]);
    e.sum().backward();
    assert_eq!(w.grad().unwrap().to_vec(), vec![1.0, 1.0, 0.0, 0.0]);
}
