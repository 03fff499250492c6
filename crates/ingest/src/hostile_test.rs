//! Files a hostile or broken sender could make: each is rejected whole with
//! the limit it broke (or, for a text column's `max_length`, loses only its
//! row), and no message carries more than a prefix of a bad value.
//! `bench/hostile.sh` measures the time and peak memory of the same kinds of
//! file at full size.

use std::io::Write;

use stmon_schema::{Catalog, Form};

use crate::{ingest_file, probe, Diagnostic, FileOutcome, Limits, Options, Severity, Sink};

#[derive(Default)]
struct Collect {
    rows: usize,
    diagnostics: Vec<Diagnostic>,
}

impl Sink for Collect {
    fn rows(&mut self, _: &Form, b: arrow::record_batch::RecordBatch) -> Result<(), String> {
        self.rows += b.num_rows();
        Ok(())
    }
    fn diagnostic(&mut self, d: Diagnostic) -> Result<(), String> {
        self.diagnostics.push(d);
        Ok(())
    }
}

fn catalog() -> Catalog {
    Catalog::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas")).expect("schemas")
}

const ZONE_HEADER: &str = "报告期,园区编号,园区名称,级别,所在区县代码,用地面积(亩),营业收入,工业增加值,税收,综合能耗(吨标准煤),R&D经费支出,高新技术企业数,填报时间";

fn zone_row(id: &str, name: &str) -> String {
    format!("2023,{id},{name},省级,330602,12000,1000,600,50,30,20,3,2024-01-10 09:00")
}

fn ingest(path: &std::path::Path, limits: Limits) -> (FileOutcome, Collect) {
    let mut opts = Options::new("b");
    opts.limits = limits;
    opts.chunk_rows = 1;
    let mut sink = Collect::default();
    let out = ingest_file(
        path,
        &probe(path).expect("probe"),
        &catalog(),
        &opts,
        &mut sink,
    )
    .expect("readable");
    (out, sink)
}

fn csv(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("zones.csv");
    std::fs::write(&path, text).unwrap();
    path
}

/// The one file-level diagnostic of a file rejected whole.
fn file_reason(out: &FileOutcome, sink: &Collect) -> String {
    let whole: Vec<&Diagnostic> = sink
        .diagnostics
        .iter()
        .filter(|d| d.row.is_none())
        .collect();
    assert_eq!(whole.len(), 1, "{:?}", sink.diagnostics);
    assert_eq!(whole[0].severity, Severity::Rejected);
    assert_eq!(out.file_rejected.as_deref(), Some(whole[0].reason.as_str()));
    assert_eq!(out.accepted, 0, "a file rejected whole keeps no row");
    whole[0].reason.clone()
}

#[test]
fn zone_fixture_row_is_accepted() {
    // The rows below are valid but for what each test breaks.
    let dir = tempfile::tempdir().unwrap();
    let path = csv(
        &dir,
        &format!("{ZONE_HEADER}\n{}\n", zone_row("Z1", "园区")),
    );
    let (out, sink) = ingest(&path, Limits::default());
    assert_eq!(
        (out.accepted, out.rejected),
        (1, 0),
        "{:?}",
        sink.diagnostics
    );
}

#[test]
fn a_csv_record_past_the_limit_rejects_the_file_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let long = "园".repeat(400); // 1,200 bytes of UTF-8
    let text = format!(
        "{ZONE_HEADER}\n{}\n{}\n\n{}\n",
        zone_row("Z1", "甲"),
        zone_row("Z2", "乙"),
        zone_row("Z3", &long)
    );
    let limits = Limits {
        record_bytes: 1_000,
        ..Limits::default()
    };
    let (out, sink) = ingest(&csv(&dir, &text), limits);
    assert_eq!(
        file_reason(&out, &sink),
        "line 5: a CSV record longer than 1,000 bytes (limit record_bytes)"
    );
    // The rows of the read that met the limit never reach the parser.
    assert_eq!(out.rows_read, out.rejected);
    // A quoted cell's line breaks belong to its record, and a quote inside a
    // plain cell opens nothing: neither is a record past 1,000 bytes.
    let quoted = format!("\"{}\"", "园\n".repeat(200));
    let text = format!(
        "{ZONE_HEADER}\n{}\n{}\n",
        zone_row("Z1", &quoted),
        zone_row("Z2", &format!("甲\"乙{}", "园".repeat(200)))
    );
    let limits = Limits {
        record_bytes: 1_000,
        ..Limits::default()
    };
    let (out, sink) = ingest(&csv(&dir, &text), limits);
    assert_eq!(out.file_rejected, None, "{:?}", sink.diagnostics);
    assert_eq!(out.rows_read, 2);
}

