//! The year-end assessment over the warehouse: reads the indicator marts at a
//! Delta version, runs a scheme (`stmon-assess`), and lays out the ranking
//! tables that `outputs` writes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, StringArray};
use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;
use stmon_assess::method::{assess, UnitInput, UnitResult};
use stmon_assess::montecarlo::{robustness, Interval};
use stmon_assess::scheme::{Aggregation, Method, Scheme, UnitKind};
use stmon_warehouse::{TableId, Warehouse};

use crate::{Error, Result};

/// One value of an output table.
#[derive(Debug, Clone, PartialEq)]
pub enum V {
    Text(String),
    Int(i64),
    /// A number and its decimals for display.
    Num(f64, usize),
    Null,
}

impl V {
    pub fn text(&self) -> String {
        match self {
            V::Text(s) => s.clone(),
            V::Int(i) => i.to_string(),
            V::Num(x, d) => format!("{x:.d$}"),
            V::Null => String::new(),
        }
    }
    fn opt_num(x: Option<f64>, d: usize) -> V {
        x.map(|x| V::Num(x, d)).unwrap_or(V::Null)
    }
}

/// A table for people: English column ids (Delta, CSV header comments),
/// Chinese headers (CSV, XLSX, HTML), rows.
#[derive(Debug, Clone)]
pub struct Table {
    /// `counties`, `counties_change`, `zones`, `institutes`.
    pub name: String,
    pub title: String,
    pub columns: Vec<(String, String)>,
    pub rows: Vec<Vec<V>>,
}

/// What every output carries, so the same table can be produced again.
#[derive(Debug, Clone)]
pub struct Provenance {
    pub scheme_name: String,
    pub scheme_file: String,
    pub scheme_hash: String,
    pub source_table: String,
    pub source_version: i64,
    pub ran_at: DateTime<Utc>,
}

/// Which values an assessment ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Values {
    /// The indicators as published (`value`).
    #[default]
    Published,
    /// Every input under an open review query held at its expected value
    /// (`held_value`; `stmon assess --hold-queried`).
    Held,
}

impl Values {
    fn column(self) -> &'static str {
        match self {
            Values::Published => "value",
            Values::Held => "held_value",
        }
    }
    fn other(self) -> Values {
        match self {
            Values::Published => Values::Held,
            Values::Held => Values::Published,
        }
    }
}

/// What of one unit's indicator rests on open review queries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Queried {
    pub count: i64,
    /// The queried values' share of the numerator.
    pub share: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Assessment {
    /// The values ranked.
    pub values: Values,
    /// Per unit, per indicator of the scheme: what rests on open queries
    /// (counties; marts.indicators' `queried`, `queried_share`).
    pub queried: BTreeMap<String, Vec<Option<Queried>>>,
    /// When any value rests on open queries: each unit's rank on the other
    /// values (held at expected when `values` is published, and the other
    /// way round), for the column beside the rank where they differ.
    pub other_ranks: Option<BTreeMap<String, usize>>,
    pub scheme: Scheme,
    pub provenance: Provenance,
    pub results: Vec<UnitResult>,
    pub intervals: Option<Vec<Interval>>,
    /// Rank of each unit under the same scheme on the previous year's values.
    pub previous_ranks: BTreeMap<String, usize>,
    /// Counties: the change table (ranked on year-over-year improvement).
    pub change: Option<Vec<UnitResult>>,
    pub tables: Vec<Table>,
    /// The Chinese label of each group id (`national` → 国家级), from the
    /// enumerations of the unit's submission form: the tables keep the ids,
    /// the reports print the labels.
    pub group_labels: BTreeMap<String, String>,
}

fn source_of(unit: UnitKind) -> TableId {
    match unit {
        UnitKind::County => TableId::new("marts", "indicators"),
        _ => TableId::new("marts", "unit_indicators"),
    }
}

/// The source table of a scheme at a Delta version (latest when None),
/// registered as `src` in a fresh session. Returns the version read.
async fn open_source(
    wh: &Warehouse,
    unit: UnitKind,
    version: Option<i64>,
) -> Result<(SessionContext, TableId, i64)> {
    let id = source_of(unit);
    let mut table = wh.table(&id).await?;
    if table.version().is_none() {
        return Err(Error::NotBuilt { table: id });
    }
    if let Some(v) = version {
        table
            .load_version(v as u64)
            .await
            .map_err(|e| Error::NoVersion {
                table: id.clone(),
                version: v,
                source: Box::new(e),
            })?;
    }
    let read = table.version().unwrap_or(0) as i64;
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state())?;
    ctx.register_table("src", table.table_provider().await?)?;
    Ok((ctx, id, read))
}

