//! The review's query lists (审核查询清单): one per county office, as XLSX
//! and an offline page in Chinese — firm, period, field, reported,
//! expected, why, what to do next — highest score first.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use stmon_review::{Query, Status};
use stmon_schema::Catalog;

use crate::html::{esc, page, provenance};
use crate::Result;

/// The headers of a list, in order.
const HEAD: [&str; 11] = [
    "序号",
    "评分",
    "报表",
    "单位代码",
    "单位名称",
    "报告期",
    "指标",
    "填报值",
    "预期值",
    "原因",
    "下一步",
];

/// A query as the list shows it.
fn cells(q: &Query, catalog: &Catalog) -> [String; 11] {
    let form = catalog.form(&q.form);
    let expected = match (q.low, q.high) {
        (Some(l), Some(h)) => format!("{:.2}（{:.2}～{:.2}）", q.expected, l, h),
        (None, Some(h)) => format!("{:.2}（≤{:.2}）", q.expected, h),
        (Some(l), None) => format!("{:.2}（≥{:.2}）", q.expected, l),
        (None, None) => format!("{:.2}", q.expected),
    };
    let mut next = q.advice(form).unwrap_or_else(|| "与填报单位核实".into());
    if let Some(a) = &q.answer {
        let _ = write!(next, "（已答复：{a}）");
    }
    [
        String::new(),
        format!("{:.4}", q.score),
        form.map(|f| f.title.clone())
            .unwrap_or_else(|| q.form.clone()),
        q.unit.clone(),
        q.name.clone().unwrap_or_default(),
        q.period.clone(),
        form.and_then(|f| f.column(&q.column))
            .map(|c| c.label.clone())
            .unwrap_or_else(|| q.column.clone()),
        format!("{:.2}", q.reported),
        expected,
        q.why_zh(form),
        next,
    ]
}

/// The county office a query goes to: the unit's county, or the unit
/// itself for the county form.
fn office(q: &Query) -> String {
    q.division.clone().unwrap_or_else(|| q.unit.clone())
}

/// Writes one list per county with open queries (highest score first) into
/// `dir`, removing the lists of counties that have none left; returns the
/// files written.
pub fn write_lists(dir: &Path, all: &[Query], catalog: &Catalog) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(crate::io_error(dir))?;
    for e in std::fs::read_dir(dir)
        .map_err(crate::io_error(dir))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("review-") && (name.ends_with(".xlsx") || name.ends_with(".html")) {
            std::fs::remove_file(e.path()).map_err(crate::io_error(&e.path()))?;
        }
    }
    let mut by_county: BTreeMap<String, Vec<&Query>> = BTreeMap::new();
    for q in all.iter().filter(|q| q.status == Status::Open) {
        by_county.entry(office(q)).or_default().push(q);
    }
    let mut written = Vec::new();
    for (county, mut qs) in by_county {
        qs.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.query_id.cmp(&b.query_id))
        });
        let name = catalog
            .divisions
            .get(&county)
            .map(|d| d.name.clone())
            .unwrap_or_default();
        let rows: Vec<[String; 11]> = qs
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let mut c = cells(q, catalog);
                c[0] = (i + 1).to_string();
                c
            })
            .collect();
        let (xlsx, html) = crate::files::review_list(dir, &county);
        write_xlsx(&xlsx, &rows)?;
        let high = qs.iter().filter(|q| q.high_score).count();
        std::fs::write(&html, page_of(&county, &name, &rows, high))
            .map_err(crate::io_error(&html))?;
        written.extend([xlsx, html]);
    }
    Ok(written)
}

fn write_xlsx(path: &Path, rows: &[[String; 11]]) -> Result<()> {
    use rust_xlsxwriter::{Format, Workbook};
    let x = |e: rust_xlsxwriter::XlsxError| crate::file_error(path, e);
    let mut wb = Workbook::new();
    let head = Format::new().set_bold();
    let sheet = wb.add_worksheet();
    sheet.set_name("审核查询").map_err(x)?;
    for (c, h) in HEAD.iter().enumerate() {
        sheet
            .write_string_with_format(0, c as u16, *h, &head)
            .map_err(x)?;
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            // Text, never a formula: a name cannot become one.
            sheet.write_string(r as u32 + 1, c as u16, v).map_err(x)?;
        }
    }
    sheet.set_freeze_panes(1, 0).map_err(x)?;
    wb.save(path).map_err(x)?;
    Ok(())
}

fn page_of(county: &str, name: &str, rows: &[[String; 11]], high: usize) -> String {
    let mut body = format!(
        "<h1>{} {} 审核查询清单</h1><p>待核实 {} 条，其中可能影响公布数据的 {} 条（评分为偏离值占本区县该指标合计的比重，按评分从高到低排列）。\
         请逐条与填报单位核实，以“审核查询核实说明”（review_response）报送：确认无误的填“确认”并说明理由；有误的填“更正”，并重报更正后的数据。</p>",
        esc(name),
        esc(county),
        rows.len(),
        high
    );
    body.push_str(&provenance(&[(
        "生成时间".to_string(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
    )]));
    body.push_str("<table><thead><tr>");
    for h in HEAD {
        let _ = write!(body, "<th>{h}</th>");
    }
    body.push_str("</tr></thead><tbody>");
    for row in rows {
        body.push_str("<tr>");
        for (i, v) in row.iter().enumerate() {
            let class = if matches!(i, 0 | 1 | 7) {
                " class=\"n\""
            } else {
                ""
            };
            let _ = write!(body, "<td{class}>{}</td>", esc(v));
        }
        body.push_str("</tr>");
    }
    body.push_str("</tbody></table>");
    page(&format!("{name} 审核查询清单"), &body, "")
}
