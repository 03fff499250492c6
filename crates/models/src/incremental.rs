//! Incremental models: a night's new files rebuild only the partitions their
//! rows fall in (see [`crate::checks::Incremental`] for the YAML).
//!
//! Every build of an incremental model — whole or partial — records in its
//! Delta commit, beside the fingerprint ([`crate::state`]):
//! - `stmon.logic`: what the table is computed *by* — its SQL and YAML, the
//!   logic of its partitioned inputs, and the *content* of its other inputs
//!   (hashed row by row, so that a small input rebuilt to the same rows, like
//!   `intermediate.periods` on a night that adds no year, does not count as a
//!   change);
//! - `stmon.files`: per form it reads partition by partition, the sha256 of
//!   every file its data reflects.
//!
//! A later run whose fingerprint differs rebuilds the table partially when
//! the logic is the same and the files are a superset of the recorded ones:
//! the partitions to rebuild are those of the rows of the new files
//! (`select distinct <expr> from raw.<form> where _source_sha256 in (new)`).
//! The partial build runs the model's own SQL in a session whose partitioned
//! inputs are restricted to those partitions, and writes the result with one
//! Delta `replaceWhere` commit on the partition column: the partitions' old
//! files are removed and the new ones added atomically; the others are not
//! read or written. Anything else rebuilds the whole table.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::Array;
use arrow::row::{RowConverter, SortField};
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use stmon_warehouse::{in_list, TableId, Warehouse};

use crate::state::sha256_hex;
use crate::{text_column, Error, Model, ModelId, Project, Result};

pub const LOGIC_KEY: &str = "stmon.logic";
pub const FILES_KEY: &str = "stmon.files";
pub const PARTITION_KEY: &str = "stmon.partition_by";

/// How an incremental model reads its inputs.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub partition_by: String,
    /// Models read partition by partition (incremental, same partition column).
    pub models: Vec<ModelId>,
    /// Forms read directly partition by partition: form → partition expression.
    pub direct: BTreeMap<String, String>,
    /// Every form the table's partitions come from, directly or through
    /// `models`: form → partition expression.
    pub roots: BTreeMap<String, String>,
    /// Models read whole.
    pub full_models: Vec<ModelId>,
    /// Sources read whole (`ref.*`, other forms).
    pub full_sources: Vec<String>,
}

/// The form a source name reads, for `current.<form>` and `raw.<form>`.
fn form_of(source: &str) -> Option<&str> {
    source
        .strip_prefix("current.")
        .or_else(|| source.strip_prefix("raw."))
}

/// The inputs of an incremental model; `None` for a model rebuilt whole.
pub fn inputs(project: &Project, m: &Model) -> Option<Inputs> {
    let inc = m.spec.incremental.as_ref()?;
    let mut out = Inputs {
        partition_by: inc.partition_by.clone(),
        ..Inputs::default()
    };
    for s in &m.sources {
        let key = s.to_lowercase();
        match (inc.sources.get(&key), form_of(&key)) {
            (Some(expr), Some(form)) => {
                out.direct.insert(form.to_string(), expr.clone());
                out.roots.insert(form.to_string(), expr.clone());
            }
            _ => out.full_sources.push(key),
        }
    }
    for d in &m.deps {
        let dep = project.models.iter().find(|x| &x.id == d)?;
        match inputs(project, dep) {
            Some(di) if di.partition_by == inc.partition_by => {
                out.roots.extend(di.roots);
                out.models.push(d.clone());
            }
            _ => out.full_models.push(d.clone()),
        }
    }
    Some(out)
}

/// Checks an incremental model's YAML against its SQL (at project load).
pub fn check(project: &Project, m: &Model) -> Result<()> {
    let Some(inc) = &m.spec.incremental else {
        return Ok(());
    };
    let bad = |message: String| Error::Model {
        path: m.path.with_extension("yml"),
        message,
    };
    if inc.partition_by.is_empty()
        || !inc
            .partition_by
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(bad(format!(
            "incremental.partition_by {:?}: name one column of the model (lower-case letters, digits, _)",
            inc.partition_by
        )));
    }
    let read: BTreeSet<String> = m.sources.iter().map(|s| s.to_lowercase()).collect();
    for s in inc.sources.keys() {
        if form_of(s).is_none() {
            return Err(bad(format!(
                "incremental.sources: {s} is not a form (current.<form> or raw.<form>)"
            )));
        }
        if !read.contains(s) {
            return Err(bad(format!(
                "incremental.sources: the SQL does not read {s} (it reads {})",
                m.sources.join(", ")
            )));
        }
    }
    let i = inputs(project, m).expect("incremental");
    if i.direct.is_empty() && i.models.is_empty() {
        return Err(bad(format!(
            "incremental: no input is read by partition {} — list a form under \
             incremental.sources, or read a model that is incremental by the same column",
            inc.partition_by
        )));
    }
    Ok(())
}

