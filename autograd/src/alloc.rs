//! Keeping freed tensor memory for reuse.
//!
//! Every op allocates its result, and a training step frees them all again. With
//! glibc's defaults, buffers over the mmap threshold (a few MiB: attention scores,
//! LSTM activations) are returned to the kernel on free and fetched again, zeroed,
//! on the next allocation: measured on MiniLM, page faults and page clearing took a
//! quarter of a forward pass. [`retain_freed_memory`] asks glibc to serve every
//! allocation from its heap and never trim it, so freed buffers are reused. Programs
//! call it once at start; it is a no-op on other platforms.

/// Makes the allocator keep and reuse freed memory (glibc: no mmap'd chunks, no
/// trimming). Returns whether the setting took effect.
pub fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; both are documented
        // options taking an int. A trim threshold of -1 disables trimming completely
        // (mallopt(3)); i32::MAX would not: a training step's heap top passes 2 GiB.
        unsafe { libc::mallopt(libc::M_MMAP_MAX, 0) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, -1) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
