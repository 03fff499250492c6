//! The checks after loading — conflicts, corrections, year-to-date decreases —
//! in one sorted pass over the versions of the units a batch touches.
//!
//! A *unit* is a form's key without its period (an enterprise, a contract):
//! every check looks at one unit's versions and nothing else. DataFusion sorts
//! those versions by unit, period and `submitted_at` (spilling sorted runs to
//! disk beyond the session's memory limit); this module walks the sorted
//! stream holding one unit's versions at a time. So a first load of the whole
//! country is one scan and one external sort, and memory is the sort's limit
//! plus one unit, whatever the size of the batch.
//!
//! The rules (the same as `current_view_sql` applies when reading):
//! * **conflict** — a `(key, submitted_at)` group whose versions disagree and
//!   which this batch touches: its rows of this batch are rejected, and so are
//!   its earlier rows when those agreed among themselves (the new row made the
//!   group a conflict);
//! * **correction** — an accepted row of this batch in an agreeing group later
//!   than the key's first agreeing version;
//! * **year-to-date decrease** — a row of this batch (not a withdrawal) whose
//!   cumulative amount or count is lower than the latest non-withdrawn version
//!   of the unit's previous period in the same year: a warning.
//!
//! The same walk decides what `current.<form>` shows of each key the batch
//! touches (see [`crate::session`]): the version picked from the key's latest
//! agreeing `submitted_at` group, unless it is a withdrawal. Every other
//! version of the key is *superseded*; the walk returns those few rows (older
//! corrections, conflicting groups, duplicates, withdrawn keys) and the batch
//! stores them, so that reading the current view is a scan of the raw table
//! less a small set, not an aggregate over every version.
//!
//! This module decides nothing about storing: it returns diagnostics, counts
//! and the superseded versions.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMicrosecondType};
use arrow::row::{OwnedRow, RowConverter, SortField};
use arrow::util::display::array_value_to_string;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::physical_plan::{execute_stream, ExecutionPlan};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use stmon_ingest::{Diagnostic, Severity};
use stmon_schema::{ColumnType, Form, Frequency};

use crate::Result;

/// What the checks found for one form.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    /// Rejected rows of conflicting groups; the flag says whether the row
    /// belongs to this batch (earlier rows are reported but counted elsewhere).
    pub conflicts: Vec<(Diagnostic, bool)>,
    /// Per source file (sha256) of this batch: accepted rows that replace an
    /// earlier version of their key.
    pub corrected: HashMap<String, u64>,
    pub ytd_warnings: Vec<Diagnostic>,
    /// Bytes the sort spilled to disk (0 when it fitted in memory).
    pub spilled_bytes: u64,
    /// Superseded versions of the keys the batch touches, decided by batch
    /// `decided_in` (schema: [`superseded_schema`]).
    pub superseded: Vec<RecordBatch>,
}

/// Which versions the sorted pass reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// The form had no committed rows: the batch's own rows are every
    /// version there is (no join with the committed table).
    FirstLoad {
        batch_id: &'a str,
        failed: &'a [String],
    },
    /// The committed versions and this batch's, of the units it touches.
    /// `prune`: the values of the form's `prune_by` column among the
    /// batch's rows (see [`night_prune`]).
    Night {
        batch_id: &'a str,
        failed: &'a [String],
        prune: Option<&'a [String]>,
    },
    /// Every committed version, each counted as touched: the superseded
    /// versions of a warehouse written before they were stored, decided
    /// as of batch `decided_in` (the latest committed one).
    Everything { decided_in: &'a str },
}

impl Scope<'_> {
    /// The batch whose decisions these are.
    fn decided_in(&self) -> &str {
        match self {
            Scope::FirstLoad { batch_id, .. } | Scope::Night { batch_id, .. } => batch_id,
            Scope::Everything { decided_in } => decided_in,
        }
    }
}

