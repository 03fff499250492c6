//! `stmon`: the command line. It parses arguments and calls the libraries.

mod cmd;
mod render;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cmd::Cli::parse();
    cmd::init_tracing(&cli);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cmd::worker_threads(&cli) {
        builder.worker_threads(n);
    }
    if let Some(bytes) = cmd::thread_stack(&cli) {
        builder.thread_stack_size(bytes);
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(cmd::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", render::chain(&e));
            ExitCode::from(2)
        }
    }
}
