//! What the allocator gives back: glibc's malloc keeps freed memory for reuse, and raises its
//! mmap threshold after large frees (up to 32 MiB), after which a burst of large buffers lands
//! in the heap and stays there. A server under attack must return what the attack made it
//! allocate, so the threshold is pinned low (large buffers are mmapped and unmapped when
//! freed) and the heap is trimmed after a burst.

/// Allocations of at least this many bytes are mmapped (and so returned when freed): message
/// buffers grow past it, small per-connection state stays in the heap.
pub const MMAP_THRESHOLD: usize = 64 * 1024;

/// Pins the mmap threshold at [`MMAP_THRESHOLD`] (which also stops glibc from raising it).
/// Returns false where the allocator is not glibc's or refused.
pub fn pin_mmap_threshold() -> bool {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: mallopt only changes malloc parameters; no memory is passed.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1 }
    }
    #[cfg(not(target_env = "gnu"))]
    {
        false
    }
}

/// Gives free heap pages back to the kernel (glibc's malloc_trim, which also releases free
/// pages inside the heap, not only at its top). Cheap when there is little to release.
pub fn trim() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim walks malloc's own free lists; no memory is passed.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_threshold_can_be_pinned_and_the_heap_trimmed() {
        assert_eq!(super::pin_mmap_threshold(), cfg!(target_env = "gnu"));
        super::trim();
    }
}