/// Units and their values, and what of them rests on open queries.
type Units = (Vec<UnitInput>, BTreeMap<String, Vec<Option<Queried>>>);

async fn units_of(
    ctx: &SessionContext,
    scheme: &Scheme,
    year: i32,
    values: Values,
) -> Result<Units> {
    // Indicator tables written before the review have no `queried`: read
    // at such a version, nothing rests on queries.
    let reviewed = ctx
        .table("src")
        .await?
        .schema()
        .has_column_with_unqualified_name("queried");
    let (value, queried) = if reviewed {
        (values.column(), "queried, queried_share")
    } else {
        ("value", "cast(0 as bigint), cast(null as double)")
    };
    let sql = match scheme.unit {
        UnitKind::County => format!(
            "select division_code, division_name, cast(null as varchar) as grp, indicator_id, {value}, {queried} from src \
             where year = {year} and as_of_month = {m} and level = 'county'",
            m = scheme.as_of_month
        ),
        UnitKind::Zone | UnitKind::Institute => format!(
            "select unit_id, unit_name, {grp} as grp, indicator_id, value, cast(0 as bigint), cast(null as double) from src \
             where year = {year} and unit_type = '{t}'",
            grp = if scheme.group_by.is_some() { "zone_level" } else { "cast(null as varchar)" },
            t = scheme.unit.as_str()
        ),
    };
    let mut units: BTreeMap<String, UnitInput> = BTreeMap::new();
    let mut rests: BTreeMap<String, Vec<Option<Queried>>> = BTreeMap::new();
    let ids: Vec<&str> = scheme.indicators.iter().map(|i| i.id.as_str()).collect();
    for b in ctx.sql(&sql).await?.collect().await? {
        let s = |i: usize| stmon_models::text_column(&b, i);
        let (id, name, grp, ind) = (s(0)?, s(1)?, s(2)?, s(3)?);
        let v = stmon_models::float_column(&b, 4)?;
        let n = stmon_models::float_column(&b, 5)?;
        let share = stmon_models::float_column(&b, 6)?;
        for r in 0..b.num_rows() {
            if n.is_valid(r) && n.value(r) > 0.0 {
                if let Some(k) = ids.iter().position(|x| *x == ind.value(r)) {
                    rests
                        .entry(id.value(r).to_string())
                        .or_insert_with(|| vec![None; ids.len()])[k] = Some(Queried {
                        count: n.value(r) as i64,
                        share: share.is_valid(r).then(|| share.value(r)),
                    });
                }
            }
            let u = units
                .entry(id.value(r).to_string())
                .or_insert_with(|| UnitInput {
                    id: id.value(r).to_string(),
                    name: name.value(r).to_string(),
                    group: grp.is_valid(r).then(|| grp.value(r).to_string()),
                    values: vec![None; ids.len()],
                });
            if let Some(k) = ids.iter().position(|x| *x == ind.value(r)) {
                u.values[k] = v.is_valid(r).then(|| v.value(r));
            }
        }
    }
    let mut out: Vec<UnitInput> = units.into_values().collect();
    // Groups in a stable order (national before provincial…), units by id within.
    out.sort_by(|a, b| a.group.cmp(&b.group).then(a.id.cmp(&b.id)));
    Ok((out, rests))
}

/// Runs one scheme file against the warehouse (at `version` of its source
/// table) on the published values.
pub async fn run(wh: &Warehouse, scheme_path: &Path, version: Option<i64>) -> Result<Assessment> {
    run_with(wh, scheme_path, version, Values::Published).await
}