#[test]
fn a_csv_cell_or_row_past_the_limits_rejects_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{ZONE_HEADER}\n{}\n{}\n",
        zone_row("Z1", "甲"),
        zone_row("Z2", &"园".repeat(21))
    );
    let limits = Limits {
        cell_chars: 20,
        ..Limits::default()
    };
    let (out, sink) = ingest(&csv(&dir, &text), limits);
    assert_eq!(
        file_reason(&out, &sink),
        "line 3, column 3: a cell longer than 20 characters (limit cell_chars)"
    );
    // A million columns, at the default limits.
    let text = format!(
        "{ZONE_HEADER}\n{}{}\n",
        zone_row("Z1", "甲"),
        ",".repeat(1_000_000)
    );
    let (out, sink) = ingest(&csv(&dir, &text), Limits::default());
    assert_eq!(
        file_reason(&out, &sink),
        "line 2: more than 16,384 columns (limit columns)"
    );
}

#[test]
fn a_long_text_rejects_its_row_and_messages_quote_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let name = "园".repeat(201);
    let bad_year = "9".repeat(5_000);
    let text = format!(
        "{ZONE_HEADER}\n{}\n{}\n{}\n",
        zone_row("Z1", &name),
        zone_row("Z2", &"园".repeat(200)),
        zone_row("Z3", "甲").replacen("2023", &bad_year, 1)
    );
    let (out, sink) = ingest(&csv(&dir, &text), Limits::default());
    assert_eq!(
        (out.accepted, out.rejected),
        (1, 2),
        "{:?}",
        sink.diagnostics
    );
    let long = &sink.diagnostics[0];
    assert_eq!((long.row, long.column.as_deref()), (Some(2), Some("name")));
    assert_eq!(
        long.reason,
        "longer than 200 characters (201), the most this column holds"
    );
    assert_eq!(
        long.value.as_deref(),
        Some(format!("{}…", "园".repeat(64)).as_str())
    );
    let year = &sink.diagnostics[1];
    assert_eq!(year.row, Some(4));
    assert_eq!(
        year.reason,
        format!(
            "not an annual period (YYYY): '{}…' (5000 characters)",
            "9".repeat(64)
        )
    );
}

#[test]
fn a_huge_header_is_named_by_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let headers: Vec<String> = (0..100)
        .map(|i| format!("{i}{}", "x".repeat(100)))
        .collect();
    let (out, sink) = ingest(&csv(&dir, &headers.join(",")), Limits::default());
    let reason = file_reason(&out, &sink);
    assert!(reason.len() < 30 * 70 * 2, "{} bytes", reason.len());
    assert!(
        reason.ends_with("… 70 more); name the form with --form"),
        "{reason}"
    );
}

/// A workbook of the given parts, deflated.
fn xlsx(dir: &tempfile::TempDir, parts: &[(&str, &[u8])]) -> std::path::PathBuf {
    let path = dir.path().join("zones.xlsx");
    zip_of(&path, parts);
    path
}

/// A workbook of one sheet and no other part.
fn sheet_only(dir: &tempfile::TempDir, data: &[u8]) -> std::path::PathBuf {
    xlsx(
        dir,
        &[
            ("xl/workbook.xml", WORKBOOK),
            ("xl/worksheets/sheet1.xml", data),
        ],
    )
}