/// Schema of `audit/superseded_<form>`: the key, the version's identity in
/// the raw table, and `batch_id`, the batch that decided it (a later decision
/// about the same key replaces an earlier one).
pub fn superseded_schema(form: &Form) -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::{Field, Schema};
    let raw = stmon_ingest::raw_schema(form);
    let mut fields: Vec<Field> = form
        .key
        .iter()
        .map(|k| {
            let f = raw.field_with_name(k).expect("key columns are columns");
            Field::new(k, f.data_type().clone(), false)
        })
        .collect();
    fields.push(Field::new("_batch_id", DataType::Utf8, false));
    fields.push(Field::new("_source_sha256", DataType::Utf8, false));
    fields.push(Field::new("_row_number", DataType::Int64, false));
    fields.push(Field::new("batch_id", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

const CONFLICT: &str = "conflict: another row with the same key and submitted_at has different values; both are rejected and the previous version stays current";

/// Runs the checks of `form` over the versions `scope` names.
pub(crate) async fn check_form(
    ctx: &SessionContext,
    form: &Form,
    scope: Scope<'_>,
) -> Result<Findings> {
    let shape = Shape::of(form);
    let prune = match scope {
        Scope::Night {
            prune: Some(values),
            ..
        } => night_prune(ctx, form, values).await?,
        _ => None,
    };
    let sql = shape.sql(form, scope, prune.as_deref());
    // A night's SQL puts the small inputs of its hash joins first, to be
    // their build sides, and the planner keeps them there: with statistics
    // (a pruned scan has them) it may swap a join so that it collects the
    // raw versions instead, and every batch it then emits refers to all of
    // them, which the sort's memory accounting counts whole for each batch.
    let mut state = ctx.state();
    if matches!(scope, Scope::Night { .. }) {
        state.config_mut().options_mut().optimizer.join_reordering = false;
    }
    let logical = state.create_logical_plan(&sql).await?;
    let plan = state.create_physical_plan(&logical).await?;
    let task = Arc::new(datafusion::execution::TaskContext::from(&state));
    let mut stream = execute_stream(plan.clone(), task)?;
    let unit_fields: Vec<SortField> = shape
        .unit
        .iter()
        .map(|&k| SortField::new(stream.schema().field(k).data_type().clone()))
        .collect();
    let converter = RowConverter::new(unit_fields).map_err(DataFusionError::from)?;
    let mut walk = Walk {
        shape: &shape,
        form,
        decided_in: scope.decided_in(),
        target: superseded_schema(form),
        batches: Vec::new(),
        rows: Vec::new(),
        found: Findings::default(),
    };
    let mut unit: Option<OwnedRow> = None;
    while let Some(batch) = stream.next().await {
        let batch = Batch::new(&shape, batch?)?;
        let units = converter
            .convert_columns(
                &shape
                    .unit
                    .iter()
                    .map(|&k| batch.columns[k].clone())
                    .collect::<Vec<_>>(),
            )
            .map_err(DataFusionError::from)?;
        walk.batches.push(batch);
        for i in 0..units.num_rows() {
            let u = units.row(i);
            if unit.as_ref().is_none_or(|p| p.row() != u) {
                walk.finish_unit()?;
                unit = Some(u.owned());
            }
            let b = walk.batches.len() - 1;
            walk.rows.push(walk.batches[b].version(b, i));
        }
    }
    walk.finish_unit()?;
    walk.flush(walk.batches.len())?;
    walk.found.spilled_bytes = spilled_bytes(plan.as_ref());
    Ok(walk.found)
}

/// The filter a night's check puts on the raw table: the
/// [`stmon_schema::PruneBy`] values of the batch's rows (`values`), when the
/// table stores the column and they are few enough for DataFusion to skip
/// files by them (it compares an `in` list of at most 20 values with a
/// file's smallest and largest value). A function of the key, so every
/// version of a touched unit passes.
async fn night_prune(
    ctx: &SessionContext,
    form: &Form,
    values: &[String],
) -> Result<Option<String>> {
    let Some(p) = crate::session::stored_prune_by(ctx, form).await? else {
        return Ok(None);
    };
    Ok((!values.is_empty() && values.len() <= 20)
        .then(|| crate::session::in_list(&format!("r.{}", p.name), values)))
}

/// Bytes the operators of an executed plan spilled to disk.
fn spilled_bytes(plan: &dyn ExecutionPlan) -> u64 {
    let own = plan.metrics().and_then(|m| m.spilled_bytes()).unwrap_or(0) as u64;
    own + plan
        .children()
        .into_iter()
        .map(|c| spilled_bytes(c.as_ref()))
        .sum::<u64>()
}

/// Which columns the sorted query returns, by position.
struct Shape {
    /// Key columns (the form's key order), positions 0..key.len().
    key: Vec<String>,
    /// Positions of the unit columns (key less period).
    unit: Vec<usize>,
    /// Position of `period` when it is part of the key.
    period: Option<usize>,
    /// The previous period of the same year, for year-to-date forms.
    ytd: Option<Frequency>,
    /// Year-to-date measures: names; their positions follow the fixed columns.
    measures: Vec<String>,
}

// Fixed columns after the key.
const AT: usize = 0;
const HASH: usize = 1;
const MINE: usize = 2;
const FILE: usize = 3;
const SHA: usize = 4;
const ROW: usize = 5;
const WITHDRAWN: usize = 6;
const BATCH: usize = 7;
const FIXED: usize = 8;

impl Shape {
    fn of(form: &Form) -> Shape {
        let key = form.key.clone();
        let unit = (0..key.len()).filter(|&i| key[i] != "period").collect();
        let period = key.iter().position(|k| k == "period");
        let ytd = match form.frequency {
            Frequency::Monthly | Frequency::Quarterly if period.is_some() => Some(form.frequency),
            _ => None,
        };
        let measures: Vec<String> = if ytd.is_some() {
            ytd_measures(form).into_iter().map(String::from).collect()
        } else {
            Vec::new()
        };
        Shape {
            key,
            unit,
            period,
            ytd: if measures.is_empty() { None } else { ytd },
            measures,
        }
    }

    fn fixed(&self, c: usize) -> usize {
        self.key.len() + c
    }

    /// Every version that counts (the committed ones and this batch's, less
    /// files that failed half-way) of the units `scope` touches, sorted.
    /// `prune`: a filter on the raw table's rows that every version of a
    /// touched unit passes (see [`night_prune`]).
    fn sql(&self, form: &Form, scope: Scope<'_>, prune: Option<&str>) -> String {
        let mine_of = |batch_id: &str, failed: &[String]| {
            let failed: String = failed
                .iter()
                .map(|s| format!(" and _source_sha256 <> '{s}'"))
                .collect();
            format!("_batch_id = '{batch_id}'{failed}")
        };
        let (versions, mine) = match scope {
            Scope::FirstLoad { batch_id, failed } => {
                let mine = mine_of(batch_id, failed);
                (
                    format!("select * from delta.raw_{} where {mine}", form.name),
                    format!("_batch_id = '{batch_id}'"),
                )
            }
            Scope::Night {
                batch_id, failed, ..
            } => {
                let mine = mine_of(batch_id, failed);
                let cols: Vec<&str> = self.unit.iter().map(|&i| self.key[i].as_str()).collect();
                let on: Vec<String> = cols.iter().map(|k| format!("v.{k} = k.{k}")).collect();
                // One scan of the raw table: committed rows (as `raw.<form>`
                // reads them) and this batch's. The small sides come first (the
                // build sides of the hash joins: the touched units, the loaded
                // files) and every raw row streams through the probe sides.
                let versions = format!(
                    "select v.* from (select distinct {cols} from delta.raw_{form} where {mine}) k \
                     join (select r.* from {loaded} f right join delta.raw_{form} r \
                           on r._batch_id = f.batch_id and r._source_sha256 = f.sha256 \
                           where (f.batch_id is not null or (r.{mine_r})){prune}) v on {on}",
                    form = form.name,
                    prune = prune.map(|p| format!(" and {p}")).unwrap_or_default(),
                    cols = cols.join(", "),
                    on = on.join(" and "),
                    loaded = crate::session::LOADED_FILES,
                    mine_r = mine.replace(" and _source_sha256", " and r._source_sha256"),
                );
                (versions, format!("_batch_id = '{batch_id}'"))
            }
            Scope::Everything { .. } => (format!("select * from raw.{}", form.name), "true".into()),
        };
        let mut select: Vec<String> = self.key.clone();
        select.extend([
            "submitted_at".to_string(),
            format!(
                "left(_row_hash, {}) as _row_hash",
                stmon_ingest::ROW_HASH_DIGITS
            ),
            mine,
            "_source_file".into(),
            "_source_sha256".into(),
            "_row_number".into(),
            "coalesce(withdrawn, false)".into(),
            "_batch_id".into(),
        ]);
        select.extend(self.measures.iter().cloned());
        let mut order: Vec<&str> = self.unit.iter().map(|&i| self.key[i].as_str()).collect();
        if self.period.is_some() {
            order.push("period");
        }
        order.push("submitted_at");
        format!(
            "select {} from ({versions}) order by {}",
            select.join(", "),
            order.join(", ")
        )
    }
}

/// One record batch of the sorted stream, with its columns cast once.
struct Batch {
    columns: Vec<ArrayRef>,
    text: Vec<Option<ArrayRef>>,
    key_len: usize,
    /// Rows found superseded.
    superseded: Vec<u32>,
}

/// One version: where it is, and what the walk compares often.
struct Version {
    batch: usize,
    row: usize,
    period: Option<String>,
    at: Option<i64>,
    mine: bool,
    withdrawn: bool,
}

impl Batch {
    fn new(shape: &Shape, b: RecordBatch) -> Result<Batch, DataFusionError> {
        let mut columns = b.columns().to_vec();
        let n = shape.key.len();
        // Strings may arrive as views; the walk reads plain UTF-8.
        let mut text = vec![None; columns.len()];
        for c in (0..n).chain([n + HASH, n + FILE, n + SHA, n + BATCH]) {
            text[c] = Some(arrow::compute::cast(&columns[c], &DataType::Utf8)?);
        }
        columns[n + AT] = arrow::compute::cast(
            &columns[n + AT],
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )?;
        columns[n + ROW] = arrow::compute::cast(&columns[n + ROW], &DataType::Int64)?;
        Ok(Batch {
            columns,
            text,
            key_len: n,
            superseded: Vec::new(),
        })
    }

    fn str(&self, c: usize, i: usize) -> &str {
        let a = self.text[c]
            .as_ref()
            .expect("a text column")
            .as_string::<i32>();
        if a.is_null(i) {
            ""
        } else {
            a.value(i)
        }
    }

    fn version(&self, batch: usize, i: usize) -> Version {
        let key_len = self.key_len;
        let at = self.columns[key_len + AT].as_primitive::<TimestampMicrosecondType>();
        let mine = self.columns[key_len + MINE].as_boolean();
        let withdrawn = self.columns[key_len + WITHDRAWN].as_boolean();
        Version {
            batch,
            row: i,
            period: None,
            at: at.is_valid(i).then(|| at.value(i)),
            mine: mine.is_valid(i) && mine.value(i),
            withdrawn: withdrawn.is_valid(i) && withdrawn.value(i),
        }
    }
}

/// The walk over the sorted stream: the batches the current unit's versions
/// lie in, those versions, and what was found so far.
struct Walk<'a> {
    shape: &'a Shape,
    form: &'a Form,
    decided_in: &'a str,
    /// Schema of the superseded rows.
    target: arrow::datatypes::SchemaRef,
    batches: Vec<Batch>,
    rows: Vec<Version>,
    found: Findings,
}

impl Walk<'_> {
    fn hash(&self, v: &Version) -> &str {
        self.batches[v.batch].str(self.shape.fixed(HASH), v.row)
    }

    fn file(&self, v: &Version) -> String {
        self.batches[v.batch]
            .str(self.shape.fixed(FILE), v.row)
            .to_string()
    }

    fn sha(&self, v: &Version) -> String {
        self.batches[v.batch]
            .str(self.shape.fixed(SHA), v.row)
            .to_string()
    }

    fn row_number(&self, v: &Version) -> Option<u64> {
        let a = self.batches[v.batch].columns[self.shape.fixed(ROW)].as_primitive::<Int64Type>();
        a.is_valid(v.row)
            .then(|| a.value(v.row))
            .and_then(|r| r.try_into().ok())
    }

    /// `k=v, k=v submitted_at=…`, as a conflict's value.
    fn key_text(&self, v: &Version) -> String {
        let b = &self.batches[v.batch];
        let keys: Vec<String> = self
            .shape
            .key
            .iter()
            .enumerate()
            .map(|(c, k)| format!("{k}={}", b.str(c, v.row)))
            .collect();
        let at = array_value_to_string(&b.columns[self.shape.fixed(AT)], v.row).unwrap_or_default();
        format!("{} submitted_at={at}", keys.join(", "))
    }

    /// Which of a group's identical versions the current view shows: the
    /// earliest batch, then the lowest row number, then the file's sha256.
    fn pick_order<'v>(&'v self, v: &Version) -> (&'v str, Option<u64>, &'v str) {
        let b = &self.batches[v.batch];
        (
            b.str(self.shape.fixed(BATCH), v.row),
            self.row_number(v),
            b.str(self.shape.fixed(SHA), v.row),
        )
    }

    /// Moves the superseded rows of the first `n` batches into the findings.
    fn flush(&mut self, n: usize) -> Result<(), DataFusionError> {
        let k = self.shape.key.len();
        for b in &mut self.batches[..n] {
            if b.superseded.is_empty() {
                continue;
            }
            let idx = arrow::array::UInt32Array::from(std::mem::take(&mut b.superseded));
            let rows = idx.len();
            let mut columns: Vec<ArrayRef> = Vec::with_capacity(k + 4);
            for c in (0..k).chain([k + BATCH, k + SHA, k + ROW]) {
                columns.push(arrow::compute::take(&b.columns[c], &idx, None)?);
            }
            columns.push(Arc::new(arrow::array::StringArray::from(vec![
                self.decided_in;
                rows
            ])));
            let columns = columns
                .iter()
                .zip(self.target.fields())
                .map(|(a, f)| arrow::compute::cast(a, f.data_type()))
                .collect::<Result<Vec<_>, _>>()?;
            self.found
                .superseded
                .push(RecordBatch::try_new(self.target.clone(), columns)?);
        }
        Ok(())
    }

    /// Checks the unit whose versions are in `rows`, then keeps only the last
    /// batch (the next unit starts in it).
    fn finish_unit(&mut self) -> Result<(), DataFusionError> {
        if !self.rows.is_empty() {
            if let Some(p) = self.shape.period {
                for v in &mut self.rows {
                    let s = self.batches[v.batch].str(p, v.row).to_string();
                    v.period = Some(s);
                }
            }
            self.unit();
        }
        self.rows.clear();
        let keep = self.batches.len().saturating_sub(1);
        self.flush(keep)?;
        self.batches.drain(..keep);
        Ok(())
    }

    fn unit(&mut self) {
        let rows = std::mem::take(&mut self.rows);
        let same_group = |a: &Version, b: &Version| a.period == b.period && a.at == b.at;
        let mut agreed = vec![false; rows.len()];
        let mut g = 0;
        while g < rows.len() {
            let mut e = g + 1;
            while e < rows.len() && same_group(&rows[g], &rows[e]) {
                e += 1;
            }
            let group = &rows[g..e];
            let first = self.hash(&group[0]);
            let differ = group.iter().any(|v| self.hash(v) != first);
            if !differ {
                agreed[g..e].iter_mut().for_each(|a| *a = true);
            } else if group.iter().any(|v| v.mine) {
                let mut old = group.iter().filter(|v| !v.mine).map(|v| self.hash(v));
                let old_agreed = match old.next() {
                    Some(h) => old.all(|o| o == h),
                    None => false,
                };
                for v in group.iter().filter(|v| v.mine || old_agreed) {
                    let d = Diagnostic {
                        severity: Severity::Rejected,
                        file: self.file(v),
                        sha256: self.sha(v),
                        form: Some(self.form.name.clone()),
                        row: self.row_number(v),
                        column: None,
                        value: Some(self.key_text(v)),
                        reason: CONFLICT.into(),
                    };
                    self.found.conflicts.push((d, v.mine));
                }
            }
            g = e;
        }

        // Corrections: per key (unit and period), agreeing versions of this
        // batch later than the key's first agreeing version.
        let mut k = 0;
        while k < rows.len() {
            let mut e = k + 1;
            while e < rows.len() && rows[e].period == rows[k].period {
                e += 1;
            }
            let first_at = (k..e)
                .filter(|&i| agreed[i])
                .filter_map(|i| rows[i].at)
                .min();
            if let Some(first_at) = first_at {
                for i in (k..e).filter(|&i| agreed[i] && rows[i].mine) {
                    if rows[i].at.is_some_and(|at| at > first_at) {
                        *self.found.corrected.entry(self.sha(&rows[i])).or_default() += 1;
                    }
                }
            }
            if rows[k..e].iter().any(|v| v.mine) {
                self.supersede(&rows[k..e], &agreed[k..e]);
            }
            k = e;
        }

        if let Some(freq) = self.shape.ytd {
            self.ytd(freq, &rows);
        }
        self.rows = rows;
    }

    /// Marks every version of one key superseded but the one the current
    /// view shows: from the latest agreeing group with a `submitted_at`, the
    /// first in [`Walk::pick_order`], unless it is a withdrawal.
    fn supersede(&mut self, key: &[Version], agreed: &[bool]) {
        let latest = (0..key.len())
            .filter(|&i| agreed[i])
            .filter_map(|i| key[i].at)
            .max();
        let shown = latest
            .and_then(|at| {
                (0..key.len())
                    .filter(|&i| agreed[i] && key[i].at == Some(at))
                    .min_by(|&a, &b| self.pick_order(&key[a]).cmp(&self.pick_order(&key[b])))
            })
            .filter(|&i| !key[i].withdrawn);
        for (i, v) in key.iter().enumerate() {
            if Some(i) != shown {
                self.batches[v.batch].superseded.push(v.row as u32);
            }
        }
    }

    /// Year-to-date decreases of this batch's versions against the latest
    /// non-withdrawn version of the previous period.
    fn ytd(&mut self, freq: Frequency, rows: &[Version]) {
        // Rows are sorted by period, then submitted_at: the last non-withdrawn
        // row of a period is its latest version.
        let mut latest: HashMap<&str, &Version> = HashMap::new();
        for v in rows.iter().filter(|v| !v.withdrawn) {
            if let Some(p) = &v.period {
                latest.insert(p.as_str(), v);
            }
        }
        let first_measure = self.shape.key.len() + FIXED;
        for t in rows.iter().filter(|v| v.mine && !v.withdrawn) {
            let Some(prev) = t.period.as_deref().and_then(|p| previous_period(freq, p)) else {
                continue;
            };
            let Some(p) = latest.get(prev.as_str()) else {
                continue;
            };
            for (m, name) in self.shape.measures.iter().enumerate() {
                let (tc, pc) = (
                    &self.batches[t.batch].columns[first_measure + m],
                    &self.batches[p.batch].columns[first_measure + m],
                );
                let (Ok(now), Ok(before)) = (
                    ScalarValue::try_from_array(tc, t.row),
                    ScalarValue::try_from_array(pc, p.row),
                ) else {
                    continue;
                };
                if now.is_null() || before.is_null() || now >= before {
                    continue;
                }
                let now = array_value_to_string(tc, t.row).unwrap_or_default();
                let before = array_value_to_string(pc, p.row).unwrap_or_default();
                self.found.ytd_warnings.push(Diagnostic {
                    severity: Severity::Warning,
                    file: self.file(t),
                    sha256: self.sha(t),
                    form: Some(self.form.name.clone()),
                    row: self.row_number(t),
                    column: Some(name.clone()),
                    value: Some(now.clone()),
                    reason: format!(
                        "year-to-date {name} ({now}) is lower than for {prev} ({before})"
                    ),
                });
            }
        }
    }
}

