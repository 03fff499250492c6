//! Opening and creating the warehouse's Delta tables.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::StructType;
use deltalake::DeltaTable;
use stmon_schema::Catalog;
use url::Url;

use crate::{Error, Result};

/// Memory for deciding the superseded versions of a whole form at once (a
/// spilling sort, as the checks after loading).
const DECIDE_MEMORY: usize = 512 << 20;

/// A table of the warehouse: `<layer>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId {
    pub layer: String,
    pub name: String,
}

impl TableId {
    pub fn new(layer: &str, name: &str) -> Self {
        TableId {
            layer: layer.into(),
            name: name.into(),
        }
    }
}

impl TableId {
    /// `audit/superseded_<form>`: the versions of a form's keys that
    /// `current.<form>` does not show (see [`crate::session`]).
    pub fn superseded(form: &str) -> Self {
        TableId::new("audit", &format!("superseded_{form}"))
    }

    /// The name a session registers the physical table under:
    /// `delta.<layer>_<name>`.
    pub fn session_name(&self) -> String {
        format!("delta.{}_{}", self.layer, self.name)
    }

    /// Whether this is a form's superseded table.
    pub fn is_superseded(&self) -> bool {
        self.layer == "audit" && self.name.starts_with("superseded_")
    }
}

impl std::fmt::Display for TableId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.layer, self.name)
    }
}

/// The warehouse: a root URL and the forms it holds.
#[derive(Debug, Clone)]
pub struct Warehouse {
    pub root: Url,
    pub catalog: Arc<Catalog>,
    /// Read tables at these versions (a snapshot a run published) instead of
    /// their latest; tables not named are read at their latest. Never write
    /// through a pinned warehouse.
    pub pins: Option<Arc<BTreeMap<TableId, u64>>>,
    /// The tables one batch has open (see [`Warehouse::for_one_batch`]);
    /// `None`: every [`Warehouse::table`] reads the table's log.
    handles: Option<Handles>,
    /// Where sessions run their queries ([`crate::Engine`]).
    pub(crate) engine: crate::Engine,
    /// Object-store options for every table and object of the warehouse
    /// ([`Warehouse::with_storage_options`]).
    storage: Arc<HashMap<String, String>>,
}

/// Open tables by id, each at the version it was read at (a write of the
/// batch to a table drops its handle).
type Handles = Arc<Mutex<HashMap<TableId, DeltaTable>>>;

/// How every Parquet file of the warehouse is written, given its schema:
/// zstd (level 3) instead of delta-rs's snappy, about a third smaller on the
/// raw tables (national enterprise_rd: decimals and the row hash make most
/// of the bytes), and no dictionary for the row hash, which never repeats.
///
/// Row groups of 128 Ki rows, not parquet's 1 Mi: a writer holds its file's
/// open row group in memory, and a partitioned write holds one per partition
/// (a national model by credit province: 31 partitions of ~370 k rows, each one
/// open row group — the whole table — until the end).
///
/// Row numbers (`_row_number`, `source_row`) are delta-encoded
/// (`DELTA_BINARY_PACKED`, no dictionary): consecutive numbers cost a few
/// bits each instead of a dictionary index (national raw.enterprise_rd:
/// 33.5 MiB as a dictionary).
///
/// Amounts stay plain: `BYTE_STREAM_SPLIT` would make the `Decimal(38, 4)`
/// columns 24 % smaller, but DuckDB (1.4) reads that encoding only for
/// floats, and analysts read these files with DuckDB.
pub fn writer_properties_for(
    schema: &arrow::datatypes::Schema,
) -> deltalake::parquet::file::properties::WriterProperties {
    use deltalake::parquet::basic::{Compression, Encoding, ZstdLevel};
    use deltalake::parquet::schema::types::ColumnPath;
    let mut b = deltalake::parquet::file::properties::WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("zstd level 3"),
        ))
        .set_column_dictionary_enabled(ColumnPath::from("_row_hash"), false)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS));
    for f in schema.fields() {
        let numbers_rows = ROW_NUMBER_COLUMNS.contains(&f.name().as_str())
            && matches!(f.data_type(), DataType::Int32 | DataType::Int64);
        if numbers_rows {
            let path = || ColumnPath::from(f.name().as_str());
            b = b
                .set_column_dictionary_enabled(path(), false)
                .set_column_encoding(path(), Encoding::DELTA_BINARY_PACKED);
        }
    }
    b.build()
}

