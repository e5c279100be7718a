//! The device seam on a fake GPU: a launcher over host memory that copies but runs
//! no kernel (every launch fails). Checks moving tensors (copies, no kernel), the
//! sticky error of an op whose launch fails, and the mixed-device panic. (The
//! simulated GPU runs the real kernels: `tests/gradcheck.rs`'s `sim::` rows and
//! `tests/sim_device.rs`.)

use std::collections::HashMap;
use std::sync::Mutex;
use tapegrad_autograd::storage::register_context;
use tapegrad_autograd::{Device, Tensor};
use tapegrad_kernels::gpu::{DevPtr, GpuContext, GpuError, Kernel, KernelArg, LaunchDims, Launcher};

/// Host memory posing as a device: block k lives at address k << 32.
#[derive(Default)]
struct HostLauncher {
    blocks: Mutex<HashMap<u64, Vec<u8>>>,
    next: Mutex<u64>,
}

impl HostLauncher {
    fn with<R>(&self, ptr: DevPtr, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, GpuError> {
        let mut blocks = self.blocks.lock().unwrap();
        let block = blocks.get_mut(&(ptr >> 32)).ok_or_else(|| GpuError::Driver {
            op: "access".into(),
            message: format!("bad pointer {ptr:#x}"),
        })?;
        Ok(f(&mut block[(ptr & 0xffff_ffff) as usize..]))
    }
}

impl Launcher for HostLauncher {
    fn name(&self) -> String {
        "host-memory fake GPU".into()
    }
    fn alloc(&self, bytes: usize) -> Result<DevPtr, GpuError> {
        let mut next = self.next.lock().unwrap();
        *next += 1;
        self.blocks.lock().unwrap().insert(*next, vec![0; bytes]);
        Ok(*next << 32)
    }
    fn free(&self, ptr: DevPtr) -> Result<(), GpuError> {
        self.blocks.lock().unwrap().remove(&(ptr >> 32));
        Ok(())
    }
    fn copy_to_device(&self, dst: DevPtr, src: &[u8]) -> Result<(), GpuError> {
        self.with(dst, |d| d[..src.len()].copy_from_slice(src))
    }
    fn copy_to_host(&self, src: DevPtr, dst: &mut [u8]) -> Result<(), GpuError> {
        self.with(src, |s| dst.copy_from_slice(&s[..dst.len()]))
    }
    fn copy_on_device(&self, dst: DevPtr, src: DevPtr, bytes: usize) -> Result<(), GpuError> {
        let data = self.with(src, |s| s[..bytes].to_vec())?;
        self.copy_to_device(dst, &data)
    }
    fn memset(&self, dst: DevPtr, value: u8, bytes: usize) -> Result<(), GpuError> {
        self.with(dst, |d| d[..bytes].fill(value))
    }
    fn launch(&self, kernel: Kernel, _: LaunchDims, _: &[KernelArg]) -> Result<(), GpuError> {
        Err(GpuError::Launch { kernel: kernel.entry.into(), message: "the fake GPU runs no kernel".into() })
    }
    fn synchronize(&self) -> Result<(), GpuError> {
        Ok(())
    }
}

/// A fresh fake device (each test its own: a sticky error is per device).
fn fake(ordinal: usize) -> Device {
    let d = Device::Cuda(ordinal);
    assert!(register_context(d, GpuContext::new(Box::<HostLauncher>::default())));
    d
}

#[test]
fn tensors_move_without_kernels() {
    let dev = fake(101);
    let x = Tensor::<f64>::from_vec((0..12).map(f64::from).collect(), &[3, 4]);
    let g = x.to(dev);
    assert_eq!(g.device(), dev);
    assert_eq!(g.to_vec(), x.to_vec());
    let back = g.to(Device::Cpu);
    assert_eq!((back.device(), back.to_vec()), (Device::Cpu, x.to_vec()));
    assert!(format!("{g:?}").contains("device=cuda:101"));
}

#[test]
fn a_failed_op_is_a_sticky_error_reported_on_read_back() {
    let dev = fake(102);
    let a = Tensor::<f32>::from_vec(vec![1.0, 2.0], &[2]).to(dev);
    let y = a.add(&a).exp(); // add's launch fails on this device: the first error sticks
    let e = y.try_to_vec().unwrap_err();
    assert!(matches!(&e, GpuError::Launch { kernel, .. } if kernel.starts_with("binary")), "{e}");
    // every later read on the device reports it, even of a tensor made before
    assert_eq!(a.try_to_vec().unwrap_err(), e);
    assert!(a.sum().try_item().is_err());
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.to_vec())).unwrap_err();
    let msg = panicked.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("cuda:102") && msg.contains("the fake GPU runs no kernel"), "{msg}");
}

#[test]
fn a_failed_launch_is_a_sticky_error() {
    let dev = fake(103);
    let a = Tensor::<f32>::from_vec(vec![1.0, 2.0], &[2]).to(dev);
    let e = a.tanh().try_to_vec().unwrap_err(); // tanh has a kernel; the fake refuses to launch it
    assert!(matches!(e, GpuError::Launch { .. }), "{e}");
}

#[test]
fn backward_is_seeded_on_the_loss_device() {
    let dev = fake(104);
    let w = Tensor::<f32>::param(vec![1.0, 2.0], &[2]);
    w.move_to(dev);
    assert_eq!(w.device(), dev);
    assert!(w.tracks_grad());
    // the whole graph runs on the fake device, and so does the seed of backward; it
    // fails (no kernels) without touching the host, then reports on read-back
    let loss = w.tanh().sum();
    loss.backward();
    assert_eq!(w.grad().map(|g| g.device()), Some(dev));
    assert!(w.grad().unwrap().try_to_vec().is_err());
}

#[test]
#[should_panic(expected = "add: operands on different devices (cuda:105 and cpu)")]
fn mixing_devices_names_the_op_and_both_devices() {
    let dev = fake(105);
    let a = Tensor::<f32>::from_vec(vec![1.0], &[1]).to(dev);
    let _ = a.add(&Tensor::from_vec(vec![1.0], &[1]));
}