/// Runs one scheme file on the `values` chosen.
pub async fn run_with(
    wh: &Warehouse,
    scheme_path: &Path,
    version: Option<i64>,
    values: Values,
) -> Result<Assessment> {
    let scheme = Scheme::load(scheme_path)?;
    let (ctx, source, read) = open_source(wh, scheme.unit, version).await?;
    let (units, queried) = units_of(&ctx, &scheme, scheme.year, values).await?;
    if units.is_empty() {
        return Err(Error::NoUnits {
            path: scheme_path.to_path_buf(),
            unit: scheme.unit.as_str(),
            year: scheme.year,
            table: source,
            version: read,
        });
    }
    let results = assess(&scheme, &units);
    let intervals = robustness(&scheme, &units);
    let other_ranks = if queried.is_empty() {
        None
    } else {
        let (other, _) = units_of(&ctx, &scheme, scheme.year, values.other()).await?;
        Some(
            assess(&scheme, &other)
                .into_iter()
                .map(|r| (r.id, r.rank))
                .collect(),
        )
    };
    // The previous year as published: its queries are its own year's.
    let (prev_units, _) = units_of(&ctx, &scheme, scheme.year - 1, Values::Published).await?;
    let mut previous_ranks = BTreeMap::new();
    if !prev_units.is_empty() {
        for r in assess(&scheme, &prev_units) {
            previous_ranks.insert(r.id.clone(), r.rank);
        }
    }
    let change = if scheme.unit == UnitKind::County && !prev_units.is_empty() {
        Some(change_table(&scheme, &units, &prev_units))
    } else {
        None
    };
    let scheme_unit = scheme.unit;
    let provenance = Provenance {
        scheme_name: scheme.name.clone(),
        scheme_file: scheme_path.display().to_string(),
        scheme_hash: scheme.hash.clone(),
        source_table: source.to_string(),
        source_version: read,
        ran_at: Utc::now(),
    };
    let mut a = Assessment {
        values,
        queried,
        other_ranks,
        scheme,
        provenance,
        results,
        intervals,
        previous_ranks,
        change,
        tables: Vec::new(),
        group_labels: group_labels(wh, scheme_unit),
    };
    a.tables = layout(&a);
    if a.values == Values::Held {
        // Beside the published tables, never over them.
        for t in &mut a.tables {
            t.name.push_str("_held");
        }
    }
    Ok(a)
}

/// Every enumerated value of the unit's form with its label (zones: the
/// levels of `zone_report`).
fn group_labels(wh: &Warehouse, unit: UnitKind) -> BTreeMap<String, String> {
    let form = match unit {
        UnitKind::County => return BTreeMap::new(),
        UnitKind::Zone => "zone_report",
        UnitKind::Institute => "institute_report",
    };
    wh.catalog
        .form(form)
        .into_iter()
        .flat_map(|f| f.columns.iter())
        .flat_map(|c| c.values.iter())
        .map(|v| (v.id.clone(), v.label.clone()))
        .collect()
}

/// The change table: each indicator's change against the previous year
/// (this year's value − last year's), normalised min_max over the units
/// (direction kept), aggregated with the scheme's weights (arithmetic) and
/// missing policy, ranked like the level table.
fn change_table(scheme: &Scheme, now: &[UnitInput], before: &[UnitInput]) -> Vec<UnitResult> {
    let mut s = scheme.clone();
    s.aggregation = Aggregation::Arithmetic;
    s.grades.clear();
    for ind in &mut s.indicators {
        ind.normalisation = Method::MinMax;
    }
    let deltas: Vec<UnitInput> = now
        .iter()
        .map(|u| {
            let prev = before.iter().find(|p| p.id == u.id);
            UnitInput {
                values: u
                    .values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| match (v, prev.and_then(|p| p.values[i])) {
                        (Some(a), Some(b)) => Some(a - b),
                        _ => None,
                    })
                    .collect(),
                ..u.clone()
            }
        })
        .collect();
    assess(&s, &deltas)
}

fn label(scheme: &Scheme, id: &str) -> String {
    scheme
        .indicators
        .iter()
        .find(|i| i.id == id)
        .and_then(|i| i.label.clone())
        .unwrap_or_else(|| id.to_string())
}

