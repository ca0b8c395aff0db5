//! The `cdc` binary: the command line over the connectors of [`cdc::registry`].

fn main() -> std::process::ExitCode {
    cdc::cli::main(cdc::registry())
}