/// The commit properties of every stmon commit: delta-rs's post-commit
/// cleanup of expired log entries is off.
///
/// delta-rs's commit hook may delete the log entries older than
/// `delta.logRetentionDuration` (30 days) that precede a checkpoint
/// (`delta.enableExpiredLogCleanup` defaults to true). stmon reads old
/// versions on purpose: an assessment's `source_version`, a run's pinned
/// snapshot (`SET stmon.run`), the version before a compaction; a version
/// whose log entries are gone can no longer be read. So no stmon commit
/// leaves that to delta-rs's defaults. A warehouse that must shed old log
/// entries does so deliberately (delta-rs's `cleanup_metadata`), knowing
/// which versions go.
pub fn commit_properties() -> deltalake::kernel::transaction::CommitProperties {
    deltalake::kernel::transaction::CommitProperties::default()
        .with_cleanup_expired_logs(Some(false))
}

/// `delta.deletedFileRetentionDuration` of every stmon table: zero.
///
/// A removed file's tombstone (its `remove` action) is kept in log
/// checkpoints for this long; it serves only VACUUM, to tell which
/// unreferenced files may go. stmon never vacuums: every version stays
/// readable (see [`commit_properties`]), and compaction's old files stay on
/// disk. Kept for delta-rs's default week, a table compacted every few
/// small batches carried hundreds of tombstones in every checkpoint, read
/// at every open. Whoever vacuums a stmon warehouse with another tool must
/// give the retention explicitly, knowing which versions it will break.
pub const TOMBSTONE_RETENTION: &str = "interval 0 seconds";

/// The table properties stmon sets on its tables (see [`TOMBSTONE_RETENTION`]).
pub fn table_configuration() -> std::collections::HashMap<String, String> {
    [(
        deltalake::TableProperty::DeletedFileRetentionDuration
            .as_ref()
            .to_string(),
        TOMBSTONE_RETENTION.to_string(),
    )]
    .into()
}

/// Columns that number rows within a file: ascending, so delta-encoded.
const ROW_NUMBER_COLUMNS: [&str; 2] = ["_row_number", "source_row"];

/// Rows per Parquet row group (see [`writer_properties_for`]).
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

fn ts_utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Schema of `audit/quarantine` and `audit/warnings`.
pub fn diagnostics_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("batch_id", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("sha256", DataType::Utf8, false),
        Field::new("form", DataType::Utf8, true),
        Field::new("row_number", DataType::Int64, true),
        Field::new("column", DataType::Utf8, true),
        Field::new("raw_value", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, false),
        Field::new("recorded_at", ts_utc(), false),
    ]))
}

/// Schema of `audit/batches`: one row per file of a committed batch.
pub fn batches_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("batch_id", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("sha256", DataType::Utf8, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("encoding", DataType::Utf8, true),
        Field::new("form", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, true),
        Field::new("rows_read", DataType::Int64, false),
        Field::new("rows_accepted", DataType::Int64, false),
        Field::new("rows_corrected", DataType::Int64, false),
        Field::new("rows_rejected", DataType::Int64, false),
        Field::new("warnings", DataType::Int64, false),
        Field::new("started_at", ts_utc(), false),
        Field::new("committed_at", ts_utc(), false),
    ]))
}

impl Warehouse {
    /// Opens (creating if needed) the warehouse at a URL (`s3://bucket/prefix`,
    /// `file:///…`) or a local path.
    pub fn open(location: &str, catalog: Arc<Catalog>) -> Result<Self> {
        let err = |message: String| Error::Location {
            location: location.into(),
            message,
        };
        let root = match Url::parse(location) {
            Ok(u) if u.scheme().len() > 1 => u,
            _ => {
                let p = std::path::Path::new(location);
                std::fs::create_dir_all(p).map_err(|e| err(e.to_string()))?;
                let abs = p.canonicalize().map_err(|e| err(e.to_string()))?;
                Url::from_directory_path(&abs).map_err(|_| err("not an absolute path".into()))?
            }
        };
        if root.scheme() == "file" {
            crate::store::register();
        } else {
            crate::resilient::register(root.scheme());
        }
        let mut root = root;
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        Ok(Warehouse {
            root,
            catalog,
            pins: None,
            handles: None,
            engine: crate::Engine::Local,
            storage: Arc::default(),
        })
    }

