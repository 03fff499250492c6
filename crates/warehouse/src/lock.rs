//! The run lock: one nightly run at a time per warehouse.
//!
//! The lock is an object, `<warehouse>/_stmon/run.lock`, created with
//! `PutMode::Create` (atomic "create if absent" on a local folder and on S3),
//! holding who took it (run id, pipeline, host, pid, start) and a heartbeat
//! the holder rewrites every [`HEARTBEAT`]. A lock is stale — and taken over —
//! when its holder ran on this host and that process is gone (a run killed
//! with SIGKILL leaves its lock behind), or when its heartbeat is older than
//! [`STALE_AFTER`] (a holder on another machine that died).
//!
//! Taking over is a race when two runs find the same stale lock: both would
//! delete it and the slower one's delete could remove the lock the faster one
//! had just created. So only the run that creates the takeover marker for
//! that holder (`_stmon/takeover/<run id>-<heartbeat>-<n>`, `PutMode::Create`
//! again) may delete it; the others see the marker and wait or fail. A
//! marker older than [`MARKER_ABANDONED`] (its run died between marker and
//! lock) is passed over with the next `n`. The holder's heartbeat rewrites
//! the lock only while it is still its own.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::{
    path::Path as StorePath, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};
use serde::{Deserialize, Serialize};

use crate::{Error, Result, Warehouse};

/// How often the holder rewrites the lock.
pub const HEARTBEAT: Duration = Duration::from_secs(30);
/// A lock whose heartbeat is older than this is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(600);
/// A takeover marker older than this belongs to a run that died taking over.
pub const MARKER_ABANDONED: Duration = Duration::from_secs(60);

/// Who holds the lock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Holder {
    pub run_id: String,
    pub pipeline: String,
    pub host: String,
    pub pid: u32,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "run {} of {} (pid {} on {}, started {}, last heartbeat {})",
            self.run_id,
            self.pipeline,
            self.pid,
            self.host,
            self.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
            self.heartbeat_at.format("%H:%M:%S UTC")
        )
    }
}

/// The lock is held by another run (after waiting `waited`, if given).
#[derive(Debug, Clone, thiserror::Error)]
pub struct Locked {
    pub holder: Box<Holder>,
    pub waited: Option<Duration>,
}

impl std::fmt::Display for Locked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = &self.holder;
        match self.waited {
            Some(w) => write!(
                f,
                "the warehouse is still locked after waiting {}s by {h}",
                w.as_secs()
            ),
            None => write!(
                f,
                "another run holds the warehouse lock: {h}. \
                 Wait for it with --wait, or see it with `stmon runs`"
            ),
        }
    }
}

/// A held lock; released by [`RunLock::release`] (or, if the process dies,
/// found stale by the next run).
pub struct RunLock {
    store: Arc<dyn ObjectStore>,
    path: StorePath,
    holder: Holder,
    heartbeat: tokio::task::JoinHandle<()>,
}

pub fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether a process of this host with that pid is alive and is stmon.
fn alive_here(pid: u32) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmd) => String::from_utf8_lossy(&cmd).contains("stmon"),
        // No /proc (not Linux): assume alive, the heartbeat decides.
        Err(_) => !std::path::Path::new("/proc/self").exists(),
    }
}

impl Holder {
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        (self.host == this_host() && self.pid != std::process::id() && !alive_here(self.pid))
            || (now - self.heartbeat_at).to_std().unwrap_or_default() > STALE_AFTER
    }
}

impl Warehouse {
    /// Who holds the run lock now, if anyone.
    pub async fn lock_holder(&self) -> Result<Option<Holder>> {
        let store = self.root_store()?;
        read_holder(store.as_ref(), &lock_path()).await
    }

