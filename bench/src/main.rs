//! `rollcall-bench`: the load tool for rollcall deployments.
//!
//! A thin binary: parse the command line, raise the open-file limit, build one tokio runtime and
//! run the chosen scenario from the [`rollcall_bench`] library. Everything else lives in
//! `bench/src/` (one file per role) so `bench/tests/` can drive the same code. Results:
//! `bench/RESULTS.md`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = rollcall_bench::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rollcall-bench: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(rollcall_bench::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rollcall-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
