//! The review of the units that new batches touched: their current values
//! through every rule of their form, scored, merged with the queries
//! already raised, written as one commit of `review/queries`.
//!
//! Which batches are new is read from the queries table's last commit
//! (`stmon.reviewed_through`, the latest batch id reviewed), committed with
//! the queries themselves: a review killed before its commit is done again
//! whole by the next one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Float64Type;
use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use stmon_schema::review::{Review, RuleKind};
use stmon_schema::{Form, Frequency};
use stmon_warehouse::{TableId, Warehouse};

use crate::queries::{self, query_id, Query, Status};
use crate::rules::{self, Finding, HbBounds, Year};
use crate::{Error, Result};

/// Commit metadata: the latest batch id the queries reflect.
pub const REVIEWED_THROUGH: &str = "stmon.reviewed_through";

/// The table.
pub fn table_id() -> TableId {
    TableId::new("review", "queries")
}

/// What a review did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// The batches reviewed (none: nothing new, nothing written).
    pub batches: Vec<String>,
    /// Per form: units reviewed.
    pub units: BTreeMap<String, u64>,
    pub opened: u64,
    /// Of the opened, those whose score reaches the form's `high_score`.
    pub opened_high: u64,
    /// Closed by this review, by how.
    pub closed: BTreeMap<&'static str, u64>,
    /// Answers (`review_response` rows) that name no query open or
    /// answered before: form, unit, period, column.
    pub unmatched: Vec<String>,
    /// Open queries after the review, and of them high.
    pub open: u64,
    pub open_high: u64,
    /// Every query after the review (what `review/queries` holds).
    pub queries: Vec<Query>,
}

/// Options of a review.
#[derive(Debug, Clone)]
pub struct Options {
    /// The memory the queries' reads may hold (DataFusion's pool; a sort
    /// spills beyond it).
    pub memory: usize,
    /// The memory the judged units' rows may take, held compactly between
    /// the read and the rules. Beyond it a review reads the rows again
    /// sorted by unit (spilling), which is slower: a national first review
    /// holds about 650 MiB.
    pub rows_memory: usize,
    /// Review every committed batch again (after a rule changed).
    pub all: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            memory: 512 << 20,
            rows_memory: 1 << 30,
            all: false,
        }
    }
}

/// Reviews what batches committed since the last review.
pub async fn review(wh: &Warehouse, opts: &Options) -> Result<Summary> {
    let id = table_id();
    let table = wh.table(&id).await?;
    let ctx = wh.session_with_memory(opts.memory).await?;
    let (existing, through) = if table.version().is_some() {
        let infos: Vec<_> = table
            .history(Some(1))
            .try_collect()
            .await
            .map_err(|source| Error::Delta {
                table: id.to_string(),
                source,
            })?;
        let through = infos
            .first()
            .and_then(|c| c.info.get(REVIEWED_THROUGH))
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let batches = ctx
            .sql("select * from review.queries")
            .await?
            .collect()
            .await?;
        (
            batches
                .iter()
                .flat_map(queries::from_batch)
                .collect::<Vec<_>>(),
            through,
        )
    } else {
        (Vec::new(), None)
    };
    let through = if opts.all { None } else { through };
    let new_batches: Vec<String> = strings(
        &ctx,
        &format!(
            "select distinct batch_id from audit.batches where status = 'loaded'{} order by batch_id",
            through
                .as_ref()
                .map(|t| format!(" and batch_id > '{}'", t.replace('\'', "''")))
                .unwrap_or_default()
        ),
    )
    .await?;
    let mut summary = Summary {
        batches: new_batches.clone(),
        ..Summary::default()
    };
    if new_batches.is_empty() {
        count_open(&existing, &mut summary);
        summary.queries = existing;
        return Ok(summary);
    }
    let now = Utc::now();
    let latest = new_batches.last().expect("not empty").clone();
    let mut out: Vec<Query> = Vec::new();
    let mut by_unit: HashMap<(String, String), Vec<Query>> = HashMap::new();
    for q in existing {
        by_unit
            .entry((q.form.clone(), q.unit.clone()))
            .or_default()
            .push(q);
    }
    for form in wh.catalog.forms.values() {
        let Some(review) = &form.review else { continue };
        let filter = (through.is_some()).then_some(new_batches.as_slice());
        // Units with earlier queries are merged even when nothing is found.
        let keep: HashSet<String> = by_unit
            .keys()
            .filter(|(f, _)| *f == form.name)
            .map(|(_, u)| u.clone())
            .collect();
        let units = review_form(&ctx, form, review, filter, opts.rows_memory, &keep, |u| {
            let old = by_unit
                .remove(&(form.name.clone(), u.unit.clone()))
                .unwrap_or_default();
            merge(old, u, now, &latest, &mut out, &mut summary);
        })
        .await?;
        summary.units.insert(form.name.clone(), units);
    }
    out.extend(by_unit.into_values().flatten());
    if wh.catalog.form(RESPONSE_FORM).is_some() {
        let filter = (through.is_some()).then_some(new_batches.as_slice());
        for a in answers(&ctx, filter).await? {
            apply(&a, &mut out, now, &mut summary);
        }
    }
    fill_names(&ctx, wh, &mut out).await?;
    out.sort_by(|a, b| {
        (&a.form, &a.unit, &a.period, &a.column, &a.opened_at).cmp(&(
            &b.form,
            &b.unit,
            &b.period,
            &b.column,
            &b.opened_at,
        ))
    });
    count_open(&out, &mut summary);
    write(wh, &out, &latest).await?;
    summary.queries = out;
    Ok(summary)
}

fn count_open(rows: &[Query], s: &mut Summary) {
    s.open = rows.iter().filter(|q| q.status == Status::Open).count() as u64;
    s.open_high = rows
        .iter()
        .filter(|q| q.status == Status::Open && q.high_score)
        .count() as u64;
}

