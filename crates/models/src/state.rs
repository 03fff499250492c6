//! What a model was built from: its fingerprint.
//!
//! A model's fingerprint is the sha256 of its SQL, its YAML (description and
//! data tests) and the fingerprints of everything it reads: for another model,
//! that model's fingerprint; for `current.<form>` or `raw.<form>`, the sorted
//! sha256 of every file of that form that a committed batch loaded (the
//! content, not the Delta version: an interrupted batch's rows, removed later,
//! change versions but not content); for `audit.*`, every committed batch;
//! for `ref.*`, the division table; for `review.queries`, its open queries
//! (what the models read of it). Each model table's Delta commit carries
//! the fingerprint it was built from (commit metadata `stmon.fingerprint`), in
//! the same atomic commit as the data, so "is this table up to date?" has a
//! true answer after any crash: a run rebuilds a model only when the
//! fingerprint it computes differs from the one its table's last commit holds.
//!
//! A dependent reads a small model (at most [`CONTENT_ROWS`] rows, with readers) by its
//! content, not by its fingerprint: after building it, the run records the
//! digest of its rows ([`CONTENT_KEY`], in a commit of no rows after the data's,
//! carrying the fingerprint again), and the dependents' fingerprints name that
//! digest. So a night whose new rows change no year leaves
//! `intermediate.periods` (24 rows) as it was, and the models that read it
//! and nothing else that changed stay up to date ("early cutoff"). A crash
//! between the two commits loses only the digest: the dependents then
//! fingerprint the model by its fingerprint and are rebuilt, never skipped
//! wrongly.

use std::collections::BTreeMap;

use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use stmon_warehouse::{TableId, Warehouse};

use crate::{text_column, ModelId, Result};

/// Key of the commit metadata holding the fingerprint.
pub const KEY: &str = "stmon.fingerprint";

/// Key of the commit metadata holding a small model's content digest.
pub const CONTENT_KEY: &str = "stmon.content";

/// Models with at most this many rows are fingerprinted by content for their
/// dependents (the digest reads them all: keep it cheap).
pub const CONTENT_ROWS: u64 = 100_000;

/// Bump when the way tables are written changes, to rebuild everything once.
const FORMAT: &str = "stmon-model-v3";

pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// What the sources hold, from the committed batches.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Fingerprints of the sources models read (`current.<form>`,
    /// `raw.<form>`, `audit.<table>`, `ref.<table>`).
    pub fingerprints: BTreeMap<String, String>,
    /// Per form, the sha256 of every file a committed batch loaded, sorted.
    pub files: BTreeMap<String, Vec<String>>,
}