    /// Object-store options (`KEY=VALUE`) for every table and object of the
    /// warehouse and its inbox: delta-rs's and object_store's keys, e.g.
    /// `max_retries=3`, `retry_timeout=30s`, `backoff_config.init_backoff=50ms`,
    /// `timeout=60s`, `aws_region=…`. Values are checked here; a key neither
    /// knows is refused.
    pub fn with_storage_options(mut self, options: &[String]) -> Result<Self> {
        let bad = |option: &str, message: String| Error::StorageOption {
            option: option.into(),
            message,
        };
        let mut map = HashMap::new();
        for option in options {
            let (key, value) = option
                .split_once('=')
                .ok_or_else(|| bad(option, "expected KEY=VALUE".into()))?;
            map.insert(key.trim().to_string(), value.trim().to_string());
        }
        let config = deltalake::logstore::StorageConfig::parse_options(map.clone())
            .map_err(|e| bad(&options.join(","), e.to_string()))?;
        for key in config.unknown_properties.keys() {
            let lower = key.to_ascii_lowercase();
            let s3 = <object_store::aws::AmazonS3ConfigKey as std::str::FromStr>::from_str(&lower)
                .is_ok();
            let client =
                <object_store::ClientConfigKey as std::str::FromStr>::from_str(&lower).is_ok();
            if !(s3 || client || lower.starts_with("aws_")) {
                return Err(bad(
                    key,
                    "not an object-store option (retry: max_retries, retry_timeout, \
                     backoff_config.init_backoff/max_backoff/base; client: timeout, \
                     connect_timeout, …; S3: aws_…)"
                        .into(),
                ));
            }
        }
        self.storage = Arc::new(map);
        Ok(self)
    }

    /// The options [`Warehouse::with_storage_options`] set.
    pub fn storage_options(&self) -> &HashMap<String, String> {
        &self.storage
    }

    pub fn table_url(&self, id: &TableId) -> Url {
        self.root
            .join(&format!("{}/{}/", id.layer, id.name))
            .expect("valid table path")
    }

    /// Every table the ingest layer owns, with its schema.
    pub fn ingest_tables(&self) -> BTreeMap<TableId, SchemaRef> {
        let mut t = BTreeMap::new();
        for form in self.catalog.forms.values() {
            t.insert(
                TableId::new("raw", &form.name),
                stmon_ingest::raw_schema(form),
            );
            t.insert(
                TableId::superseded(&form.name),
                crate::checks::superseded_schema(form),
            );
        }
        t.insert(TableId::new("audit", "quarantine"), diagnostics_schema());
        t.insert(TableId::new("audit", "warnings"), diagnostics_schema());
        t.insert(TableId::new("audit", "batches"), batches_schema());
        t
    }

    /// Opens a table at its latest version (or an uninitialised handle).
    pub async fn table(&self, id: &TableId) -> Result<DeltaTable> {
        if let Some(table) = self.kept(id) {
            return Ok(table);
        }
        let url = self.table_url(id);
        if url.scheme() == "file" {
            if let Ok(p) = url.to_file_path() {
                std::fs::create_dir_all(&p).map_err(|source| Error::Io {
                    path: p.clone(),
                    source,
                })?;
            }
        }
        let delta = |source| Error::Delta {
            table: id.to_string(),
            source,
        };
        let mut table =
            DeltaTable::try_from_url_with_storage_options(url, self.storage.as_ref().clone())
                .await
                .map_err(delta)?;
        if let Some(v) = self.pins.as_ref().and_then(|p| p.get(id)) {
            table.load_version(*v as _).await.map_err(delta)?;
        }
        self.keep(id, &table);
        Ok(table)
    }