async fn write(wh: &Warehouse, rows: &[Query], through: &str) -> Result<()> {
    use deltalake::protocol::SaveMode;
    let id = table_id();
    let batch = queries::to_batch(rows)?;
    let table = wh.table(&id).await?;
    stmon_warehouse::checkpoint::checkpoint("before review commit");
    table
        .write(vec![batch])
        .with_save_mode(SaveMode::Overwrite)
        .with_commit_properties(stmon_warehouse::commit_properties().with_metadata([(
            REVIEWED_THROUGH.to_string(),
            serde_json::Value::String(through.to_string()),
        )]))
        .await
        .map_err(|source| Error::Delta {
            table: id.to_string(),
            source,
        })?;
    stmon_warehouse::checkpoint::checkpoint("after review commit");
    Ok(())
}

/// The name of each new query's unit, from its latest period's row: the
/// walk does not carry names.
async fn fill_names(ctx: &SessionContext, wh: &Warehouse, out: &mut [Query]) -> Result<()> {
    for form in wh.catalog.forms.values() {
        if form.review.is_none() || form.column("name").is_none() {
            continue;
        }
        let mut units: Vec<&str> = out
            .iter()
            .filter(|q| q.form == form.name && q.name.is_none())
            .map(|q| q.unit.as_str())
            .collect();
        units.sort();
        units.dedup();
        if units.is_empty() {
            continue;
        }
        let period = &form
            .period_column()
            .expect("checked at load: a reviewed form has a period")
            .name;
        let unit = unit_expr(form);
        let mut names: HashMap<String, (String, String)> = HashMap::new();
        for chunk in units.chunks(1000) {
            let list = chunk
                .iter()
                .map(|u| format!("'{}'", u.replace('\'', "''")))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "select {unit}, cast(\"{period}\" as varchar), cast(name as varchar) \
                 from current.{f} where {unit} in ({list}) and name is not null",
                f = form.name
            );
            for b in ctx.sql(&sql).await?.collect().await? {
                let (u, p, n) = (
                    TextCol::of(b.column(0))?,
                    TextCol::of(b.column(1))?,
                    TextCol::of(b.column(2))?,
                );
                for r in 0..b.num_rows() {
                    let (Some(u), Some(p), Some(n)) = (u.get(r), p.get(r), n.get(r)) else {
                        continue;
                    };
                    let e = names
                        .entry(u.to_string())
                        .or_insert_with(|| (String::new(), String::new()));
                    if p >= e.0.as_str() {
                        *e = (p.to_string(), n.to_string());
                    }
                }
            }
        }
        for q in out
            .iter_mut()
            .filter(|q| q.form == form.name && q.name.is_none())
        {
            q.name = names.get(&q.unit).map(|(_, n)| n.clone());
        }
    }
    Ok(())
}

async fn strings(ctx: &SessionContext, sql: &str) -> Result<Vec<String>> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let mut out = Vec::new();
    for b in &batches {
        let a = utf8(b.column(0))?;
        out.extend(
            (0..a.len())
                .filter(|&i| a.is_valid(i))
                .map(|i| a.value(i).to_string()),
        );
    }
    Ok(out)
}

/// The form of the offices' answers.
pub const RESPONSE_FORM: &str = "review_response";

/// One answer of a county office.
#[derive(Debug, Clone)]
struct Answer {
    form: String,
    unit: String,
    period: String,
    column: String,
    confirmed: bool,
    note: Option<String>,
    batch: String,
}

