//! Giving freed heap memory back to the operating system.
//!
//! glibc's allocator keeps what a burst freed (every thread's arena holds on
//! to its free pages), so without this a service's RSS ratchets up to its
//! busiest moment and stays there. `malloc_trim(0)` returns the whole free
//! pages of every arena; once every few seconds it costs next to nothing.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often freed memory is handed back.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Trims the heap every [`TRIM_EVERY`] until `shutdown`.
pub fn trim_periodically(shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(TRIM_EVERY) => trim(),
            }
        }
    });
}

/// Returns the free pages of every malloc arena to the OS.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() {
    // SAFETY: malloc_trim only inspects and madvises the allocator's own free
    // lists; it takes the arena locks itself and is safe to call any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators return memory on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() {}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    #[test]
    fn a_freed_burst_is_given_back_and_live_data_kept() {
        let live: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 4096]).collect();
        // 64 MiB in chunks small enough to come from the arena, not mmap.
        let burst: Vec<Vec<u8>> = (0..4096).map(|_| vec![7u8; 16 * 1024]).collect();
        // Allocated after the burst, so the arena's top stays in use and
        // free() alone cannot shrink it: only a trim returns the pages.
        let pin = vec![1u8; 1024];
        drop(burst);
        let before = rss_kib();
        super::trim();
        let after = rss_kib();
        assert!(
            before.saturating_sub(after) >= 32 * 1024,
            "RSS {before} KiB before the trim, {after} KiB after"
        );
        assert!(
            live.iter()
                .enumerate()
                .all(|(i, v)| v.iter().all(|b| *b == i as u8))
        );
        assert_eq!(pin[0], 1);
    }
}
