//! `memcpy`/`memmove` for the static binary. musl's x86_64 `memcpy` aligns the destination with a byte loop, copies
//! with `rep movsq` and ends with another byte loop, so a copy of a few bytes costs tens of cycles. Replay makes
//! about 26 copies per CSV row, 92% of them 16 bytes or less (field names, cells, keys, headers: counted with a
//! uprobe on the musl build's `memcpy`), and perf put 27% of the musl binary's CPU in `memcpy`. The binary
//! (`main.rs`) exports [`copy`] as `memcpy` and `memmove` on musl/x86_64 only; glibc's are left alone.
//!
//! Small sizes load the head and the tail (overlapping when the size is not a power of two) before storing
//! anything, so they are memmove-safe; larger ones use `rep movsb` (fast on CPUs with ERMSB/FSRM), backwards when
//! the destination starts inside the source. No loop the compiler could turn back into a call to `memcpy`.
#![allow(unsafe_code)]

use std::ptr::{read_unaligned as load, write_unaligned as store};

/// Copies `n` bytes from `src` to `dst`; the ranges may overlap (memmove's contract).
///
/// # Safety
/// `src` must be valid for reads and `dst` for writes of `n` bytes.
#[inline]
pub unsafe fn copy(dst: *mut u8, src: *const u8, n: usize) {
    // SAFETY: every access is within the first `n` bytes of `src` or `dst` (the caller's contract).
    unsafe {
        match n {
            0 => {}
            1..=3 => {
                let (a, b, c) = (*src, *src.add(n / 2), *src.add(n - 1));
                *dst = a;
                *dst.add(n / 2) = b;
                *dst.add(n - 1) = c;
            }
            4..=7 => head_tail::<u32>(dst, src, n),
            8..=16 => head_tail::<u64>(dst, src, n),
            17..=32 => head_tail::<u128>(dst, src, n),
            33..=64 => {
                let a = load(src.cast::<u128>());
                let b = load(src.add(16).cast::<u128>());
                let c = load(src.add(n - 32).cast::<u128>());
                let d = load(src.add(n - 16).cast::<u128>());
                store(dst.cast::<u128>(), a);
                store(dst.add(16).cast::<u128>(), b);
                store(dst.add(n - 32).cast::<u128>(), c);
                store(dst.add(n - 16).cast::<u128>(), d);
            }
            _ => bulk(dst, src, n),
        }
    }
}

/// The first and the last `size_of::<T>()` bytes (`size_of::<T>() <= n <= 2 * size_of::<T>()`), both loaded first.
#[inline(always)]
unsafe fn head_tail<T: Copy>(dst: *mut u8, src: *const u8, n: usize) {
    let w = size_of::<T>();
    // SAFETY: w <= n, so both words lie within the n bytes.
    unsafe {
        let head = load(src.cast::<T>());
        let tail = load(src.add(n - w).cast::<T>());
        store(dst.cast::<T>(), head);
        store(dst.add(n - w).cast::<T>(), tail);
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(never)]
unsafe fn bulk(dst: *mut u8, src: *const u8, n: usize) {
    if std::ptr::eq(dst.cast_const(), src) {
        return;
    }
    // SAFETY: `rep movsb` copies exactly n bytes within the caller's ranges; the direction flag is clear on entry
    // (the ABI) and cleared again after a backward copy.
    unsafe {
        if (dst as usize).wrapping_sub(src as usize) >= n {
            // No overlap, or the destination starts before the source: forwards is safe.
            std::arch::asm!(
                "rep movsb",
                inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
                options(nostack, preserves_flags)
            );
        } else {
            // The destination starts inside the source: backwards, from the last byte.
            std::arch::asm!(
                "std", "rep movsb", "cld",
                inout("rcx") n => _, inout("rdi") dst.add(n - 1) => _, inout("rsi") src.add(n - 1) => _,
                options(nostack)
            );
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn bulk(dst: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller's contract.
    unsafe { std::ptr::copy(src, dst, n) }
}

#[cfg(test)]
mod tests {
    use super::copy;

    /// Every size up to 300 at every offset pair in 0..8, apart and overlapping both ways, against `copy_within`.
    #[test]
    fn copies_like_memmove() {
        let pattern: Vec<u8> = (0..1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for n in 0..=300usize {
            for src_at in 0..8usize {
                for dst_at in [0usize, 1, 3, 7, 8, 15, 16, 31] {
                    // Apart: src in the first half, dst in the second.
                    let mut got = pattern.clone();
                    let mut want = pattern.clone();
                    let d = 512 + dst_at;
                    // SAFETY: both ranges lie inside `got`.
                    unsafe { copy(got.as_mut_ptr().add(d), got.as_ptr().add(src_at), n) };
                    want.copy_within(src_at..src_at + n, d);
                    assert_eq!(got, want, "apart: n {n}, src {src_at}, dst {d}");
                    // Overlapping: dst a little after src (backwards needed), and a little before (forwards).
                    for (s, d) in [(100 + src_at, 100 + src_at + dst_at), (100 + src_at + dst_at, 100 + src_at)] {
                        let mut got = pattern.clone();
                        let mut want = pattern.clone();
                        // SAFETY: both ranges lie inside `got` (n + 131 < 1024).
                        unsafe { copy(got.as_mut_ptr().add(d), got.as_ptr().add(s), n) };
                        want.copy_within(s..s + n, d);
                        assert_eq!(got, want, "overlapping: n {n}, src {s}, dst {d}");
                    }
                }
            }
        }
    }

    #[test]
    fn large_copies_both_ways() {
        let pattern: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        for (s, d, n) in [(0, 150_000, 140_000), (1_000, 1_013, 200_000), (1_013, 1_000, 200_000), (5, 5, 1_000)] {
            let mut got = pattern.clone();
            let mut want = pattern.clone();
            // SAFETY: both ranges lie inside `got`.
            unsafe { copy(got.as_mut_ptr().add(d), got.as_ptr().add(s), n) };
            want.copy_within(s..s + n, d);
            assert!(got == want, "src {s}, dst {d}, n {n}");
        }
    }
}