/// The current answers, of the new batches only when `batches` is given.
async fn answers(ctx: &SessionContext, batches: Option<&[String]>) -> Result<Vec<Answer>> {
    let filter = batches
        .map(|b| {
            format!(
                " where _batch_id in ({})",
                b.iter()
                    .map(|x| format!("'{}'", x.replace('\'', "''")))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .unwrap_or_default();
    let sql = format!(
        "select form, unit, period, \"column\", answer, note, _batch_id \
         from current.{RESPONSE_FORM}{filter} order by _batch_id, submitted_at"
    );
    let mut out = Vec::new();
    for b in ctx.sql(&sql).await?.collect().await? {
        let cols: Vec<arrow::array::StringArray> =
            (0..7).map(|i| utf8(b.column(i))).collect::<Result<_>>()?;
        for r in 0..b.num_rows() {
            let t = |i: usize| cols[i].is_valid(r).then(|| cols[i].value(r).to_string());
            let (Some(form), Some(unit), Some(period), Some(column), Some(answer), Some(batch)) =
                (t(0), t(1), t(2), t(3), t(4), t(6))
            else {
                continue;
            };
            out.push(Answer {
                form,
                unit,
                period,
                column,
                confirmed: answer == "confirmed",
                note: t(5),
                batch,
            });
        }
    }
    Ok(out)
}

/// An answer on the query it names: 确认 closes it as confirmed; 更正
/// records the answer and leaves it open until the corrected row comes.
fn apply(a: &Answer, rows: &mut [Query], now: DateTime<Utc>, s: &mut Summary) {
    let target = rows
        .iter_mut()
        .filter(|q| {
            q.form == a.form && q.unit == a.unit && q.period == a.period && q.column == a.column
        })
        .filter(|q| q.status == Status::Open || q.answer_batch.as_deref() == Some(&a.batch))
        .max_by_key(|q| q.opened_at);
    let Some(q) = target else {
        s.unmatched
            .push(format!("{} {} {} {}", a.form, a.unit, a.period, a.column));
        return;
    };
    q.answer = a.note.clone();
    q.answer_batch = Some(a.batch.clone());
    if a.confirmed && q.status == Status::Open {
        q.status = Status::Confirmed;
        q.closed_batch = Some(a.batch.clone());
        q.closed_at = Some(now);
        *s.closed.entry(Status::Confirmed.as_str()).or_default() += 1;
    }
}

/// A text column as plain `Utf8` (DataFusion hands out views).
fn utf8(a: &arrow::array::ArrayRef) -> Result<arrow::array::StringArray> {
    let a = arrow::compute::cast(a, &arrow::datatypes::DataType::Utf8)?;
    Ok(a.as_string::<i32>().clone())
}

/// A period as a year and its index within the year (month, quarter, 1).
pub fn parse_period(freq: Frequency, p: &str) -> Option<(i32, usize)> {
    let year: i32 = p.get(..4)?.parse().ok()?;
    let sub = match freq {
        Frequency::Monthly => p.get(5..)?.parse().ok()?,
        Frequency::Quarterly => p.get(5..)?.trim_start_matches(['Q', 'q']).parse().ok()?,
        Frequency::Annual | Frequency::Event => 1,
    };
    Some((year, sub))
}

/// Periods a year of a form.
pub fn periods_per_year(freq: Frequency) -> usize {
    match freq {
        Frequency::Monthly => 12,
        Frequency::Quarterly => 4,
        Frequency::Annual | Frequency::Event => 1,
    }
}

/// The columns a form's review reads, in a fixed order.
fn value_columns(review: &Review) -> Vec<String> {
    let mut cols: Vec<String> = Vec::new();
    for r in &review.rules {
        let over = match &r.kind {
            RuleKind::Ratio { over, .. } | RuleKind::Peer { over, .. } => Some(over),
            _ => None,
        };
        for c in std::iter::once(&r.column).chain(over) {
            if !cols.contains(c) {
                cols.push(c.clone());
            }
        }
    }
    cols
}

fn unit_expr(form: &Form) -> String {
    let parts: Vec<String> = form
        .unit_key()
        .iter()
        .map(|k| format!("cast(\"{k}\" as varchar)"))
        .collect();
    if parts.len() == 1 {
        parts[0].clone()
    } else {
        format!("concat_ws('|', {})", parts.join(", "))
    }
}

/// One unit's values and the queries the rules raise on them.
pub(crate) struct UnitReview {
    pub unit: String,
    /// The unit's rows (their values in the order of `cols`).
    rows: Vec<Obs>,
    cols: std::sync::Arc<[String]>,
    pub found: Vec<Query>,
}

impl UnitReview {
    /// The value of (period, column) and the batch of its row. Looked up
    /// only for the unit's earlier queries (few): a scan, not a map built
    /// for every unit.
    fn value(&self, period: &str, column: &str) -> Option<(Option<f64>, String)> {
        let c = self.cols.iter().position(|x| x == column)?;
        self.rows
            .iter()
            .find(|o| &*o.period == period)
            .map(|o| (o.values[c], o.batch.to_string()))
    }
}

/// A row of the judged units' values. Its texts are shared: a unit's rows
/// mostly repeat one another (county, batch, groups), and a form has few
/// periods, so millions of rows make few strings.
struct Obs {
    period: Arc<str>,
    year: i32,
    sub: usize,
    division: Option<Arc<str>>,
    batch: Arc<str>,
    values: Vec<Option<f64>>,
    groups: Vec<Option<Arc<str>>>,
}

/// What a review keeps of the units it judges.
enum Wanted<'a> {
    Every,
    /// The units the night's batches touched.
    Touched(&'a HashSet<String>),
}

impl Wanted<'_> {
    fn has(&self, unit: &str) -> bool {
        match self {
            Wanted::Every => true,
            Wanted::Touched(t) => t.contains(unit),
        }
    }
}

async fn review_form(
    ctx: &SessionContext,
    form: &Form,
    review: &Review,
    batches: Option<&[String]>,
    rows_memory: usize,
    keep: &HashSet<String>,
    mut each: impl FnMut(UnitReview),
) -> Result<u64> {
    let cols: std::sync::Arc<[String]> = value_columns(review).into();
    let period = form
        .period_column()
        .expect("checked at load: a reviewed form has a period")
        .name
        .clone();
    let peer_groups: Vec<String> = {
        let mut g: Vec<String> = Vec::new();
        for r in &review.rules {
            if let RuleKind::Peer { group_by, .. } = &r.kind {
                for c in group_by {
                    if !g.contains(c) {
                        g.push(c.clone());
                    }
                }
            }
        }
        g
    };
    let unit = unit_expr(form);
    let division = review
        .division
        .as_ref()
        .map(|d| format!("cast(\"{d}\" as varchar)"))
        .unwrap_or_else(|| "cast(null as varchar)".into());
    // No name: the few queries that need it read it after (`fill_names`).
    // The batch id, long and repeated, travels dictionary-encoded.
    let mut select = vec![
        format!("{unit} as _u"),
        format!("cast(\"{period}\" as varchar) as _p"),
        format!("{division} as _d"),
        "arrow_cast(_batch_id, 'Dictionary(Int32, Utf8)') as _b".to_string(),
    ];
    select.extend(
        cols.iter()
            .enumerate()
            .map(|(i, c)| format!("cast(\"{c}\" as double) as _v{i}")),
    );
    select.extend(
        peer_groups
            .iter()
            .enumerate()
            .map(|(i, c)| format!("cast(\"{c}\" as varchar) as _g{i}")),
    );
    let touched: HashSet<String>;
    let wanted = match batches {
        None => Wanted::Every,
        Some(batches) => {
            touched = strings(
                ctx,
                &format!(
                    "select distinct {unit} from raw.{f} where {}",
                    stmon_warehouse::in_list("_batch_id", batches),
                    f = form.name
                ),
            )
            .await?
            .into_iter()
            .collect();
            if touched.is_empty() {
                return Ok(0);
            }
            Wanted::Touched(&touched)
        }
    };
    // One unsorted pass over the form's current rows: the references from
    // every row, and the wanted units' rows kept compactly in memory while
    // they fit `rows_memory` (a national first review: 11.4 M rows, about
    // 650 MiB). Then each unit is judged from memory.
    let t0 = std::time::Instant::now();
    let mut refs = Refs::new(review, &cols, &peer_groups);
    let mut store = Some(Store::new(form.frequency, cols.len(), peer_groups.len()));
    let sql = format!("select {} from current.{}", select.join(", "), form.name);
    let mut stream = ctx.sql(&sql).await?.execute_stream().await?;
    while let Some(b) = stream.try_next().await? {
        refs.add(&b, 2, 1, 4)?;
        let Some(s) = store.as_mut() else { continue };
        let c = BatchCols::of(&b, cols.len(), peer_groups.len())?;
        for r in 0..b.num_rows() {
            if let Some(u) = c.u.get(r) {
                if wanted.has(u) {
                    s.push(u, &c, r);
                }
            }
        }
        if s.bytes() > rows_memory {
            tracing::info!(form = %form.name, rows = s.len(), "the rows do not fit the review's memory: sorting them instead");
            store = None;
        }
    }
    let (totals, bounds) = refs.finish(review);
    let env = Env {
        form,
        review,
        cols: cols.clone(),
        groups: &peer_groups,
        totals: &totals,
        bounds: &bounds,
    };
    // A unit goes on to the merge when it has queries, new or old.
    let judge = |u: String, rows: Vec<Obs>| {
        let r = env.unit(u, rows);
        (!r.found.is_empty() || keep.contains(&r.unit)).then_some(r)
    };
    tracing::info!(form = %form.name, elapsed_ms = t0.elapsed().as_millis() as u64, "review read");
    if let Some(mut store) = store {
        let t0 = std::time::Instant::now();
        let units = store.judge(&judge, &mut each);
        tracing::info!(form = %form.name, units, elapsed_ms = t0.elapsed().as_millis() as u64, "review judged in memory");
        return Ok(units);
    }
    // Too many rows to hold: the walk over them sorted by unit and period
    // (spilling), one unit at a time.
    let t0 = std::time::Instant::now();
    let sql = format!(
        "select {} from current.{} order by _u, _p",
        select.join(", "),
        form.name
    );
    let mut stream = ctx.sql(&sql).await?.execute_stream().await?;
    let mut one = Store::new(form.frequency, cols.len(), peer_groups.len());
    let mut current: Option<String> = None;
    let mut units = 0u64;
    while let Some(b) = stream.try_next().await? {
        let c = BatchCols::of(&b, cols.len(), peer_groups.len())?;
        for r in 0..b.num_rows() {
            let Some(u) = c.u.get(r) else { continue };
            if !wanted.has(u) {
                continue;
            }
            if current.as_deref() != Some(u) {
                units += one.judge(&judge, &mut each);
                current = Some(u.to_string());
            }
            one.push(u, &c, r);
        }
    }
    units += one.judge(&judge, &mut each);
    tracing::info!(form = %form.name, elapsed_ms = t0.elapsed().as_millis() as u64, "review walk done");
    Ok(units)
}

/// The text and value columns of one batch of the review's select
/// (`_u, _p, _d, _b`, values, groups).
struct BatchCols<'b> {
    u: TextCol,
    p: TextCol,
    d: TextCol,
    b: TextCol,
    vals: Vec<&'b arrow::array::Float64Array>,
    groups: Vec<TextCol>,
}

impl<'b> BatchCols<'b> {
    fn of(b: &'b RecordBatch, ncols: usize, ngroups: usize) -> Result<Self> {
        let text = |i: usize| TextCol::of(b.column(i));
        Ok(BatchCols {
            u: text(0)?,
            p: text(1)?,
            d: text(2)?,
            b: text(3)?,
            vals: (0..ncols)
                .map(|i| b.column(4 + i).as_primitive::<Float64Type>())
                .collect(),
            groups: (0..ngroups)
                .map(|i| text(4 + ncols + i))
                .collect::<Result<_>>()?,
        })
    }
}

/// No text (an id of [`Texts`]).
const NONE: u32 = u32::MAX;

/// Distinct texts by id, with the id of the text last looked up per slot
/// (a column's rows mostly repeat the one before: no hashing then).
#[derive(Default)]
struct Texts {
    ids: HashMap<Arc<str>, u32>,
    texts: Vec<Arc<str>>,
    last: Vec<(u32, Option<Arc<str>>)>,
}

impl Texts {
    fn id(&mut self, slot: usize, s: Option<&str>) -> u32 {
        let Some(s) = s else { return NONE };
        if self.last.len() <= slot {
            self.last.resize(slot + 1, (NONE, None));
        }
        if let (id, Some(last)) = &self.last[slot] {
            if &**last == s {
                return *id;
            }
        }
        let id = match self.ids.get(s) {
            Some(&id) => id,
            None => {
                let a: Arc<str> = s.into();
                let id = self.texts.len() as u32;
                self.texts.push(a.clone());
                self.ids.insert(a, id);
                id
            }
        };
        self.last[slot] = (id, Some(self.texts[id as usize].clone()));
        id
    }

    fn get(&self, id: u32) -> Option<Arc<str>> {
        (id != NONE).then(|| self.texts[id as usize].clone())
    }
}

/// Slots of [`Texts::id`].
const PERIOD: usize = 0;
const DIVISION: usize = 1;
const BATCH: usize = 2;
const GROUP: usize = 3;

/// Units' rows held compactly: per row the unit's number, text ids and
/// the values in columns (about 57 bytes a row for `enterprise_rd`),
/// [`Obs`] made per unit only when it is judged.
struct Store {
    freq: Frequency,
    ncols: usize,
    ngroups: usize,
    units: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
    /// The unit's number of the row pushed last.
    last: Option<(u32, Arc<str>)>,
    texts: Texts,
    /// Per text id: the period parsed (None: not a period, or not yet).
    parsed: Vec<Option<(i32, usize)>>,
    unit: Vec<u32>,
    period: Vec<u32>,
    division: Vec<u32>,
    batch: Vec<u32>,
    values: Vec<f64>,
    valid: arrow::array::BooleanBufferBuilder,
    groups: Vec<u32>,
}

impl Store {
    fn new(freq: Frequency, ncols: usize, ngroups: usize) -> Self {
        Store {
            freq,
            ncols,
            ngroups,
            units: HashMap::new(),
            names: Vec::new(),
            last: None,
            texts: Texts::default(),
            parsed: Vec::new(),
            unit: Vec::new(),
            period: Vec::new(),
            division: Vec::new(),
            batch: Vec::new(),
            values: Vec::new(),
            valid: arrow::array::BooleanBufferBuilder::new(0),
            groups: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.unit.len()
    }

    /// What the rows and units hold, roughly.
    fn bytes(&self) -> usize {
        let row = 16 + 8 * self.ncols + 4 * self.ngroups;
        self.len() * row + self.len() * self.ncols / 8 + self.names.len() * 96
    }

    /// Row `r` of unit `u`. A row whose period does not parse counts its
    /// unit but keeps no values (no rule can place it).
    fn push(&mut self, u: &str, c: &BatchCols<'_>, r: usize) {
        let unit = match &self.last {
            Some((id, last)) if &**last == u => *id,
            _ => {
                let id = match self.units.get(u) {
                    Some(&id) => id,
                    None => {
                        let a: Arc<str> = u.into();
                        let id = self.names.len() as u32;
                        self.names.push(a.clone());
                        self.units.insert(a, id);
                        id
                    }
                };
                self.last = Some((id, self.names[id as usize].clone()));
                id
            }
        };
        let p = self.texts.id(PERIOD, c.p.get(r));
        if p == NONE {
            return;
        }
        if self.parsed.len() <= p as usize {
            self.parsed.resize(p as usize + 1, None);
        }
        if self.parsed[p as usize].is_none() {
            let text = self.texts.get(p).expect("an id");
            self.parsed[p as usize] = parse_period(self.freq, &text);
            if self.parsed[p as usize].is_none() {
                return;
            }
        }
        self.unit.push(unit);
        self.period.push(p);
        self.division.push(self.texts.id(DIVISION, c.d.get(r)));
        self.batch.push(self.texts.id(BATCH, c.b.get(r)));
        for a in &c.vals {
            let ok = a.is_valid(r);
            self.valid.append(ok);
            self.values.push(if ok { a.value(r) } else { 0.0 });
        }
        for (g, a) in c.groups.iter().enumerate() {
            let id = self.texts.id(GROUP + g, a.get(r));
            self.groups.push(id);
        }
    }

    /// Each unit with its rows sorted by period through `f` (on every core
    /// when the units are many), what it returns to `each`, then empties
    /// the store (its texts stay for the next units). Returns the units.
    fn judge<T: Send>(
        &mut self,
        f: &(impl Fn(String, Vec<Obs>) -> Option<T> + Sync),
        each: &mut impl FnMut(T),
    ) -> u64 {
        // The rows of each unit, in the order they came: a counting sort.
        let n = self.names.len();
        let mut start = vec![0usize; n + 1];
        for &u in &self.unit {
            start[u as usize + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut next = start.clone();
        let mut order = vec![0u32; self.unit.len()];
        for (row, &u) in self.unit.iter().enumerate() {
            order[next[u as usize]] = row as u32;
            next[u as usize] += 1;
        }
        let valid = self.valid.finish();
        let this = &*self;
        let text = |id: u32| this.texts.get(id);
        let unit = |u: usize| -> Option<T> {
            let mut rows: Vec<Obs> = order[start[u]..start[u + 1]]
                .iter()
                .map(|&row| {
                    let row = row as usize;
                    let p = this.period[row];
                    let (year, sub) = this.parsed[p as usize].expect("parsed at push");
                    let v = row * this.ncols;
                    Obs {
                        period: text(p).expect("a period"),
                        year,
                        sub,
                        division: text(this.division[row]),
                        batch: text(this.batch[row]).unwrap_or_else(|| "".into()),
                        values: (v..v + this.ncols)
                            .map(|i| valid.value(i).then(|| this.values[i]))
                            .collect(),
                        groups: this.groups[row * this.ngroups..(row + 1) * this.ngroups]
                            .iter()
                            .map(|&g| text(g))
                            .collect(),
                    }
                })
                .collect();
            rows.sort_by(|a, b| a.period.cmp(&b.period));
            f(this.names[u].to_string(), rows)
        };
        let threads = if n >= 10_000 {
            std::thread::available_parallelism().map_or(1, |t| t.get())
        } else {
            1
        };
        if threads == 1 {
            for u in 0..n {
                if let Some(t) = unit(u) {
                    each(t);
                }
            }
        } else {
            // Contiguous shares of the units; only what `f` keeps (units
            // with queries) waits for the merge.
            let share = n.div_ceil(threads);
            let kept: Vec<Vec<T>> = std::thread::scope(|s| {
                let unit = &unit;
                let handles: Vec<_> = (0..threads)
                    .map(|k| {
                        s.spawn(move || {
                            (k * share..((k + 1) * share).min(n))
                                .filter_map(unit)
                                .collect::<Vec<T>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a judging thread panicked"))
                    .collect()
            });
            for t in kept.into_iter().flatten() {
                each(t);
            }
        }
        self.units.clear();
        self.names.clear();
        self.last = None;
        self.unit.clear();
        self.period.clear();
        self.division.clear();
        self.batch.clear();
        self.values.clear();
        self.groups.clear();
        n as u64
    }
}

/// A text column as DataFusion hands it out (a view, or plain), read in place.
enum TextCol {
    View(arrow::array::StringViewArray),
    Plain(arrow::array::StringArray),
    /// Dictionary-encoded (the batch ids): keys into the values.
    Dict(arrow::array::Int32Array, Box<TextCol>),
}

impl TextCol {
    fn of(a: &arrow::array::ArrayRef) -> Result<Self> {
        use arrow::datatypes::{DataType, Int32Type};
        Ok(match a.data_type() {
            DataType::Utf8View => TextCol::View(a.as_string_view().clone()),
            DataType::Dictionary(k, _) if **k == DataType::Int32 => {
                let d = a.as_dictionary::<Int32Type>();
                TextCol::Dict(d.keys().clone(), Box::new(TextCol::of(d.values())?))
            }
            _ => TextCol::Plain(utf8(a)?),
        })
    }
    fn get(&self, i: usize) -> Option<&str> {
        match self {
            TextCol::View(a) => a.is_valid(i).then(|| a.value(i)),
            TextCol::Plain(a) => a.is_valid(i).then(|| a.value(i)),
            TextCol::Dict(k, v) => {
                if k.is_valid(i) {
                    v.get(k.value(i) as usize)
                } else {
                    None
                }
            }
        }
    }
}

/// Division totals per division, then period: one per value column.
type Totals = HashMap<String, HashMap<String, Vec<f64>>>;

/// Peer bounds per rule index, then per group values and period joined by
/// `\u{1f}`.
type Bounds = HashMap<usize, HashMap<String, HbBounds>>;

/// The references the rules judge against, from every current unit of the
/// form in one unsorted pass: the division totals (for scores) and the
/// peer rules' Hidiroglou–Berthelot bounds per group and period (units with
/// both sides above zero; groups under `min_units` have none).
struct Refs {
    ncols: usize,
    /// (rule index, value column, over column, its group columns)
    peers: Vec<(usize, usize, usize, Vec<usize>)>,
    totals: Totals,
    /// Per peer rule: group values and period → the units' (x, y).
    units: Vec<HashMap<String, Vec<(f64, f64)>>>,
    key: String,
}

impl Refs {
    fn new(review: &Review, cols: &[String], groups: &[String]) -> Self {
        let peers: Vec<(usize, usize, usize, Vec<usize>)> = review
            .rules
            .iter()
            .enumerate()
            .filter_map(|(ri, r)| match &r.kind {
                RuleKind::Peer { over, group_by, .. } => Some((
                    ri,
                    cols.iter().position(|c| *c == r.column)?,
                    cols.iter().position(|c| c == over)?,
                    group_by
                        .iter()
                        .map(|g| groups.iter().position(|x| x == g))
                        .collect::<Option<Vec<usize>>>()?,
                )),
                _ => None,
            })
            .collect();
        Refs {
            ncols: cols.len(),
            units: vec![HashMap::new(); peers.len()],
            peers,
            totals: HashMap::new(),
            key: String::new(),
        }
    }

    /// Adds a batch whose division, period and first value column are at
    /// `d`, `p` and `v` (the values, then the groups, follow in order).
    fn add(&mut self, b: &RecordBatch, d: usize, p: usize, v: usize) -> Result<()> {
        let (dc, pc) = (TextCol::of(b.column(d))?, TextCol::of(b.column(p))?);
        let vals: Vec<&arrow::array::Float64Array> = (0..self.ncols)
            .map(|i| b.column(v + i).as_primitive::<Float64Type>())
            .collect();
        let ngroups = b.num_columns() - v - self.ncols;
        let gs: Vec<TextCol> = (0..ngroups)
            .map(|i| TextCol::of(b.column(v + self.ncols + i)))
            .collect::<Result<_>>()?;
        let val = |c: usize, r: usize| vals[c].is_valid(r).then(|| vals[c].value(r));
        for r in 0..b.num_rows() {
            let Some(period) = pc.get(r) else { continue };
            if let Some(d) = dc.get(r) {
                // Lookups by borrowed text: a new key only once per
                // (division, period).
                if !self.totals.contains_key(d) {
                    self.totals.insert(d.to_string(), HashMap::new());
                }
                let by_period = self.totals.get_mut(d).expect("inserted");
                if !by_period.contains_key(period) {
                    by_period.insert(period.to_string(), vec![0.0; self.ncols]);
                }
                let t = by_period.get_mut(period).expect("inserted");
                for (c, x) in t.iter_mut().enumerate() {
                    *x += val(c, r).unwrap_or(0.0);
                }
            }
            'peers: for (k, (_, x, y, g)) in self.peers.iter().enumerate() {
                let (Some(x), Some(y)) = (val(*x, r), val(*y, r)) else {
                    continue;
                };
                if x <= 0.0 || y <= 0.0 {
                    continue;
                }
                self.key.clear();
                for &gi in g {
                    let Some(s) = gs[gi].get(r) else {
                        continue 'peers;
                    };
                    self.key.push_str(s);
                    self.key.push('\u{1f}');
                }
                self.key.push_str(period);
                match self.units[k].get_mut(self.key.as_str()) {
                    Some(u) => u.push((x, y)),
                    None => {
                        self.units[k].insert(self.key.clone(), vec![(x, y)]);
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(self, review: &Review) -> (Totals, Bounds) {
        let mut bounds: Bounds = HashMap::new();
        for ((ri, _, _, _), groups) in self.peers.iter().zip(self.units) {
            let RuleKind::Peer { min_units, hb, .. } = &review.rules[*ri].kind else {
                unreachable!("a peer rule")
            };
            let out = bounds.entry(*ri).or_default();
            for (key, us) in groups {
                if let Some(b) = rules::hb_bounds(&us, hb, *min_units) {
                    out.insert(key, b);
                }
            }
        }
        (self.totals, bounds)
    }
}

struct Env<'a> {
    form: &'a Form,
    review: &'a Review,
    cols: std::sync::Arc<[String]>,
    groups: &'a [String],
    totals: &'a Totals,
    bounds: &'a Bounds,
}

impl Env<'_> {
    /// Every rule on one unit's rows (sorted by period).
    fn unit(&self, unit: String, rows: Vec<Obs>) -> UnitReview {
        let p = periods_per_year(self.form.frequency);
        let ci = |c: &str| {
            self.cols
                .iter()
                .position(|x| x == c)
                .expect("a value column")
        };
        let by_period: HashMap<(i32, usize), usize> = rows
            .iter()
            .enumerate()
            .map(|(i, o)| ((o.year, o.sub), i))
            .collect();
        let years: Vec<i32> = {
            let mut y: Vec<i32> = rows.iter().map(|o| o.year).collect();
            y.dedup();
            y
        };
        let series = |col: usize, year: i32| -> Option<Year> {
            let mut y = Year::new(p);
            let mut any = false;
            for o in rows.iter().filter(|o| o.year == year) {
                if (1..=p).contains(&o.sub) {
                    y.values[o.sub - 1] = o.values[col];
                    any |= o.values[col].is_some();
                }
            }
            any.then_some(y)
        };
        // (row, column) → findings with their rule index.
        let mut found: BTreeMap<(usize, usize), Vec<(usize, Finding)>> = BTreeMap::new();
        for (ri, rule) in self.review.rules.iter().enumerate() {
            let c = ci(&rule.column);
            match &rule.kind {
                RuleKind::Ratio {
                    over,
                    min,
                    max,
                    tolerance,
                } => {
                    let o = ci(over);
                    for (i, row) in rows.iter().enumerate() {
                        if let (Some(x), Some(y)) = (row.values[c], row.values[o]) {
                            if let Some((expected, low, high, reason)) =
                                rules::ratio(x, y, *min, *max, *tolerance)
                            {
                                found.entry((i, c)).or_default().push((
                                    ri,
                                    Finding {
                                        period: row.sub,
                                        reported: x,
                                        expected,
                                        low,
                                        high,
                                        reason,
                                    },
                                ));
                            }
                        }
                    }
                }
                RuleKind::History { .. } | RuleKind::Increment { .. } => {
                    for &year in &years {
                        let Some(this) = series(c, year) else {
                            continue;
                        };
                        let last = series(c, year - 1);
                        let fs = match &rule.kind {
                            RuleKind::History { factor } => {
                                rules::history(&this, last.as_ref(), *factor)
                            }
                            RuleKind::Increment { factor, min_share } => {
                                rules::increment(&this, last.as_ref(), *factor, *min_share)
                            }
                            _ => unreachable!("matched above"),
                        };
                        for f in fs {
                            if let Some(&i) = by_period.get(&(year, f.period)) {
                                found.entry((i, c)).or_default().push((ri, f));
                            }
                        }
                    }
                }
                RuleKind::Peer {
                    over, group_by, hb, ..
                } => {
                    let o = ci(over);
                    let gi: Vec<usize> = group_by
                        .iter()
                        .map(|g| {
                            self.groups
                                .iter()
                                .position(|x| x == g)
                                .expect("a group column")
                        })
                        .collect();
                    let Some(bounds) = self.bounds.get(&ri) else {
                        continue;
                    };
                    let mut key = String::new();
                    'rows: for (i, row) in rows.iter().enumerate() {
                        let (Some(x), Some(y)) = (row.values[c], row.values[o]) else {
                            continue;
                        };
                        key.clear();
                        for &g in &gi {
                            let Some(v) = &row.groups[g] else {
                                continue 'rows;
                            };
                            key.push_str(v);
                            key.push('\u{1f}');
                        }
                        key.push_str(&row.period);
                        if let Some(b) = bounds.get(key.as_str()) {
                            if let Some(mut f) = rules::peer(x, y, b, hb.u) {
                                f.period = row.sub;
                                found.entry((i, c)).or_default().push((ri, f));
                            }
                        }
                    }
                }
            }
        }
        // A ratio whose denominator is itself doubted by the unit's own
        // history (revenue typed in 元) says nothing of its numerator: the
        // query is the denominator's.
        let own: HashSet<(usize, usize)> = found
            .iter()
            .filter(|(_, fs)| {
                fs.iter().any(|(ri, _)| {
                    matches!(
                        self.review.rules[*ri].kind,
                        RuleKind::History { .. } | RuleKind::Increment { .. }
                    )
                })
            })
            .map(|(k, _)| *k)
            .collect();
        for ((i, _), fs) in found.iter_mut() {
            fs.retain(|(ri, _)| match &self.review.rules[*ri].kind {
                RuleKind::Ratio { over, .. } | RuleKind::Peer { over, .. } => {
                    !own.contains(&(*i, ci(over)))
                }
                _ => true,
            });
        }
        found.retain(|_, fs| !fs.is_empty());
        let mut out = Vec::new();
        for ((i, c), fs) in found {
            let row = &rows[i];
            let scored: Vec<(usize, Finding, f64)> = fs
                .into_iter()
                .map(|(ri, f)| {
                    let s = self.score(row, c, &f);
                    (ri, f, s)
                })
                .collect();
            // The highest score; among scores within 1 % of it, the rule
            // that knows the unit best: its own history, then its
            // increments, then the row's ratios, then its peers (a slip of
            // ×10,000 is as far from the revenue bound as from last year,
            // but last year's value is the one to expect).
            let top = scored.iter().map(|s| s.2).fold(f64::MIN, f64::max);
            let rank = |ri: usize| match self.review.rules[ri].kind {
                RuleKind::History { .. } => 0,
                RuleKind::Increment { .. } => 1,
                RuleKind::Ratio { .. } => 2,
                RuleKind::Peer { .. } => 3,
            };
            let best = scored
                .iter()
                .filter(|s| s.2 >= top * 0.99)
                .min_by_key(|s| (rank(s.0), s.0))
                .expect("at least one finding");
            let mut ids: Vec<usize> = scored.iter().map(|s| s.0).collect();
            ids.sort();
            ids.dedup();
            let column = &self.cols[c];
            out.push(Query {
                query_id: query_id(&self.form.name, &unit, &row.period, column, best.1.reported),
                form: self.form.name.clone(),
                unit_column: self.form.unit_key().join("|"),
                unit: unit.clone(),
                name: None,
                division: row.division.as_deref().map(str::to_string),
                period: row.period.to_string(),
                column: column.clone(),
                reported: best.1.reported,
                expected: best.1.expected,
                low: best.1.low,
                high: best.1.high,
                rule: self.review.rules[best.0].id.clone(),
                rules: ids
                    .iter()
                    .map(|&r| self.review.rules[r].id.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                reason: best.1.reason.clone(),
                score: best.2,
                high_score: best.2 >= self.review.high_score,
                status: Status::Open,
                opened_batch: row.batch.to_string(),
                opened_at: DateTime::<Utc>::MIN_UTC,
                closed_batch: None,
                closed_at: None,
                answer: None,
                answer_batch: None,
            });
        }
        UnitReview {
            unit,
            rows,
            cols: self.cols.clone(),
            found: out,
        }
    }

    /// The selective-editing score of a finding (see [`Query::score`]).
    fn score(&self, row: &Obs, col: usize, f: &Finding) -> f64 {
        const TINY: f64 = 1e-9;
        let dev = (f.reported - f.expected).abs();
        let base = match (&self.review.division, &row.division) {
            (Some(_), Some(d)) => self
                .totals
                .get(&**d)
                .and_then(|t| t.get(&*row.period))
                .map(|t| t[col] - f.reported + f.expected),
            _ => None,
        }
        .filter(|b| *b > TINY)
        .unwrap_or(f.expected.abs());
        (dev / base.max(TINY)).min(1e9)
    }
}

/// Merges one unit's new findings with its earlier queries.
fn merge(
    old: Vec<Query>,
    mut u: UnitReview,
    now: DateTime<Utc>,
    latest: &str,
    out: &mut Vec<Query>,
    s: &mut Summary,
) {
    if old.is_empty() && u.found.is_empty() {
        return;
    }
    let mut found: HashMap<String, Query> = std::mem::take(&mut u.found)
        .into_iter()
        .map(|q| (q.query_id.clone(), q))
        .collect();
    let doubted_cells: HashSet<(String, String)> = found
        .values()
        .map(|q| (q.period.clone(), q.column.clone()))
        .collect();
    let close = |q: &mut Query, status: Status, batch: String, s: &mut Summary| {
        q.status = status;
        q.closed_batch = Some(batch);
        q.closed_at = Some(now);
        *s.closed.entry(status.as_str()).or_default() += 1;
    };
    for mut q in old {
        let cell = (q.period.clone(), q.column.clone());
        let (value, batch) = u
            .value(&q.period, &q.column)
            .unwrap_or((None, latest.to_string()));
        let same = value == Some(q.reported);
        match q.status {
            Status::Open => {
                if let Some(f) = found.remove(&q.query_id) {
                    // Still doubted: refresh what the rules say of it.
                    q.expected = f.expected;
                    q.low = f.low;
                    q.high = f.high;
                    q.rule = f.rule;
                    q.rules = f.rules;
                    q.reason = f.reason;
                    q.score = f.score;
                    q.high_score = f.high_score;
                } else if !same && value.is_some() && !doubted_cells.contains(&cell) {
                    close(&mut q, Status::Corrected, batch, s);
                } else {
                    close(&mut q, Status::Superseded, batch, s);
                }
            }
            Status::Confirmed => {
                // A confirmed value is not queried again while it stands.
                found.remove(&q.query_id);
            }
            Status::Corrected | Status::Superseded => {
                if let Some(f) = found.remove(&q.query_id) {
                    // The doubted value came back: the query stands again.
                    let opened = q.opened_at;
                    q = f;
                    q.opened_at = opened;
                    s.opened += 1;
                    s.opened_high += q.high_score as u64;
                }
            }
        }
        out.push(q);
    }
    let mut fresh: Vec<Query> = found.into_values().collect();
    fresh.sort_by(|a, b| (&a.period, &a.column).cmp(&(&b.period, &b.column)));
    for mut q in fresh {
        q.opened_at = now;
        s.opened += 1;
        s.opened_high += q.high_score as u64;
        out.push(q);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, StringArray};

    /// Enough units to judge on every core: each unit reaches `f` once,
    /// with its own rows sorted by period, and what `f` keeps comes back in
    /// unit order.
    #[test]
    fn many_units_are_judged_once_each_in_order() {
        let n = 12_345usize;
        // December first, then June: the store must sort each unit's rows.
        let mut u = Vec::new();
        let mut p = Vec::new();
        let mut v = Vec::new();
        for period in ["2023-12", "2023-06"] {
            for i in 0..n {
                u.push(format!("u{i:05}"));
                p.push(period.to_string());
                v.push(i as f64 + if period == "2023-06" { 0.5 } else { 0.0 });
            }
        }
        let text =
            |x: &[String]| Arc::new(StringArray::from_iter_values(x)) as arrow::array::ArrayRef;
        let none = Arc::new(StringArray::from(vec![None::<&str>; 2 * n])) as arrow::array::ArrayRef;
        let b = RecordBatch::try_from_iter([
            ("_u", text(&u)),
            ("_p", text(&p)),
            ("_d", none.clone()),
            ("_b", text(&vec!["b1".to_string(); 2 * n])),
            (
                "v",
                Arc::new(Float64Array::from(v)) as arrow::array::ArrayRef,
            ),
        ])
        .unwrap();
        let c = BatchCols::of(&b, 1, 0).unwrap();
        let mut store = Store::new(Frequency::Monthly, 1, 0);
        for (r, unit) in u.iter().enumerate() {
            store.push(unit, &c, r);
        }
        let seen = std::sync::atomic::AtomicUsize::new(0);
        let f = |unit: String, rows: Vec<Obs>| {
            seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let i: usize = unit[1..].parse().unwrap();
            assert_eq!(
                rows.iter().map(|o| &*o.period).collect::<Vec<_>>(),
                ["2023-06", "2023-12"],
                "{unit}"
            );
            assert_eq!(rows[0].values, [Some(i as f64 + 0.5)]);
            (i % 1000 == 7).then_some(unit)
        };
        let mut kept = Vec::new();
        assert_eq!(store.judge(&f, &mut |k| kept.push(k)), n as u64);
        assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), n);
        let expected: Vec<String> = (0..n)
            .filter(|i| i % 1000 == 7)
            .map(|i| format!("u{i:05}"))
            .collect();
        assert_eq!(kept, expected);
        // The store is empty for the next units.
        assert_eq!(store.judge(&f, &mut |k| kept.push(k)), 0);
    }
}
