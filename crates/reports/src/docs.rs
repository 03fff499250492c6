//! `stmon docs`: a static documentation site of the warehouse, as `dbt docs`
//! gives dbt users — generated from the project and the warehouse, never
//! written by hand.
//!
//! What it shows:
//! - every submission form with its Chinese labels, types, units and
//!   enumerations (`schemas/forms`), and its raw table;
//! - every model with its description, SQL, columns (types from the Delta
//!   table, descriptions from the YAML), its data tests (compiled SQL) and
//!   their last result in the run record (`audit/runs`);
//! - the indicator catalogue (`sql/lineage/indicators.yml`): label, formula,
//!   kind, unit, the city's target, and the forms its value is computed from
//!   (the tables its lineage queries read);
//! - the rankings (assessment schemes) and the indicators they weigh;
//! - the lineage graph, forms → staging → intermediate → marts → indicators
//!   → rankings, as SVG whose nodes are links;
//! - per Delta table its version history: time, operation, and who wrote it
//!   — the run (the run record's run whose span holds the commit; runs are
//!   serial under the run lock) and, for an ingest, the batch (the batch
//!   whose span holds it, from `audit/batches`).
//!
//! Every page is offline (inline style; the index page's search is an inline
//! script over an inline index). This module reads and renders; it never
//! writes to the warehouse.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use futures::TryStreamExt;
use stmon_assess::scheme::Scheme;
use stmon_models::runs::RunRow;
use stmon_models::{Model, Project, LAYERS};
use stmon_schema::Catalog;
use stmon_warehouse::{TableId, Warehouse};

use crate::explain::Entry;
use crate::html::{self, esc};
use crate::progress::Targets;
use crate::Result;

/// Versions of a table's history shown (the newest).
pub const HISTORY_SHOWN: usize = 50;

/// What the site is made from besides the warehouse.
pub struct Inputs<'a> {
    pub project: &'a Project,
    pub catalog: &'a Catalog,
    /// `sql/lineage`: the indicator catalogue and its lineage queries.
    pub lineage_dir: &'a Path,
    /// The year's targets (labels, kinds, units, targets), if any.
    pub targets: Option<&'a Targets>,
    /// The year's assessment schemes.
    pub schemes: Vec<(PathBuf, Scheme)>,
}

/// The assessment schemes of `year` in `dir` (`assessment-*-<year>.yaml`).
pub fn schemes(dir: &Path, year: i32) -> Result<Vec<(PathBuf, Scheme)>> {
    let found = crate::files::schemes(dir, year).map_err(crate::io_error(dir))?;
    let mut out = Vec::new();
    for path in found {
        let s = Scheme::load(&path)?;
        out.push((path, s));
    }
    Ok(out)
}

/// One commit of a table.
#[derive(Debug, Clone)]
pub struct Commit {
    pub version: u64,
    pub at: Option<DateTime<Utc>>,
    pub operation: String,
    pub parameters: String,
    pub run: Option<String>,
    pub batch: Option<String>,
}

/// What the warehouse knows of one table.
#[derive(Debug, Clone, Default)]
pub struct TableFacts {
    /// Latest version; `None`: not built yet.
    pub version: Option<u64>,
    /// Column name and Delta type.
    pub columns: Vec<(String, String)>,
    /// Newest first, at most [`HISTORY_SHOWN`].
    pub history: Vec<Commit>,
}

/// An indicator of the catalogue with what the site says of it.
#[derive(Debug, Clone)]
pub struct Indicator {
    pub id: String,
    pub label: String,
    pub entry: Entry,
    /// Forms its value is computed from (the lineage queries' tables).
    pub forms: BTreeSet<String>,
    /// The models between those forms and its mart.
    pub models: Vec<String>,
    /// The mart that holds it.
    pub mart: String,
}

/// The site: relative path → page.
pub struct Site {
    pub pages: BTreeMap<String, String>,
}

impl Site {
    /// Writes every page under `dir` (creating folders). Returns how many.
    pub fn write(&self, dir: &Path) -> Result<usize> {
        for (rel, text) in &self.pages {
            let path = dir.join(rel);
            if let Some(d) = path.parent() {
                std::fs::create_dir_all(d).map_err(crate::io_error(d))?;
            }
            std::fs::write(&path, text).map_err(crate::io_error(&path))?;
        }
        Ok(self.pages.len())
    }
}

fn model_page(id: &str) -> String {
    format!("models/{id}.html")
}
fn form_page(form: &str) -> String {
    format!("forms/{form}.html")
}
fn table_page(id: &TableId) -> String {
    format!("tables/{}.{}.html", id.layer, id.name)
}

/// The form a source table names (`current.enterprise_rd`, `raw.x`), if any.
fn form_of<'c>(catalog: &'c Catalog, source: &str) -> Option<&'c str> {
    let (layer, name) = source.split_once('.')?;
    if !matches!(layer, "raw" | "current") {
        return None;
    }
    catalog.form(name).map(|f| f.name.as_str())
}

