//! Where a tensor's numbers live: owned memory, or a read-only view into a
//! memory-mapped file (pretrained weights that are never copied unless written).

use memmap2::Mmap;
use std::marker::PhantomData;
use std::sync::Arc;
use tapegrad_kernels::Float;

/// The device a tensor lives on. Only the CPU exists today; the CUDA backend
/// will add a variant here and a matching storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Cpu,
}

/// A tensor's buffer.
pub enum Storage<T> {
    Owned(Vec<T>),
    /// Little-endian elements of type `T` inside a shared read-only map.
    Mapped(MappedSlice<T>),
}

/// `len` elements of `T` at `byte_offset` in `map`, checked for bounds and alignment.
pub struct MappedSlice<T> {
    map: Arc<Mmap>,
    byte_offset: usize,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Float> MappedSlice<T> {
    /// A view of `len` elements at `byte_offset`; `None` when out of bounds,
    /// misaligned for `T`, or on a big-endian host (then the caller copies).
    pub fn new(map: Arc<Mmap>, byte_offset: usize, len: usize) -> Option<Self> {
        let bytes = len.checked_mul(std::mem::size_of::<T>())?;
        let end = byte_offset.checked_add(bytes)?;
        let aligned = (map.as_ptr() as usize + byte_offset).is_multiple_of(std::mem::align_of::<T>());
        (end <= map.len() && aligned && cfg!(target_endian = "little")).then_some(MappedSlice {
            map,
            byte_offset,
            len,
            _t: PhantomData,
        })
    }
}

impl<T: Float> Storage<T> {
    pub fn as_slice(&self) -> &[T] {
        match self {
            Storage::Owned(v) => v,
            Storage::Mapped(m) => {
                // SAFETY: `MappedSlice::new` checked bounds and alignment, T is a plain
                // float, and the map is read-only and kept alive by the Arc. (As with any
                // mmap, the file must not be truncated by another process meanwhile.)
                unsafe { std::slice::from_raw_parts(m.map.as_ptr().add(m.byte_offset) as *const T, m.len) }
            }
        }
    }

    /// True when the numbers are a view into a memory map (not yet copied).
    pub fn is_mapped(&self) -> bool {
        matches!(self, Storage::Mapped(_))
    }
}
