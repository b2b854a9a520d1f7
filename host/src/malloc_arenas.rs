//! Caps glibc's malloc arenas for the whole process. glibc gives threads up to 8 arenas per core,
//! and each arena keeps what its threads freed; as the server's pools start and retire threads
//! under load, new arenas fill one after another and resident memory climbs for minutes (the
//! 60 s soak on 2 cores: 96 → 119 MiB, still rising; with 4 arenas 71 → 72 MiB). An operator's
//! own `MALLOC_ARENA_MAX` wins.

/// Arenas for the process: enough that the few busy threads (HTTP, conversion, jobs) seldom wait
/// for one another's, few enough that freed memory is reused rather than parked.
const ARENAS: i32 = 4;

/// Sets the cap; call first thing in `main`, before any thread exists.
pub fn cap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: `mallopt` only sets an allocator parameter, and no other thread runs yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    }
}
