//! The `cdc` binary: the command line over the connectors of [`cdc::registry`].

/// mimalloc: building events is allocation-heavy, and glibc's malloc made it several times slower
/// (measured in source-mysql's drain benchmark).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` (not exported as a constant by libmimalloc-sys: its position in
/// mimalloc's `mi_option_t`, the same in mimalloc 2 and 3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // Return freed memory to the OS at once rather than after mimalloc's default delay (1 s in
    // mimalloc 3): events are allocated on the source's threads and freed on the sink's, and
    // with the default a backlog drain held 150-200 MB resident; with 5 ms, 56-133 MiB; with 0,
    // 35-105 MiB, at the same drain speed (within run-to-run noise) and a snapshot within 5%
    // (BENCHMARKS.md).
    // `MIMALLOC_PURGE_DELAY=N` (milliseconds) in the environment still wins.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: setting an option is a plain store into mimalloc's option table.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
    cdc::cli::main(cdc::registry())
}