    /// Copies every .csv/.xlsx object under an object-store prefix into a
    /// local folder (keeping the relative paths). Returns how many.
    pub async fn download_prefix(&self, prefix: &str, to: &std::path::Path) -> Result<usize> {
        use futures::TryStreamExt;
        use object_store::ObjectStoreExt;
        let err = |m: String| Error::Location {
            location: prefix.into(),
            message: m,
        };
        let mut url = Url::parse(prefix).map_err(|e| err(e.to_string()))?;
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        let store = self.store_at(url, prefix)?;
        let objects: Vec<object_store::ObjectMeta> = store
            .list(None)
            .try_collect()
            .await
            .map_err(|e| err(e.to_string()))?;
        let mut n = 0;
        for meta in objects {
            let rel = meta.location.as_ref().to_string();
            let lower = rel.to_lowercase();
            if !(lower.ends_with(".csv") || lower.ends_with(".xlsx")) {
                continue;
            }
            let bytes = store
                .get(&meta.location)
                .await
                .map_err(|e| err(format!("{rel}: {e}")))?
                .bytes()
                .await
                .map_err(|e| err(format!("{rel}: {e}")))?;
            let target = to.join(&rel);
            if let Some(d) = target.parent() {
                std::fs::create_dir_all(d).map_err(|e| err(format!("{}: {e}", d.display())))?;
            }
            std::fs::write(&target, &bytes)
                .map_err(|e| err(format!("{}: {e}", target.display())))?;
            n += 1;
        }
        Ok(n)
    }

    /// The same warehouse, read at a snapshot (see [`Warehouse::pins`]).
    pub fn pinned(&self, pins: BTreeMap<TableId, u64>) -> Warehouse {
        Warehouse {
            pins: Some(Arc::new(pins)),
            handles: None,
            ..self.clone()
        }
    }

    /// The same warehouse for the span of one batch: a table's log is read
    /// at its first use and the handle kept for every later read (the
    /// checks' session, upkeep) until the batch writes to the table (an
    /// append, a delete of `recover`, a compaction), after which the next
    /// use reads the log again. Reading it at every use cost a listing of
    /// its log folder and a replay of its commits since the last
    /// checkpoint, about twenty times a small batch; now about six.
    ///
    /// A table another process commits to meanwhile is seen at the version
    /// first read: the same as a batch that read it once. Delta's commit
    /// protocol still orders this batch's commits after the other's; what
    /// keeps two ingests of one warehouse apart is the run lock, not this.
    pub fn for_one_batch(&self) -> Warehouse {
        Warehouse {
            handles: (self.pins.is_none()).then(Default::default),
            ..self.clone()
        }
    }

    /// The kept handle of a table, if this is a batch's warehouse.
    fn kept(&self, id: &TableId) -> Option<DeltaTable> {
        let handles = self.handles.as_ref()?;
        handles.lock().expect("handles").get(id).cloned()
    }

    /// Drops a table's kept handle after the batch wrote to it: the next
    /// use reads the log again. (Keeping the handle a write returns made a
    /// national first load 5 % slower, 187 → 198 s: the checks' scan and
    /// the next appends over a snapshot updated commit by commit.)
    pub(crate) fn forget(&self, id: &TableId) {
        if let Some(handles) = &self.handles {
            handles.lock().expect("handles").remove(id);
        }
    }

    /// Keeps a table's handle (of a created table) for the rest of the batch.
    fn keep(&self, id: &TableId, table: &DeltaTable) {
        if let Some(handles) = &self.handles {
            if table.version().is_some() {
                handles
                    .lock()
                    .expect("handles")
                    .insert(id.clone(), table.clone());
            }
        }
    }

