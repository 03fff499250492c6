//! Targets and progress monitoring (进度监测).
//!
//! Targets live in YAML under `pipelines/` (the city's from the work plan and
//! an allocation to the counties), one entry per indicator:
//!
//! ```yaml
//! year: 2023
//! indicators:
//!   rd_intensity:
//!     label: 全社会R&D经费占GDP比重
//!     kind: rate            # rate (ratio, growth, change) or cumulative
//!     unit: percent         # display only: percent, wan_yuan, count
//!     targets: {"330600": 0.031, "330602": 0.029}
//! ```
//!
//! For an as-of month m, `completion = actual / target`. Cumulative
//! indicators are compared with `time_progress = m / 12` (green when
//! completion ≥ time progress, yellow when ≥ 0.8 × time progress, red
//! otherwise); rates with 1 (green ≥ 1, yellow ≥ 0.8); a negative actual gives
//! completion 0. A missing actual has no status, and says why.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::Array;
use datafusion::prelude::SessionContext;
use serde::Deserialize;

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Counts and amounts that build up through the year.
    Cumulative,
    /// Rates, ratios, growth and change: comparable at any month.
    Rate,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndicatorTargets {
    pub label: String,
    pub kind: Kind,
    #[serde(default)]
    pub unit: Option<String>,
    /// Division code → target, in warehouse units (fractions, 万元, counts).
    pub targets: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    pub year: i32,
    #[serde(default)]
    pub source: Option<String>,
    /// In the file's order (the order of the printed table).
    #[serde(deserialize_with = "in_order")]
    pub indicators: Vec<(String, IndicatorTargets)>,
}

fn in_order<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<(String, IndicatorTargets)>, D::Error> {
    let map = serde_yaml_ng::Mapping::deserialize(d)?;
    map.into_iter()
        .map(|(k, v)| {
            let k = k
                .as_str()
                .ok_or_else(|| serde::de::Error::custom("indicator ids are strings"))?
                .to_string();
            let v: IndicatorTargets = serde_yaml_ng::from_value(v)
                .map_err(|e| serde::de::Error::custom(format!("{k}: {e}")))?;
            Ok((k, v))
        })
        .collect()
}

impl Targets {
    pub fn load(path: &Path) -> Result<Targets> {
        let bad = |message: String| crate::file_error(path, message);
        let text = std::fs::read_to_string(path).map_err(crate::io_error(path))?;
        let t: Targets = serde_yaml_ng::from_str(&text).map_err(|e| bad(e.to_string()))?;
        for (id, i) in &t.indicators {
            for (code, v) in &i.targets {
                if !v.is_finite() || *v == 0.0 {
                    return Err(bad(format!(
                        "{id}: target for {code} is {v}; a target must be a non-zero number"
                    )));
                }
            }
        }
        Ok(t)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Light {
    Green,
    Yellow,
    Red,
}

impl Light {
    pub fn as_str(self) -> &'static str {
        match self {
            Light::Green => "green",
            Light::Yellow => "yellow",
            Light::Red => "red",
        }
    }
    pub fn zh(self) -> &'static str {
        match self {
            Light::Green => "绿",
            Light::Yellow => "黄",
            Light::Red => "红",
        }
    }
}

/// Completion, time progress and status of one actual against its target.
pub fn assess(kind: Kind, actual: f64, target: f64, month: u32) -> (f64, f64, Light) {
    let completion = if actual < 0.0 { 0.0 } else { actual / target };
    let bar = match kind {
        Kind::Cumulative => f64::from(month) / 12.0,
        Kind::Rate => 1.0,
    };
    // Float noise must not turn an exact "on time" into yellow.
    let eps = 1e-9;
    let light = if completion + eps >= bar {
        Light::Green
    } else if completion + eps >= 0.8 * bar {
        Light::Yellow
    } else {
        Light::Red
    };
    (completion, bar, light)
}

#[derive(Debug, Clone)]
pub struct ProgressRow {
    pub division_code: String,
    pub division_name: String,
    pub level: String,
    /// The division's top-most ancestor below the whole region (itself when
    /// it has none): what a progress page too large for one file is split by.
    pub root_code: String,
    pub root_name: String,
    pub indicator_id: String,
    pub label: String,
    pub kind: Kind,
    pub unit: Option<String>,
    pub actual: Option<f64>,
    pub target: f64,
    pub completion: Option<f64>,
    pub time_progress: f64,
    pub status: Option<Light>,
    pub reason: Option<String>,
    /// Open review queries on values this one is computed from (待核实),
    /// and their share of its numerator.
    pub queried: i64,
    pub queried_share: Option<f64>,
    /// Whether disclosure control withholds the value from the public
    /// edition (`marts.disclosure`); the internal edition shows the value
    /// and marks it, the public one ([`public`]) shows 保密.
    pub withheld: Option<Withheld>,
}

/// Why a value is withheld from the public edition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withheld {
    /// The value itself would disclose a unit (too few units, or one
    /// dominates).
    Primary,
    /// Withheld so that a primary value cannot be recovered from its
    /// parent's total and its siblings.
    Secondary,
}

impl Withheld {
    pub fn from_status(status: &str) -> Option<Withheld> {
        match status {
            "primary" => Some(Withheld::Primary),
            "secondary" => Some(Withheld::Secondary),
            _ => None,
        }
    }

    /// What the internal edition's 公开版 column says.
    pub fn zh(self) -> &'static str {
        match self {
            Withheld::Primary => "保密（原发）",
            Withheld::Secondary => "保密（隐藏）",
        }
    }
}

/// What a withheld value reads as in the public edition.
pub const WITHHELD_ZH: &str = "保密";

/// The sign in a withheld value's cell (CSV, XLSX).
pub const WITHHELD_CELL: &str = "*";