/// What an incremental table's last commit recorded.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    pub logic: Option<String>,
    pub partition_by: Option<String>,
    pub files: BTreeMap<String, BTreeSet<String>>,
}

/// The last commit's incremental record of a table (empty if none).
pub async fn stored(wh: &Warehouse, id: &ModelId) -> Result<Stored> {
    let table = wh.table(&TableId::new(&id.layer, &id.name)).await?;
    if table.version().is_none() {
        return Ok(Stored::default());
    }
    let infos: Vec<_> = table.history(Some(1)).try_collect().await?;
    let Some(info) = infos.first().map(|c| &c.info) else {
        return Ok(Stored::default());
    };
    let text = |k: &str| info.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let files = info
        .get(FILES_KEY)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    Ok(Stored {
        logic: text(LOGIC_KEY),
        partition_by: text(PARTITION_KEY),
        files,
    })
}

/// An order-free hash of a table's rows (and its schema).
pub async fn content_hash(ctx: &SessionContext, table: &str) -> Result<String> {
    let df = ctx.table(table).await?;
    let schema = df.schema().as_arrow().clone();
    let converter = RowConverter::new(
        schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect(),
    )?;
    let mut stream = df.execute_stream().await?;
    let (mut sum, mut count) = (0u64, 0u64);
    while let Some(batch) = stream.next().await {
        let rows = converter.convert_columns(batch?.columns())?;
        for r in rows.iter() {
            sum = sum.wrapping_add(stmon_warehouse::hash::hash64(r.as_ref()));
            count += 1;
        }
    }
    Ok(sha256_hex(&[
        format!("{schema:?}").as_bytes(),
        &sum.to_le_bytes(),
        &count.to_le_bytes(),
    ]))
}

/// What the models an incremental model reads by partition recorded. A view
/// records nothing: it is computed now, so it stands for what a table of it
/// built now would record ([`view_record`]).
pub fn stored_inputs<'a>(
    wh: &'a Warehouse,
    ctx: &'a SessionContext,
    project: &'a Project,
    inputs: &'a Inputs,
    sources: &'a crate::state::Sources,
) -> BoxFuture<'a, Result<BTreeMap<ModelId, Stored>>> {
    Box::pin(async move {
        let mut out = BTreeMap::new();
        for d in &inputs.models {
            let record = match project.model(d) {
                Some(view) if view.is_view() => {
                    view_record(wh, ctx, project, view, sources).await?
                }
                _ => stored(wh, d).await?,
            };
            out.insert(d.clone(), record);
        }
        Ok(out)
    })
}

/// What a view read by partition would record as a table built now: its
/// logic, and the files its partitioned inputs reflect now.
async fn view_record(
    wh: &Warehouse,
    ctx: &SessionContext,
    project: &Project,
    view: &Model,
    sources: &crate::state::Sources,
) -> Result<Stored> {
    let inputs = inputs(project, view).expect("read by partition: incremental");
    let deps = stored_inputs(wh, ctx, project, &inputs, sources).await?;
    let logic = logic(ctx, view, &inputs, &deps, &sources.fingerprints).await?;
    Ok(Stored {
        logic: Some(logic),
        files: files_now(&inputs, &deps, &sources.files),
        partition_by: Some(inputs.partition_by),
    })
}

/// The logic fingerprint of an incremental model (see the module docs). The
/// models it reads by partition must be built already: their recorded logic
/// (`deps`, from [`stored_inputs`]) is used.
pub async fn logic(
    ctx: &SessionContext,
    m: &Model,
    inputs: &Inputs,
    deps: &BTreeMap<ModelId, Stored>,
    sources: &BTreeMap<String, String>,
) -> Result<String> {
    let yml = std::fs::read(m.path.with_extension("yml")).unwrap_or_default();
    let mut parts: Vec<Vec<u8>> = vec![
        b"stmon-incremental-v1".to_vec(),
        m.id.to_string().into_bytes(),
        m.sql.as_bytes().to_vec(),
        yml,
    ];
    for d in &inputs.models {
        let l = deps.get(d).and_then(|s| s.logic.as_deref()).unwrap_or("?");
        parts.push(format!("partitioned {d}={l}").into_bytes());
    }
    for d in &inputs.full_models {
        let c = content_hash(ctx, &d.to_string()).await?;
        parts.push(format!("whole {d}={c}").into_bytes());
    }
    for s in &inputs.full_sources {
        let fp = sources.get(s).map_or("?", |s| s.as_str());
        parts.push(format!("whole {s}={fp}").into_bytes());
    }
    for (form, expr) in &inputs.direct {
        parts.push(format!("partitioned {form} by {expr}").into_bytes());
    }
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    Ok(sha256_hex(&refs))
}