/// The indicator catalogue with each indicator's forms and models.
pub fn indicators(inputs: &Inputs) -> Result<Vec<Indicator>> {
    let mut out = Vec::new();
    for (id, entry) in crate::explain::catalogue(inputs.lineage_dir)? {
        // The lineage queries read forms and models; a model stands for
        // the forms it is built from.
        let mut forms = BTreeSet::new();
        let mut read_models: BTreeSet<String> = BTreeSet::new();
        for q in &entry.sources {
            let qpath = inputs.lineage_dir.join(format!("{q}.sql"));
            let sql = std::fs::read_to_string(&qpath).map_err(crate::io_error(&qpath))?;
            let refs =
                stmon_models::table_references(&sql).map_err(|e| crate::file_error(&qpath, e))?;
            for r in refs {
                if let Some(f) = form_of(inputs.catalog, &r) {
                    forms.insert(f.to_string());
                } else if inputs
                    .project
                    .get(&r)
                    .is_some_and(|m| m.id.to_string() == r)
                {
                    read_models.insert(r);
                }
            }
        }
        let mart = if entry.unit {
            "marts.unit_indicators"
        } else {
            "marts.indicators"
        };
        let upstream = closure(inputs.project, &read_models);
        for m in inputs.project.models.iter() {
            if upstream.contains(&m.id.to_string()) {
                forms.extend(
                    m.sources
                        .iter()
                        .filter_map(|s| form_of(inputs.catalog, s))
                        .map(str::to_string),
                );
            }
        }
        let models = path_models(inputs.project, &upstream, mart);
        let label = inputs
            .targets
            .and_then(|t| t.indicators.iter().find(|(k, _)| *k == id))
            .map(|(_, i)| i.label.clone())
            .or_else(|| {
                inputs
                    .schemes
                    .iter()
                    .flat_map(|(_, s)| s.indicators.iter())
                    .find(|i| i.id == id)
                    .and_then(|i| i.label.clone())
            })
            .unwrap_or_else(|| id.clone());
        out.push(Indicator {
            id,
            label,
            entry,
            forms,
            models,
            mart: mart.to_string(),
        });
    }
    Ok(out)
}

/// `models` and every model they read, transitively.
fn closure(project: &Project, models: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = models.clone();
    for m in project.models.iter().rev() {
        if out.contains(&m.id.to_string()) {
            out.extend(m.deps.iter().map(|d| d.to_string()));
        }
    }
    out
}

/// The models an indicator's value passes through, in run order: those its
/// lineage reads (with what they read), and those between them and `mart`
/// (the mart included).
fn path_models(project: &Project, upstream: &BTreeSet<String>, mart: &str) -> Vec<String> {
    let mut down: BTreeSet<String> = upstream.clone();
    for m in &project.models {
        if m.deps.iter().any(|d| down.contains(&d.to_string())) {
            down.insert(m.id.to_string());
        }
    }
    let to_mart = closure(project, &BTreeSet::from([mart.to_string()]));
    project
        .models
        .iter()
        .map(|m| m.id.to_string())
        .filter(|id| upstream.contains(id) || (down.contains(id) && to_mart.contains(id)))
        .collect()
}

/// Reads every table's columns and history and attributes each commit.
pub async fn table_facts(
    wh: &Warehouse,
    ids: &[TableId],
    record: &[RunRow],
) -> Result<BTreeMap<TableId, TableFacts>> {
    let runs = runs_spans(record);
    let batches = batch_spans(wh).await?;
    let mut out = BTreeMap::new();
    for id in ids {
        let table = wh.table(id).await?;
        let Some(latest) = table.version() else {
            out.insert(id.clone(), TableFacts::default());
            continue;
        };
        let columns = table
            .snapshot()?
            .schema()
            .fields()
            .map(|f| (f.name().to_string(), f.data_type().to_string()))
            .collect();
        let infos: Vec<_> = table.history(Some(HISTORY_SHOWN)).try_collect().await?;
        let mut history = Vec::new();
        for (i, c) in infos.into_iter().enumerate() {
            let version = latest.saturating_sub(i as u64);
            let at = c
                .timestamp
                .and_then(|ms| Utc.timestamp_millis_opt(ms).single());
            let us = at.map(|t| t.timestamp_micros());
            let parameters = c
                .operation_parameters
                .map(|p| {
                    let mut v: Vec<String> = p
                        .into_iter()
                        .filter(|(_, v)| !v.is_null())
                        .map(|(k, v)| {
                            let v = v.as_str().map(str::to_string).unwrap_or(v.to_string());
                            format!("{k}={v}")
                        })
                        .collect();
                    v.sort();
                    let all = v.join(" ");
                    if all.chars().count() > 240 {
                        format!("{}…", all.chars().take(240).collect::<String>())
                    } else {
                        all
                    }
                })
                .unwrap_or_default();
            history.push(Commit {
                version,
                at,
                operation: c.operation.unwrap_or_default(),
                parameters,
                run: us.and_then(|t| within(&runs, t)),
                batch: us.and_then(|t| within(&batches, t)),
            });
        }
        out.insert(
            id.clone(),
            TableFacts {
                version: Some(latest),
                columns,
                history,
            },
        );
    }
    Ok(out)
}

/// A span `[start, end]` in microseconds and its id, by start.
type Spans = Vec<(i64, i64, String)>;

/// Slack after a span's recorded end: the record itself is committed just after it.
const SLACK_US: i64 = 5_000_000;

fn within(spans: &Spans, t: i64) -> Option<String> {
    spans
        .iter()
        .rev()
        .find(|(s, e, _)| *s <= t && t <= e.saturating_add(SLACK_US))
        .map(|x| x.2.clone())
}

fn runs_spans(record: &[RunRow]) -> Spans {
    let mut by: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for r in record {
        let s = r.started_at.timestamp_micros();
        let e = r.finished_at.map(|f| f.timestamp_micros()).unwrap_or(s);
        let x = by.entry(&r.run_id).or_insert((s, e));
        x.0 = x.0.min(s);
        x.1 = x.1.max(e);
    }
    let mut v: Spans = by
        .into_iter()
        .map(|(id, (s, e))| (s, e, id.to_string()))
        .collect();
    v.sort();
    v
}

