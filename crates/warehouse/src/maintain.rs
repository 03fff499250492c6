//! Upkeep of tables that grow by small appends: every batch adds one small
//! Parquet file to each table it writes (`raw.<form>`, its decisions,
//! `audit.batches`, …) and every run one to `audit.runs`. Left alone, a
//! year of nightly batches is hundreds of files of a few rows that every
//! read of the table opens; so after its commit a batch compacts the tables
//! it wrote, in two tiers (size-tiered, so that what a compaction rewrites
//! does not grow with the table):
//!
//! 1. once a table holds [`SMALL_FILES`] *tiny* files (under half of
//!    [`TINY_FILE_BYTES`]), one Delta `OPTIMIZE` commit (`dataChange =
//!    false`) bin-packs its files of up to [`TINY_FILE_BYTES`] into files
//!    of at most that size. Packing goes newest file first, so the new
//!    tiny files share their bins with at most one or two older files, and
//!    an older file that is nearly full is left alone: a compaction
//!    rewrites the new files and about [`TINY_FILE_BYTES`] more, however
//!    large the table;
//! 2. otherwise, once it holds [`SMALL_FILES`] *small* files that are not
//!    tiny (from half of [`TINY_FILE_BYTES`] to half of
//!    [`SMALL_FILE_BYTES`]: the first tier's output), one `OPTIMIZE`
//!    bin-packs the files under [`SMALL_FILE_BYTES`] into files of at most
//!    that size: a few MB, rarely. (Tiny files do not count here, or a
//!    table with one small file would be rewritten whole whenever it held
//!    fifteen tiny ones.)
//!
//! Files above [`SMALL_FILE_BYTES`] — a national load's — are never
//! rewritten. A table then holds fewer than [`SMALL_FILES`] tiny files and
//! fewer than as many small ones. (Before the tiers, each compaction rewrote
//! every file under 4 MiB: the whole table until it passed 4 MiB, so a
//! compaction of a table of small batches cost more with every batch.)
//!
//! Compaction changes files, never rows: readers, the batch protocol and
//! the models' fingerprints (which name submission files, not Parquet
//! files) see the same table. Earlier versions keep their files, so time
//! travel to a run's pinned versions reads what it read. A crash during a
//! compaction leaves the table as it was (the commit is the last step); the
//! next batch that writes the table compacts it.
//!
//! Log checkpoints: delta-rs writes one when a commit's version is a
//! multiple of `delta.checkpointInterval` (100), so opening a table replays
//! up to 99 commits, and an ingest opens its tables several times: after
//! 1,000 small batches a 4-row batch took 3.3 s with 27 commits since the
//! checkpoint and 1.8 s with none. So a batch also writes a checkpoint of
//! each table it wrote that is [`CHECKPOINT_EVERY`] commits past its last:
//! opening a table then reads one checkpoint and fewer than ten commits,
//! however long its history.
//!
//! A checkpoint leaves out the tombstones of files that compaction removed
//! (`delta.deletedFileRetentionDuration` is zero, see
//! [`crate::TOMBSTONE_RETENTION`]): with delta-rs's default of a week, every
//! checkpoint carried every tombstone of the week, and every open of the
//! table read them all (after 400 small batches in a few minutes, 428
//! actions instead of 6, and each scan of the log took twice as long).
//!
//! This module never decides what a table holds; it only rewrites files.

use std::num::NonZeroU64;

use deltalake::operations::optimize::OptimizeType;
use deltalake::DeltaTable;

use crate::{writer_properties_for, Error, Result, TableId, Warehouse};

/// The second tier of compaction writes files of up to this size; files
/// under half of it are small. (Half, so that compaction's own output,
/// which may end just under the target, is not small again: of the files
/// one compaction writes in a partition, at most one is small.)
pub const SMALL_FILE_BYTES: u64 = 8 << 20;
/// The first tier of compaction writes files of up to this size; files
/// under half of it are tiny. Sixteen files of a few rows each (a small
/// batch's file is about 7 KB) fit in one; a first-tier output that has
/// passed half of it (tens of thousands of rows of a narrow table) is not
/// rewritten by the first tier again.
pub const TINY_FILE_BYTES: u64 = 128 << 10;
/// A table is compacted once it holds this many tiny files (first tier) or
/// small files that are not tiny (second tier).
pub const SMALL_FILES: usize = 16;

/// A table gets a log checkpoint once it is this many commits past its last.
pub const CHECKPOINT_EVERY: i64 = 10;

/// What one compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compaction {
    pub table: TableId,
    pub files_removed: u64,
    pub files_added: u64,
}

fn delta_error(id: &TableId) -> impl Fn(deltalake::DeltaTableError) -> Error + '_ {
    move |source| Error::Delta {
        table: id.to_string(),
        source,
    }
}

/// The sizes in bytes of an open table's active Parquet files.
fn sizes(table: &DeltaTable, id: &TableId) -> Result<Vec<u64>> {
    if table.version().is_none() {
        return Ok(Vec::new());
    }
    let state = table.snapshot().map_err(delta_error(id))?;
    Ok(state
        .log_data()
        .iter()
        .map(|f| f.size().max(0) as u64)
        .collect())
}

/// The target size of the compaction a table with files of these sizes
/// is due (see the module docs), or None.
pub fn compaction_target(sizes: &[u64]) -> Option<u64> {
    let between = |low: u64, high: u64| sizes.iter().filter(|s| (low..high).contains(*s)).count();
    if between(0, TINY_FILE_BYTES / 2) >= SMALL_FILES {
        Some(TINY_FILE_BYTES)
    } else if between(TINY_FILE_BYTES / 2, SMALL_FILE_BYTES / 2) >= SMALL_FILES {
        Some(SMALL_FILE_BYTES)
    } else {
        None
    }
}

