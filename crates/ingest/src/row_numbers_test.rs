//! Property: the row number stored for every accepted row and every
//! rejection is the line an editor (CSV) or Excel (XLSX) shows for it.
//!
//! Files are generated in every encoding the contract allows (UTF-8, UTF-8
//! with BOM, GB18030), with LF, CRLF or CR line ends, English (any case),
//! Chinese or full-width Chinese headers in any column order, blank lines,
//! rows of blank cells, quoted names with commas and line breaks, names longer
//! than any read buffer, and XLSX sheets with gaps between rows. Each data row
//! carries its own true line number in `zone_id` (`Z<line>`); bad rows (land
//! area 0) must be rejected at exactly their line. `PROPTEST_CASES=5000`
//! runs a longer search than the default below.

use std::io::Write;

use arrow::array::{Array, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;
use proptest::prelude::*;
use stmon_schema::{Catalog, Form};

use crate::{ingest_file, probe, Diagnostic, Options, Severity, Sink};

#[derive(Debug, Clone)]
enum Line {
    Good {
        name: Name,
    },
    Bad {
        name: Name,
    },
    /// An empty line.
    Blank,
    /// A row whose cells are all blank (`,,,,`): skipped, not counted.
    BlankCells,
}

#[derive(Debug, Clone)]
enum Name {
    Plain,
    /// Quoted, with commas and `breaks` line breaks inside.
    Quoted {
        breaks: usize,
    },
    /// Longer than any read buffer (`len` characters).
    Long {
        len: usize,
    },
}

#[derive(Debug, Clone, Copy)]
enum Enc {
    Utf8,
    Utf8Bom,
    Gb18030,
}

#[derive(Debug, Clone, Copy)]
enum Ending {
    Lf,
    CrLf,
    Cr,
}

#[derive(Debug, Clone, Copy)]
enum Headers {
    English,
    Chinese,
    FullWidth,
}

/// The zone form's required columns, in its order: (English name, Chinese label).
fn columns() -> Vec<(String, String)> {
    catalog()
        .form("zone_report")
        .expect("zone_report")
        .columns
        .iter()
        .filter(|c| !c.optional)
        .map(|c| (c.name.clone(), c.label.clone()))
        .collect()
}

/// A header cell as a file of the given style writes it. Full-width headers
/// use full-width punctuation and letters, padded: they match after NFKC and
/// trimming.
fn heading(headers: Headers, upper: bool, (name, label): &(String, String)) -> String {
    match headers {
        Headers::English if upper => name.to_uppercase(),
        Headers::English => name.clone(),
        Headers::Chinese => label.clone(),
        Headers::FullWidth => format!(
            " {} ",
            label
                .replace('(', "（")
                .replace(')', "）")
                .replace("R&D", "Ｒ＆Ｄ")
        ),
    }
}

fn name_strategy() -> impl Strategy<Value = Name> {
    prop_oneof![
        4 => Just(Name::Plain),
        2 => (1usize..4).prop_map(|breaks| Name::Quoted { breaks }),
        // Under the cell limit (32,767 characters) of `Limits::default`.
        1 => (9_000usize..32_000).prop_map(|len| Name::Long { len }),
    ]
}

fn line_strategy() -> impl Strategy<Value = Line> {
    prop_oneof![
        6 => name_strategy().prop_map(|name| Line::Good { name }),
        2 => name_strategy().prop_map(|name| Line::Bad { name }),
        1 => Just(Line::Blank),
        1 => Just(Line::BlankCells),
    ]
}

/// The cells of one data row (the form's column order) whose true line is `line`.
fn cells(line: u64, bad: bool, name: &Name, eol: &str) -> Vec<String> {
    let name = match name {
        Name::Plain => "甲高新区".to_string(),
        Name::Quoted { breaks } => {
            let mut s = "\"乙高新区, 一期".to_string();
            for i in 0..*breaks {
                s.push_str(&format!("{eol}第{i}段, \"\"引号\"\""));
            }
            s.push('"');
            s
        }
        Name::Long { len } => "园".repeat(*len),
    };
    let land = if bad { "0" } else { "12000" };
    [
        "2023",
        &format!("Z{line}"),
        &name,
        "provincial",
        "330604",
        land,
        "2000000",
        "450000",
        "120000",
        "200000",
        "60000",
        "150",
        "2024-02-01 10:00:00",
    ]
    .map(String::from)
    .to_vec()
}

/// Line breaks inside a row's cells (each ends a line in an editor).
fn breaks_in(name: &Name) -> u64 {
    match name {
        Name::Quoted { breaks } => *breaks as u64,
        _ => 0,
    }
}

struct Collect {
    accepted: Vec<(String, i64)>,
    rejected: Vec<u64>,
    other: Vec<Diagnostic>,
}

impl Sink for Collect {
    fn rows(&mut self, _: &Form, b: RecordBatch) -> Result<(), String> {
        let id = b.column_by_name("zone_id").expect("zone_id");
        let id = arrow::compute::cast(id, &arrow::datatypes::DataType::Utf8).expect("text");
        let id = id.as_any().downcast_ref::<StringArray>().expect("utf8");
        let rn = b.column_by_name("_row_number").expect("_row_number");
        let rn = rn.as_any().downcast_ref::<Int64Array>().expect("int64");
        for i in 0..b.num_rows() {
            self.accepted.push((id.value(i).to_string(), rn.value(i)));
        }
        Ok(())
    }
    fn diagnostic(&mut self, d: Diagnostic) -> Result<(), String> {
        match (d.severity, d.row) {
            (Severity::Rejected, Some(r)) => self.rejected.push(r),
            _ => self.other.push(d),
        }
        Ok(())
    }
}

/// The forms without their text columns' `max_length`: a long name here is
/// about read buffers, and must reach the table.
fn catalog() -> Catalog {
    let mut c =
        Catalog::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas")).expect("schemas");
    for form in c.forms.values_mut() {
        for col in &mut form.columns {
            col.max_length = None;
        }
    }
    c
}

/// Ingests `path` and checks every stored row number against the truth.
fn check(path: &std::path::Path, good: &[u64], bad: &[u64]) -> Result<(), TestCaseError> {
    let catalog = catalog();
    let p = probe(path).expect("probe");
    let mut sink = Collect {
        accepted: vec![],
        rejected: vec![],
        other: vec![],
    };
    let out = ingest_file(path, &p, &catalog, &Options::new("b"), &mut sink).expect("readable");
    prop_assert_eq!(out.file_rejected, None, "{:?}", sink.other);
    prop_assert_eq!(out.form.as_deref(), Some("zone_report"));
    for (id, rn) in &sink.accepted {
        prop_assert_eq!(
            id,
            &format!("Z{rn}"),
            "accepted row stored at the wrong line"
        );
    }
    let mut got: Vec<u64> = sink
        .accepted
        .iter()
        .map(|(id, _)| id[1..].parse().expect("a line"))
        .collect();
    got.sort();
    prop_assert_eq!(&got, good);
    let mut rejected = sink.rejected.clone();
    rejected.sort();
    prop_assert_eq!(&rejected, bad);
    prop_assert_eq!(out.rows_read, (good.len() + bad.len()) as u64);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn csv_row_numbers_are_the_editors_lines(
        enc in prop_oneof![Just(Enc::Utf8), Just(Enc::Utf8Bom), Just(Enc::Gb18030)],
        ending in prop_oneof![Just(Ending::Lf), Just(Ending::CrLf), Just(Ending::Cr)],
        headers in prop_oneof![Just(Headers::English), Just(Headers::Chinese), Just(Headers::FullWidth)],
        order in Just((0..13usize).collect::<Vec<_>>()).prop_shuffle(),
        upper in any::<bool>(),
        leading_blanks in 0usize..3,
        lines in proptest::collection::vec(line_strategy(), 1..25),
        final_eol in any::<bool>(),
    ) {
        let eol = match ending { Ending::Lf => "\n", Ending::CrLf => "\r\n", Ending::Cr => "\r" };
        let columns = columns();
        let head: Vec<String> = order.iter().map(|&i| heading(headers, upper, &columns[i])).collect();
        let mut text = String::new();
        let mut line = 1u64;
        for _ in 0..leading_blanks {
            text.push_str(eol);
            line += 1;
        }
        text.push_str(&head.join(","));
        let (mut good, mut bad) = (vec![], vec![]);
        for l in &lines {
            text.push_str(eol);
            line += 1;
            match l {
                Line::Blank => {}
                Line::BlankCells => text.push_str(&",".repeat(12)),
                Line::Good { name } | Line::Bad { name } => {
                    let is_bad = matches!(l, Line::Bad { .. });
                    let c = cells(line, is_bad, name, eol);
                    text.push_str(&order.iter().map(|&i| c[i].as_str()).collect::<Vec<_>>().join(","));
                    if is_bad { bad.push(line) } else { good.push(line) }
                    line += breaks_in(name);
                }
            }
        }
        if final_eol {
            text.push_str(eol);
        }
        let bytes = match enc {
            Enc::Utf8 => text.into_bytes(),
            Enc::Utf8Bom => [&[0xEF, 0xBB, 0xBF][..], text.as_bytes()].concat(),
            Enc::Gb18030 => encoding_rs::GB18030.encode(&text).0.into_owned(),
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("zones.csv");
        std::fs::File::create(&path).and_then(|mut f| f.write_all(&bytes)).expect("write");
        check(&path, &good, &bad)?;
    }

    #[test]
    fn xlsx_row_numbers_are_excels_rows(
        headers in prop_oneof![Just(Headers::English), Just(Headers::Chinese), Just(Headers::FullWidth)],
        header_row in 0u32..3,
        rows in proptest::collection::vec((0u32..4, any::<bool>(), name_strategy()), 1..20),
    ) {
        let mut wb = rust_xlsxwriter::Workbook::new();
        let sheet = wb.add_worksheet();
        for (c, col) in columns().iter().enumerate() {
            sheet.write_string(header_row, c as u16, heading(headers, false, col)).expect("header");
        }
        let (mut good, mut bad) = (vec![], vec![]);
        let mut r = header_row;
        for (gap, is_bad, name) in &rows {
            r += 1 + gap;
            let excel_row = u64::from(r) + 1;
            // Line breaks inside an XLSX cell do not make rows: the name is one cell.
            // Excel holds at most 32,767 characters in a cell.
            let name = match name {
                Name::Quoted { .. } => Name::Plain,
                Name::Long { len } => Name::Long { len: *len },
                n => n.clone(),
            };
            for (c, v) in cells(excel_row, *is_bad, &name, "\n").iter().enumerate() {
                sheet.write_string(r, c as u16, v).expect("cell");
            }
            if *is_bad { bad.push(excel_row) } else { good.push(excel_row) }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("zones.xlsx");
        wb.save(&path).expect("save");
        check(&path, &good, &bad)?;
    }
}
