//! The object store behind every `s3://` table: the store delta-rs builds
//! (object_store's S3 client with its retries), plus the two things that
//! client leaves to its caller when a request fails on the way back.
//!
//! - **A create-if-absent write whose answer was lost.** object_store
//!   retries a 5xx for any request, but when the first attempt had in fact
//!   been applied, the retry meets the object and answers `AlreadyExists`.
//!   A connection reset after the request was sent is not retried at all for
//!   such a write (it is not idempotent), so its outcome is unknown. Delta
//!   commits are create-if-absent writes of `_delta_log/N.json`: delta-rs
//!   would take its own commit for a concurrent writer's and commit the same
//!   files again at N+1, or fail a model rebuild on a conflict with itself;
//!   the run lock would refuse its own holder. Here a create that fails that
//!   way is retried, and `AlreadyExists` is settled by reading the object: if
//!   it holds exactly the bytes being written, the write was this one's (a
//!   commit names fresh file ids and a time; a lock names its run and
//!   heartbeat), and it succeeded.
//! - **A delete whose answer was lost** (S3 deletes with a POST, which
//!   object_store does not retry after a broken connection): deleted again.
//! - **A multipart upload whose completion was lost**: retried by
//!   object_store, its upload id is gone and S3 answers `NoSuchUpload`. The
//!   object is then looked up: there, with the size of the parts sent, the
//!   upload completed (multipart uploads here write fresh names only).
//!
//! Everything else is the inner store's own code. Retries are bounded by the
//! same settings as object_store's (`max_retries`, `retry_timeout`,
//! `backoff_config.*` storage options).

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use deltalake::logstore::{ObjectStoreFactory, ObjectStoreRef, StorageConfig};
use deltalake::DeltaResult;
use futures::stream::{BoxStream, StreamExt};
use object_store::client::{HttpError, HttpErrorKind};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    Result, RetryConfig, UploadPart,
};
use url::Url;

/// Wraps the factory delta-rs has registered for `scheme` (once per process
/// and scheme; a scheme without a factory is left alone).
pub fn register(scheme: &str) {
    use std::sync::Mutex;
    static DONE: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if done.iter().any(|s| s == scheme) {
        return;
    }
    let Ok(key) = Url::parse(&format!("{scheme}://")) else {
        return;
    };
    let registry = deltalake::logstore::object_store_factories();
    if let Some(inner) = registry.get(&key).map(|f| f.value().clone()) {
        registry.insert(key, Arc::new(Factory { inner }));
        done.push(scheme.to_string());
    }
}

struct Factory {
    inner: Arc<dyn ObjectStoreFactory>,
}

impl ObjectStoreFactory for Factory {
    fn parse_url_opts(
        &self,
        url: &Url,
        config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, Path)> {
        let (store, prefix) = self.inner.parse_url_opts(url, config)?;
        let store: ObjectStoreRef = Arc::new(Resilient {
            inner: store,
            retry: config.retry.clone(),
        });
        Ok((store, prefix))
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct Resilient {
    inner: ObjectStoreRef,
    retry: RetryConfig,
}

impl Resilient {
    pub fn new(inner: ObjectStoreRef, retry: RetryConfig) -> Self {
        Resilient { inner, retry }
    }
}

impl std::fmt::Display for Resilient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Resilient({})", self.inner)
    }
}

/// Whether the failure is one object_store does not retry for a write that
/// is not idempotent, though the request may have been applied: the
/// connection broke or timed out after the request was sent.
fn unanswered(e: &object_store::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<HttpError>() {
            return matches!(
                h.kind(),
                HttpErrorKind::Interrupted | HttpErrorKind::Timeout | HttpErrorKind::Unknown
            );
        }
        source = s.source();
    }
    false
}

/// The wait before attempt `n` (1-based) of a retry, as object_store's
/// backoff grows (without its jitter).
fn backoff(retry: &RetryConfig, n: u32) -> Duration {
    let b = &retry.backoff;
    let secs = b.init_backoff.as_secs_f64() * b.base.powi(n.saturating_sub(1) as i32);
    Duration::from_secs_f64(secs.min(b.max_backoff.as_secs_f64()))
}

impl Resilient {
    /// Whether `location` holds exactly `payload`: the settlement of an
    /// `AlreadyExists` (see the module docs). A read that fails is an error:
    /// the write's outcome is then not known, and saying "exists" would be a lie.
    async fn holds(&self, location: &Path, payload: &PutPayload) -> Result<bool> {
        let found = self.inner.get(location).await?.bytes().await?;
        let ours: Bytes = payload.clone().into();
        Ok(found == ours)
    }