async fn batch_spans(wh: &Warehouse) -> Result<Spans> {
    let id = TableId::new("audit", "batches");
    let table = wh.table(&id).await?;
    if table.version().is_none() {
        return Ok(Vec::new());
    }
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.register_table("b", table.table_provider().await?)?;
    let sql =
        "select batch_id, cast(min(started_at) as bigint), cast(max(committed_at) as bigint) \
               from b group by batch_id order by 2";
    let mut v = Spans::new();
    for b in ctx.sql(sql).await?.collect().await? {
        let ids = stmon_models::text_column(&b, 0)?;
        let s = stmon_models::float_column(&b, 1)?;
        let e = stmon_models::float_column(&b, 2)?;
        for r in 0..b.num_rows() {
            v.push((
                s.value(r) as i64,
                e.value(r) as i64,
                ids.value(r).to_string(),
            ));
        }
    }
    Ok(v)
}

/// The run record (`audit/runs`), oldest first; empty before the first run.
pub async fn run_record(wh: &Warehouse) -> Result<Vec<RunRow>> {
    let id = stmon_models::runs::table_id();
    if wh.table(&id).await?.version().is_none() {
        return Ok(Vec::new());
    }
    Ok(stmon_models::runs::read(wh).await?)
}

/// The last data-test result of each model in the run record (step `tests`).
pub fn last_tests(record: &[RunRow]) -> BTreeMap<String, RunRow> {
    let mut out = BTreeMap::new();
    for r in record.iter().filter(|r| r.step == "tests") {
        if let Some(item) = &r.item {
            out.insert(item.clone(), r.clone()); // oldest first: the last one stays
        }
    }
    out
}

/// Every Delta table the site documents: the forms' raw tables, the models'
/// tables, the assessment tables and the audit tables.
pub fn documented_tables(wh: &Warehouse, project: &Project) -> Vec<TableId> {
    let mut ids = stmon_models::runs::data_tables(wh, project);
    ids.push(stmon_models::runs::table_id());
    ids.sort();
    ids.dedup();
    ids
}

/// Builds the whole site.
pub async fn build(wh: &Warehouse, inputs: &Inputs<'_>) -> Result<Site> {
    let ids = documented_tables(wh, inputs.project);
    let record = run_record(wh).await?;
    let facts = table_facts(wh, &ids, &record).await?;
    let tests = last_tests(&record);
    let indicators = indicators(inputs)?;
    let queries = stmon_review::queries::read(wh)
        .await
        .map_err(|e| crate::file_error(Path::new("review/queries"), e))?;
    Ok(render(
        inputs,
        &facts,
        &tests,
        &indicators,
        &queries,
        Utc::now(),
    ))
}

/// A page of the site: the shared look, a top bar, and links relative to `rel`.
fn site_page(rel: &str, title: &str, body: &str) -> String {
    let up = "../".repeat(rel.matches('/').count());
    let nav = format!(
        "<nav class=\"top\"><a href=\"{up}index.html\">首页</a><a href=\"{up}lineage.html\">数据血缘</a>\
         <a href=\"{up}indicators.html\">指标目录</a><a href=\"{up}rankings.html\">考核排名</a></nav>"
    );
    html::page(
        &format!("{title} · stmon 数据仓库文档"),
        &format!("{nav}{body}"),
        "",
    )
}

/// A form's plausibility rules with their parameters, and its open
/// queries today (the review, `stmon review`).
fn review_html(form: &stmon_schema::Form, queries: &[stmon_review::Query]) -> String {
    use stmon_schema::review::RuleKind;
    let Some(r) = &form.review else {
        return String::new();
    };
    let label = |c: &str| {
        form.column(c)
            .map(|c| c.label.clone())
            .unwrap_or_else(|| c.to_string())
    };
    let mut b = String::from(
        "<h2>审核规则</h2><div class=\"wide\"><table class=\"columns\"><thead><tr><th>规则</th><th>类型</th><th>指标</th><th>参数</th><th>核实建议</th></tr></thead><tbody>",
    );
    for rule in &r.rules {
        let (kind, params) = match &rule.kind {
            RuleKind::Ratio {
                over,
                min,
                max,
                tolerance,
            } => (
                "行内比例",
                format!(
                    "{} / {}：{}{}，容差 {:.0}%",
                    label(&rule.column),
                    label(over),
                    min.map(|m| format!("≥ {m} ")).unwrap_or_default(),
                    max.map(|m| format!("≤ {m}")).unwrap_or_default(),
                    tolerance * 100.0
                ),
            ),
            RuleKind::History { factor } => (
                "本单位历史",
                format!("与上年同期（按本单位增速）或本年其他期相差 {factor} 倍以上"),
            ),
            RuleKind::Increment { factor, min_share } => (
                "本期增量",
                format!(
                    "增量超过通常增量 {factor} 倍且超出部分达全年 {:.0}%，或累计值回落全年 {:.0}%",
                    min_share * 100.0,
                    min_share * 100.0
                ),
            ),
            RuleKind::Peer {
                over,
                group_by,
                min_units,
                hb,
            } => (
                "同类单位（HB法）",
                format!(
                    "{} / {}，按 {} 分组，每组至少 {min_units} 家；u = {}，a = {}，c = {}",
                    label(&rule.column),
                    label(over),
                    group_by
                        .iter()
                        .map(|g| label(g))
                        .collect::<Vec<_>>()
                        .join("、"),
                    hb.u,
                    hb.a,
                    hb.c
                ),
            ),
        };
        let _ = write!(
            b,
            "<tr><td class=\"t\"><code>{}</code></td><td class=\"t\">{kind}</td><td class=\"t\">{}</td><td class=\"note\">{}</td><td class=\"note\">{}</td></tr>",
            esc(&rule.id),
            esc(&label(&rule.column)),
            esc(&params),
            esc(rule.advice.as_deref().unwrap_or(""))
        );
    }
    b.push_str("</tbody></table></div>");
    let open: Vec<&stmon_review::Query> = queries
        .iter()
        .filter(|q| q.form == form.name && q.status == stmon_review::Status::Open)
        .collect();
    let high = open.iter().filter(|q| q.high_score).count();
    let _ = write!(
        b,
        "<p>当前待核实查询 {} 条，其中高分（评分 ≥ {}）{} 条。</p>",
        open.len(),
        r.high_score,
        high
    );
    b
}

