//! The tape's contract: accumulation, freeing, no-grad, detach, memory maps, threads.

use std::io::Write;
use std::sync::Arc;
use tapegrad::autograd::{no_grad, Tensor};

#[test]
fn a_tensor_used_twice_gets_both_contributions() {
    // L = x·x + x  ⇒  dL/dx = 2x + 1
    let x = Tensor::<f64>::param(vec![3.0], &[1]);
    let loss = x.mul(&x).add(&x).sum();
    loss.backward();
    assert_eq!(x.grad().unwrap().to_vec(), vec![7.0]);
}

#[test]
fn gradients_accumulate_across_backwards_until_zeroed() {
    let w = Tensor::<f64>::param(vec![2.0], &[1]);
    w.mul_scalar(3.0).sum().backward();
    w.mul_scalar(3.0).sum().backward();
    assert_eq!(w.grad().unwrap().to_vec(), vec![6.0]);
    w.zero_grad();
    assert!(w.grad().is_none());
}

#[test]
fn backward_frees_the_graph() {
    let w = Tensor::<f32>::param(vec![1.0; 4], &[4]);
    let h = w.exp();
    let loss = h.sum();
    loss.backward();
    // the intermediate's gradient is released, and walking the graph again is an error
    assert!(h.grad().is_none());
    let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loss.backward()));
    assert!(again.is_err(), "a second backward through a freed graph must fail loudly");
}

#[test]
fn training_loop_does_not_grow_the_graph() {
    // Every graph that used `w` holds a handle to it; after backward and the loss
    // being dropped, only the caller's handle is left.
    let w = Tensor::<f32>::param(vec![0.5; 8], &[8]);
    for _ in 0..100 {
        let loss = w.mul(&w).exp().sum();
        assert!(w.handle_count() > 1);
        loss.backward();
        assert_eq!(w.handle_count(), 1, "backward released the step's graph");
        w.zero_grad();
    }
}

#[test]
fn no_grad_records_nothing() {
    let w = Tensor::<f32>::param(vec![1.0], &[1]);
    let y = no_grad(|| w.mul_scalar(2.0));
    assert!(!y.tracks_grad());
    assert!(w.mul_scalar(2.0).tracks_grad(), "recording is back on after no_grad");
}

#[test]
fn detach_cuts_the_graph_and_shares_numbers() {
    let w = Tensor::<f64>::param(vec![2.0], &[1]);
    let d = w.mul_scalar(3.0).detach();
    assert!(!d.tracks_grad());
    // L = w · stopgrad(3w): dL/dw = 3w = 6 (not 12)
    w.mul(&d).sum().backward();
    assert_eq!(w.grad().unwrap().to_vec(), vec![6.0]);
}

#[test]
fn writing_a_parameter_copies_and_keeps_captured_values() {
    let w = Tensor::<f64>::param(vec![1.0, 2.0], &[2]);
    let x = Tensor::<f64>::param(vec![5.0, 5.0], &[2]);
    let loss = w.mul(&x).sum();
    w.data_mut()[0] = 100.0; // an update before backward
    loss.backward();
    // dL/dx = w as it was in the forward
    assert_eq!(x.grad().unwrap().to_vec(), vec![1.0, 2.0]);
    assert_eq!(w.to_vec(), vec![100.0, 2.0]);
}

#[test]
fn mmap_views_are_read_in_place_and_copied_on_write() {
    let path = std::env::temp_dir().join(format!("tapegrad-mmap-{}.bin", std::process::id()));
    let values: Vec<f32> = vec![1.5, -2.0, 3.25, 4.0];
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&[0u8; 8]).unwrap(); // a header, so the data is at an offset
    for v in &values {
        f.write_all(&v.to_le_bytes()).unwrap();
    }
    drop(f);
    let map = Arc::new(unsafe { memmap2::Mmap::map(&std::fs::File::open(&path).unwrap()).unwrap() });
    let t = Tensor::<f32>::from_mmap(map.clone(), 8, &[2, 2]).unwrap().requires_grad(true);
    assert!(t.is_mapped());
    assert_eq!(t.to_vec(), values);
    assert!(Tensor::<f32>::from_mmap(map.clone(), 9, &[2]).is_none(), "misaligned view is refused");
    assert!(Tensor::<f32>::from_mmap(map, 8, &[5]).is_none(), "view past the end is refused");
    t.data_mut()[0] = 0.0;
    assert!(!t.is_mapped(), "first write copies into owned memory");
    assert_eq!(t.to_vec(), vec![0.0, -2.0, 3.25, 4.0]);
    std::fs::remove_file(path).ok();
}

#[test]
fn threads_have_independent_tapes() {
    let handles: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let x = Tensor::<f64>::param(vec![i as f64], &[1]);
                if i % 2 == 0 {
                    no_grad(|| std::thread::sleep(std::time::Duration::from_millis(5)));
                }
                let loss = x.mul(&x).sum();
                loss.backward();
                x.grad().unwrap().to_vec()[0]
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), 2.0 * i as f64);
    }
}
