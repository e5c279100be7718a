//! The real GPU for the tests that run on every device: `cuda:0` when this machine has a
//! CUDA device and driver, or `None` after saying once per test binary that those tests
//! skipped (straight to stderr, so it shows among the results). CI has no GPU: there the
//! simulated GPU (`Device::Sim`) runs the same PTX in the same tests (their `sim` twins),
//! and `benches/gpu/device_check.sh` runs these on a machine that has one.

use std::io::Write;
use std::sync::OnceLock;
use tapegrad::autograd::storage::check_device;
use tapegrad::autograd::Device;

/// `cuda:0` if it can be used here.
pub fn cuda() -> Option<Device> {
    static FOUND: OnceLock<Option<Device>> = OnceLock::new();
    *FOUND.get_or_init(|| match check_device(Device::Cuda(0)) {
        Ok(()) => Some(Device::Cuda(0)),
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: this binary's cuda:0 tests ({e}); their sim twins run the same kernels"
            );
            None
        }
    })
}
