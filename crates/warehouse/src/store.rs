//! The object store behind `file://` tables: `object_store`'s
//! `LocalFileSystem` with a cheaper listing of a Delta log from an offset.
//!
//! Opening a Delta table lists its `_delta_log` folder from the last
//! checkpoint (`list_with_offset`), and so does each commit and each
//! refresh of an open table. A local folder can only be read whole, so
//! each of these listings cost more with every commit the table ever had
//! (stmon keeps every log entry, see [`crate::tables::commit_properties`]):
//! after 1,000 small batches a log folder holds over 2,000 entries, a small
//! batch lists its three tables' folders about twenty times, and the
//! listings were half of what such a batch took more than one after 10.
//! So [`LocalStore`] answers in two ways:
//!
//! 1. **A Delta log from a version** (the prefix is a `_delta_log` folder
//!    and the offset's name starts with a 20-digit version): it looks the
//!    log's files up by name, version after version from the offset's
//!    (`{v}.checkpoint.parquet`, `{v}.crc`, `{v}.json`), and stops at the
//!    first version after it without a commit (Delta's commits are
//!    numbered without gaps); from the version after the newest commit,
//!    nothing. That costs three lookups per version since
//!    the offset, however long the table's history. It answers with those
//!    versioned files only: the names Delta readers ignore in a listing
//!    (`_last_checkpoint`, which they read on its own, and
//!    `LocalFileSystem`'s staging files of an upload) are left out.
//! 2. **Any other folder** (or a log the first way steps aside from): it
//!    reads the folder's names, compares them with the offset as strings
//!    (`LocalFileSystem` turns every entry into an object path, a URL
//!    conversion with percent-encoding, before it compares), and builds
//!    object metadata only for the entries after it.
//!
//! The first way steps aside to the second whenever the log may hold
//! versioned files it does not look for: a checkpoint in parts or a V2
//! checkpoint named by `_last_checkpoint`, staged commits of a
//! catalog-managed table (`_staged_commits/`), no file at the offset's
//! version and no commit just before it, or more than [`PROBED_VERSIONS`] versions to
//! look at (a listing from the start of a long log: reading the folder is
//! then cheaper). stmon's own tables hold commits and single-file
//! checkpoints only (delta-rs writes nothing else). The second way steps
//! aside, handing the call to `LocalFileSystem` unchanged, whenever it might
//! answer differently: a prefix or a name that object paths would escape,
//! or a folder with a subfolder (`LocalFileSystem` lists recursively).
//! Everything else is `LocalFileSystem`'s own code.

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

/// The most versions [`list_log_after`] looks up before it leaves the
/// listing to [`list_folder_after`]. A table opened from its last checkpoint
/// lists at most [`crate::maintain::CHECKPOINT_EVERY`] versions or so.
pub const PROBED_VERSIONS: u64 = 64;

