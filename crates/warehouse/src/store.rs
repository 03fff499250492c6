//! The object store behind `file://` tables: `object_store`'s
//! `LocalFileSystem` with a cheaper listing of a Delta log from an offset.
//!
//! Opening a Delta table lists its `_delta_log` folder from the last
//! checkpoint (`list_with_offset`). `LocalFileSystem` turns every entry of
//! the folder into an object path (a URL conversion with percent-encoding)
//! before it compares it with the offset, so each open cost more with every
//! commit the table ever had: after 1,000 small batches a log folder holds
//! over 2,000 entries and an ingest opens its tables dozens of times.
//! [`LocalStore`] reads the folder's names and compares them with the offset
//! as strings, and builds object metadata only for the entries after it.
//!
//! It steps aside, handing the call to `LocalFileSystem` unchanged, whenever
//! its shortcut might answer differently: a prefix or a name that object
//! paths would escape, or a folder with a subfolder (`LocalFileSystem` lists
//! recursively). Everything else is `LocalFileSystem`'s own code.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use deltalake::logstore::{
    object_store_factories, ObjectStoreFactory, ObjectStoreRef, StorageConfig,
};
use deltalake::DeltaResult;
use futures::stream::{BoxStream, StreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use url::Url;

/// Registers [`LocalStore`] as delta-rs's store for `file://` URLs (once per
/// process; later calls do nothing).
pub fn register() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let scheme = Url::parse("file://").expect("scheme URL");
        object_store_factories().insert(scheme, Arc::new(LocalFactory));
    });
}

/// delta-rs's factory for `file://` URLs, building a [`LocalStore`].
struct LocalFactory;

impl ObjectStoreFactory for LocalFactory {
    fn parse_url_opts(
        &self,
        url: &Url,
        config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, Path)> {
        // As delta-rs's default factory: a store rooted at `/`, the URL's
        // path inside it, and its I/O runtime when one is configured.
        let path = Path::from_url_path(url.path()).map_err(object_store::Error::from)?;
        let mut store: ObjectStoreRef = Arc::new(LocalStore::new());
        if let Some(runtime) = &config.runtime {
            store = Arc::new(deltalake::logstore::DeltaIOStorageBackend::new(
                store,
                runtime.clone(),
            ));
        }
        Ok((store, path))
    }
}

/// `LocalFileSystem` rooted at `/`, with [`LocalStore::list_with_offset`]
/// answered from the folder's names.
#[derive(Debug)]
pub struct LocalStore {
    inner: LocalFileSystem,
}

impl LocalStore {
    pub fn new() -> Self {
        LocalStore {
            inner: LocalFileSystem::new(),
        }
    }
}

impl Default for LocalStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalStore({})", self.inner)
    }
}

/// A name that an object path holds as it is (no percent-encoding).
fn plain(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `LocalFileSystem`'s staging file of an upload in progress: `name#123`.
/// Its listings skip these.
fn staging(name: &str) -> bool {
    match name.split_once('#') {
        Some((stem, n)) => plain(stem) && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// The entries after `offset` of the folder `prefix`, in name order, or
/// None when the shortcut does not apply and `LocalFileSystem` must answer.
fn list_folder_after(prefix: &Path, offset: &Path) -> Option<Vec<Result<ObjectMeta>>> {
    let prefix_str = prefix.as_ref();
    if prefix_str.is_empty() || !prefix_str.split('/').all(plain) {
        return None;
    }
    let folder = std::path::PathBuf::from(format!("/{prefix_str}"));
    let offset = offset.as_ref();
    // Every location is `prefix/name`: comparing the names with the
    // offset's own name is comparing the locations, without building one
    // per entry (a log folder holds an entry per commit ever made).
    let offset_name = offset
        .strip_prefix(prefix_str)
        .and_then(|rest| rest.strip_prefix('/'));
    let mut after = Vec::new();
    for entry in std::fs::read_dir(&folder).ok()? {
        let entry = entry.ok()?;
        let file_type = entry.file_type().ok()?;
        if !file_type.is_file() {
            // A subfolder (listed recursively) or a link: not ours to answer.
            return None;
        }
        let name = entry.file_name();
        let name = name.to_str()?;
        if staging(name) {
            continue;
        }
        if !plain(name) {
            return None;
        }
        let is_after = match offset_name {
            Some(o) => name > o,
            None => format!("{prefix_str}/{name}").as_str() > offset,
        };
        if is_after {
            after.push((format!("{prefix_str}/{name}"), entry.path()));
        }
    }
    after.sort();
    Some(
        after
            .into_iter()
            .filter_map(|(location, path)| match std::fs::metadata(&path) {
                Ok(m) => Some(Ok(meta(Path::from(location), &m))),
                // Deleted since it was listed, as LocalFileSystem skips it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => Some(Err(object_store::Error::Generic {
                    store: "LocalStore",
                    source: Box::new(e),
                })),
            })
            .collect(),
    )
}