/// The public edition of `rows`: every withheld value, its completion,
/// light and queried share are removed and its reason says 保密.
pub fn public(rows: &mut [ProgressRow]) {
    for r in rows.iter_mut().filter(|r| r.withheld.is_some()) {
        r.actual = None;
        r.completion = None;
        r.status = None;
        r.queried_share = None;
        r.reason = Some(format!(
            "{WITHHELD_ZH}：依《统计法》第二十五条，该数值可推算出单个调查对象的资料，不予公布"
        ));
    }
}

/// `marts.disclosure` joined to `marts.indicators` as `w` on `i`, when it
/// exists; otherwise no value is withheld.
async fn disclosure_join(ctx: &SessionContext) -> Result<(&'static str, &'static str)> {
    Ok(if ctx.table_exist("marts.disclosure")? {
        (
            "w.status",
            " left join marts.disclosure w on w.year = i.year and w.as_of_month = i.as_of_month \
              and w.division_code = i.division_code and w.indicator_id = i.indicator_id",
        )
    } else {
        ("cast(null as varchar)", "")
    })
}

impl ProgressRow {
    /// 待核实 in Chinese (`2项，占分子0.41%`); empty when nothing is queried.
    pub fn queried_zh(&self) -> String {
        if self.queried == 0 {
            return String::new();
        }
        let share = self
            .queried_share
            .map(|v| format!("，占分子{:.2}%", v * 100.0))
            .unwrap_or_default();
        format!("{}项{share}", self.queried)
    }
}

/// `YYYY-MM` of the given year → month.
pub fn parse_month(s: &str, year: i32) -> Option<u32> {
    let (y, m) = s.split_once('-')?;
    let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
    (y == year && (1..=12).contains(&m)).then_some(m)
}

/// The latest month of `year` with enterprise R&D data (12 when there is
/// none): what "as of latest" means.
pub async fn latest_month(ctx: &SessionContext, year: i32) -> Result<u32> {
    let sql = format!(
        "select cast(coalesce(max(month), 12) as bigint) from staging.enterprise_rd_months where year = {year}"
    );
    let v = stmon_models::query_i64(ctx, &sql).await?.unwrap_or(12);
    Ok(v.clamp(1, 12) as u32)
}

/// Progress of every division and indicator with a target, as of `month`.
pub async fn progress(
    ctx: &SessionContext,
    targets: &Targets,
    year: i32,
    month: u32,
) -> Result<Vec<ProgressRow>> {
    let (status, join) = disclosure_join(ctx).await?;
    let sql = format!(
        "select d.code, d.name, d.level, i.indicator_id, i.value, i.reason, d.parent_code, \
                i.queried, i.queried_share, i.status \
         from ref.divisions d left join (select i.*, {status} as status from marts.indicators i{join} \
              where i.year = {year} and i.as_of_month = {month}) i \
         on i.division_code = d.code"
    );
    type Actual = (
        Option<f64>,
        Option<String>,
        i64,
        Option<f64>,
        Option<Withheld>,
    );
    let mut actual: BTreeMap<(String, String), Actual> = BTreeMap::new();
    let mut names: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut parents: BTreeMap<String, String> = BTreeMap::new();
    for b in ctx.sql(&sql).await?.collect().await? {
        let s = |i: usize| stmon_models::text_column(&b, i);
        let (code, name, level, id, reason) = (s(0)?, s(1)?, s(2)?, s(3)?, s(5)?);
        let parent = s(6)?;
        let value = stmon_models::float_column(&b, 4)?;
        let queried = stmon_models::float_column(&b, 7)?;
        let share = stmon_models::float_column(&b, 8)?;
        let withheld = s(9)?;
        for r in 0..b.num_rows() {
            names.insert(
                code.value(r).to_string(),
                (name.value(r).to_string(), level.value(r).to_string()),
            );
            if parent.is_valid(r) {
                parents.insert(code.value(r).to_string(), parent.value(r).to_string());
            }
            if id.is_valid(r) {
                actual.insert(
                    (code.value(r).to_string(), id.value(r).to_string()),
                    (
                        value.is_valid(r).then(|| value.value(r)),
                        reason.is_valid(r).then(|| reason.value(r).to_string()),
                        if queried.is_valid(r) {
                            queried.value(r) as i64
                        } else {
                            0
                        },
                        share.is_valid(r).then(|| share.value(r)),
                        withheld
                            .is_valid(r)
                            .then(|| Withheld::from_status(withheld.value(r)))
                            .flatten(),
                    ),
                );
            }
        }
    }
    let mut out = Vec::new();
    for (id, ind) in &targets.indicators {
        for (code, target) in &ind.targets {
            let (name, level) = names
                .get(code)
                .cloned()
                .ok_or_else(|| Error::UnknownDivision {
                    indicator: id.clone(),
                    code: code.clone(),
                })?;
            let (value, reason, queried, queried_share, withheld) =
                match actual.get(&(code.clone(), id.clone())) {
                    Some(v) => v.clone(),
                    None => (
                        None,
                        Some(format!(
                            "no value in marts.indicators for {year}, month {month}"
                        )),
                        0,
                        None,
                        None,
                    ),
                };
            let (completion, time_progress, status) = match value {
                Some(a) => {
                    let (c, t, l) = assess(ind.kind, a, *target, month);
                    (Some(c), t, Some(l))
                }
                None => (
                    None,
                    match ind.kind {
                        Kind::Cumulative => f64::from(month) / 12.0,
                        Kind::Rate => 1.0,
                    },
                    None,
                ),
            };
            let root_code = root_of(&parents, code);
            let root_name = names
                .get(&root_code)
                .map(|n| n.0.clone())
                .unwrap_or_else(|| root_code.clone());
            out.push(ProgressRow {
                division_code: code.clone(),
                division_name: name,
                level,
                root_code,
                root_name,
                indicator_id: id.clone(),
                label: ind.label.clone(),
                kind: ind.kind,
                unit: ind.unit.clone(),
                actual: value,
                target: *target,
                completion,
                time_progress,
                status,
                reason,
                queried,
                queried_share,
                withheld,
            });
        }
    }
    // Counties first, then the city and up; within a division, the catalogue order.
    let order: Vec<&String> = targets.indicators.iter().map(|(k, _)| k).collect();
    let level_rank = |l: &str| match l {
        "county" => 0,
        "prefecture" => 1,
        "province" => 2,
        _ => 3,
    };
    out.sort_by(|a, b| {
        (level_rank(&a.level), &a.division_code)
            .cmp(&(level_rank(&b.level), &b.division_code))
            .then(
                order
                    .iter()
                    .position(|x| **x == a.indicator_id)
                    .cmp(&order.iter().position(|x| **x == b.indicator_id)),
            )
    });
    Ok(out)
}