/// The versioned files of the Delta log `prefix` after `offset`, looked up
/// by name (see the module docs), or None when this way does not apply.
fn list_log_after(prefix: &Path, offset: &Path) -> Option<Vec<Result<ObjectMeta>>> {
    let prefix_str = prefix.as_ref();
    if prefix_str.rsplit('/').next() != Some("_delta_log") || !prefix_str.split('/').all(plain) {
        return None;
    }
    let offset_name = offset
        .as_ref()
        .strip_prefix(prefix_str)?
        .strip_prefix('/')?;
    let digits = offset_name.get(..20)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let first: u64 = digits.parse().ok()?;
    let folder = std::path::PathBuf::from(format!("/{prefix_str}"));
    // Versioned files this way does not look for.
    if std::fs::symlink_metadata(folder.join("_staged_commits")).is_ok() {
        return None;
    }
    match std::fs::read_to_string(folder.join("_last_checkpoint")) {
        Ok(hint) if hint.contains("\"parts\"") || hint.contains("\"v2Checkpoint\"") => return None,
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return None,
        _ => {}
    }
    let mut after = Vec::new();
    for version in first..first.saturating_add(PROBED_VERSIONS) {
        let mut commit = false;
        let mut any = false;
        for suffix in ["checkpoint.parquet", "crc", "json"] {
            let name = format!("{version:020}.{suffix}");
            let path = folder.join(&name);
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_file() => {
                    any = true;
                    commit |= suffix == "json";
                    if name.as_str() > offset_name {
                        after.push(Ok(meta(Path::from(format!("{prefix_str}/{name}")), &m)));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                // A folder or a link where a log file belongs, or an error
                // reading it: reading the folder answers as LocalFileSystem.
                _ => return None,
            }
        }
        if version == first && !any {
            // Nothing at the offset's version: past the newest commit when
            // the one before is there (nothing new); otherwise a listing
            // from before the log's first file, or a log this way does not
            // know.
            let previous = first
                .checked_sub(1)
                .map(|v| folder.join(format!("{v:020}.json")));
            return match previous.map(std::fs::symlink_metadata) {
                Some(Ok(m)) if m.file_type().is_file() => Some(after),
                _ => None,
            };
        }
        if version > first && !commit {
            return Some(after);
        }
    }
    None
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
            let listed = tokio::task::spawn_blocking(move || {
                list_log_after(&prefix, &offset).or_else(|| list_folder_after(&prefix, &offset))
            })
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

    fn answered(
        entries: Option<Vec<Result<ObjectMeta>>>,
    ) -> Option<Vec<(String, u64, Option<String>)>> {
        let mut v: Vec<_> = entries?
            .into_iter()
            .map(|m| {
                let m = m.unwrap();
                (m.location.to_string(), m.size, m.e_tag)
            })
            .collect();
        v.sort();
        Some(v)
    }

    /// A name of a Delta log file of some version.
    fn versioned(location: &str) -> bool {
        let name = location.rsplit('/').next().unwrap();
        name.len() > 20 && name.as_bytes()[..20].iter().all(u8::is_ascii_digit)
    }

    #[tokio::test]
    async fn lists_a_folder_from_an_offset_as_local_file_system_does() {
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
            let theirs = listed(&theirs, &prefix, &offset).await;
            assert_eq!(
                answered(list_folder_after(&prefix, &offset)),
                Some(theirs.clone()),
                "from {from}"
            );
            // Through the store: the log's versioned files, looked up by
            // name when the offset names a version.
            let ours = listed(&ours, &prefix, &offset).await;
            if from.starts_with("000") {
                let log: Vec<_> = theirs.into_iter().filter(|e| versioned(&e.0)).collect();
                assert_eq!(ours, log, "from {from}");
                assert!(list_log_after(&prefix, &offset).is_some(), "from {from}");
            } else {
                assert_eq!(ours, theirs, "from {from}");
                assert!(list_log_after(&prefix, &offset).is_none(), "from {from}");
            }
        }
        // Offsets outside the folder: before it (everything) and after it (nothing).
        let table = Path::from_absolute_path(dir.path().join("t")).unwrap();
        for outside in ["_delta_loa", "_delta_loh"] {
            let offset = table.clone().join(outside);
            let a = listed(&ours, &prefix, &offset).await;
            assert_eq!(a, listed(&theirs, &prefix, &offset).await, "from {outside}");
            assert!(list_folder_after(&prefix, &offset).is_some());
        }
        let all = answered(list_folder_after(
            &prefix,
            &prefix.clone().join("00000000000000000019.json"),
        ))
        .unwrap();
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
        let offset = prefix.clone().join("0000000000000000002");
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

    /// Names and sizes of the files a listing through the store answers.
    async fn names(store: &LocalStore, prefix: &Path, from: &str) -> Vec<String> {
        listed(store, prefix, &prefix.clone().join(from))
            .await
            .into_iter()
            .map(|e| e.0.rsplit('/').next().unwrap().to_string())
            .collect()
    }

    #[tokio::test]
    async fn looks_up_a_delta_log_by_version_and_steps_aside_from_what_it_does_not_know() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("t/_delta_log");
        std::fs::create_dir_all(&log).unwrap();
        for v in 0..=12 {
            std::fs::write(log.join(format!("{v:020}.json")), "{}").unwrap();
        }
        std::fs::write(log.join("00000000000000000010.checkpoint.parquet"), "cp").unwrap();
        std::fs::write(log.join("00000000000000000011.crc"), "crc").unwrap();
        std::fs::write(log.join("_last_checkpoint"), r#"{"version":10,"size":3}"#).unwrap();
        // A commit being written by another process (delta-rs's temporary
        // file) and an upload in progress: not log files.
        std::fs::write(log.join("_commit_0a1b.json.tmp"), "{}").unwrap();
        std::fs::write(log.join("00000000000000000013.json#7"), "{}").unwrap();
        let prefix = Path::from_absolute_path(&log).unwrap();
        let store = LocalStore::new();
        let from_checkpoint = [
            "00000000000000000010.checkpoint.parquet",
            "00000000000000000010.json",
            "00000000000000000011.crc",
            "00000000000000000011.json",
            "00000000000000000012.json",
        ];
        assert_eq!(
            names(&store, &prefix, "00000000000000000010").await,
            from_checkpoint
        );
        let offset = prefix.clone().join("00000000000000000010");
        assert!(list_log_after(&prefix, &offset).is_some());
        // From the commit after the checkpoint's: strictly after the offset.
        assert_eq!(
            names(&store, &prefix, "00000000000000000010.json").await,
            from_checkpoint[2..]
        );
        // From the newest version and from past it: the newest, then nothing.
        assert_eq!(
            names(&store, &prefix, "00000000000000000012").await,
            ["00000000000000000012.json"]
        );
        assert!(names(&store, &prefix, "00000000000000000013")
            .await
            .is_empty());
        // The file sizes and e-tags are LocalFileSystem's.
        let theirs = listed(&LocalFileSystem::new(), &prefix, &offset).await;
        let ours = listed(&store, &prefix, &offset).await;
        assert_eq!(
            ours,
            theirs
                .into_iter()
                .filter(|e| versioned(&e.0))
                .collect::<Vec<_>>()
        );

        // A long listing (from version 0 of a log longer than the lookups
        // allowed) is read from the folder, `_last_checkpoint` included.
        for v in 13..=80 {
            std::fs::write(log.join(format!("{v:020}.json")), "{}").unwrap();
        }
        let zero = prefix.clone().join("00000000000000000000");
        assert!(list_log_after(&prefix, &zero).is_none());
        let all = names(&store, &prefix, "00000000000000000000").await;
        assert_eq!(all.len(), 81 + 2 + 2, "{all:?}");
        assert_eq!(all.last().map(String::as_str), Some("_last_checkpoint"));
        assert!(list_log_after(&prefix, &prefix.clone().join("00000000000000000070")).is_some());

        // Nothing at the offset's version (a log whose first versions went):
        // the folder answers.
        std::fs::remove_file(log.join("00000000000000000000.json")).unwrap();
        let zero_listed = names(&store, &prefix, "00000000000000000000").await;
        assert!(list_log_after(&prefix, &zero).is_none());
        assert_eq!(
            zero_listed.first().map(String::as_str),
            Some("00000000000000000001.json")
        );

        // A checkpoint in parts named by `_last_checkpoint`: the folder
        // answers, and the parts are listed.
        for part in 1..=2 {
            std::fs::write(
                log.join(format!(
                    "00000000000000000070.checkpoint.{part:010}.0000000002.parquet"
                )),
                "cp",
            )
            .unwrap();
        }
        std::fs::write(
            log.join("_last_checkpoint"),
            r#"{"version":70,"size":9,"parts":2}"#,
        )
        .unwrap();
        let at = prefix.clone().join("00000000000000000070");
        assert!(list_log_after(&prefix, &at).is_none());
        let listed70 = names(&store, &prefix, "00000000000000000070").await;
        assert!(listed70.contains(
            &"00000000000000000070.checkpoint.0000000001.0000000002.parquet".to_string()
        ));

        // Staged commits of a catalog-managed table: the store steps aside to
        // LocalFileSystem (a subfolder), which lists them.
        std::fs::write(log.join("_last_checkpoint"), r#"{"version":10,"size":3}"#).unwrap();
        assert!(list_log_after(&prefix, &at).is_some());
        std::fs::create_dir_all(log.join("_staged_commits")).unwrap();
        std::fs::write(
            log.join("_staged_commits/00000000000000000081.abc.json"),
            "{}",
        )
        .unwrap();
        assert!(list_log_after(&prefix, &at).is_none());
        assert!(names(&store, &prefix, "00000000000000000070")
            .await
            .contains(&"00000000000000000081.abc.json".to_string()));

        // Not a log folder, or an offset that is no version: not this way.
        let other = Path::from_absolute_path(dir.path().join("t")).unwrap();
        assert!(list_log_after(&other, &other.clone().join("00000000000000000010")).is_none());
        assert!(list_log_after(&prefix, &prefix.clone().join("_last_checkpoint")).is_none());
    }
}