fn layout(a: &Assessment) -> Vec<Table> {
    let s = &a.scheme;
    let base = match s.unit {
        UnitKind::County => "counties",
        UnitKind::Zone => "zones",
        UnitKind::Institute => "institutes",
    };
    let mut tables = vec![level_table(a, base)];
    if let Some(change) = &a.change {
        let mut cols = vec![
            ("rank".to_string(), "排名".to_string()),
            ("unit_id".into(), "代码".into()),
            ("unit_name".into(), "名称".into()),
            ("change_score".into(), "进步得分".into()),
            ("strongest".into(), "进步最大指标".into()),
            ("weakest".into(), "退步最大指标".into()),
        ];
        for ind in &s.indicators {
            let l = label(s, &ind.id);
            cols.push((format!("{}_change", ind.id), format!("{l} 变化")));
            cols.push((format!("{}_score", ind.id), format!("{l} 得分")));
        }
        cols.push(("notes".into(), "备注".into()));
        let mut rows: Vec<Vec<V>> = change
            .iter()
            .map(|r| {
                let mut row = vec![
                    V::Int(r.rank as i64),
                    V::Text(r.id.clone()),
                    V::Text(r.name.clone()),
                    V::Num(r.total_rounded, s.precision as usize),
                    V::Text(
                        r.strongest
                            .as_deref()
                            .map(|x| label(s, x))
                            .unwrap_or_default(),
                    ),
                    V::Text(
                        r.weakest
                            .as_deref()
                            .map(|x| label(s, x))
                            .unwrap_or_default(),
                    ),
                ];
                for i in 0..s.indicators.len() {
                    row.push(V::opt_num(r.values[i], 6));
                    row.push(V::opt_num(r.scores[i], 2));
                }
                row.push(V::Text(notes(s, r)));
                row
            })
            .collect();
        rows.sort_by_key(|r| match r[0] {
            V::Int(i) => i,
            _ => 0,
        });
        tables.push(Table {
            name: format!("{base}_change"),
            title: format!(
                "{} — 相对{}年变化",
                s.title.clone().unwrap_or_else(|| s.name.clone()),
                s.year - 1
            ),
            columns: cols,
            rows,
        });
    }
    tables
}

/// The 备注 of a unit's row, in Chinese with the work plan's indicator
/// names (the scheme's labels): what a committee reads.
fn notes(s: &Scheme, r: &UnitResult) -> String {
    r.cells
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.note_zh().is_empty())
        .map(|(i, c)| format!("{}：{}", label(s, &s.indicators[i].id), c.note_zh()))
        .collect::<Vec<_>>()
        .join("；")
}

fn level_table(a: &Assessment, base: &str) -> Table {
    let s = &a.scheme;
    let mut cols: Vec<(String, String)> = vec![
        ("rank".into(), "排名".into()),
        ("unit_id".into(), "代码".into()),
        ("unit_name".into(), "名称".into()),
    ];
    if s.group_by.is_some() {
        cols.push(("group".into(), "组别".into()));
    }
    cols.push(("score".into(), "总分".into()));
    if !s.grades.is_empty() {
        cols.push(("grade".into(), "等级".into()));
    }
    cols.extend([
        ("previous_rank".to_string(), "上年排名".to_string()),
        ("rank_change".into(), "名次变化".into()),
        ("strongest".into(), "优势指标".into()),
        ("weakest".into(), "劣势指标".into()),
    ]);
    if a.other_ranks.is_some() {
        cols.push(("queried".into(), "待核实".into()));
        cols.push(match a.values {
            Values::Published => ("held_rank".into(), "待核实值按期望值计排名".into()),
            Values::Held => ("published_rank".into(), "公布值排名".into()),
        });
    }
    if a.intervals.is_some() {
        cols.extend([
            ("mc_median_rank".to_string(), "模拟中位排名".to_string()),
            ("mc_p05_rank".into(), "模拟排名P5".into()),
            ("mc_p95_rank".into(), "模拟排名P95".into()),
        ]);
    }
    for ind in &s.indicators {
        let l = label(s, &ind.id);
        cols.push((format!("{}_value", ind.id), format!("{l} 指标值")));
        cols.push((format!("{}_score", ind.id), format!("{l} 得分")));
        cols.push((format!("{}_contribution", ind.id), format!("{l} 加权贡献")));
    }
    cols.push(("notes".into(), "备注".into()));
    let mut order: Vec<usize> = (0..a.results.len()).collect();
    order.sort_by(|&x, &y| {
        let (p, q) = (&a.results[x], &a.results[y]);
        p.group
            .cmp(&q.group)
            .then(p.rank.cmp(&q.rank))
            .then(p.id.cmp(&q.id))
    });
    let rows = order
        .into_iter()
        .map(|u| {
            let r = &a.results[u];
            let mut row = vec![
                V::Int(r.rank as i64),
                V::Text(r.id.clone()),
                V::Text(r.name.clone()),
            ];
            if s.group_by.is_some() {
                row.push(V::Text(r.group.clone().unwrap_or_default()));
            }
            row.push(V::Num(r.total_rounded, s.precision as usize));
            if !s.grades.is_empty() {
                row.push(V::Text(r.grade.clone().unwrap_or_default()));
            }
            match a.previous_ranks.get(&r.id) {
                Some(p) => {
                    row.push(V::Int(*p as i64));
                    row.push(V::Int(*p as i64 - r.rank as i64));
                }
                None => {
                    row.push(V::Null);
                    row.push(V::Null);
                }
            }
            row.push(V::Text(
                r.strongest
                    .as_deref()
                    .map(|x| label(s, x))
                    .unwrap_or_default(),
            ));
            row.push(V::Text(
                r.weakest
                    .as_deref()
                    .map(|x| label(s, x))
                    .unwrap_or_default(),
            ));
            if let Some(other) = &a.other_ranks {
                row.push(V::Text(queried_zh(s, a.queried.get(&r.id))));
                // Only where the two rankings differ.
                row.push(match other.get(&r.id) {
                    Some(&o) if o != r.rank => V::Int(o as i64),
                    _ => V::Null,
                });
            }
            if let Some(iv) = &a.intervals {
                row.push(V::Int(iv[u].median as i64));
                row.push(V::Int(iv[u].p05 as i64));
                row.push(V::Int(iv[u].p95 as i64));
            }
            for i in 0..s.indicators.len() {
                row.push(V::opt_num(r.values[i], 6));
                row.push(V::opt_num(r.scores[i], 2));
                row.push(V::Num(r.contributions[i], 2));
            }
            row.push(V::Text(notes(s, r)));
            row
        })
        .collect();
    let title = s.title.clone().unwrap_or_else(|| s.name.clone());
    Table {
        name: base.to_string(),
        title: match a.values {
            Values::Published => title,
            Values::Held => format!("{title}（待核实值按期望值计）"),
        },
        columns: cols,
        rows,
    }
}

