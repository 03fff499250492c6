//! The probes of the last batch's inbox, kept at
//! `<warehouse>/_stmon/probes/<host>.json` so that the next batch recognises
//! unchanged files without reading them (`stmon_ingest::ProbeCache`). The
//! cache is per host: the stamps it keeps (device, inode, ctime) mean
//! nothing on another machine. It only saves reading: a missing, unreadable
//! or foreign cache means every file is hashed, as without it.

use object_store::{path::Path as StorePath, ObjectStoreExt, PutPayload};
use stmon_ingest::ProbeCache;

use crate::Warehouse;

fn cache_path() -> StorePath {
    StorePath::from(format!("_stmon/probes/{}.json", crate::lock::this_host()))
}

impl Warehouse {
    /// The probes kept by the last batch on this host (empty when none can be read).
    pub(crate) async fn probe_cache(&self) -> ProbeCache {
        let read = async {
            let store = self.root_store().ok()?;
            let bytes = match store.get(&cache_path()).await {
                Ok(got) => got.bytes().await.ok()?,
                Err(object_store::Error::NotFound { .. }) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, "the probe cache cannot be read; every file is hashed");
                    return None;
                }
            };
            serde_json::from_slice(&bytes)
                .inspect_err(|e| tracing::warn!(error = %e, "the probe cache is not valid; every file is hashed"))
                .ok()
        };
        read.await.unwrap_or_default()
    }

    /// Keeps this batch's probes for the next (a failure is only reported).
    pub(crate) async fn keep_probe_cache(&self, cache: &ProbeCache) {
        let body = serde_json::to_vec(cache).expect("serialisable");
        let put = async {
            self.root_store()
                .map_err(|e| e.to_string())?
                .put(&cache_path(), PutPayload::from(body))
                .await
                .map_err(|e| e.to_string())
        };
        if let Err(error) = put.await {
            tracing::warn!(%error, "the probe cache cannot be written; the next batch hashes every file");
        }
    }
}