/// The files each root form's data in this model will reflect: the loaded
/// files for forms read directly, the recorded files of the partitioned
/// models for the others (their intersection when both).
pub fn files_now(
    inputs: &Inputs,
    deps: &BTreeMap<ModelId, Stored>,
    loaded: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut meet = |form: &str, set: BTreeSet<String>| match out.get_mut(form) {
        Some(have) => have.retain(|f| set.contains(f)),
        None => {
            out.insert(form.to_string(), set);
        }
    };
    for form in inputs.direct.keys() {
        let set = loaded
            .get(form)
            .map(|v| v.iter().cloned().collect())
            .unwrap_or_default();
        meet(form, set);
    }
    for stored in deps.values() {
        for (form, set) in &stored.files {
            if inputs.roots.contains_key(form) {
                meet(form, set.clone());
            }
        }
    }
    out
}

/// How a model out of date is to be built.
#[derive(Debug, Clone)]
pub enum Plan {
    /// The whole table.
    Whole,
    /// Only these partitions (none: the data is already right; only the
    /// record is rewritten).
    Partitions(Vec<String>),
}

/// Decides whole or partial; `why` says why whole when it is.
pub async fn plan(
    ctx: &SessionContext,
    inputs: &Inputs,
    stored: &Stored,
    logic: &str,
    files: &BTreeMap<String, BTreeSet<String>>,
) -> Result<(Plan, &'static str)> {
    if stored.logic.as_deref() != Some(logic) {
        return Ok((Plan::Whole, "what it is computed by changed"));
    }
    if stored.partition_by.as_deref() != Some(inputs.partition_by.as_str()) {
        return Ok((Plan::Whole, "partitioned differently"));
    }
    let mut partitions = BTreeSet::new();
    for (form, expr) in &inputs.roots {
        let now = files.get(form).cloned().unwrap_or_default();
        let before = stored.files.get(form).cloned().unwrap_or_default();
        if !before.is_subset(&now) {
            return Ok((Plan::Whole, "files it was built from are gone"));
        }
        let new: Vec<String> = now
            .difference(&before)
            .map(|f| format!("'{}'", f.replace('\'', "''")))
            .collect();
        if new.is_empty() {
            continue;
        }
        let sql = format!(
            "select distinct cast({expr} as varchar) as p from raw.{form} \
             where _source_sha256 in ({})",
            new.join(", ")
        );
        for b in ctx.sql(&sql).await?.collect().await? {
            let col = text_column(&b, 0)?;
            for i in 0..b.num_rows() {
                if col.is_null(i) {
                    return Ok((Plan::Whole, "a new row has no partition"));
                }
                partitions.insert(col.value(i).to_string());
            }
        }
    }
    Ok((Plan::Partitions(partitions.into_iter().collect()), ""))
}

/// Restricts a session's partitioned inputs of a model to `partitions`:
/// `raw.<form>`/`current.<form>` of the forms it reads directly, and the
/// models it reads by partition (re-registered as filtered views). A view
/// read by partition has its own inputs restricted the same way, and is
/// defined again over them.
pub fn restrict<'a>(
    wh: &'a Warehouse,
    ctx: &'a SessionContext,
    project: &'a Project,
    inputs: &'a Inputs,
    partitions: &'a [String],
) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        for (form, expr) in &inputs.direct {
            wh.restrict_form(ctx, form, expr, partitions).await?;
        }
        for d in &inputs.models {
            match project.model(d) {
                Some(view) if view.is_view() => {
                    let of_view = self::inputs(project, view).expect("incremental");
                    restrict(wh, ctx, project, &of_view, partitions).await?;
                    let values = partitions
                        .iter()
                        .map(|p| datafusion::prelude::lit(p.as_str()))
                        .collect();
                    let plan = ctx
                        .sql(&view.sql)
                        .await?
                        .filter(
                            datafusion::prelude::col(inputs.partition_by.as_str())
                                .in_list(values, false),
                        )?
                        .into_unoptimized_plan();
                    crate::run::replace_view(ctx, d, plan, None)?;
                }
                _ => restrict_table(wh, ctx, inputs, d, partitions).await?,
            }
        }
        Ok(())
    })
}

/// Re-registers the model table `d` as a view of its rows in `partitions`.
async fn restrict_table(
    wh: &Warehouse,
    ctx: &SessionContext,
    inputs: &Inputs,
    d: &ModelId,
    partitions: &[String],
) -> Result<()> {
    let table = wh.table(&TableId::new(&d.layer, &d.name)).await?;
    let hidden = format!("delta.model_{}_{}", d.layer, d.name);
    ctx.deregister_table(hidden.as_str())?;
    ctx.register_table(hidden.as_str(), wh.provider(ctx, &table).await?)?;
    ctx.deregister_table(d.to_string().as_str())?;
    ctx.sql(&format!(
        "create view {d} as select * from {hidden} where {}",
        in_list(&inputs.partition_by, partitions)
    ))
    .await?;
    Ok(())
}