fn history_html(f: Option<&TableFacts>) -> String {
    let mut h = String::from("<h2>版本历史（Delta）</h2>");
    let Some(f) = f.filter(|f| f.version.is_some()) else {
        h.push_str("<p class=\"muted\">尚未建立（没有版本）。</p>");
        return h;
    };
    let latest = f.version.unwrap_or(0);
    let _ = write!(
        h,
        "<p class=\"muted\">最新版本 {latest}；下表列出最近 {} 个版本。运行与批次按提交时间落在运行记录（audit/runs）与批次记录（audit/batches）的时段内认定。</p>",
        f.history.len()
    );
    h.push_str("<div class=\"wide\"><table class=\"history\"><thead><tr><th>版本</th><th>提交时间</th><th>操作</th><th>运行</th><th>批次</th><th>参数</th></tr></thead><tbody>");
    for c in &f.history {
        let _ = write!(
            h,
            "<tr data-version=\"{}\"><td>{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"note\"><code>{}</code></td></tr>",
            c.version,
            c.version,
            c.at.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_default(),
            esc(&c.operation),
            esc(c.run.as_deref().unwrap_or("—")),
            esc(c.batch.as_deref().unwrap_or("—")),
            esc(&c.parameters)
        );
    }
    h.push_str("</tbody></table></div>");
    h
}

fn columns_html(
    facts: Option<&TableFacts>,
    described: &BTreeMap<String, (String, String)>,
) -> String {
    let mut h = String::from(
        "<h2>字段</h2><div class=\"wide\"><table class=\"columns\"><thead><tr><th>字段</th><th>类型</th><th>说明</th><th>数据测试</th></tr></thead><tbody>",
    );
    let mut names: Vec<(String, String)> = facts.map(|f| f.columns.clone()).unwrap_or_default();
    for n in described.keys() {
        if !names.iter().any(|(x, _)| x == n) {
            names.push((n.clone(), String::new()));
        }
    }
    for (n, ty) in names {
        let (d, t) = described.get(&n).cloned().unwrap_or_default();
        let _ = write!(
            h,
            "<tr><td class=\"t\"><code>{}</code></td><td class=\"t\"><code>{}</code></td><td class=\"note\">{}</td><td class=\"t\">{}</td></tr>",
            esc(&n),
            esc(&ty),
            esc(&d),
            esc(&t)
        );
    }
    h.push_str("</tbody></table></div>");
    h
}

/// `PeriodMonth` → `period_month`, as the form YAML spells a type.
fn snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

