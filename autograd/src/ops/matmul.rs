//! Matrix products, 2-D and batched.

use crate::backend::{Backend, Gemm};
use crate::Tensor;
use tapegrad_kernels::gemm::Strides;
use tapegrad_kernels::Float;

impl<T: Float> Tensor<T> {
    /// C = A·B for A `[..., m, k]`, B `[..., k, n]` → C `[..., m, n]`.
    ///
    /// Batch dims must be equal, or one operand is 2-D and is shared by every
    /// matrix of the other's batch. With C = A·B:
    ///   dL/dA = dL/dC · Bᵀ,   dL/dB = Aᵀ · dL/dC
    /// (summed over the batch for a shared 2-D operand). The transposes are strides,
    /// not copies.
    pub fn matmul(&self, rhs: &Tensor<T>) -> Tensor<T> {
        let (a, b) = (self.shape(), rhs.shape());
        assert!(
            a.len() >= 2 && b.len() >= 2,
            "matmul: operands must have at least 2 dims, got {a:?} and {b:?}"
        );
        let (m, k) = (a[a.len() - 2], a[a.len() - 1]);
        let (k2, n) = (b[b.len() - 2], b[b.len() - 1]);
        assert_eq!(k, k2, "matmul: inner dims differ in {a:?} · {b:?}");
        let (ba, bb) = (&a[..a.len() - 2], &b[..b.len() - 2]);
        let batch_shape = match (ba.is_empty(), bb.is_empty()) {
            (_, true) => ba.to_vec(),
            (true, false) => bb.to_vec(),
            _ if ba == bb => ba.to_vec(),
            _ => panic!("matmul: batch dims of {a:?} and {b:?} must match, or one operand be 2-D"),
        };
        let batch: usize = batch_shape.iter().product();
        let (a_shared, b_shared) = (ba.is_empty() && batch > 1, bb.is_empty() && batch > 1);
        let mut shape = batch_shape;
        shape.extend([m, n]);

        // C_i = A_i · B_i  — A (m,k), B (k,n), C (m,n), row-major
        super::same_device("matmul", &[self, rhs]);
        let sa = Strides::row_major(m, k);
        let sb = Strides::row_major(k, n);
        let sa = if a_shared { sa.broadcast() } else { sa };
        let sb = if b_shared { sb.broadcast() } else { sb };
        let sc = Strides::row_major(m, n);
        let a_st = self.storage();
        let mut c = super::product_out(&a_st, batch * m * n, k);
        a_st.gemm(&rhs.storage(), None, &mut c, Gemm::new(batch, (m, n, k), sa, sb, sc));

        let (at, bt) = (self.clone(), rhs.clone());
        let (av, bv) = (self.detach(), rhs.detach()); // operand values as of the forward
        Tensor::from_op("matmul", Tensor::from_storage(c, &shape), &[self, rhs], move |g| {
            let (gd, gs) = (g.storage(), sc);
            at.accumulate_grad(|| {
                // dA_i (m,k) = dC_i (m,n) · B_iᵀ (n,k)
                // a shared A sums the batch's products into one buffer: zeros first
                let mut da = if a_shared {
                    gd.full_like(at.numel(), T::ZERO)
                } else {
                    super::product_out(&gd, at.numel(), n)
                };
                let bt_s = Strides { row: 1, col: n, ..sb }; // Bᵀ: read B (k,n) as (n,k)
                let sda = Strides::row_major(m, k);
                if a_shared {
                    // shared A: accumulate the sum over the batch
                    for i in 0..batch {
                        let p = Gemm {
                            a_offset: i * m * n,
                            b_offset: i * sb.batch,
                            ..Gemm::new(1, (m, k, n), gs, bt_s, sda)
                        };
                        gd.gemm(&bv.storage(), None, &mut da, p.beta(1.0));
                    }
                } else {
                    gd.gemm(&bv.storage(), None, &mut da, Gemm::new(batch, (m, k, n), gs, bt_s, sda));
                }
                Tensor::from_storage(da, at.shape())
            });
            bt.accumulate_grad(|| {
                // dB_i (k,n) = A_iᵀ (k,m) · dC_i (m,n)
                let mut db =
                    super::product_out(&gd, bt.numel(), if b_shared && !a_shared { m * batch } else { m });
                let a_t = Strides { row: 1, col: k, ..sa }; // Aᵀ: read A (m,k) as (k,m)
                let sdb = Strides::row_major(k, n);
                if b_shared && !a_shared {
                    // shared B, batched A: one product with the batch folded into m:
                    // dB = [A_1; …; A_b]ᵀ · [dC_1; …; dC_b]
                    let mb = m * batch;
                    let p =
                        Gemm::new(1, (k, n, mb), Strides::transposed(mb, k), Strides::row_major(mb, n), sdb);
                    av.storage().gemm(&gd, None, &mut db, p);
                } else {
                    av.storage().gemm(&gd, None, &mut db, Gemm::new(batch, (k, n, m), a_t, gs, sdb));
                }
                Tensor::from_storage(db, bt.shape())
            });
        })
    }
}