/// The top-most ancestor of `code` below the whole region (000000).
fn root_of(parents: &BTreeMap<String, String>, code: &str) -> String {
    let mut at = code.to_string();
    for _ in 0..16 {
        match parents.get(&at) {
            Some(p) if p != stmon_models::reference::REGION => at = p.clone(),
            _ => break,
        }
    }
    at
}

/// A value for people: percent for fractions, 亿元 for large sums of 万元.
pub fn display(value: f64, unit: Option<&str>) -> String {
    match unit {
        Some("percent") => format!("{:.2}%", value * 100.0),
        Some("points") => format!("{:+.2}pp", value * 100.0),
        Some("wan_yuan") if value.abs() >= 10_000.0 => format!("{:.2}亿", value / 10_000.0),
        Some("wan_yuan") => format!("{}万", trim(value)),
        _ => {
            if value.fract() == 0.0 {
                format!("{value:.0}")
            } else {
                format!("{value:.2}")
            }
        }
    }
}

/// Up to two decimals, no trailing zeros.
fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

pub const HEADERS_ZH: [&str; 13] = [
    "区划代码",
    "区划名称",
    "层级",
    "指标代码",
    "指标名称",
    "实际值",
    "目标值",
    "完成率",
    "时间进度",
    "状态",
    "说明",
    "待核实",
    "公开版",
];

/// What a card shows in place of a missing value: 保密 for one the public
/// edition withholds, a dash otherwise.
fn blank(r: &ProgressRow) -> &'static str {
    if r.withheld.is_some() {
        WITHHELD_ZH
    } else {
        "—"
    }
}

/// Writes the table as CSV (UTF-8 with BOM, so Excel on Windows opens it) and XLSX.
pub fn write(rows: &[ProgressRow], csv_path: &Path, xlsx_path: &Path) -> Result<()> {
    let io = |p: &Path, e: String| crate::file_error(p, e);
    let mut w = csv::Writer::from_writer(Vec::from("\u{feff}".as_bytes()));
    w.write_record(HEADERS_ZH)
        .map_err(|e| io(csv_path, e.to_string()))?;
    let f = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    // A withheld value's cells in the public edition (no value left): *.
    let g = |r: &ProgressRow, v: Option<f64>| match (v, r.withheld, r.actual) {
        (None, Some(_), None) => WITHHELD_CELL.to_string(),
        _ => f(v),
    };
    for r in rows {
        w.write_record([
            r.division_code.as_str(),
            &r.division_name,
            &r.level,
            &r.indicator_id,
            &r.label,
            &g(r, r.actual),
            &r.target.to_string(),
            &g(r, r.completion),
            &r.time_progress.to_string(),
            r.status.map(|s| s.zh()).unwrap_or(""),
            r.reason.as_deref().unwrap_or(""),
            &r.queried_zh(),
            r.withheld.map(|w| w.zh()).unwrap_or(""),
        ])
        .map_err(|e| io(csv_path, e.to_string()))?;
    }
    let bytes = w.into_inner().map_err(|e| io(csv_path, e.to_string()))?;
    if let Some(d) = csv_path.parent() {
        std::fs::create_dir_all(d).map_err(crate::io_error(d))?;
    }
    std::fs::write(csv_path, bytes).map_err(crate::io_error(csv_path))?;

    use rust_xlsxwriter::{Color, Format, FormatAlign, Workbook};
    let x = |e: rust_xlsxwriter::XlsxError| io(xlsx_path, e.to_string());
    let mut wb = Workbook::new();
    let sheet = wb.add_worksheet();
    sheet.set_name("进度监测").map_err(x)?;
    let head = Format::new().set_bold().set_align(FormatAlign::Center);
    let pct = Format::new().set_num_format("0.00%");
    let num = Format::new().set_num_format("#,##0.####");
    for (c, h) in HEADERS_ZH.iter().enumerate() {
        sheet
            .write_string_with_format(0, c as u16, *h, &head)
            .map_err(x)?;
    }
    for (i, r) in rows.iter().enumerate() {
        let row = (i + 1) as u32;
        sheet.write_string(row, 0, &r.division_code).map_err(x)?;
        sheet.write_string(row, 1, &r.division_name).map_err(x)?;
        sheet.write_string(row, 2, &r.level).map_err(x)?;
        sheet.write_string(row, 3, &r.indicator_id).map_err(x)?;
        sheet.write_string(row, 4, &r.label).map_err(x)?;
        let vf = if matches!(r.unit.as_deref(), Some("percent" | "points")) {
            &pct
        } else {
            &num
        };
        let hidden = r.withheld.is_some() && r.actual.is_none();
        if let Some(a) = r.actual {
            sheet.write_number_with_format(row, 5, a, vf).map_err(x)?;
        } else if hidden {
            sheet.write_string(row, 5, WITHHELD_CELL).map_err(x)?;
            sheet.write_string(row, 7, WITHHELD_CELL).map_err(x)?;
        }
        sheet
            .write_number_with_format(row, 6, r.target, vf)
            .map_err(x)?;
        if let Some(c) = r.completion {
            sheet.write_number_with_format(row, 7, c, &pct).map_err(x)?;
        }
        sheet
            .write_number_with_format(row, 8, r.time_progress, &pct)
            .map_err(x)?;
        if let Some(s) = r.status {
            let color = match s {
                Light::Green => Color::RGB(0xC6EFCE),
                Light::Yellow => Color::RGB(0xFFEB9C),
                Light::Red => Color::RGB(0xFFC7CE),
            };
            sheet
                .write_string_with_format(
                    row,
                    9,
                    s.zh(),
                    &Format::new().set_background_color(color),
                )
                .map_err(x)?;
        }
        if let Some(reason) = &r.reason {
            sheet.write_string(row, 10, reason).map_err(x)?;
        }
        if r.queried > 0 {
            sheet.write_string(row, 11, r.queried_zh()).map_err(x)?;
        }
        if let Some(w) = r.withheld {
            sheet.write_string(row, 12, w.zh()).map_err(x)?;
        }
    }
    sheet.set_freeze_panes(1, 0).map_err(x)?;
    sheet.set_column_width(4, 36).map_err(x)?;
    sheet.set_column_width(10, 40).map_err(x)?;
    if let Some(d) = xlsx_path.parent() {
        std::fs::create_dir_all(d).map_err(crate::io_error(d))?;
    }
    wb.save(xlsx_path).map_err(x)?;
    Ok(())
}