    /// Takes the run lock. With `wait`, polls until the lock is free or the
    /// wait is over (`on_wait` is told once who holds it); without, fails at
    /// once naming the holder.
    pub async fn lock_run(
        &self,
        run_id: &str,
        pipeline: &str,
        wait: Option<Duration>,
        on_wait: &(dyn Fn(&Holder) + Sync),
    ) -> Result<RunLock> {
        let store = self.root_store()?;
        let path = lock_path();
        let now = Utc::now();
        let holder = Holder {
            run_id: run_id.into(),
            pipeline: pipeline.into(),
            host: this_host(),
            pid: std::process::id(),
            started_at: now,
            heartbeat_at: now,
        };
        let started = std::time::Instant::now();
        let mut told = false;
        loop {
            let body = serde_json::to_vec_pretty(&holder).expect("serialisable");
            let put = store
                .put_opts(
                    &path,
                    PutPayload::from(body),
                    PutOptions::from(PutMode::Create),
                )
                .await;
            match put {
                Ok(_) => break,
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(source) => {
                    return Err(Error::Store {
                        what: "taking the run lock",
                        path: path.to_string(),
                        source,
                    })
                }
            }
            match read_holder(store.as_ref(), &path).await? {
                None => continue, // released meanwhile
                Some(h)
                    if h.is_stale(Utc::now()) && take_over(store.as_ref(), &path, &h).await? =>
                {
                    tracing::warn!(holder = %h, "took over a stale run lock");
                    continue;
                }
                Some(h) => match wait {
                    Some(w) if started.elapsed() < w => {
                        if !told {
                            on_wait(&h);
                            told = true;
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    waited => {
                        return Err(Locked {
                            holder: Box::new(h),
                            waited,
                        }
                        .into())
                    }
                },
            }
        }
        let heartbeat = {
            let store = store.clone();
            let path = path.clone();
            let mut h = holder.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(HEARTBEAT).await;
                    // Never over another run's lock (this one's was taken over
                    // when its heartbeat stalled past STALE_AFTER).
                    match read_holder(store.as_ref(), &path).await {
                        Ok(Some(now)) if now.run_id == h.run_id => {}
                        Ok(other) => {
                            tracing::error!(
                                holder = ?other.map(|o| o.to_string()),
                                "this run's lock was taken over; its heartbeat stops"
                            );
                            return;
                        }
                        Err(e) => {
                            tracing::warn!("run lock heartbeat: {e}");
                            continue;
                        }
                    }
                    h.heartbeat_at = Utc::now();
                    let body = serde_json::to_vec_pretty(&h).expect("serialisable");
                    if let Err(e) = store.put(&path, PutPayload::from(body)).await {
                        tracing::warn!("run lock heartbeat failed: {e}");
                    }
                }
            })
        };
        Ok(RunLock {
            store,
            path,
            holder,
            heartbeat,
        })
    }
}

impl RunLock {
    /// Releases the lock if it is still this run's.
    pub async fn release(self) -> Result<()> {
        self.heartbeat.abort();
        match read_holder(self.store.as_ref(), &self.path).await? {
            Some(h) if h.run_id == self.holder.run_id => {
                self.store
                    .delete(&self.path)
                    .await
                    .map_err(|source| Error::Store {
                        what: "releasing the run lock",
                        path: self.path.to_string(),
                        source,
                    })?;
            }
            _ => tracing::warn!("the run lock was taken over by another run"),
        }
        Ok(())
    }
}

fn lock_path() -> StorePath {
    StorePath::from("_stmon/run.lock")
}