    /// Creates missing tables. Creating is idempotent: an existing table is
    /// left alone. A form's superseded table missing beside committed rows (a
    /// warehouse written before those tables existed) is created with every
    /// committed key decided, in the commit that creates it.
    pub async fn ensure_tables(&self) -> Result<()> {
        let all = self.ingest_tables();
        for (id, schema) in all.iter().filter(|(id, _)| !id.is_superseded()) {
            if self.created(id).await? {
                continue;
            }
            let table = self.table(id).await?;
            if table.version().is_some() {
                continue;
            }
            let delta = |source| Error::Delta {
                table: id.to_string(),
                source,
            };
            let st: StructType = schema
                .as_ref()
                .try_into_kernel()
                .map_err(|e| delta(e.into()))?;
            table
                .create()
                .with_table_name(format!("{}_{}", id.layer, id.name))
                .with_columns(st.fields().cloned())
                .with_configuration(table_configuration().into_iter().map(|(k, v)| (k, Some(v))))
                .with_commit_properties(commit_properties())
                .await
                .map_err(delta)?;
            self.forget(id);
        }
        for form in self.catalog.forms.values() {
            let id = TableId::superseded(&form.name);
            if self.created(&id).await? {
                continue;
            }
            let table = self.table(&id).await?;
            if table.version().is_some() {
                continue;
            }
            let rows = self.decide_everything(form).await?;
            tracing::info!(table = %id, rows = rows.iter().map(|b| b.num_rows()).sum::<usize>(), "superseded versions of the committed rows decided");
            let schema = crate::checks::superseded_schema(form);
            let props = writer_properties_for(&schema);
            let empty = arrow::record_batch::RecordBatch::new_empty(schema);
            table
                .write(if rows.is_empty() { vec![empty] } else { rows })
                .with_writer_properties(props)
                .with_table_name(format!("{}_{}", id.layer, id.name))
                .with_save_mode(deltalake::protocol::SaveMode::ErrorIfExists)
                .with_configuration(table_configuration().into_iter().map(|(k, v)| (k, Some(v))))
                .with_commit_properties(commit_properties())
                .await
                .map_err(|source| Error::Delta {
                    table: id.to_string(),
                    source,
                })?;
            self.forget(&id);
        }
        Ok(())
    }

    /// The object store at a URL of this warehouse, without reading anything.
    fn store_at(&self, url: Url, what: &str) -> Result<Arc<dyn object_store::ObjectStore>> {
        deltalake::DeltaTableBuilder::from_url(url)
            .map(|b| b.with_storage_options(self.storage.as_ref().clone()))
            .and_then(|b| b.build_storage())
            .map(|s| s.object_store(None))
            .map_err(|source| Error::Delta {
                table: what.into(),
                source,
            })
    }

    /// The object store at the warehouse's root, for stmon's own objects
    /// under `_stmon/` (the run lock, the batches in flight).
    pub(crate) fn root_store(&self) -> Result<Arc<dyn object_store::ObjectStore>> {
        self.store_at(self.root.clone(), "(warehouse root)")
    }

    /// Whether a table exists, from a HEAD of its first commit or of its
    /// `_last_checkpoint` rather than a read of its log: every batch asks
    /// this of every ingest table. False only means "not known": the caller
    /// then opens the table, once, and decides from its version.
    async fn created(&self, id: &TableId) -> Result<bool> {
        use object_store::ObjectStoreExt;
        let delta = |source| Error::Delta {
            table: id.to_string(),
            source,
        };
        if self.kept(id).is_some() {
            return Ok(true);
        }
        let store = self.store_at(self.table_url(id), &id.to_string())?;
        for marker in [
            "_delta_log/00000000000000000000.json",
            "_delta_log/_last_checkpoint",
        ] {
            match store.head(&object_store::path::Path::from(marker)).await {
                Ok(_) => return Ok(true),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(delta(e.into())),
            }
        }
        Ok(false)
    }

    /// The superseded versions of every committed key of `form`, decided as
    /// of the latest committed batch (none when the form has no rows).
    async fn decide_everything(
        &self,
        form: &stmon_schema::Form,
    ) -> Result<Vec<arrow::record_batch::RecordBatch>> {
        let ctx = self.session_with_memory(DECIDE_MEMORY).await?;
        let latest = crate::batch::query_strings(
            &ctx,
            &format!(
                "select max(_batch_id) from raw.{} having count(*) > 0",
                form.name
            ),
        )
        .await?;
        let Some(decided_in) = latest.into_iter().next() else {
            return Ok(Vec::new());
        };
        let scope = crate::checks::Scope::Everything {
            decided_in: &decided_in,
        };
        Ok(crate::checks::check_form(&ctx, form, scope)
            .await?
            .superseded)
    }