/// Values of one division's indicator month by month: `(month, value)`.
pub type History = BTreeMap<(String, String), Vec<(u32, f64)>>;

/// Every targeted indicator's value per division for months 1..=`month` of
/// `year` (months without a value left out).
///
/// For the public edition (`public`), the months whose value disclosure
/// control withholds are left out too.
pub async fn history(
    ctx: &SessionContext,
    targets: &Targets,
    year: i32,
    month: u32,
    public: bool,
) -> Result<History> {
    let (status, join) = disclosure_join(ctx).await?;
    let keep = if public {
        format!(" and coalesce({status}, 'published') = 'published'")
    } else {
        String::new()
    };
    let sql = format!(
        "select i.division_code, i.indicator_id, cast(i.as_of_month as bigint) as m, i.value \
         from marts.indicators i{join} \
         where i.year = {year} and i.as_of_month <= {month} and i.value is not null{keep} \
         order by i.division_code, i.indicator_id, i.as_of_month"
    );
    let wanted: std::collections::BTreeSet<&str> =
        targets.indicators.iter().map(|(k, _)| k.as_str()).collect();
    let mut out = History::new();
    for b in ctx.sql(&sql).await?.collect().await? {
        let (code, id) = (
            stmon_models::text_column(&b, 0)?,
            stmon_models::text_column(&b, 1)?,
        );
        let m = stmon_models::float_column(&b, 2)?;
        let v = stmon_models::float_column(&b, 3)?;
        for r in 0..b.num_rows() {
            if !wanted.contains(id.value(r)) {
                continue;
            }
            out.entry((code.value(r).to_string(), id.value(r).to_string()))
                .or_default()
                .push((m.value(r) as u32, v.value(r)));
        }
    }
    Ok(out)
}

/// A region of a split report: name, file, divisions, and its rows counted
/// by light (red, yellow, green, none).
type RegionSummary = (String, String, usize, [usize; 4]);

/// Everything the progress page shows but its rows.
#[derive(Debug, Clone)]
pub struct Page {
    pub history: History,
    pub year: i32,
    pub month: u32,
    pub source: PageSource,
}

/// What the progress page says about where its numbers come from.
#[derive(Debug, Clone)]
pub struct PageSource {
    /// `marts.indicators`.
    pub table: String,
    /// The public edition (withheld values shown as 保密).
    pub public: bool,
    /// Its Delta version read.
    pub version: i64,
    /// The targets file, as given.
    pub targets_file: String,
    pub ran_at: chrono::DateTime<chrono::Utc>,
}

impl PageSource {
    /// The command that writes the same page again.
    pub fn command(&self, year: i32, month: u32) -> String {
        format!(
            "stmon progress --year {year} --as-of {year}-{month:02} --targets {} --version {} --html{}",
            self.targets_file,
            self.version,
            if self.public { " --public" } else { "" }
        )
    }
}

