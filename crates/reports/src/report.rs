//! Ranking tables for people: CSV, one XLSX workbook, one offline HTML file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::assessment::{Assessment, Table, V};
use crate::html::{self, esc};
use crate::{Error, Result};

fn io(p: &Path, e: impl std::fmt::Display) -> Error {
    crate::file_error(p, e)
}

fn provenance_lines(a: &Assessment) -> Vec<(String, String)> {
    let p = &a.provenance;
    vec![
        (
            "方案".into(),
            format!("{} ({})", p.scheme_name, p.scheme_file),
        ),
        ("方案哈希（SHA-256）".into(), p.scheme_hash.clone()),
        (
            "数据版本".into(),
            format!("{}，Delta 版本 {}", p.source_table, p.source_version),
        ),
        ("生成时间".into(), p.ran_at.to_rfc3339()),
        (
            "重现命令".into(),
            format!(
                "stmon assess --year {} --scheme {} --version {}",
                a.scheme.year, p.scheme_file, p.source_version
            ),
        ),
    ]
}

/// `<dir>/assessment_<table>.csv` per table (UTF-8 with BOM, Chinese headers,
/// provenance columns at the end). Returns the paths.
pub fn write_csv(a: &Assessment, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(crate::io_error(dir))?;
    let mut out = Vec::new();
    for t in &a.tables {
        let path = crate::files::assessment_csv(dir, &t.name);
        let mut w = csv::Writer::from_writer(Vec::from("\u{feff}".as_bytes()));
        let p = &a.provenance;
        let mut head: Vec<String> = t.columns.iter().map(|c| c.1.clone()).collect();
        head.extend([
            "方案".into(),
            "方案哈希".into(),
            "数据表".into(),
            "数据版本".into(),
            "生成时间".into(),
        ]);
        w.write_record(&head).map_err(|e| io(&path, e))?;
        for r in &t.rows {
            let mut rec: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(c, v)| shown(a, t, c, v))
                .collect();
            rec.extend([
                p.scheme_name.clone(),
                p.scheme_hash.clone(),
                p.source_table.clone(),
                p.source_version.to_string(),
                p.ran_at.to_rfc3339(),
            ]);
            w.write_record(&rec).map_err(|e| io(&path, e))?;
        }
        let bytes = w.into_inner().map_err(|e| io(&path, e))?;
        std::fs::write(&path, bytes).map_err(crate::io_error(&path))?;
        out.push(path);
    }
    Ok(out)
}

/// A table's sheet in Chinese (`counties` → 区县排名); an unknown table
/// keeps its id. Excel allows 31 characters.
fn sheet_name(table: &str) -> String {
    let zh = match table {
        "counties" => "区县排名",
        "counties_change" => "区县进步排名",
        "zones" => "高新区排名",
        "institutes" => "研究院排名",
        other => other,
    };
    zh.chars().take(31).collect()
}

/// One workbook for several assessments: a sheet per table (Chinese headers,
/// formatted numbers, frozen header row) and a sheet with the provenance.
pub fn write_xlsx(all: &[Assessment], path: &Path) -> Result<()> {
    use rust_xlsxwriter::{Format, FormatAlign, Workbook};
    let x = |e: rust_xlsxwriter::XlsxError| io(path, e);
    let mut wb = Workbook::new();
    let head = Format::new()
        .set_bold()
        .set_text_wrap()
        .set_align(FormatAlign::Center);
    for a in all {
        for t in &a.tables {
            let sheet = wb.add_worksheet();
            let name = sheet_name(&t.name);
            sheet.set_name(&name).map_err(x)?;
            for (c, (_, zh)) in t.columns.iter().enumerate() {
                sheet
                    .write_string_with_format(0, c as u16, zh, &head)
                    .map_err(x)?;
            }
            for (i, row) in t.rows.iter().enumerate() {
                for (c, v) in row.iter().enumerate() {
                    let (r, c) = ((i + 1) as u32, c as u16);
                    match v {
                        V::Text(_) => {
                            sheet
                                .write_string(r, c, shown(a, t, c as usize, v))
                                .map_err(x)?;
                        }
                        V::Int(n) => {
                            sheet.write_number(r, c, *n as f64).map_err(x)?;
                        }
                        V::Num(n, d) => {
                            let f = Format::new().set_num_format(if *d == 0 {
                                "0".to_string()
                            } else {
                                format!("0.{}", "0".repeat(*d))
                            });
                            sheet.write_number_with_format(r, c, *n, &f).map_err(x)?;
                        }
                        V::Null => {}
                    }
                }
            }
            sheet.set_freeze_panes(1, 3).map_err(x)?;
            sheet.set_row_height(0, 45).map_err(x)?;
            sheet.set_column_width(2, 18).map_err(x)?;
        }
    }
    let sheet = wb.add_worksheet();
    sheet.set_name("说明").map_err(x)?;
    let mut r = 0u32;
    for a in all {
        for (k, v) in provenance_lines(a) {
            sheet.write_string(r, 0, &k).map_err(x)?;
            sheet.write_string(r, 1, &v).map_err(x)?;
            r += 1;
        }
        r += 1;
    }
    sheet.set_column_width(0, 28).map_err(x)?;
    sheet.set_column_width(1, 90).map_err(x)?;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(crate::io_error(d))?;
    }
    wb.save(path).map_err(x)?;
    Ok(())
}

