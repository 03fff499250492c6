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
    let sql = format!(
        "select d.code, d.name, d.level, i.indicator_id, i.value, i.reason \
         from ref.divisions d left join (select * from marts.indicators where year = {year} and as_of_month = {month}) i \
         on i.division_code = d.code"
    );
    let mut actual: BTreeMap<(String, String), (Option<f64>, Option<String>)> = BTreeMap::new();
    let mut names: BTreeMap<String, (String, String)> = BTreeMap::new();
    for b in ctx.sql(&sql).await?.collect().await? {
        let s = |i: usize| stmon_models::text_column(&b, i);
        let (code, name, level, id, reason) = (s(0)?, s(1)?, s(2)?, s(3)?, s(5)?);
        let value = stmon_models::float_column(&b, 4)?;
        for r in 0..b.num_rows() {
            names.insert(
                code.value(r).to_string(),
                (name.value(r).to_string(), level.value(r).to_string()),
            );
            if id.is_valid(r) {
                actual.insert(
                    (code.value(r).to_string(), id.value(r).to_string()),
                    (
                        value.is_valid(r).then(|| value.value(r)),
                        reason.is_valid(r).then(|| reason.value(r).to_string()),
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
            let (value, reason) = match actual.get(&(code.clone(), id.clone())) {
                Some(v) => v.clone(),
                None => (
                    None,
                    Some(format!(
                        "no value in marts.indicators for {year}, month {month}"
                    )),
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
            out.push(ProgressRow {
                division_code: code.clone(),
                division_name: name,
                level,
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

/// A value for people: percent for fractions, 亿元 for large sums of 万元.
pub fn display(value: f64, unit: Option<&str>) -> String {
    match unit {
        Some("percent") => format!("{:.2}%", value * 100.0),
        Some("points") => format!("{:+.2}pp", value * 100.0),
        Some("wan_yuan") => format!("{:.2}亿", value / 10_000.0),
        _ => {
            if value.fract() == 0.0 {
                format!("{value:.0}")
            } else {
                format!("{value:.2}")
            }
        }
    }
}

pub const HEADERS_ZH: [&str; 11] = [
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
];

/// Writes the table as CSV (UTF-8 with BOM, so Excel on Windows opens it) and XLSX.
pub fn write(rows: &[ProgressRow], csv_path: &Path, xlsx_path: &Path) -> Result<()> {
    let io = |p: &Path, e: String| crate::file_error(p, e);
    let mut w = csv::Writer::from_writer(Vec::from("\u{feff}".as_bytes()));
    w.write_record(HEADERS_ZH)
        .map_err(|e| io(csv_path, e.to_string()))?;
    let f = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for r in rows {
        w.write_record([
            r.division_code.as_str(),
            &r.division_name,
            &r.level,
            &r.indicator_id,
            &r.label,
            &f(r.actual),
            &r.target.to_string(),
            &f(r.completion),
            &r.time_progress.to_string(),
            r.status.map(|s| s.zh()).unwrap_or(""),
            r.reason.as_deref().unwrap_or(""),
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
        if let Some(a) = r.actual {
            sheet.write_number_with_format(row, 5, a, vf).map_err(x)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
