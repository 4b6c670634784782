//! Memory hints for the flow table: huge pages, populating up front, and prefetches.
//!
//! Connections are looked up at random across tens of megabytes, and a lookup is two
//! dependent loads (index cell, then entry) that nearly always miss the caches on a busy link.
//! Two hints cut that cost without changing behaviour:
//! - huge pages for the big, never-moved arrays: with 4 KiB pages nearly every lookup also
//!   misses the TLB, and the page walk costs as much as the cache miss itself;
//! - prefetches issued a packet or two ahead (see [`super::FlowTable::prefetch`]), so the
//!   loads are in flight while the previous packets are processed.
//!
//! Both are advice only: a kernel without transparent huge pages ignores the first, a CPU
//! without a prefetch instruction here gets none, and a wrong prefetch only wastes a little
//! bandwidth. This is the crate's one `unsafe` exception: none of the calls can affect memory
//! safety (madvise(MADV_HUGEPAGE) and madvise(MADV_POPULATE_WRITE) never change page contents
//! or validity; a prefetch never faults, whatever the address).

/// Advises huge pages for the memory behind `ptr .. ptr + bytes` (the aligned 2 MiB blocks
/// inside it; smaller regions are left alone).
pub fn advise_huge_pages<T>(ptr: *const T, bytes: usize) {
    const HUGE: usize = 2 << 20;
    let start = (ptr as usize).next_multiple_of(HUGE);
    let end = (ptr as usize).saturating_add(bytes) & !(HUGE - 1);
    if end <= start {
        return;
    }
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    // SAFETY: the range lies inside an allocation we own; the advice only changes how the
    // kernel backs it, and a failure (no THP support) is harmless and ignored.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
    }
}

/// Has the kernel back `ptr .. ptr + bytes` with (zeroed) memory now, on a background thread,
/// instead of one page fault at a time on the packet path as entries are first used: zeroing
/// tens of megabytes in page faults cost the packet thread a tenth of its time while the table
/// filled. Advice again: an old kernel (before Linux 5.14) refuses it and pages are faulted in
/// on use as before.
pub fn populate_in_background<T>(ptr: *const T, bytes: usize) {
    #[cfg(target_os = "linux")]
    {
        // madvise wants page-aligned ranges: the whole pages inside the allocation.
        const PAGE: usize = 4096;
        let start = (ptr as usize).next_multiple_of(PAGE);
        let end = (ptr as usize).saturating_add(bytes) & !(PAGE - 1);
        if end <= start {
            return;
        }
        let len = end - start;
        let _ = std::thread::Builder::new()
            .name("flow-populate".into())
            .spawn(move || {
                #[allow(unsafe_code)]
                // SAFETY: MADV_POPULATE_WRITE faults pages in as a write would, without writing:
                // the contents of pages already in use are untouched and new pages read as the
                // zeroes a first write would have found. Should the table be gone by then, the
                // call fails harmlessly on the unmapped range.
                unsafe {
                    libc::madvise(start as *mut libc::c_void, len, libc::MADV_POPULATE_WRITE);
                }
            });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, bytes);
}

/// Starts loading the cache line holding `r` without waiting for it.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    let p = r as *const T;
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: a prefetch reads nothing into the program and never faults; `p` is a valid
    // reference besides.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8);
    }
    #[cfg(target_arch = "aarch64")]
    #[allow(unsafe_code)]
    // SAFETY: as above; PRFM only hints the memory system.
    unsafe {
        std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) p, options(nostack, readonly, preserves_flags));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = p;
}
