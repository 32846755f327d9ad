//! Helpers for rkyv archives from untrusted buffers.

/// Run `f` on `bytes` aligned for an rkyv archive (16 bytes): in place
/// when they already are (heap buffers usually are), else on an aligned
/// copy.
pub(crate) fn with_aligned<T>(bytes: &[u8], f: impl FnOnce(&[u8]) -> T) -> T {
    if (bytes.as_ptr() as usize) % 16 == 0 {
        f(bytes)
    } else {
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        f(&aligned)
    }
}
