//! Crash points for tests: every place where a run has just committed (or is
//! about to commit) something calls [`checkpoint`]. In production it does
//! nothing but count. Two environment variables make it useful to the kill
//! test (`tests/it/pipeline.rs`):
//!
//! * `STMON_CHECKPOINT_LOG=FILE` appends each checkpoint's name to FILE, so a
//!   test learns how many points a run passes;
//! * `STMON_KILL_AT=N` makes the process send itself SIGKILL at the N-th
//!   checkpoint (1-based): no destructor runs, no buffer is flushed, exactly
//!   as if the machine had lost power at that point.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

static COUNT: AtomicUsize = AtomicUsize::new(0);

struct Config {
    log: Option<std::path::PathBuf>,
    kill_at: Option<usize>,
}

fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| Config {
        log: std::env::var_os("STMON_CHECKPOINT_LOG").map(Into::into),
        kill_at: std::env::var("STMON_KILL_AT")
            .ok()
            .and_then(|s| s.parse().ok()),
    })
}

/// Marks a point of a run; see the module documentation.
pub fn checkpoint(name: &str) {
    let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    let c = config();
    if let Some(path) = &c.log {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{n}\t{name}");
        }
    }
    if c.kill_at == Some(n) {
        tracing::warn!(checkpoint = n, name, "STMON_KILL_AT: killing this process");
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        // `kill` delivers the signal before it exits; never go on.
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
}