/// Compacts an open table when it holds [`SMALL_FILES`] tiny or small
/// files: the table after, and what was done (`None` when nothing was).
async fn compact(table: DeltaTable, id: &TableId) -> Result<(DeltaTable, Option<Compaction>)> {
    let Some(target) = compaction_target(&sizes(&table, id)?) else {
        return Ok((table, None));
    };
    crate::checkpoint::checkpoint(&format!("before compact {id}"));
    let schema = table
        .snapshot()
        .map_err(delta_error(id))?
        .snapshot()
        .arrow_schema();
    let target = NonZeroU64::new(target).expect("non-zero");
    let (table, metrics) = table
        .optimize()
        .with_type(OptimizeType::Compact)
        .with_target_size(target)
        .with_writer_properties(writer_properties_for(&schema))
        .with_max_concurrent_tasks(1)
        .with_commit_properties(crate::tables::commit_properties())
        .await
        .map_err(delta_error(id))?;
    crate::checkpoint::checkpoint(&format!("after compact {id}"));
    tracing::info!(table = %id, removed = metrics.num_files_removed, added = metrics.num_files_added, "compacted");
    let done = (metrics.num_files_removed > 0).then(|| Compaction {
        table: id.clone(),
        files_removed: metrics.num_files_removed,
        files_added: metrics.num_files_added,
    });
    Ok((table, done))
}

/// Writes a log checkpoint of an open table's version when it is
/// [`CHECKPOINT_EVERY`] commits past its last one; whether it did. A table
/// created before [`crate::TOMBSTONE_RETENTION`] was set at creation gets it first
/// (one commit), so that the checkpoint leaves out the tombstones.
async fn checkpoint_if_due(table: DeltaTable, id: &TableId) -> Result<bool> {
    use object_store::ObjectStoreExt;
    let Some(version) = table.version() else {
        return Ok(false);
    };
    let delta = delta_error(id);
    // `_last_checkpoint` names the newest checkpoint; none yet: -1.
    let last = match table
        .object_store()
        .get(&object_store::path::Path::from(
            "_delta_log/_last_checkpoint",
        ))
        .await
    {
        Ok(got) => {
            let bytes = got.bytes().await.map_err(|e| delta(e.into()))?;
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["version"].as_i64())
                .unwrap_or(-1)
        }
        Err(object_store::Error::NotFound { .. }) => -1,
        Err(e) => return Err(delta(e.into())),
    };
    if version as i64 - last < CHECKPOINT_EVERY {
        return Ok(false);
    }
    let retention = table
        .snapshot()
        .map_err(&delta)?
        .table_config()
        .deleted_file_retention_duration;
    let table = if retention == Some(std::time::Duration::ZERO) {
        table
    } else {
        table
            .set_tbl_properties()
            .with_properties(crate::tables::table_configuration())
            .with_commit_properties(crate::tables::commit_properties())
            .await
            .map_err(&delta)?
    };
    deltalake::checkpoints::create_checkpoint(&table, None)
        .await
        .map_err(delta)?;
    tracing::info!(table = %id, version, "log checkpoint written");
    Ok(true)
}

impl Warehouse {
    /// The sizes in bytes of a table's active Parquet files (none when the
    /// table does not exist yet).
    pub async fn file_sizes(&self, id: &TableId) -> Result<Vec<u64>> {
        sizes(&self.table(id).await?, id)
    }

    /// Upkeep of tables a batch or run wrote, each opened once: compaction
    /// when it holds [`SMALL_FILES`] tiny or small files, then a log checkpoint when
    /// it is [`CHECKPOINT_EVERY`] commits past its last. Returns the
    /// compactions.
    pub async fn upkeep(&self, ids: &[TableId]) -> Result<Vec<Compaction>> {
        let mut out = Vec::new();
        for id in ids {
            let table = self.table(id).await?;
            if table.version().is_none() {
                continue;
            }
            let (table, done) = compact(table, id).await?;
            out.extend(done);
            checkpoint_if_due(table, id).await?;
            self.forget(id);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_tier_comes_first_and_large_files_never_count() {
        const KB: u64 = 1 << 10;
        let tiny = |n: usize| vec![7 * KB; n];
        assert_eq!(compaction_target(&tiny(15)), None);
        assert_eq!(compaction_target(&tiny(16)), Some(TINY_FILE_BYTES));
        // Files of 64 KiB and more are not tiny, nor are they counted
        // with the tiny ones: fifteen tiny files and fifteen small ones wait.
        let mut sizes = tiny(15);
        sizes.extend([100 * KB; 15]);
        sizes.extend([500 << 20; 40]);
        assert_eq!(compaction_target(&sizes), None);
        // Sixteen small ones call the second tier.
        sizes.push(3 << 20);
        assert_eq!(compaction_target(&sizes), Some(SMALL_FILE_BYTES));
        let mut small = vec![3 << 20; 16];
        assert_eq!(compaction_target(&small), Some(SMALL_FILE_BYTES));
        small[0] = 4 << 20;
        assert_eq!(compaction_target(&small), None, "4 MiB is not small");
        let mut both = tiny(16);
        both.extend([3 << 20; 16]);
        assert_eq!(compaction_target(&both), Some(TINY_FILE_BYTES));
    }
}