/// Deletes the stale lock of `stale` if this run is the one to take it over
/// (see the module's doc); false when another run is doing so.
async fn take_over(store: &dyn ObjectStore, path: &StorePath, stale: &Holder) -> Result<bool> {
    let err = |what| {
        move |source| Error::Store {
            what,
            path: path.to_string(),
            source,
        }
    };
    for n in 0..16 {
        let marker = StorePath::from(format!(
            "_stmon/takeover/{}-{}-{n}",
            stale.run_id,
            stale.heartbeat_at.timestamp_millis()
        ));
        let put = store
            .put_opts(
                &marker,
                PutPayload::from(Utc::now().to_rfc3339().into_bytes()),
                PutOptions::from(PutMode::Create),
            )
            .await;
        match put {
            Ok(_) => {
                // Ours to delete, if it is still that holder's lock.
                if read_holder(store, path).await?.as_ref() == Some(stale) {
                    store
                        .delete(path)
                        .await
                        .map_err(err("taking over a stale run lock"))?;
                }
                return Ok(true);
            }
            Err(object_store::Error::AlreadyExists { .. }) => {
                let age = match store.head(&marker).await {
                    Ok(meta) => (Utc::now() - meta.last_modified)
                        .to_std()
                        .unwrap_or_default(),
                    Err(object_store::Error::NotFound { .. }) => continue,
                    Err(source) => return Err(err("reading a takeover marker")(source)),
                };
                if age < MARKER_ABANDONED {
                    return Ok(false);
                }
            }
            Err(source) => return Err(err("taking over a stale run lock")(source)),
        }
    }
    Ok(false)
}

async fn read_holder(store: &dyn ObjectStore, path: &StorePath) -> Result<Option<Holder>> {
    match store.get(path).await {
        Ok(r) => {
            let bytes = r.bytes().await.map_err(|source| Error::Store {
                what: "reading the run lock",
                path: path.to_string(),
                source,
            })?;
            // A lock stmon cannot parse was not written by stmon (its writes
            // are atomic): report an unknown holder that is never stale, so
            // that a person looks at it rather than a run deleting it.
            Ok(Some(serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                Holder {
                    run_id: "(unreadable lock)".into(),
                    pipeline: String::new(),
                    host: String::new(),
                    pid: 0,
                    started_at: Utc::now(),
                    heartbeat_at: Utc::now(),
                }
            })))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(source) => Err(Error::Store {
            what: "reading the run lock",
            path: path.to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn holder(run_id: &str) -> Holder {
        let t = Utc::now();
        Holder {
            run_id: run_id.into(),
            pipeline: "p".into(),
            host: "elsewhere".into(),
            pid: 1,
            started_at: t,
            heartbeat_at: t,
        }
    }

    async fn put(store: &InMemory, h: &Holder, mode: PutMode) -> object_store::Result<()> {
        let body = serde_json::to_vec(h).unwrap();
        store
            .put_opts(&lock_path(), PutPayload::from(body), PutOptions::from(mode))
            .await
            .map(|_| ())
    }

    /// Two runs found the same stale lock; the fast one took it over and
    /// holds the lock now. The slow one's takeover must not delete it (it
    /// did when each run deleted the stale lock it had read).
    #[tokio::test]
    async fn only_one_run_takes_over_a_stale_lock() {
        let store = InMemory::new();
        let stale = holder("dead");
        put(&store, &stale, PutMode::Overwrite).await.unwrap();
        assert!(take_over(&store, &lock_path(), &stale).await.unwrap());
        assert_eq!(read_holder(&store, &lock_path()).await.unwrap(), None);
        let fast = holder("fast");
        put(&store, &fast, PutMode::Create).await.unwrap();
        assert!(!take_over(&store, &lock_path(), &stale).await.unwrap());
        assert_eq!(
            read_holder(&store, &lock_path()).await.unwrap(),
            Some(fast),
            "the slow run left the fast run's lock alone"
        );
    }

    /// While one run is taking a stale lock over (its marker is fresh), the
    /// others leave the lock alone and wait or fail.
    #[tokio::test]
    async fn a_takeover_in_progress_holds_the_others_back() {
        let store = InMemory::new();
        let stale = holder("dead");
        put(&store, &stale, PutMode::Overwrite).await.unwrap();
        let marker = StorePath::from(format!(
            "_stmon/takeover/dead-{}-0",
            stale.heartbeat_at.timestamp_millis()
        ));
        store
            .put(&marker, PutPayload::from_static(b"x"))
            .await
            .unwrap();
        assert!(!take_over(&store, &lock_path(), &stale).await.unwrap());
        assert_eq!(
            read_holder(&store, &lock_path()).await.unwrap(),
            Some(stale)
        );
    }
}
