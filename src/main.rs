//! The `kaas` binary: parse the command line, run it, turn the result into an exit code.

use clap::Parser;

/// mimalloc rather than the C library's allocator: requests allocate many small short-lived
/// objects on whichever worker thread runs them, and glibc's per-arena locks (musl's
/// allocator in the static build) were a visible share of a list request's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = kaas::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kaas: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(kaas::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kaas: {e:#}");
            match e.downcast_ref::<kaas::cli::ExitWith>() {
                Some(exit) => std::process::ExitCode::from(exit.code),
                None => std::process::ExitCode::FAILURE,
            }
        }
    }
}