/// The previous period of the same year: `2023-05` → `2023-04`, `2023-Q3` →
/// `2023-Q2`; none for the first period of a year.
fn previous_period(freq: Frequency, period: &str) -> Option<String> {
    match freq {
        Frequency::Monthly => {
            let m: u32 = period.get(5..7)?.parse().ok()?;
            (m > 1).then(|| format!("{}{:02}", &period[..5], m - 1))
        }
        Frequency::Quarterly => {
            let q: u32 = period.get(6..7)?.parse().ok()?;
            (q > 1).then(|| format!("{}{}", &period[..6], q - 1))
        }
        _ => None,
    }
}

/// The cumulative quantities of a year-to-date form: its amounts, counts and decimals.
fn ytd_measures(form: &Form) -> Vec<&str> {
    form.columns
        .iter()
        .filter(|c| {
            matches!(
                c.ty,
                ColumnType::Amount | ColumnType::Count | ColumnType::Decimal
            )
        })
        .map(|c| c.name.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_periods_stay_in_the_year() {
        assert_eq!(
            previous_period(Frequency::Monthly, "2023-05"),
            Some("2023-04".into())
        );
        assert_eq!(
            previous_period(Frequency::Monthly, "2023-10"),
            Some("2023-09".into())
        );
        assert_eq!(previous_period(Frequency::Monthly, "2023-01"), None);
        assert_eq!(
            previous_period(Frequency::Quarterly, "2023-Q3"),
            Some("2023-Q2".into())
        );
        assert_eq!(previous_period(Frequency::Quarterly, "2023-Q1"), None);
        assert_eq!(previous_period(Frequency::Annual, "2023"), None);
    }
}
