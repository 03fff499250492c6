//! The access log: one JSON line per login, session end and query, with the
//! user, the client's address and (for a query) its statement, outcome, rows
//! returned and time. The file is rotated by size: `PATH` becomes `PATH.1`,
//! `PATH.1` becomes `PATH.2`, … up to `keep` old files.
//!
//! Failed logins are logged as warnings on the server's log as before; this
//! file records what logged-in users did.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// `access_log:` in the server's config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    /// The file written (JSON lines).
    pub path: PathBuf,
    /// Size at which it is rotated.
    #[serde(default = "default_max_mb")]
    pub max_mb: u64,
    /// Rotated files kept (`PATH.1` … `PATH.KEEP`).
    #[serde(default = "default_keep")]
    pub keep: u32,
}

fn default_max_mb() -> u64 {
    64
}
fn default_keep() -> u32 {
    5
}

/// Statements are cut to this many characters in the log.
pub const STATEMENT_CHARS: usize = 2000;

/// What happened.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A user logged in.
    Login,
    /// A session ended (the client left or the connection broke).
    End,
    /// A statement was answered or refused.
    Query {
        statement: String,
        /// `ok`, or the SQLSTATE it was refused or failed with.
        outcome: String,
        rows: Option<u64>,
        millis: u64,
    },
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    user: &'a str,
    client: String,
    #[serde(flatten)]
    event: &'a Event,
}

/// The open log, shared by every session.
#[derive(Debug)]
pub struct AccessLog {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: Mutex<(File, u64)>,
}

impl AccessLog {
    pub fn open(config: &AccessLogConfig) -> std::io::Result<AccessLog> {
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.path)?;
        let size = file.metadata()?.len();
        Ok(AccessLog {
            path: config.path.clone(),
            max_bytes: config.max_mb.max(1) * 1024 * 1024,
            keep: config.keep,
            file: Mutex::new((file, size)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one line; a failure to write is logged, never fails the query.
    pub fn record(&self, user: &str, client: SocketAddr, event: &Event) {
        let event = match event {
            Event::Query {
                statement,
                outcome,
                rows,
                millis,
            } if statement.chars().count() > STATEMENT_CHARS => Event::Query {
                statement: format!(
                    "{}…",
                    statement.chars().take(STATEMENT_CHARS).collect::<String>()
                ),
                outcome: outcome.clone(),
                rows: *rows,
                millis: *millis,
            },
            other => other.clone(),
        };
        let line = Line {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            user,
            client: client.to_string(),
            event: &event,
        };
        let mut text = match serde_json::to_string(&line) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("access log: {e}");
                return;
            }
        };
        text.push('\n');
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if guard.1 + text.len() as u64 > self.max_bytes && guard.1 > 0 {
            match self.rotate() {
                Ok(f) => *guard = (f, 0),
                Err(e) => tracing::warn!("access log {}: rotating: {e}", self.path.display()),
            }
        }
        match guard.0.write_all(text.as_bytes()) {
            Ok(()) => guard.1 += text.len() as u64,
            Err(e) => tracing::warn!("access log {}: {e}", self.path.display()),
        }
    }

    /// Moves `PATH.N` to `PATH.N+1` (dropping the oldest), `PATH` to
    /// `PATH.1`, and opens a new `PATH`.
    fn rotate(&self) -> std::io::Result<File> {
        let numbered = |n: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            for n in (1..self.keep).rev() {
                let from = numbered(n);
                if from.exists() {
                    std::fs::rename(&from, numbered(n + 1))?;
                }
            }
            std::fs::rename(&self.path, numbered(1))?;
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_cut_and_rotated_within_keep() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/access.jsonl");
        let log = AccessLog::open(&AccessLogConfig {
            path: path.clone(),
            max_mb: 1,
            keep: 2,
        })
        .unwrap();
        let client: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        log.record("keqiao", client, &Event::Login);
        let long = "select 1 -- ".to_string() + &"长".repeat(3000);
        // About 2 KB (UTF-8) a line: 1,200 lines pass 2 MiB, two rotations.
        for _ in 0..1200 {
            log.record(
                "keqiao",
                client,
                &Event::Query {
                    statement: long.clone(),
                    outcome: "ok".into(),
                    rows: Some(1),
                    millis: 3,
                },
            );
        }
        log.record("keqiao", client, &Event::End);
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        let mut n = 0;
        for p in [
            path.clone(),
            PathBuf::from(format!("{}.1", path.display())),
            PathBuf::from(format!("{}.2", path.display())),
        ] {
            let text = read(&p);
            assert!(
                text.len() as u64 <= 1024 * 1024,
                "{} is {}",
                p.display(),
                text.len()
            );
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(v["user"], "keqiao");
                assert_eq!(v["client"], "127.0.0.1:5000");
                if v["event"] == "query" {
                    let s = v["statement"].as_str().unwrap();
                    assert_eq!(s.chars().count(), STATEMENT_CHARS + 1, "cut, with …");
                    assert_eq!(v["rows"], 1);
                }
                n += 1;
            }
        }
        assert!(!Path::new(&format!("{}.3", path.display())).exists());
        // The newest lines survive: the last one is the session's end.
        let last = read(&path).lines().last().unwrap().to_string();
        assert!(last.contains("\"event\":\"end\""), "{last}");
        assert!(n < 1202, "the oldest file was dropped: {n}");
    }
}
