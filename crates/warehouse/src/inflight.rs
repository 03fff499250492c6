//! Batches in flight: `<warehouse>/_stmon/open/<batch_id>`, one object per
//! batch that may have written rows it has not committed yet.
//!
//! A batch puts its marker before its first append and deletes it after its
//! commit point (its rows in `audit/batches`). A marker left behind is the
//! trace of a batch that was killed or failed after it may have written:
//! only then does the next batch scan every table for rows whose batch
//! `audit/batches` does not know (`Warehouse::recover`). Without a marker
//! that scan read the batch column of all 17 ingest tables every night,
//! whatever the size of the warehouse.
//!
//! The marker only says where to look; what counts is still `audit/batches`
//! (readers ignore uncommitted rows whether or not they are deleted). A
//! crash between the commit point and the marker's deletion costs one
//! needless scan, nothing else. Rows an interrupted batch of a stmon older
//! than the markers left stay ignored by readers and are not deleted.

use futures::TryStreamExt;
use object_store::{path::Path as StorePath, ObjectStoreExt, PutPayload};

use crate::{Error, Result, Warehouse};

const PREFIX: &str = "_stmon/open";

fn marker(batch_id: &str) -> StorePath {
    StorePath::from(format!("{PREFIX}/{batch_id}"))
}

fn failed(what: &'static str, source: object_store::Error) -> Error {
    Error::Store {
        what,
        path: format!("under {PREFIX}/"),
        source,
    }
}

impl Warehouse {
    /// Marks `batch_id` as in flight; call before the batch's first append.
    pub(crate) async fn mark_open(&self, batch_id: &str) -> Result<()> {
        let store = self.root_store()?;
        let body = format!(
            "{{\"host\": {:?}, \"pid\": {}}}\n",
            crate::lock::this_host(),
            std::process::id()
        );
        store
            .put(&marker(batch_id), PutPayload::from(body))
            .await
            .map(|_| ())
            .map_err(|e| failed("marking the batch in flight", e))
    }

    /// Removes the marks of batches that are committed or recovered.
    pub(crate) async fn mark_closed(&self, batch_ids: &[String]) -> Result<()> {
        let store = self.root_store()?;
        for b in batch_ids {
            match store.delete(&marker(b)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(failed("removing a batch's in-flight mark", e)),
            }
        }
        Ok(())
    }

    /// The batches marked in flight, in batch id order.
    pub(crate) async fn open_batches(&self) -> Result<Vec<String>> {
        let store = self.root_store()?;
        let prefix = StorePath::from(PREFIX);
        let mut ids: Vec<String> = store
            .list(Some(&prefix))
            .map_ok(|m| m.location.filename().unwrap_or_default().to_string())
            .try_collect()
            .await
            .map_err(|e| failed("listing the batches in flight", e))?;
        ids.sort();
        Ok(ids)
    }
}