    /// The current Delta version of every ingest table (None = not created).
    pub async fn versions(&self) -> Result<BTreeMap<TableId, Option<u64>>> {
        let mut out = BTreeMap::new();
        for id in self.ingest_tables().into_keys() {
            let v = self.table(&id).await?.version();
            out.insert(id, v);
        }
        Ok(out)
    }

    /// A form's rows as its raw table stores them: without the form's
    /// [`stmon_schema::PruneBy`] column when the table was created before
    /// the form named it (it is then read without skipping files).
    pub(crate) async fn fit_raw(
        &self,
        form: &str,
        batches: Vec<arrow::record_batch::RecordBatch>,
    ) -> Result<Vec<arrow::record_batch::RecordBatch>> {
        let Some(p) = self
            .catalog
            .forms
            .get(form)
            .and_then(|f| f.prune_by.as_ref())
        else {
            return Ok(batches);
        };
        let id = TableId::new("raw", form);
        let table = self.table(&id).await?;
        let state = table.snapshot().map_err(|source| Error::Delta {
            table: id.to_string(),
            source,
        })?;
        if state.schema().contains(&p.name) {
            return Ok(batches);
        }
        Ok(batches
            .into_iter()
            .map(|mut b| {
                if let Ok(i) = b.schema().index_of(&p.name) {
                    b.remove_column(i);
                }
                b
            })
            .collect())
    }

    /// Appends record batches to a table in one Delta commit.
    pub async fn append(
        &self,
        id: &TableId,
        batches: Vec<arrow::record_batch::RecordBatch>,
    ) -> Result<()> {
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(());
        }
        crate::checkpoint::checkpoint(&format!("before append {id}"));
        let table = self.table(id).await?;
        let props = writer_properties_for(&batches[0].schema());
        table
            .write(batches)
            .with_writer_properties(props)
            .with_save_mode(deltalake::protocol::SaveMode::Append)
            .with_commit_properties(commit_properties())
            .await
            .map_err(|source| Error::Delta {
                table: id.to_string(),
                source,
            })?;
        self.forget(id);
        crate::checkpoint::checkpoint(&format!("after append {id}"));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use deltalake::parquet::arrow::ArrowWriter;
    use deltalake::parquet::basic::Encoding;

    /// Row numbers are written delta-encoded without a dictionary; other
    /// columns keep the dictionary; the values read back unchanged.
    #[test]
    fn row_numbers_are_delta_encoded_and_read_back() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("_row_number", DataType::Int64, false),
            Field::new("county_code", DataType::Utf8, false),
        ]));
        let n = 10_000;
        let numbers = Int64Array::from_iter_values(1..=n);
        let counties = StringArray::from_iter_values((0..n).map(|i| format!("3306{:02}", i % 7)));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(numbers), Arc::new(counties)])
                .unwrap();
        let file = tempfile::tempfile().unwrap();
        let props = super::writer_properties_for(&schema);
        let mut w = ArrowWriter::try_new(file.try_clone().unwrap(), schema, Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let encodings = |c: usize| -> Vec<Encoding> {
            reader
                .metadata()
                .row_group(0)
                .column(c)
                .encodings()
                .collect()
        };
        assert!(
            encodings(0).contains(&Encoding::DELTA_BINARY_PACKED),
            "{:?}",
            encodings(0)
        );
        assert!(
            !encodings(0).contains(&Encoding::RLE_DICTIONARY),
            "{:?}",
            encodings(0)
        );
        assert!(
            encodings(1).contains(&Encoding::RLE_DICTIONARY),
            "{:?}",
            encodings(1)
        );
        let back: Vec<RecordBatch> = reader.build().unwrap().collect::<Result<_, _>>().unwrap();
        let back = arrow::compute::concat_batches(&back[0].schema(), &back).unwrap();
        assert_eq!(back.columns(), batch.columns());
    }
}