/// The notes `marts.indicators` gives in its `reason` column (and the one
/// [`progress`] adds), English template → the Chinese the progress page
/// shows. `{}` holds a value; `{0}`, `{1}`… place them in the Chinese.
const REASONS_ZH: [(&str, &str); 21] = [
    (
        "no quarter has ended yet: GDP is quarterly",
        "尚无已结束的季度（GDP 按季度报送）",
    ),
    (
        "no quarter has ended yet: investment is quarterly",
        "尚无已结束的季度（投资按季度报送）",
    ),
    (
        "no GDP reported for {} up to month {}",
        "{0}年截至{1}月未报送 GDP",
    ),
    ("GDP for {}-Q{} is zero", "{0}年第{1}季度 GDP 为 0"),
    (
        "computed at {}-Q{}: enterprise R&D as of {}-{} over {}-Q{} GDP",
        "按{0}年第{1}季度计算：{2}年{3}月企业研发经费 ÷ {4}年第{5}季度 GDP",
    ),
    (
        "institute R&D (annual) enters at year end",
        "研究院研发经费（年报）于年末计入",
    ),
    (
        "{} of {} counties with data left out: no GDP for {}-Q{}",
        "{1}个区县中{0}个因缺{2}年第{3}季度 GDP 未计入",
    ),
    (
        "no above-scale industrial enterprise reported",
        "无规上工业企业报送",
    ),
    (
        "no above-scale industrial enterprise reported this year",
        "本年无规上工业企业报送",
    ),
    (
        "no above-scale industrial enterprise reported the previous year",
        "上年无规上工业企业报送",
    ),
    (
        "revenue of above-scale industrial enterprises is zero",
        "规上工业企业营业收入为 0",
    ),
    (
        "value added of above-scale industrial enterprises is zero",
        "规上工业企业增加值为 0",
    ),
    (
        "no high-tech investment reported for {} up to month {}",
        "{0}年截至{1}月未报送高新技术产业投资",
    ),
    ("no previous-year base for {}-Q{}", "缺{0}年第{1}季度基数"),
    (
        "previous-year base for {}-Q{} is zero",
        "{0}年第{1}季度基数为 0",
    ),
    (
        "computed at {}-Q{} against {}-Q{} (latest quarter reported)",
        "按已报送的最新季度计算：{0}年第{1}季度对比{2}年第{3}季度",
    ),
    (
        "plain sums over every reporting county: {} reported {}-Q{}, {} reported {}-Q{}, {} both",
        "按报送区县直接加总：{1}年第{2}季度{0}个区县、{4}年第{5}季度{3}个区县报送，两期均报送{6}个",
    ),
    ("no enterprise R&D reported this year", "本年无企业研发报送"),
    ("no previous-year base", "缺上年基数"),
    ("previous-year base is zero", "上年基数为 0"),
    (
        "no {} submissions for {} up to month {}: 0 over no rows",
        "{1}年截至{2}月无 {0} 表报送，按 0 计",
    ),
];

/// The values `text` gives a template's `{}`, if it is that template.
fn fill<'a>(template: &str, text: &'a str) -> Option<Vec<&'a str>> {
    let pieces: Vec<&str> = template.split("{}").collect();
    let mut rest = text.strip_prefix(pieces[0])?;
    let mut values = Vec::new();
    for (i, p) in pieces.iter().enumerate().skip(1) {
        let at = if i == pieces.len() - 1 {
            rest.len()
                .checked_sub(p.len())
                .filter(|&at| rest[at..] == **p)?
        } else {
            rest.find(p)?
        };
        values.push(&rest[..at]);
        rest = &rest[at + p.len()..];
    }
    rest.is_empty().then_some(values)
}

/// A reason in Chinese: each `; `-separated note by [`REASONS_ZH`]; a note
/// no template matches is kept as it is.
pub fn reason_zh(reason: &str) -> String {
    reason
        .split("; ")
        .map(|note| {
            if let Some(v) = note
                .strip_prefix("no value in marts.indicators for ")
                .and_then(|r| r.split_once(", month "))
            {
                return format!("marts.indicators 中无{}年{}月的值", v.0, v.1);
            }
            REASONS_ZH
                .iter()
                .find_map(|(en, zh)| {
                    let values = fill(en, note)?;
                    let mut out = zh.to_string();
                    for (i, v) in values.iter().enumerate() {
                        out = out.replace(&format!("{{{i}}}"), v);
                    }
                    Some(out)
                })
                .unwrap_or_else(|| note.to_string())
        })
        .collect::<Vec<_>>()
        .join("；")
}

fn light_rank(l: Option<Light>) -> u8 {
    match l {
        Some(Light::Red) => 0,
        Some(Light::Yellow) => 1,
        Some(Light::Green) => 2,
        None => 3,
    }
}