/// Whether a compiled test (`not_null(x)`, `accepted_range(x: 1..12)`,
/// `relationships(x → t.c)`) is of column `column`.
fn tests_column(test: &str, column: &str) -> bool {
    test.split_once('(')
        .and_then(|(_, rest)| rest.strip_prefix(column))
        .is_some_and(|after| !after.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
}

/// `label` cut to fit `width` pixels at 11 px (CJK about 11 px, others about 6.5).
fn fit(label: &str, width: f64) -> String {
    let mut used = 0.0;
    let mut out = String::new();
    for ch in label.chars() {
        used += if ch.is_ascii() { 6.5 } else { 11.0 };
        if used > width {
            out.push('…');
            return out;
        }
        out.push(ch);
    }
    out
}

/// Renders every page from what was read.
pub fn render(
    inputs: &Inputs,
    facts: &BTreeMap<TableId, TableFacts>,
    tests: &BTreeMap<String, RunRow>,
    indicators: &[Indicator],
    queries: &[stmon_review::Query],
    now: DateTime<Utc>,
) -> Site {
    let mut pages = BTreeMap::new();
    let project = inputs.project;
    let catalog = inputs.catalog;
    // Search index entries: (title, url, text searched).
    let mut index: Vec<(String, String, String)> = Vec::new();

    // Forms.
    for form in catalog.forms.values() {
        let rel = form_page(&form.name);
        let raw = TableId::new("raw", &form.name);
        let mut b = format!(
            "<h1>表单 {}：{}</h1><p class=\"muted\">报送频率：{}；主键：<code>{}</code>；原始表 <a href=\"../{}\"><code>raw/{}</code></a></p>",
            esc(&form.name),
            esc(&form.title),
            match form.frequency {
                stmon_schema::Frequency::Monthly => "月报（年初累计）",
                stmon_schema::Frequency::Quarterly => "季报（年初累计）",
                stmon_schema::Frequency::Annual => "年报",
                stmon_schema::Frequency::Event => "逐事项报送",
            },
            esc(&form.key.join(", ")),
            table_page(&raw),
            esc(&form.name)
        );
        b.push_str("<h2>栏目</h2><div class=\"wide\"><table class=\"columns\"><thead><tr><th>字段</th><th>中文名称</th><th>类型</th><th>单位</th><th>必填</th><th>取值 / 说明</th></tr></thead><tbody>");
        for c in &form.columns {
            let values: Vec<String> = c
                .values
                .iter()
                .map(|v| format!("{}={}", v.id, v.label))
                .collect();
            let note = [values.join("，"), c.description.clone().unwrap_or_default()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("；");
            let _ = write!(
                b,
                "<tr><td class=\"t\"><code>{}</code></td><td class=\"t\">{}</td><td class=\"t\"><code>{}</code></td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"note\">{}</td></tr>",
                esc(&c.name),
                esc(&c.label),
                snake(&format!("{:?}", c.ty)),
                esc(c.unit.as_deref().unwrap_or("")),
                if c.optional { "否" } else { "是" },
                esc(&note)
            );
        }
        b.push_str("</tbody></table></div>");
        b.push_str(&review_html(form, queries));
        let readers: Vec<&Model> = project
            .models
            .iter()
            .filter(|m| {
                m.sources
                    .iter()
                    .any(|s| form_of(catalog, s) == Some(&form.name))
            })
            .collect();
        b.push_str("<h2>读取它的模型</h2><ul>");
        for m in &readers {
            let _ = write!(
                b,
                "<li><a href=\"../{}\">{}</a></li>",
                model_page(&m.id.to_string()),
                m.id
            );
        }
        b.push_str("</ul>");
        b.push_str(&history_html(facts.get(&raw)));
        index.push((
            format!("表单 {} {}", form.name, form.title),
            rel.clone(),
            form.columns
                .iter()
                .map(|c| {
                    let values: Vec<String> = c
                        .values
                        .iter()
                        .map(|v| format!("{} {}", v.id, v.label))
                        .collect();
                    format!(
                        "{} {} {} {}",
                        c.name,
                        c.label,
                        values.join(" "),
                        c.description.as_deref().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join(" "),
        ));
        pages.insert(rel.clone(), site_page(&rel, &form.title, &b));
    }

    // Models.
    for m in &project.models {
        let id = m.id.to_string();
        let rel = model_page(&id);
        let tid = TableId::new(&m.id.layer, &m.id.name);
        let f = facts.get(&tid);
        let mut b = format!(
            "<h1>模型 <code>{}</code></h1><p>{}</p><p class=\"muted\">层：{}；物化：{}{}；文件 <code>{}</code></p>",
            esc(&id),
            esc(m.spec.description.as_deref().unwrap_or("（无说明）")),
            esc(&m.id.layer),
            if m.is_view() { "视图（view）" } else { "Delta 表" },
            m.spec
                .incremental
                .as_ref()
                .map(|i| format!("，按 {} 增量构建", i.partition_by))
                .unwrap_or_default(),
            esc(&m.path
                .strip_prefix(project.dir.parent().unwrap_or(&project.dir))
                .unwrap_or(&m.path)
                .display()
                .to_string())
        );
        b.push_str("<h2>读取</h2><ul class=\"reads\">");
        for d in &m.deps {
            let _ = write!(
                b,
                "<li><a href=\"../{}\">{d}</a></li>",
                model_page(&d.to_string())
            );
        }
        for s in &m.sources {
            match form_of(catalog, s) {
                Some(form) => {
                    let _ = write!(
                        b,
                        "<li><a href=\"../{}\">{}</a>（表单）</li>",
                        form_page(form),
                        esc(s)
                    );
                }
                None => {
                    let _ = write!(b, "<li><code>{}</code></li>", esc(s));
                }
            }
        }
        b.push_str("</ul><h2>被读取</h2><ul class=\"read-by\">");
        if !project.models.iter().any(|r| r.deps.contains(&m.id)) {
            b.push_str("<li class=\"muted\">（无其他模型读取）</li>");
        }
        for r in project.models.iter().filter(|r| r.deps.contains(&m.id)) {
            let _ = write!(
                b,
                "<li><a href=\"../{}\">{}</a></li>",
                model_page(&r.id.to_string()),
                r.id
            );
        }
        b.push_str("</ul>");
        let compiled = stmon_models::checks::compile(&m.id, &m.spec);
        let mut described: BTreeMap<String, (String, String)> = BTreeMap::new();
        for c in &m.spec.columns {
            let names: Vec<String> = compiled
                .iter()
                .filter(|t| tests_column(&t.name, &c.name))
                .map(|t| t.name.clone())
                .collect();
            described.insert(
                c.name.clone(),
                (c.description.clone().unwrap_or_default(), names.join(", ")),
            );
        }
        if !m.is_view() {
            b.push_str(&columns_html(f, &described));
        }
        b.push_str("<h2>数据测试</h2>");
        if compiled.is_empty() {
            b.push_str("<p class=\"muted\">未声明数据测试。</p>");
        } else {
            match tests.get(&id) {
                Some(r) => {
                    let failing = r.rows_rejected.unwrap_or(0);
                    let _ = write!(
                        b,
                        "<p class=\"last-test\" data-status=\"{}\">最近一次结果：<span class=\"light {}\">{}</span> {} 项测试，{} 项失败（运行 <code>{}</code>，{}）</p>",
                        r.status,
                        if failing == 0 { "green" } else { "red" },
                        if failing == 0 { "通过" } else { "未通过" },
                        r.rows_in.unwrap_or(0),
                        failing,
                        esc(&r.run_id),
                        r.finished_at.unwrap_or(r.started_at).format("%Y-%m-%d %H:%M UTC")
                    );
                    if let Some(d) = &r.detail {
                        let _ = write!(b, "<pre>{}</pre>", esc(d));
                    }
                }
                None => b.push_str("<p class=\"last-test\" data-status=\"none\">运行记录中尚无结果（由 <code>stmon run</code> 的 tests 步骤记录）。</p>"),
            }
            b.push_str("<div class=\"wide\"><table class=\"tests\"><thead><tr><th>测试</th><th>失败行查询</th></tr></thead><tbody>");
            for t in &compiled {
                let _ = write!(
                    b,
                    "<tr><td class=\"t\"><code>{}</code></td><td class=\"note\"><code>{}</code></td></tr>",
                    esc(&t.name),
                    esc(&t.sql)
                );
            }
            b.push_str("</tbody></table></div>");
        }
        let _ = write!(b, "<h2>SQL</h2><pre class=\"sql\">{}</pre>", esc(&m.sql));
        if !m.is_view() {
            b.push_str(&history_html(f));
        }
        index.push((
            format!("模型 {id}"),
            rel.clone(),
            format!(
                "{} {}",
                m.spec.description.clone().unwrap_or_default(),
                m.spec
                    .columns
                    .iter()
                    .map(|c| format!("{} {}", c.name, c.description.clone().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ));
        pages.insert(rel.clone(), site_page(&rel, &id, &b));
    }

    // Other tables: every documented table without a form or model page.
    for (tid, f) in facts {
        let is_model = project.model(&stmon_models::ModelId {
            layer: tid.layer.clone(),
            name: tid.name.clone(),
        });
        if is_model.is_some() {
            continue;
        }
        let rel = table_page(tid);
        let mut b = format!(
            "<h1>表 <code>{}/{}</code></h1>",
            esc(&tid.layer),
            esc(&tid.name)
        );
        if tid.layer == "raw" {
            if let Some(form) = catalog.form(tid.name.trim_end_matches("_superseded")) {
                let _ = write!(
                    b,
                    "<p>表单 <a href=\"../{}\">{}：{}</a> 的{}。</p>",
                    form_page(&form.name),
                    esc(&form.name),
                    esc(&form.title),
                    if tid.is_superseded() {
                        "被更正或撤回的行"
                    } else {
                        "原始行（每次提交追加，永不改写）"
                    }
                );
            }
        }
        b.push_str(&columns_html(Some(f), &BTreeMap::new()));
        b.push_str(&history_html(Some(f)));
        index.push((format!("表 {tid}"), rel.clone(), String::new()));
        pages.insert(rel.clone(), site_page(&rel, &tid.to_string(), &b));
    }

    // Indicators.
    {
        let rel = "indicators.html".to_string();
        let mut b = String::from(
            "<h1>指标目录</h1><p class=\"muted\">公式见 <code>sql/lineage/indicators.yml</code>；来源表单为其血缘查询读取的表单；目标为全市目标。</p>\
             <div class=\"wide\"><table class=\"catalogue\"><thead><tr><th>指标</th><th>名称</th><th>公式</th><th>类型</th><th>单位</th><th>目标</th><th>来源表单</th><th>所在表</th></tr></thead><tbody>",
        );
        for i in indicators {
            let t = inputs
                .targets
                .and_then(|t| t.indicators.iter().find(|(k, _)| *k == i.id))
                .map(|(_, t)| t);
            let city_target = t
                .and_then(|t| {
                    t.targets
                        .iter()
                        .find(|(code, _)| code.ends_with("00"))
                        .map(|(_, v)| crate::progress::display(*v, t.unit.as_deref()))
                })
                .unwrap_or_default();
            let forms: Vec<String> = i
                .forms
                .iter()
                .map(|f| format!("<a href=\"{}\">{f}</a>", form_page(f)))
                .collect();
            let _ = write!(
                b,
                "<tr id=\"i-{id}\" data-forms=\"{}\"><td class=\"t\"><code>{id}</code></td><td class=\"t\">{}</td><td class=\"note\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td>{}</td><td class=\"t\">{}</td><td class=\"t\"><a href=\"{}\">{}</a></td></tr>",
                i.forms.iter().cloned().collect::<Vec<_>>().join(" "),
                esc(&i.label),
                esc(&i.entry.formula),
                match t.map(|t| t.kind) {
                    Some(crate::progress::Kind::Cumulative) => "累计",
                    Some(crate::progress::Kind::Rate) => "比率",
                    None => "",
                },
                esc(t.and_then(|t| t.unit.as_deref()).unwrap_or("")),
                esc(&city_target),
                forms.join("，"),
                model_page(&i.mart),
                esc(&i.mart),
                id = esc(&i.id)
            );
            index.push((
                format!("指标 {} {}", i.id, i.label),
                format!("indicators.html#i-{}", i.id),
                i.entry.formula.clone(),
            ));
        }
        b.push_str("</tbody></table></div>");
        pages.insert(rel.clone(), site_page(&rel, "指标目录", &b));
    }

    // Rankings.
    {
        let rel = "rankings.html".to_string();
        let mut b = String::from("<h1>考核排名</h1>");
        for (path, s) in &inputs.schemes {
            let _ = write!(
                b,
                "<section id=\"s-{}\"><h2>{}</h2><p class=\"muted\">方案文件 <code>{}</code>；对象：{}；年度 {}；结果表 <a href=\"{}\">marts/assessment_*</a></p>\
                 <div class=\"wide\"><table><thead><tr><th>指标</th><th>名称</th><th>权重</th><th>标准化</th></tr></thead><tbody>",
                esc(&s.name),
                esc(s.title.as_deref().unwrap_or(&s.name)),
                esc(&path.display().to_string()),
                s.unit.as_str(),
                s.year,
                table_page(&TableId::new("marts", &format!("assessment_{}", match s.unit {
                    stmon_assess::scheme::UnitKind::County => "counties",
                    stmon_assess::scheme::UnitKind::Zone => "zones",
                    stmon_assess::scheme::UnitKind::Institute => "institutes",
                })))
            );
            for i in &s.indicators {
                let label = indicators
                    .iter()
                    .find(|x| x.id == i.id)
                    .map(|x| x.label.clone())
                    .or_else(|| i.label.clone())
                    .unwrap_or_default();
                let _ = write!(
                    b,
                    "<tr><td class=\"t\"><a href=\"indicators.html#i-{id}\"><code>{id}</code></a></td><td class=\"t\">{}</td><td>{}</td><td class=\"t\">{:?}</td></tr>",
                    esc(&label),
                    i.weight,
                    i.normalisation,
                    id = esc(&i.id)
                );
            }
            b.push_str("</tbody></table></div></section>");
            index.push((
                format!("排名 {}", s.title.as_deref().unwrap_or(&s.name)),
                format!("rankings.html#s-{}", s.name),
                s.name.clone(),
            ));
        }
        pages.insert(rel.clone(), site_page(&rel, "考核排名", &b));
    }

    // Lineage.
    {
        let rel = "lineage.html".to_string();
        let mut b = String::from(
            "<h1>数据血缘</h1><p class=\"muted\">从提交表单经 staging、intermediate、marts 各层模型到每项指标与考核排名。点击节点打开其页面。</p>",
        );
        b.push_str(&lineage_svg(inputs, indicators));
        b.push_str("<h2>各指标的来源</h2><div class=\"wide\"><table class=\"lineage\"><thead><tr><th>指标</th><th>来源表单</th><th>途经模型</th></tr></thead><tbody>");
        for i in indicators {
            let _ = write!(
                b,
                "<tr id=\"l-{id}\" data-forms=\"{}\"><td class=\"t\"><a href=\"indicators.html#i-{id}\">{}</a></td><td class=\"t\">{}</td><td class=\"note\">{}</td></tr>",
                i.forms.iter().cloned().collect::<Vec<_>>().join(" "),
                esc(&i.label),
                i.forms
                    .iter()
                    .map(|f| format!("<a href=\"{}\">{f}</a>", form_page(f)))
                    .collect::<Vec<_>>()
                    .join("，"),
                i.models
                    .iter()
                    .map(|m| format!("<a href=\"{}\">{m}</a>", model_page(m)))
                    .collect::<Vec<_>>()
                    .join(" → "),
                id = esc(&i.id)
            );
        }
        b.push_str("</tbody></table></div>");
        pages.insert(rel.clone(), site_page(&rel, "数据血缘", &b));
    }

    // Index with search.
    {
        let mut b = format!(
            "<h1>stmon 数据仓库文档</h1><p class=\"muted\">由项目（<code>sql/</code>、<code>schemas/forms</code>、<code>sql/lineage</code>、<code>pipelines/</code>）与仓库（Delta 日志、运行记录）生成于 {}。</p>\
             <p><input id=\"q\" name=\"q\" type=\"search\" placeholder=\"搜索表单、模型、字段、指标…（index.html?q=词 可直接打开结果）\" style=\"width:100%;max-width:520px;font-size:1rem;padding:6px\" autocomplete=\"off\"></p><ul id=\"hits\"></ul>",
            now.format("%Y-%m-%d %H:%M UTC")
        );
        b.push_str("<h2>提交表单</h2><ul>");
        for form in catalog.forms.values() {
            let _ = write!(
                b,
                "<li><a href=\"{}\">{}</a> {}</li>",
                form_page(&form.name),
                esc(&form.name),
                esc(&form.title)
            );
        }
        b.push_str("</ul>");
        for layer in LAYERS {
            let _ = write!(b, "<h2>{layer}</h2><ul>");
            for m in project.models.iter().filter(|m| m.id.layer == layer) {
                let id = m.id.to_string();
                let v = facts
                    .get(&TableId::new(&m.id.layer, &m.id.name))
                    .and_then(|f| f.version)
                    .map(|v| format!("版本 {v}"))
                    .unwrap_or_else(|| {
                        if m.is_view() {
                            "视图".into()
                        } else {
                            "未建".into()
                        }
                    });
                let _ = write!(
                    b,
                    "<li><a href=\"{}\">{}</a> <span class=\"muted\">{} — {}</span></li>",
                    model_page(&id),
                    esc(&id),
                    esc(&v),
                    esc(m.spec.description.as_deref().unwrap_or(""))
                );
            }
            b.push_str("</ul>");
        }
        let _ = write!(
            b,
            "<h2>指标与排名</h2><ul><li><a href=\"indicators.html\">指标目录</a>（{} 项）</li><li><a href=\"rankings.html\">考核排名</a>（{} 个方案）</li><li><a href=\"lineage.html\">数据血缘图</a></li></ul><h2>其他表</h2><ul>",
            indicators.len(),
            inputs.schemes.len()
        );
        for tid in facts.keys() {
            let is_model = project
                .model(&stmon_models::ModelId {
                    layer: tid.layer.clone(),
                    name: tid.name.clone(),
                })
                .is_some();
            if !is_model {
                let _ = write!(
                    b,
                    "<li><a href=\"{}\">{}</a></li>",
                    table_page(tid),
                    esc(&tid.to_string())
                );
            }
        }
        b.push_str("</ul>");
        let json: Vec<serde_json::Value> = index
            .iter()
            .map(|(t, u, k)| serde_json::json!({"t": t, "u": u, "k": k}))
            .collect();
        let data = serde_json::to_string(&json)
            .unwrap_or_else(|_| "[]".into())
            .replace("</", "<\\/");
        let script = format!(
            "<script>const INDEX={data};\
             window.addEventListener('DOMContentLoaded',()=>{{const q=document.getElementById('q'),hits=document.getElementById('hits');\
             const run=()=>{{const w=q.value.trim().toLowerCase().split(/\\s+/).filter(Boolean);hits.innerHTML='';\
             if(!w.length)return;for(const e of INDEX){{const s=(e.t+' '+e.k).toLowerCase();if(w.every(x=>s.includes(x))){{\
             const li=document.createElement('li'),a=document.createElement('a');a.href=e.u;a.textContent=e.t;li.appendChild(a);hits.appendChild(li);\
             if(hits.children.length>=50)break;}}}}}};q.addEventListener('input',run);\
             const p=new URLSearchParams(location.search).get('q');if(p){{q.value=p;run();}}}});</script>"
        );
        pages.insert(
            "index.html".to_string(),
            html::page("stmon 数据仓库文档", &b, &script),
        );
    }
    Site { pages }
}

/// The lineage graph: six columns of nodes (forms and other sources,
/// staging, intermediate, marts, indicators, rankings), each a link to its
/// page, and an edge from each input to what reads it.
fn lineage_svg(inputs: &Inputs, indicators: &[Indicator]) -> String {
    let project = inputs.project;
    // (column, key, label, href)
    let mut nodes: Vec<(usize, String, String, String)> = Vec::new();
    let mut sources: BTreeSet<String> = BTreeSet::new();
    for m in &project.models {
        for s in &m.sources {
            sources.insert(match form_of(inputs.catalog, s) {
                Some(f) => format!("form:{f}"),
                None => format!("src:{s}"),
            });
        }
    }
    for s in &sources {
        let (label, href) = match s.split_once(':') {
            Some(("form", f)) => (f.to_string(), form_page(f)),
            Some((_, t)) => (t.to_string(), "index.html".to_string()),
            None => (s.clone(), "index.html".into()),
        };
        nodes.push((0, s.clone(), label, href));
    }
    for m in &project.models {
        let col = 1 + LAYERS.iter().position(|l| *l == m.id.layer).unwrap_or(0);
        let id = m.id.to_string();
        nodes.push((
            col,
            format!("model:{id}"),
            m.id.name.clone(),
            model_page(&id),
        ));
    }
    for i in indicators {
        nodes.push((
            4,
            format!("ind:{}", i.id),
            i.label.clone(),
            format!("indicators.html#i-{}", i.id),
        ));
    }
    for (_, s) in &inputs.schemes {
        nodes.push((
            5,
            format!("scheme:{}", s.name),
            s.title.clone().unwrap_or_else(|| s.name.clone()),
            format!("rankings.html#s-{}", s.name),
        ));
    }
    let mut edges: Vec<(String, String)> = Vec::new();
    for m in &project.models {
        for s in &m.sources {
            let from = match form_of(inputs.catalog, s) {
                Some(f) => format!("form:{f}"),
                None => format!("src:{s}"),
            };
            edges.push((from, format!("model:{}", m.id)));
        }
        for d in &m.deps {
            edges.push((format!("model:{d}"), format!("model:{}", m.id)));
        }
    }
    for i in indicators {
        edges.push((format!("model:{}", i.mart), format!("ind:{}", i.id)));
    }
    for (_, s) in &inputs.schemes {
        for i in &s.indicators {
            edges.push((format!("ind:{}", i.id), format!("scheme:{}", s.name)));
        }
    }
    let (col_w, node_w, row_h, node_h, top) = (205.0, 180.0, 24.0, 18.0, 30.0);
    let mut pos: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let mut rows = [0usize; 6];
    for (c, key, _, _) in &nodes {
        let y = top + rows[*c] as f64 * row_h;
        rows[*c] += 1;
        pos.insert(key.clone(), (10.0 + *c as f64 * col_w, y));
    }
    let height = top + *rows.iter().max().unwrap_or(&1) as f64 * row_h + 10.0;
    let width = 10.0 + 6.0 * col_w;
    let mut s = format!(
        "<div class=\"wide\"><svg xmlns=\"http://www.w3.org/2000/svg\" class=\"lineage-graph\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"数据血缘图\">"
    );
    for (c, title) in [
        "表单与参考",
        "staging",
        "intermediate",
        "marts",
        "指标",
        "考核排名",
    ]
    .iter()
    .enumerate()
    {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"16\" font-size=\"13\" font-weight=\"600\" fill=\"#59636e\">{title}</text>",
            10.0 + c as f64 * col_w
        );
    }
    for (from, to) in &edges {
        let (Some(a), Some(b)) = (pos.get(from), pos.get(to)) else {
            continue;
        };
        let (x1, y1, x2, y2) = (a.0 + node_w, a.1 + node_h / 2.0, b.0, b.1 + node_h / 2.0);
        let mx = (x1 + x2) / 2.0;
        let _ = write!(
            s,
            "<path class=\"edge\" data-from=\"{}\" data-to=\"{}\" d=\"M{x1:.0},{y1:.0} C{mx:.0},{y1:.0} {mx:.0},{y2:.0} {x2:.0},{y2:.0}\" fill=\"none\" stroke=\"#b6c2cf\" stroke-width=\"1\"/>",
            esc(from),
            esc(to)
        );
    }
    for (c, key, label, href) in &nodes {
        let (x, y) = pos[key];
        let fill = [
            "#fff8c5", "#ddf4ff", "#ddf4ff", "#dafbe1", "#fbefff", "#ffebe9",
        ][*c];
        let shown = fit(label, node_w - 10.0);
        let full = key.split_once(':').map_or(key.as_str(), |x| x.1);
        let title = if full == label {
            label.clone()
        } else {
            format!("{label}（{full}）")
        };
        let _ = write!(
            s,
            "<a href=\"{}\" class=\"node\" data-key=\"{}\"><title>{}</title><rect x=\"{x}\" y=\"{y}\" width=\"{node_w}\" height=\"{node_h}\" rx=\"4\" fill=\"{fill}\" stroke=\"#8c959f\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#1f2328\">{}</text></a>",
            esc(href),
            esc(key),
            esc(&title),
            x + 5.0,
            y + 13.0,
            esc(&shown)
        );
    }
    s.push_str("</svg></div>");
    s
}