/// The sources' fingerprints and loaded files.
pub async fn source_fingerprints(wh: &Warehouse, ctx: &SessionContext) -> Result<Sources> {
    let mut per_form: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut batches: Vec<String> = Vec::new();
    if ctx.table_exist("audit.batches")? {
        let rows = ctx
            .sql(
                "select coalesce(form, ''), sha256, status, batch_id from audit.batches \
                 order by batch_id, sha256",
            )
            .await?
            .collect()
            .await?;
        for b in &rows {
            let (form, sha, status, batch) = (
                text_column(b, 0)?,
                text_column(b, 1)?,
                text_column(b, 2)?,
                text_column(b, 3)?,
            );
            for i in 0..b.num_rows() {
                batches.push(format!(
                    "{}|{}|{}",
                    batch.value(i),
                    sha.value(i),
                    status.value(i)
                ));
                if status.value(i) == "loaded" {
                    per_form
                        .entry(form.value(i).to_string())
                        .or_default()
                        .push(sha.value(i).to_string());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    let mut files = BTreeMap::new();
    for form in wh.catalog.forms.keys() {
        let mut shas = per_form.remove(form).unwrap_or_default();
        shas.sort();
        let fp = sha256_hex(&[form.as_bytes(), shas.join(",").as_bytes()]);
        out.insert(format!("current.{form}"), fp.clone());
        out.insert(format!("raw.{form}"), fp);
        files.insert(form.clone(), shas);
    }
    let all = sha256_hex(&[batches.join("\n").as_bytes()]);
    for t in ["batches", "quarantine", "warnings"] {
        out.insert(format!("audit.{t}"), all.clone());
    }
    let divisions: Vec<String> = wh
        .catalog
        .divisions
        .rows
        .iter()
        .map(|d| {
            format!(
                "{}|{}|{}|{}",
                d.code,
                d.name,
                d.parent_code.as_deref().unwrap_or(""),
                d.successor.as_deref().unwrap_or("")
            )
        })
        .collect();
    let d = sha256_hex(&[divisions.join("\n").as_bytes()]);
    if ctx.table_exist("ref.disclosure_rules")? {
        let rows = ctx
            .sql("select cast(min_units as varchar) || '|' || cast(max_share as varchar) from ref.disclosure_rules")
            .await?
            .collect()
            .await?;
        let mut text = String::new();
        for b in &rows {
            let c = text_column(b, 0)?;
            for i in 0..b.num_rows() {
                text.push_str(c.value(i));
            }
        }
        out.insert(
            "ref.disclosure_rules".into(),
            sha256_hex(&[text.as_bytes()]),
        );
    }
    out.insert("ref.divisions".into(), d.clone());
    out.insert("ref.division_ancestors".into(), d);
    // The review's queries, by what the models read of them: the open ones
    // (a night whose review opens and closes nothing rebuilds nothing for them).
    let mut open: Vec<String> = Vec::new();
    if ctx.table_exist("review.queries")? {
        let rows = ctx
            .sql(
                "select form, unit, period, \"column\", cast(reported as varchar), \
                 cast(expected as varchar) from review.queries where status = 'open'",
            )
            .await?
            .collect()
            .await?;
        for b in &rows {
            let cols: Vec<_> = (0..6).map(|i| text_column(b, i)).collect::<Result<_>>()?;
            for i in 0..b.num_rows() {
                open.push(
                    cols.iter()
                        .map(|c| c.value(i))
                        .collect::<Vec<_>>()
                        .join("|"),
                );
            }
        }
    }
    open.sort();
    out.insert(
        "review.queries".into(),
        sha256_hex(&[open.join("\n").as_bytes()]),
    );
    Ok(Sources {
        fingerprints: out,
        files,
    })
}

/// A model's fingerprint (see the module docs), given the sources' and what
/// its dependencies are known by (`identities`: their content digest where
/// recorded, else their fingerprint; see [`identity`]).
pub fn model_fingerprint(
    m: &crate::Model,
    sources: &BTreeMap<String, String>,
    identities: &BTreeMap<ModelId, String>,
) -> String {
    let yml = std::fs::read(m.path.with_extension("yml")).unwrap_or_default();
    let mut parts: Vec<Vec<u8>> = vec![
        FORMAT.as_bytes().to_vec(),
        m.id.to_string().into_bytes(),
        m.sql.as_bytes().to_vec(),
        yml,
    ];
    for d in &m.deps {
        let known = identities.get(d).map_or("?", |s| s.as_str());
        parts.push(format!("{d}={known}").into_bytes());
    }
    for s in &m.sources {
        // An unknown source (a typo) fingerprints as itself: the model
        // then fails when it runs, which is the message a person needs.
        let fp = sources.get(&s.to_lowercase()).map_or("?", |s| s.as_str());
        parts.push(format!("{s}={fp}").into_bytes());
    }
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    sha256_hex(&refs)
}

/// What a model is known by to its dependents: the content digest its table
/// recorded when that table is up to date (`fingerprint` is what it would be
/// built from now), else the fingerprint itself.
pub fn identity(fingerprint: &str, stored: Option<&Stored>) -> String {
    match stored {
        Some(Stored {
            fingerprint: f,
            content: Some(c),
        }) if f == fingerprint => format!("content:{c}"),
        _ => fingerprint.to_string(),
    }
}

/// What the last commit of a model table records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub fingerprint: String,
    /// The digest of its rows (small models only, see [`CONTENT_ROWS`]).
    pub content: Option<String>,
}

/// What the last commit of a table records, if it has a fingerprint.
pub async fn stored(wh: &Warehouse, id: &TableId) -> Result<Option<Stored>> {
    let table = wh.table(id).await?;
    if table.version().is_none() {
        return Ok(None);
    }
    let infos: Vec<_> = table.history(Some(1)).try_collect().await?;
    let info = infos.first().map(|c| &c.info);
    let text = |k: &str| {
        info.and_then(|i| i.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    Ok(text(KEY).map(|fingerprint| Stored {
        fingerprint,
        content: text(CONTENT_KEY),
    }))
}

/// The fingerprint the last commit of a table was built from, if any.
pub async fn stored_fingerprint(wh: &Warehouse, id: &TableId) -> Result<Option<String>> {
    Ok(stored(wh, id).await?.map(|s| s.fingerprint))
}

/// Commit properties that record a fingerprint.
pub fn commit_properties(fingerprint: &str) -> deltalake::kernel::transaction::CommitProperties {
    commit_properties_with(fingerprint, [])
}

/// Commit properties that record a fingerprint and more metadata.
pub fn commit_properties_with(
    fingerprint: &str,
    more: impl IntoIterator<Item = (String, serde_json::Value)>,
) -> deltalake::kernel::transaction::CommitProperties {
    let mut all = vec![(
        KEY.to_string(),
        serde_json::Value::String(fingerprint.to_string()),
    )];
    all.extend(more);
    stmon_warehouse::commit_properties().with_metadata(all)
}
