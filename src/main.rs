//! The `cdc` binary: the command line over the connectors of [`cdc::registry`].

/// mimalloc: building events is allocation-heavy, and glibc's malloc made it several times slower
/// (measured in source-mysql's drain benchmark).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cdc::cli::main(cdc::registry())
}