/// A cell as people read it: a group id as its label (国家级), else its text.
fn shown(a: &Assessment, t: &Table, c: usize, v: &V) -> String {
    match v {
        V::Text(s) if t.columns[c].0 == "group" => {
            a.group_labels.get(s).cloned().unwrap_or_else(|| s.clone())
        }
        _ => v.text(),
    }
}

fn col(t: &Table, id: &str) -> Option<usize> {
    t.columns.iter().position(|c| c.0 == id)
}

fn num(v: &V) -> Option<f64> {
    match v {
        V::Num(x, _) => Some(*x),
        V::Int(i) => Some(*i as f64),
        _ => None,
    }
}

/// Horizontal bars of the scores (0..100 axis), one per unit in rank order.
fn score_chart(t: &Table, score_col: &str) -> String {
    let (Some(sc), Some(nc)) = (col(t, score_col), col(t, "unit_name")) else {
        return String::new();
    };
    let bars: Vec<html::Bar> = t
        .rows
        .iter()
        .map(|r| html::Bar {
            label: r[nc].text(),
            value: num(&r[sc]).unwrap_or(0.0),
            text: r[sc].text(),
        })
        .collect();
    html::bar_chart(&bars, 100.0, "得分")
}

/// Rank intervals: a line from P5 to P95, a dot at the median, a tick at the nominal rank.
fn interval_chart(t: &Table) -> String {
    let (Some(nc), Some(rc), Some(mc), Some(lo), Some(hi)) = (
        col(t, "unit_name"),
        col(t, "rank"),
        col(t, "mc_median_rank"),
        col(t, "mc_p05_rank"),
        col(t, "mc_p95_rank"),
    ) else {
        return String::new();
    };
    let n = t
        .rows
        .iter()
        .filter_map(|r| num(&r[hi]))
        .fold(1.0f64, f64::max)
        .max(t.rows.len() as f64);
    let rows: Vec<html::Interval> = t
        .rows
        .iter()
        .filter_map(|r| {
            Some(html::Interval {
                label: r[nc].text(),
                lo: num(&r[lo])?,
                hi: num(&r[hi])?,
                median: num(&r[mc])?,
                rank: num(&r[rc])?,
            })
        })
        .collect();
    html::interval_chart(&rows, n, "排名稳健性")
}

/// One self-contained HTML file (no scripts, no external resources).
pub fn write_html(all: &[Assessment], path: &Path) -> Result<()> {
    let mut h = String::from("<h1>年度科技进步目标责任制考核</h1>");
    for a in all {
        for t in &a.tables {
            let _ = write!(
                h,
                "<section id=\"{}\"><h2>{}</h2>",
                esc(&t.name),
                esc(&t.title)
            );
            h.push_str(&html::provenance(&provenance_lines(a)));
            let score_col = if col(t, "score").is_some() {
                "score"
            } else {
                "change_score"
            };
            h.push_str("<h3>得分</h3>");
            h.push_str(&score_chart(t, score_col));
            if col(t, "mc_median_rank").is_some() {
                h.push_str("<h3>排名稳健性（模拟排名 P5–P95；● 中位数，| 实际名次）</h3>");
                h.push_str(&interval_chart(t));
            }
            // The ranking first (summary columns), then every indicator's value,
            // score and contribution.
            let summary: Vec<usize> = t
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    let id = c.0.as_str();
                    !(id.ends_with("_value")
                        || id.ends_with("_contribution")
                        || (id.ends_with("_score") && id != "change_score")
                        || (id.ends_with("_change") && id != "rank_change"))
                })
                .map(|(i, _)| i)
                .collect();
            let all: Vec<usize> = (0..t.columns.len()).collect();
            for (title, cols) in [("排名", &summary), ("指标明细", &all)] {
                let _ = write!(h, "<h3>{title}</h3><div class=\"wide\"><table><thead><tr>");
                for &c in cols {
                    let _ = write!(h, "<th>{}</th>", esc(&t.columns[c].1));
                }
                h.push_str("</tr></thead><tbody>");
                for r in &t.rows {
                    h.push_str("<tr>");
                    for &c in cols {
                        let v = &r[c];
                        let class = if matches!(v, V::Text(_)) {
                            " class=\"t\""
                        } else {
                            ""
                        };
                        let _ = write!(h, "<td{class}>{}</td>", esc(&shown(a, t, c, v)));
                    }
                    h.push_str("</tr>");
                }
                h.push_str("</tbody></table></div>");
            }
            h.push_str("</section>");
        }
    }
    let h = html::page("年度科技进步考核", &h, "");
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(crate::io_error(d))?;
    }
    std::fs::write(path, h).map_err(crate::io_error(path))
}
