//! Tunes glibc's malloc for a long-running server, before any thread starts. An operator's own
//! `MALLOC_ARENA_MAX` or `MALLOC_MMAP_THRESHOLD_` wins over each setting.
//!
//! - **Arenas: 4.** glibc gives threads up to 8 arenas per core, and each arena keeps what its
//!   threads freed; as the server's pools start and retire threads under load, new arenas fill
//!   one after another and resident memory climbs for minutes (the 60 s soak on 2 cores:
//!   96 → 119 MiB, still rising; with 4 arenas 71 → 72 MiB).
//! - **mmap threshold: fixed at 128 KiB** (glibc's starting value). glibc raises the threshold
//!   each time a large block is freed, after which inflated bodies and conversion batches are
//!   carved from the arenas, and resident memory stays at the highest burst seen so far. Fixed,
//!   such blocks are mapped and returned to the system when freed (the soak under a concurrent
//!   build: RSS floors 55 → 92 MiB in 30 s without it, 66 → 68 MiB with it).
//! - **Trim threshold: glibc's 128 KiB, on purpose.** Each converted ping grows a heap by a few
//!   hundred KiB and gives it back, so its pages fault in again for the next one (~10 % of a
//!   conversion's CPU). An 8 MiB threshold saved that, but in the 10-minute soak at 2,200/s
//!   resident memory ran ~40 MiB higher and crept up 10.8 % (128 KiB: +0.8 %).

/// Arenas for the process: enough that the few busy threads (HTTP, conversion, jobs) seldom wait
/// for one another's, few enough that freed memory is reused rather than parked.
const ARENAS: i32 = 4;

/// Blocks of at least this many bytes are mapped on their own and unmapped when freed.
const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Applies the settings; call first thing in `main`, before any thread exists.
pub fn apply() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (variable, parameter, value) in [
        ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, ARENAS),
        (
            "MALLOC_MMAP_THRESHOLD_",
            libc::M_MMAP_THRESHOLD,
            MMAP_THRESHOLD,
        ),
    ] {
        if std::env::var_os(variable).is_none() {
            // SAFETY: `mallopt` only sets an allocator parameter, and no other thread runs yet.
            unsafe {
                libc::mallopt(parameter, value);
            }
        }
    }
}