/// 待核实 of a unit's row: per indicator resting on open queries, their
/// count and share of its numerator (`R&D经费投入强度 2项，占分子0.41%`).
fn queried_zh(s: &Scheme, q: Option<&Vec<Option<Queried>>>) -> String {
    let Some(q) = q else {
        return String::new();
    };
    q.iter()
        .enumerate()
        .filter_map(|(i, x)| {
            let x = x.as_ref()?;
            let share = x
                .share
                .map(|v| format!("，占分子{:.2}%", v * 100.0))
                .unwrap_or_default();
            Some(format!(
                "{} {}项{share}",
                label(s, &s.indicators[i].id),
                x.count
            ))
        })
        .collect::<Vec<_>>()
        .join("；")
}

/// Writes each table as the Delta table `marts/assessment_<name>` (overwrite),
/// with the provenance columns.
pub async fn write_delta(wh: &Warehouse, a: &Assessment, fingerprint: Option<&str>) -> Result<()> {
    use arrow::array::{ArrayRef, Float64Array as F, Int64Array as I, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use deltalake::operations::write::SchemaMode;
    use deltalake::protocol::SaveMode;
    for t in &a.tables {
        let mut fields = Vec::new();
        let mut cols: Vec<ArrayRef> = Vec::new();
        for (c, (id, _)) in t.columns.iter().enumerate() {
            let kind = t
                .rows
                .iter()
                .map(|r| &r[c])
                .find(|v| !matches!(v, V::Null))
                .cloned()
                .unwrap_or(V::Null);
            match kind {
                V::Int(_) => {
                    fields.push(Field::new(id, DataType::Int64, true));
                    cols.push(Arc::new(
                        t.rows
                            .iter()
                            .map(|r| match r[c] {
                                V::Int(i) => Some(i),
                                _ => None,
                            })
                            .collect::<I>(),
                    ));
                }
                V::Num(..) => {
                    fields.push(Field::new(id, DataType::Float64, true));
                    cols.push(Arc::new(
                        t.rows
                            .iter()
                            .map(|r| match r[c] {
                                V::Num(x, _) => Some(x),
                                _ => None,
                            })
                            .collect::<F>(),
                    ));
                }
                _ => {
                    fields.push(Field::new(id, DataType::Utf8, true));
                    cols.push(Arc::new(
                        t.rows
                            .iter()
                            .map(|r| match &r[c] {
                                V::Null => None,
                                v => Some(v.text()),
                            })
                            .collect::<StringArray>(),
                    ));
                }
            }
        }
        let p = &a.provenance;
        let n = t.rows.len();
        for (name, value) in [
            ("scheme", p.scheme_name.clone()),
            ("scheme_hash", p.scheme_hash.clone()),
            ("source_table", p.source_table.clone()),
            ("ran_at", p.ran_at.to_rfc3339()),
        ] {
            fields.push(Field::new(name, DataType::Utf8, false));
            cols.push(Arc::new(StringArray::from(vec![value; n])));
        }
        fields.push(Field::new("source_version", DataType::Int64, false));
        cols.push(Arc::new(I::from(vec![p.source_version; n])));
        fields.push(Field::new("year", DataType::Int64, false));
        cols.push(Arc::new(I::from(vec![a.scheme.year as i64; n])));
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?;
        let id = crate::files::assessment_table(&t.name);
        let table = wh.table(&id).await?;
        let props = stmon_warehouse::writer_properties_for(&batch.schema());
        let mut write = table
            .write(vec![batch])
            .with_writer_properties(props)
            .with_save_mode(SaveMode::Overwrite)
            .with_schema_mode(SchemaMode::Overwrite)
            .with_commit_properties(stmon_warehouse::commit_properties());
        if let Some(fp) = fingerprint {
            write = write.with_commit_properties(stmon_models::state::commit_properties(fp));
        }
        write.await?;
        stmon_warehouse::checkpoint::checkpoint(&id.name);
    }
    Ok(())
}

/// The public edition of a county assessment's tables: each indicator value
/// that disclosure control withholds (`marts.disclosure`, year end, of the
/// scheme's year; for the change table, of either year) is `*` with its
/// score, contribution and change, and so is the total of a row with any
/// withheld input, since the total and the other published values would give
/// it back. Ranks stay: they order, they do not measure. Zone and institute
/// tables rank the units themselves and are left as they are. Returns how
/// many cells were withheld.
pub async fn public(wh: &Warehouse, a: &mut Assessment) -> Result<usize> {
    if a.scheme.unit != UnitKind::County {
        return Ok(0);
    }
    let id = TableId::new("marts", "disclosure");
    let table = wh.table(&id).await?;
    if table.version().is_none() {
        return Err(Error::NotBuilt { table: id });
    }
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state())?;
    ctx.register_table("d", table.table_provider().await?)?;
    let year = a.scheme.year;
    let sql = format!(
        "select division_code, indicator_id, cast(year as bigint) from d \
         where as_of_month = 12 and year in ({year}, {}) and status <> 'published'",
        year - 1
    );
    // (county, indicator) → withheld in the year itself.
    let mut withheld: BTreeMap<(String, String), bool> = BTreeMap::new();
    for b in ctx.sql(&sql).await?.collect().await? {
        let code = stmon_models::text_column(&b, 0)?;
        let ind = stmon_models::text_column(&b, 1)?;
        let y = stmon_models::float_column(&b, 2)?;
        for r in 0..b.num_rows() {
            let this_year = y.value(r) == f64::from(year);
            let e = withheld
                .entry((code.value(r).to_string(), ind.value(r).to_string()))
                .or_insert(false);
            *e |= this_year;
        }
    }
    let ids: Vec<String> = a.scheme.indicators.iter().map(|i| i.id.clone()).collect();
    let mut n = 0;
    for t in &mut a.tables {
        let change = t.name.ends_with("_change");
        let Some(unit_col) = t.columns.iter().position(|c| c.0 == "unit_id") else {
            continue;
        };
        // Per indicator, its columns; and the totals.
        let per: Vec<(usize, &String)> = t
            .columns
            .iter()
            .enumerate()
            .filter_map(|(c, (col, _))| {
                ids.iter()
                    .find(|i| {
                        col.strip_prefix(i.as_str())
                            .is_some_and(|rest| rest.starts_with('_'))
                    })
                    .map(|i| (c, i))
            })
            .collect();
        let totals: Vec<usize> = t
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.0 == "score" || c.0 == "change_score")
            .map(|(c, _)| c)
            .collect();
        for row in &mut t.rows {
            let V::Text(unit) = &row[unit_col] else {
                continue;
            };
            let unit = unit.clone();
            let mut any = false;
            for &(c, ind) in &per {
                let hit = match withheld.get(&(unit.clone(), ind.clone())) {
                    Some(&this_year) => change || this_year,
                    None => false,
                };
                if hit {
                    row[c] = V::Text(crate::progress::WITHHELD_CELL.into());
                    any = true;
                    n += 1;
                }
            }
            if any {
                for &c in &totals {
                    row[c] = V::Text(crate::progress::WITHHELD_CELL.into());
                }
            }
        }
    }
    Ok(n)
}