/// A zip of the given parts, deflated (also the fuzz tests' workbooks).
pub(crate) fn zip_of(path: &std::path::Path, parts: &[(&str, &[u8])]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in parts {
        zip.start_file(*name, opts).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
}

const WORKBOOK: &[u8] = br#"<workbook xmlns:r="r"><sheets><sheet name="s" sheetId="1" r:id="rId1"/></sheets></workbook>"#;

fn inline_row(r: usize, cells: &[String]) -> String {
    let mut out = format!(r#"<row r="{r}">"#);
    for c in cells {
        out.push_str(&format!(r#"<c t="inlineStr"><is><t>{c}</t></is></c>"#));
    }
    out.push_str("</row>");
    out
}

fn sheet(rows: &[String]) -> Vec<u8> {
    format!(
        "<worksheet><sheetData>{}</sheetData></worksheet>",
        rows.concat()
    )
    .into_bytes()
}

fn zone_cells(id: &str, name: &str) -> Vec<String> {
    zone_row(id, name).split(',').map(str::to_string).collect()
}

/// The header as cells of sheet XML (`&` escaped).
fn header_cells() -> Vec<String> {
    ZONE_HEADER
        .split(',')
        .map(|h| h.replace('&', "&amp;"))
        .collect()
}

#[test]
fn an_inflating_row_is_stopped_at_the_rows_limit() {
    // One row of 4.5 MB of inline strings: a 1.5 GB bomb of the same shape
    // stops at the same place (bench/hostile.sh).
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<String> = (0..150).map(|_| "x".repeat(30_000)).collect();
    let data = sheet(&[inline_row(1, &big)]);
    let path = sheet_only(&dir, &data);
    let (out, sink) = ingest(&path, Limits::default());
    assert_eq!(
        file_reason(&out, &sink),
        "row 1: more than 4 MiB of sheet XML in one row (limit row_xml_bytes)"
    );
}

#[test]
fn an_xlsx_past_a_limit_is_rejected_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let good = inline_row(2, &zone_cells("Z1", "甲"));
    // A cell past the last column.
    let far =
        r#"<row r="3"><c r="ZZZZZZZZZZZZZZZZZZZZ3" t="inlineStr"><is><t>x</t></is></c></row>"#;
    let data = sheet(&[
        inline_row(1, &header_cells()),
        good.clone(),
        far.to_string(),
    ]);
    let path = sheet_only(&dir, &data);
    let (out, sink) = ingest(&path, Limits::default());
    let reason = file_reason(&out, &sink);
    assert!(
        reason.starts_with("row 3, column number ")
            && reason.ends_with(": more than 16,384 columns (limit columns)"),
        "{reason}"
    );
    assert_eq!(out.rows_read, 1);

    // A cell past the cell limit.
    let mut cells = zone_cells("Z2", "乙");
    cells[2] = "园".repeat(40_000);
    let data = sheet(&[
        inline_row(1, &header_cells()),
        good.clone(),
        inline_row(3, &cells),
    ]);
    let path = sheet_only(&dir, &data);
    let (out, sink) = ingest(&path, Limits::default());
    assert_eq!(
        file_reason(&out, &sink),
        "row 3, cell C3: a cell longer than 32,767 characters (limit cell_chars)"
    );

    // A sheet past its limit, in rows each within theirs.
    let rows: Vec<String> = std::iter::once(inline_row(1, &header_cells()))
        .chain((2..200).map(|r| inline_row(r, &zone_cells(&format!("Z{r}"), "甲"))))
        .collect();
    let data = sheet(&rows);
    let path = sheet_only(&dir, &data);
    let limits = Limits {
        sheet_xml_bytes: 20_000,
        ..Limits::default()
    };
    let (out, sink) = ingest(&path, limits);
    assert_eq!(
        file_reason(&out, &sink),
        "xl/worksheets/sheet1.xml inflates to more than 20,000 bytes (limit sheet_xml_bytes)"
    );
    let (out, _) = ingest(&path, Limits::default());
    assert_eq!((out.accepted, out.file_rejected), (198, None));
}

#[test]
fn a_shared_strings_table_past_its_limits_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let table = |n: usize, len: usize| {
        let items: String = (0..n)
            .map(|i| format!("<si><t>{i}{}</t></si>", "s".repeat(len)))
            .collect();
        format!("<sst>{items}</sst>").into_bytes()
    };
    let data = sheet(&[inline_row(1, &header_cells())]);
    let strings = table(11, 0);
    let path = xlsx(
        &dir,
        &[
            ("xl/workbook.xml", WORKBOOK),
            ("xl/sharedStrings.xml", &strings),
            ("xl/worksheets/sheet1.xml", &data),
        ],
    );
    let limits = Limits {
        shared_strings: 10,
        ..Limits::default()
    };
    let (out, sink) = ingest(&path, limits);
    assert_eq!(
        file_reason(&out, &sink),
        "xl/sharedStrings.xml holds more than 10 strings (limit shared_strings)"
    );
    let strings = table(2, 40_000);
    let path = xlsx(
        &dir,
        &[
            ("xl/workbook.xml", WORKBOOK),
            ("xl/sharedStrings.xml", &strings),
            ("xl/worksheets/sheet1.xml", &data),
        ],
    );
    let (out, sink) = ingest(&path, Limits::default());
    assert_eq!(
        file_reason(&out, &sink),
        "xl/sharedStrings.xml, string 1: a cell longer than 32,767 characters (limit cell_chars)"
    );
}

#[test]
fn numbers_past_decimals_range_are_a_reason_not_a_panic() {
    // 2^96 - 1 parses as a Decimal, and overflowed when scaled by 10^4.
    let max = "79228162514264337593543950335";
    assert_eq!(
        stmon_core::parse::amount(max),
        Err(format!("number out of range: '{max}'"))
    );
    assert!(stmon_core::parse::count("1e30").is_err());
}