    async fn create(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let start = Instant::now();
        let mut attempt = 0u32;
        loop {
            match self
                .inner
                .put_opts(location, payload.clone(), opts.clone())
                .await
            {
                Ok(r) => return Ok(r),
                Err(e @ object_store::Error::AlreadyExists { .. }) => {
                    tracing::debug!(%location, "create-if-absent: already exists; reading it back");
                    if self.holds(location, &payload).await? {
                        tracing::info!(%location, "a create-if-absent write whose answer was lost was applied: the object holds its bytes");
                        let meta = self.inner.head(location).await?;
                        return Ok(PutResult {
                            e_tag: meta.e_tag,
                            version: meta.version,
                        });
                    }
                    return Err(e);
                }
                Err(e)
                    if unanswered(&e)
                        && (attempt as usize) < self.retry.max_retries
                        && start.elapsed() < self.retry.retry_timeout =>
                {
                    attempt += 1;
                    let wait = backoff(&self.retry, attempt);
                    tracing::info!(%location, attempt, error = %e, "a create-if-absent write went unanswered: retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[async_trait]
impl ObjectStore for Resilient {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        match opts.mode {
            PutMode::Create => self.create(location, payload, opts).await,
            _ => self.inner.put_opts(location, payload, opts).await,
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(Upload {
            inner: upload,
            store: self.inner.clone(),
            location: location.clone(),
            size: 0,
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let inner = self.inner.clone();
        let retry = self.retry.clone();
        locations
            .chunks(1000)
            .then(move |chunk| delete_chunk(inner.clone(), retry.clone(), chunk))
            .flat_map(futures::stream::iter)
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

/// Deletes a chunk of locations (S3 deletes up to 1,000 in one request, a
/// POST object_store does not retry when its answer is lost), again while
/// that is what failed: deleting is idempotent.
async fn delete_chunk(
    inner: ObjectStoreRef,
    retry: RetryConfig,
    chunk: Vec<Result<Path>>,
) -> Vec<Result<Path>> {
    let mut out = Vec::new();
    let mut paths = Vec::new();
    for location in chunk {
        match location {
            Ok(p) => paths.push(p),
            Err(e) => out.push(Err(e)),
        }
    }
    let start = Instant::now();
    let mut attempt = 0u32;
    loop {
        let results: Vec<Result<Path>> = inner
            .delete_stream(futures::stream::iter(paths.clone().into_iter().map(Ok)).boxed())
            .collect()
            .await;
        let lost = results.iter().any(|r| matches!(r, Err(e) if unanswered(e)));
        if lost && (attempt as usize) < retry.max_retries && start.elapsed() < retry.retry_timeout {
            attempt += 1;
            let wait = backoff(&retry, attempt);
            tracing::info!(
                objects = paths.len(),
                attempt,
                "a delete went unanswered: retrying in {wait:?}"
            );
            tokio::time::sleep(wait).await;
            continue;
        }
        out.extend(results);
        return out;
    }
}

/// A multipart upload whose completion is settled as the module docs say.
#[derive(Debug)]
struct Upload {
    inner: Box<dyn MultipartUpload>,
    store: ObjectStoreRef,
    location: Path,
    size: u64,
}

#[async_trait]
impl MultipartUpload for Upload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.size += data.content_length() as u64;
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        match self.inner.complete().await {
            Ok(r) => Ok(r),
            Err(e) => match self.store.head(&self.location).await {
                // Completed by the attempt whose answer was lost: the object
                // is there, as large as the parts sent. (Every multipart
                // upload here writes a fresh name, a data file's uuid, so an
                // older object of that name and size is not to be feared.)
                Ok(meta) if meta.size == self.size => {
                    tracing::info!(location = %self.location, error = %e, "a multipart upload whose completion went unanswered is complete");
                    Ok(PutResult {
                        e_tag: meta.e_tag,
                        version: meta.version,
                    })
                }
                _ => Err(e),
            },
        }
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An in-memory store whose first `lose` create-if-absent writes are
    /// applied and then answered with a broken connection, as over a flaky
    /// network; deletes likewise.
    #[derive(Debug, Default)]
    struct Lossy {
        inner: InMemory,
        lose: AtomicUsize,
        calls: AtomicUsize,
    }

    impl std::fmt::Display for Lossy {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Lossy")
        }
    }

    fn broken() -> object_store::Error {
        object_store::Error::Generic {
            store: "Lossy",
            source: Box::new(HttpError::new(
                HttpErrorKind::Interrupted,
                std::io::Error::from(std::io::ErrorKind::ConnectionReset),
            )),
        }
    }

    impl Lossy {
        fn lost(&self) -> bool {
            self.lose
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        }
    }

    #[async_trait]
    impl ObjectStore for Lossy {
        async fn put_opts(&self, l: &Path, p: PutPayload, o: PutOptions) -> Result<PutResult> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let r = self.inner.put_opts(l, p, o).await;
            if r.is_ok() && self.lost() {
                return Err(broken());
            }
            r
        }
        async fn put_multipart_opts(
            &self,
            l: &Path,
            o: PutMultipartOptions,
        ) -> Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(l, o).await
        }
        async fn get_opts(&self, l: &Path, o: GetOptions) -> Result<GetResult> {
            self.inner.get_opts(l, o).await
        }
        fn delete_stream(
            &self,
            locations: BoxStream<'static, Result<Path>>,
        ) -> BoxStream<'static, Result<Path>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let lost = self.lost();
            let deleted = self.inner.delete_stream(locations);
            if lost {
                deleted
                    .collect::<Vec<_>>()
                    .map(|_| futures::stream::iter(vec![Err(broken())]))
                    .flatten_stream()
                    .boxed()
            } else {
                deleted
            }
        }
        fn list(&self, p: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
            self.inner.list(p)
        }
        async fn list_with_delimiter(&self, p: Option<&Path>) -> Result<ListResult> {
            self.inner.list_with_delimiter(p).await
        }
        async fn copy_opts(&self, f: &Path, t: &Path, o: CopyOptions) -> Result<()> {
            self.inner.copy_opts(f, t, o).await
        }
    }

    use futures::FutureExt;

    fn quick() -> RetryConfig {
        RetryConfig {
            backoff: object_store::BackoffConfig {
                init_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(5),
                base: 2.0,
            },
            max_retries: 3,
            retry_timeout: Duration::from_secs(5),
        }
    }

    fn create() -> PutOptions {
        PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_create_whose_answer_was_lost_is_its_own_not_a_conflict() {
        let lossy = Arc::new(Lossy::default());
        lossy.lose.store(1, Ordering::SeqCst);
        let store = Resilient::new(lossy.clone(), quick());
        let at = Path::from("t/_delta_log/00000000000000000001.json");
        // Applied, answer lost, tried again: the store holds its bytes.
        store
            .put_opts(&at, PutPayload::from("commit A"), create())
            .await
            .unwrap();
        assert_eq!(lossy.calls.load(Ordering::SeqCst), 2);
        // Another writer's object of that name is a conflict, as before.
        let other = store
            .put_opts(&at, PutPayload::from("commit B"), create())
            .await
            .unwrap_err();
        assert!(
            matches!(other, object_store::Error::AlreadyExists { .. }),
            "{other}"
        );
        let held = store.get(&at).await.unwrap().bytes().await.unwrap();
        assert_eq!(&held[..], b"commit A");
        // Without the wrapper, the same lost answer is an error.
        lossy.lose.store(1, Ordering::SeqCst);
        let bare = Path::from("t/_delta_log/00000000000000000002.json");
        let e = lossy
            .put_opts(&bare, PutPayload::from("commit C"), create())
            .await
            .unwrap_err();
        assert!(unanswered(&e), "{e}");
    }

    #[tokio::test]
    async fn retries_are_bounded() {
        let lossy = Arc::new(Lossy::default());
        lossy.lose.store(100, Ordering::SeqCst);
        let store = Resilient::new(lossy.clone(), quick());
        let at = Path::from("_stmon/run.lock");
        // Each attempt is applied and answered with a reset; the second
        // meets the object and reads it back as its own.
        store
            .put_opts(&at, PutPayload::from("lock"), create())
            .await
            .unwrap();
        assert_eq!(lossy.calls.load(Ordering::SeqCst), 2);
        // A delete whose answer is always lost: 1 + max_retries attempts.
        lossy.calls.store(0, Ordering::SeqCst);
        let e = store.delete(&at).await.unwrap_err();
        assert!(unanswered(&e), "{e}");
        assert_eq!(lossy.calls.load(Ordering::SeqCst), 4);
        // A delete whose answer is lost once is done.
        lossy.lose.store(0, Ordering::SeqCst);
        store.put(&at, PutPayload::from("x")).await.unwrap();
        lossy.lose.store(1, Ordering::SeqCst);
        store.delete(&at).await.unwrap();
        assert!(matches!(
            store.head(&at).await,
            Err(object_store::Error::NotFound { .. })
        ));
    }
}