/// Object metadata as `LocalFileSystem` builds it (the same e-tag).
fn meta(location: Path, m: &std::fs::Metadata) -> ObjectMeta {
    use std::os::unix::fs::MetadataExt;
    let modified = m.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH);
    let micros = modified
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    ObjectMeta {
        location,
        last_modified: modified.into(),
        size: m.len(),
        e_tag: Some(format!("{:x}-{:x}-{:x}", m.ino(), micros, m.len())),
        version: None,
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
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
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let Some(prefix) = prefix.cloned() else {
            return self.inner.list_with_offset(None, offset);
        };
        let inner = self.inner.list_with_offset(Some(&prefix), offset);
        let offset = offset.clone();
        futures::stream::once(async move {
            let listed = tokio::task::spawn_blocking(move || list_folder_after(&prefix, &offset))
                .await
                .ok()
                .flatten();
            match listed {
                Some(entries) => futures::stream::iter(entries).boxed(),
                None => inner,
            }
        })
        .flatten()
        .boxed()
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    async fn listed(
        store: &dyn ObjectStore,
        prefix: &Path,
        offset: &Path,
    ) -> Vec<(String, u64, Option<String>)> {
        let mut v: Vec<_> = store
            .list_with_offset(Some(prefix), offset)
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.location.to_string(), m.size, m.e_tag))
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn lists_from_an_offset_as_local_file_system_does() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("t/_delta_log");
        std::fs::create_dir_all(&log).unwrap();
        for v in 0..25 {
            std::fs::write(log.join(format!("{v:020}.json")), "x".repeat(v)).unwrap();
        }
        std::fs::write(log.join("00000000000000000020.checkpoint.parquet"), "cp").unwrap();
        std::fs::write(log.join("_last_checkpoint"), "{}").unwrap();
        // An upload in progress: skipped by both.
        std::fs::write(log.join("00000000000000000025.json#1"), "partial").unwrap();
        let prefix = Path::from_absolute_path(&log).unwrap();
        let ours = LocalStore::new();
        let theirs = LocalFileSystem::new();
        for from in [
            "00000000000000000000",
            "00000000000000000020",
            "00000000000000000024.json",
            "_last_checkpoint",
            "zzz",
        ] {
            let offset = prefix.clone().join(from);
            let a = listed(&ours, &prefix, &offset).await;
            assert_eq!(a, listed(&theirs, &prefix, &offset).await, "from {from}");
            // The shortcut answered, not the fallback.
            assert!(list_folder_after(&prefix, &offset).is_some());
        }
        // Offsets outside the folder: before it (everything) and after it (nothing).
        let table = Path::from_absolute_path(dir.path().join("t")).unwrap();
        for outside in ["_delta_loa", "_delta_loh"] {
            let offset = table.clone().join(outside);
            let a = listed(&ours, &prefix, &offset).await;
            assert_eq!(a, listed(&theirs, &prefix, &offset).await, "from {outside}");
            assert!(list_folder_after(&prefix, &offset).is_some());
        }
        let all = listed(
            &ours,
            &prefix,
            &prefix.clone().join("00000000000000000019.json"),
        )
        .await;
        let names: Vec<String> = all
            .iter()
            .map(|e| e.0.rsplit('/').next().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "00000000000000000020.checkpoint.parquet",
                "00000000000000000020.json",
                "00000000000000000021.json",
                "00000000000000000022.json",
                "00000000000000000023.json",
                "00000000000000000024.json",
                "_last_checkpoint",
            ]
        );
        assert_eq!(all[1].1, 20, "sizes come from the files");
        // A folder with a subfolder and a name with a space: LocalFileSystem
        // answers, recursively, so the answers agree there too.
        std::fs::create_dir_all(log.join("sub")).unwrap();
        std::fs::write(log.join("sub/00000000000000000030.json"), "s").unwrap();
        std::fs::write(log.join("a name.json"), "s").unwrap();
        let offset = prefix.clone().join("00000000000000000023.json");
        assert!(list_folder_after(&prefix, &offset).is_none());
        let a = listed(&ours, &prefix, &offset).await;
        assert_eq!(a, listed(&theirs, &prefix, &offset).await);
        assert!(a
            .iter()
            .any(|e| e.0.ends_with("sub/00000000000000000030.json")));
        std::fs::remove_dir_all(log.join("sub")).unwrap();
        assert!(
            list_folder_after(&prefix, &offset).is_none(),
            "a name with a space"
        );
        assert_eq!(
            listed(&ours, &prefix, &offset).await,
            listed(&theirs, &prefix, &offset).await
        );
    }
}