fn level_zh(level: &str) -> &str {
    match level {
        "county" => "区县",
        "prefecture" => "市",
        "province" => "省",
        other => other,
    }
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

/// The progress page: one offline HTML file (see [`crate::html`]). The city
/// (and any level above the counties) comes first, then the counties with
/// the most red lights first; within a division the indicators go red,
/// yellow, green, then those without a value, each in the targets' order.
/// Each indicator is a card with its light, completion, time progress,
/// actual and target, and a chart of its completion month by month.
///
/// `part`: this page is one region of a split report (see [`Page::write`]):
/// the region's name and the file name of the index page to link back to.
impl Page {
    pub fn html(&self, rows: &[ProgressRow], part: Option<(&str, &str)>) -> String {
        use crate::html::{self, esc};
        let (history, year, month, source) = (&self.history, self.year, self.month, &self.source);
        use std::fmt::Write as _;
        let mut at: BTreeMap<&str, usize> = BTreeMap::new();
        let mut divisions: Vec<(&str, Vec<&ProgressRow>)> = Vec::new();
        for r in rows {
            match at.get(r.division_code.as_str()) {
                Some(&i) => divisions[i].1.push(r),
                None => {
                    at.insert(&r.division_code, divisions.len());
                    divisions.push((&r.division_code, vec![r]));
                }
            }
        }
        let count =
            |rs: &[&ProgressRow], l: Option<Light>| rs.iter().filter(|r| r.status == l).count();
        divisions.sort_by_key(|(code, rs)| {
            let county = rs[0].level == "county";
            (
                county,
                std::cmp::Reverse(count(rs, Some(Light::Red))),
                std::cmp::Reverse(count(rs, Some(Light::Yellow))),
                code.to_string(),
            )
        });
        for (_, rs) in &mut divisions {
            rs.sort_by_key(|r| light_rank(r.status)); // stable: the targets' order within a light
        }
        let mut h = String::new();
        if let Some((_, index)) = part {
            let _ = write!(
                h,
                "<nav class=\"top\"><a href=\"{}\">全部地区</a></nav>",
                esc(index)
            );
        }
        h.push_str(&page_head(year, month, source, part.map(|p| p.0)));
        h.push_str(
        "<p class=\"muted\">完成率 = 实际值 ÷ 目标值。累计类指标（数量、金额）与时间进度（月份 ÷ 12）比较，\
         比率类指标与 100% 比较：达到为<span class=\"light green\">绿</span>，达到八成为<span class=\"light yellow\">黄</span>，\
         否则为<span class=\"light red\">红</span>；<span class=\"light none\">无</span>为尚无数据。\
         图中虚线为时间进度，实线为逐月完成率。</p>",
    );
        // Overview: one row per division.
        h.push_str("<h2>总览</h2><div class=\"wide\"><table class=\"overview\"><thead><tr><th>区划</th><th>红</th><th>黄</th><th>绿</th><th>无数据</th><th>待核实</th></tr></thead><tbody>");
        for (code, rs) in &divisions {
            let _ = write!(
            h,
            "<tr data-division=\"{code}\"><td class=\"t\"><a href=\"#d-{code}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&rs[0].division_name),
            count(rs, Some(Light::Red)),
            count(rs, Some(Light::Yellow)),
            count(rs, Some(Light::Green)),
            count(rs, None),
            match rs.iter().filter(|r| r.queried > 0).count() {
                0 => String::new(),
                n => format!("{n} 项指标"),
            }
        );
        }
        h.push_str("</tbody></table></div>");
        // Every red light in one table.
        let reds: Vec<&ProgressRow> = divisions
            .iter()
            .flat_map(|(_, rs)| rs.iter().copied())
            .filter(|r| r.status == Some(Light::Red))
            .collect();
        let _ = write!(h, "<h2>红灯指标（{} 项）</h2>", reds.len());
        if !reds.is_empty() {
            let notes = reds.iter().any(|r| r.reason.is_some());
            h.push_str("<div class=\"wide\"><table class=\"reds\"><thead><tr><th>区划</th><th>指标</th><th>实际值</th><th>目标值</th><th>完成率</th><th>应达进度</th>");
            if notes {
                h.push_str("<th>说明</th>");
            }
            h.push_str("</tr></thead><tbody>");
            for r in &reds {
                let _ = write!(
                h,
                "<tr data-division=\"{}\" data-indicator=\"{}\"><td class=\"t\">{}</td><td class=\"t\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}</tr>",
                esc(&r.division_code),
                esc(&r.indicator_id),
                esc(&r.division_name),
                esc(&r.label),
                r.actual.map(|a| display(a, r.unit.as_deref())).unwrap_or_default(),
                display(r.target, r.unit.as_deref()),
                r.completion.map(pct).unwrap_or_default(),
                pct(r.time_progress),
                if notes {
                    format!(
                        "<td class=\"note\">{}</td>",
                        esc(&reason_zh(r.reason.as_deref().unwrap_or("")))
                    )
                } else {
                    String::new()
                }
            );
            }
            h.push_str("</tbody></table></div>");
        }
        for (code, rs) in &divisions {
            let _ = write!(
            h,
            "<section class=\"division\" id=\"d-{code}\"><h2>{}（{}，{}）</h2><p class=\"counts\">红 {} · 黄 {} · 绿 {} · 无数据 {}</p><div class=\"cards\">",
            esc(&rs[0].division_name),
            esc(code),
            level_zh(&rs[0].level),
            count(rs, Some(Light::Red)),
            count(rs, Some(Light::Yellow)),
            count(rs, Some(Light::Green)),
            count(rs, None)
        );
            for r in rs {
                let (class, word) = html::light_class(r.status);
                let unit = r.unit.as_deref();
                let points: Vec<html::MonthPoint> = history
                    .get(&(r.division_code.clone(), r.indicator_id.clone()))
                    .map(|v| {
                        v.iter()
                            .map(|&(m, value)| {
                                let (completion, _, light) = assess(r.kind, value, r.target, m);
                                html::MonthPoint {
                                    month: m,
                                    completion,
                                    light,
                                }
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let _ = write!(
                h,
                "<div class=\"card {class}\" data-indicator=\"{}\" data-completion=\"{}\"><h4>{}</h4>\
                 <div><span class=\"light {class}\">{word}</span> 完成率 <b>{}</b> · 应达 {}</div>\
                 <div class=\"nums\">实际 {} / 目标 {}{}</div>{}{}</div>",
                esc(&r.indicator_id),
                r.completion.map(|c| format!("{c:.4}")).unwrap_or_default(),
                esc(&r.label),
                r.completion.map(pct).unwrap_or_else(|| blank(r).into()),
                pct(r.time_progress),
                r.actual.map(|a| display(a, unit)).unwrap_or_else(|| blank(r).into()),
                display(r.target, unit),
                match (r.withheld, r.actual) {
                    (Some(w), Some(_)) => format!(
                        "<br><span class=\"withheld\" data-withheld=\"{}\">公开版{}</span>",
                        if w == Withheld::Primary { "primary" } else { "secondary" },
                        w.zh()
                    ),
                    _ => String::new(),
                } + &r
                    .reason
                    .as_deref()
                    .map(|x| format!("<br>{}", esc(&reason_zh(x))))
                    .unwrap_or_default(),
                if r.queried > 0 {
                    format!(
                        "<div class=\"queried\" data-queried=\"{}\">待核实：{}（审核查询未答复，值可能变动）</div>",
                        r.queried,
                        esc(&r.queried_zh())
                    )
                } else {
                    String::new()
                },
                html::month_chart(
                    &points,
                    r.kind == Kind::Cumulative,
                    month,
                    &format!("{} 逐月完成率", r.label)
                )
            );
            }
            h.push_str("</div></section>");
        }
        html::page(&page_title(year, month, part.map(|p| p.0)), &h, "")
    }
}

fn page_title(year: i32, month: u32, region: Option<&str>) -> String {
    match region {
        Some(r) => format!("{year}年科技创新目标任务进度监测 — {r}（截至{month}月）"),
        None => format!("{year}年科技创新目标任务进度监测（截至{month}月）"),
    }
}

/// The title, the as-of month with the time progress, and the provenance.
fn page_head(year: i32, month: u32, source: &PageSource, region: Option<&str>) -> String {
    use crate::html::{self, esc};
    let mut h = format!(
        "<h1>{year}年科技创新目标任务进度监测{}{}</h1><p class=\"muted\">截至{year}年{month}月，时间进度 {}（时间过半、任务过半）</p>",
        region.map(|r| format!(" — {}", esc(r))).unwrap_or_default(),
        if source.public { "（公开版）" } else { "" },
        pct(f64::from(month) / 12.0)
    );
    if source.public {
        h.push_str("<p class=\"muted\">公开版：可推算出单个调查对象资料的数值及其关联数值以“保密”代替（《统计法》第二十五条；规则见 marts.disclosure）。</p>");
    }
    h.push_str(&html::provenance(&[
        ("截至月份".into(), format!("{year}-{month:02}")),
        ("目标".into(), source.targets_file.clone()),
        (
            "数据版本".into(),
            format!("{}，Delta 版本 {}", source.table, source.version),
        ),
        ("生成时间".into(), source.ran_at.to_rfc3339()),
        ("重现命令".into(), source.command(year, month)),
    ]));
    h
}

/// Most divisions one progress page holds. A page of a province's 90
/// counties and 22 indicators is about 6 MB; the country's 2,790 counties in
/// one page were 200 MB, which no mail client or phone opens.
pub const PAGE_DIVISIONS: usize = 200;

/// Writes the progress page to `path` and returns the files written. When
/// the rows span more than [`PAGE_DIVISIONS`] divisions, `path` becomes an
/// index of regions (each division's top-most ancestor: a province) with
/// their lights counted, and each region gets its own page beside it,
/// `<stem>-<region code>.html`.
impl Page {
    /// What the page shows besides the rows: each value month by month from
    /// `ctx`, and where it comes from (`marts.indicators`' version in `wh`,
    /// the targets file as given).
    pub async fn read(
        wh: &stmon_warehouse::Warehouse,
        ctx: &SessionContext,
        targets: &Targets,
        targets_file: &Path,
        year: i32,
        month: u32,
        public: bool,
    ) -> Result<Page> {
        let table = stmon_warehouse::TableId::new("marts", "indicators");
        let version = wh.table(&table).await?.version().unwrap_or(0) as i64;
        Ok(Page {
            history: history(ctx, targets, year, month, public).await?,
            year,
            month,
            source: PageSource {
                table: "marts.indicators".into(),
                public,
                version,
                targets_file: targets_file.display().to_string(),
                ran_at: chrono::Utc::now(),
            },
        })
    }

    pub fn write(&self, rows: &[ProgressRow], path: &Path) -> Result<Vec<std::path::PathBuf>> {
        self.write_split(rows, path, PAGE_DIVISIONS)
    }

    fn write_split(
        &self,
        rows: &[ProgressRow],
        path: &Path,
        per_page: usize,
    ) -> Result<Vec<std::path::PathBuf>> {
        use crate::html::{self, esc};
        let (year, month) = (self.year, self.month);
        use std::fmt::Write as _;
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(crate::io_error(d))?;
        }
        let write = |p: &Path, text: String| std::fs::write(p, text).map_err(crate::io_error(p));
        let divisions: std::collections::BTreeSet<&str> =
            rows.iter().map(|r| r.division_code.as_str()).collect();
        if divisions.len() <= per_page {
            write(path, self.html(rows, None))?;
            return Ok(vec![path.to_path_buf()]);
        }
        let mut regions: BTreeMap<&str, Vec<ProgressRow>> = BTreeMap::new();
        for r in rows {
            regions.entry(&r.root_code).or_default().push(r.clone());
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("progress")
            .to_string();
        let index_name = path
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or("progress.html")
            .to_string();
        let mut written = vec![path.to_path_buf()];
        let mut summary: Vec<RegionSummary> = Vec::new();
        for (code, rs) in &regions {
            let name = rs[0].root_name.clone();
            let file = format!("{stem}-{code}.html");
            let p = path.with_file_name(&file);
            write(&p, self.html(rs, Some((&name, &index_name))))?;
            written.push(p);
            let mut n = [0usize; 4];
            for r in rs {
                n[usize::from(light_rank(r.status))] += 1;
            }
            let count = rs
                .iter()
                .map(|r| r.division_code.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            summary.push((name, file, count, n));
        }
        summary.sort_by(|a, b| b.3[0].cmp(&a.3[0]).then(a.1.cmp(&b.1)));
        let mut h = page_head(year, month, &self.source, None);
        let _ = write!(
        h,
        "<p class=\"muted\">共 {} 个区划，超过一页可容纳的 {per_page} 个，按地区分为 {} 页；红灯多的地区在前。</p>\
         <h2>各地区</h2><div class=\"wide\"><table class=\"regions\"><thead><tr><th>地区</th><th>区划数</th><th>红</th><th>黄</th><th>绿</th><th>无数据</th></tr></thead><tbody>",
        divisions.len(),
        summary.len()
    );
        for (name, file, count, n) in &summary {
            let _ = write!(
            h,
            "<tr><td class=\"t\"><a href=\"{}\">{}</a></td><td>{count}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(file),
            esc(name),
            n[0],
            n[1],
            n[2],
            n[3]
        );
        }
        h.push_str("</tbody></table></div>");
        write(path, html::page(&page_title(year, month, None), &h, ""))?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_note_of_the_indicators_reads_in_chinese() {
        // Each literal note of the indicators' SQL starts a template.
        let sql = include_str!("../../../sql/marts/indicators.sql");
        for (en, _) in REASONS_ZH {
            let head = en.split("{}").next().unwrap();
            assert!(
                sql.contains(head.trim_end()),
                "{en} is not in indicators.sql"
            );
        }
        let cases = [
            (
                "computed at 2023-Q3: enterprise R&D as of 2023-09 over 2023-Q3 GDP; institute R&D (annual) enters at year end",
                "按2023年第3季度计算：2023年09月企业研发经费 ÷ 2023年第3季度 GDP；研究院研发经费（年报）于年末计入",
            ),
            (
                "2 of 6 counties with data left out: no GDP for 2023-Q2",
                "6个区县中2个因缺2023年第2季度 GDP 未计入",
            ),
            ("no previous-year base", "缺上年基数"),
            ("no previous-year base for 2022-Q1", "缺2022年第1季度基数"),
            (
                "no recognition submissions for 2023 up to month 4: 0 over no rows",
                "2023年截至4月无 recognition 表报送，按 0 计",
            ),
            (
                "no value in marts.indicators for 2023, month 6",
                "marts.indicators 中无2023年6月的值",
            ),
            ("something new", "something new"),
        ];
        for (en, zh) in cases {
            assert_eq!(reason_zh(en), zh);
        }
        // No English word of a template is left in its Chinese.
        for (en, zh) in REASONS_ZH {
            assert!(!zh.contains("reported") && !zh.contains("year"), "{en}");
        }
    }

    fn row(code: &str, root: &str, status: Option<Light>) -> ProgressRow {
        ProgressRow {
            division_code: code.into(),
            division_name: format!("区{code}"),
            level: "county".into(),
            root_code: root.into(),
            root_name: format!("省{root}"),
            indicator_id: "talent_teams".into(),
            label: "人才团队".into(),
            kind: Kind::Cumulative,
            unit: None,
            actual: Some(1.0),
            target: 10.0,
            completion: Some(0.1),
            time_progress: 0.5,
            status,
            reason: None,
            queried: 0,
            queried_share: None,
            withheld: None,
        }
    }

    #[test]
    fn a_page_too_large_is_split_by_region_with_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("progress-2023-06.html");
        let source = PageSource {
            public: false,
            table: "marts.indicators".into(),
            version: 3,
            targets_file: "t.yaml".into(),
            ran_at: chrono::Utc::now(),
        };
        let rows = vec![
            row("110101", "110000", Some(Light::Green)),
            row("110102", "110000", Some(Light::Red)),
            row("120101", "120000", Some(Light::Red)),
            row("120102", "120000", Some(Light::Red)),
            row("130101", "130000", None),
        ];
        let page = Page {
            history: History::new(),
            year: 2023,
            month: 6,
            source,
        };
        let sections = |p: &Path| {
            std::fs::read_to_string(p)
                .unwrap()
                .matches("<section class=\"division\"")
                .count()
        };
        // Within the limit: one page.
        let one = page.write_split(&rows, &path, 5).unwrap();
        assert_eq!(one, std::slice::from_ref(&path));
        assert_eq!(sections(&path), 5);
        // Past it: an index and a page per region.
        let all = page.write_split(&rows, &path, 4).unwrap();
        let names: Vec<&str> = all
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "progress-2023-06.html",
                "progress-2023-06-110000.html",
                "progress-2023-06-120000.html",
                "progress-2023-06-130000.html"
            ]
        );
        let index = std::fs::read_to_string(&path).unwrap();
        assert_eq!(sections(&path), 0);
        assert!(index.contains("共 5 个区划，超过一页可容纳的 4 个，按地区分为 3 页"));
        // Most red first: 省120000 (2 red), 省110000 (1), 省130000 (none; one without data).
        let at = |c: &str| index.find(&format!("progress-2023-06-{c}.html")).unwrap();
        assert!(at("120000") < at("110000") && at("110000") < at("130000"));
        assert!(index.contains("<a href=\"progress-2023-06-120000.html\">省120000</a></td><td>2</td><td>2</td><td>0</td><td>0</td><td>0</td>"));
        assert!(index.contains("<a href=\"progress-2023-06-130000.html\">省130000</a></td><td>1</td><td>0</td><td>0</td><td>0</td><td>1</td>"));
        let region = dir.path().join("progress-2023-06-120000.html");
        let text = std::fs::read_to_string(&region).unwrap();
        assert!(text.contains("<a href=\"progress-2023-06.html\">全部地区</a>"));
        assert!(text.contains("进度监测 — 省120000"));
        assert_eq!(sections(&region), 2);
    }

    #[test]
    fn lights_follow_the_rules() {
        // Cumulative, as of June: time progress 0.5.
        assert_eq!(assess(Kind::Cumulative, 200.0, 400.0, 6).2, Light::Green);
        assert_eq!(assess(Kind::Cumulative, 160.0, 400.0, 6).2, Light::Yellow); // 0.4 = 0.8 × 0.5
        assert_eq!(assess(Kind::Cumulative, 159.0, 400.0, 6).2, Light::Red);
        // Rates: against 1.
        assert_eq!(assess(Kind::Rate, 0.031, 0.031, 3).2, Light::Green);
        assert_eq!(assess(Kind::Rate, 0.0248, 0.031, 3).2, Light::Yellow);
        let (c, _, l) = assess(Kind::Rate, -0.05, 0.1, 12);
        assert_eq!((c, l), (0.0, Light::Red));
    }
}
