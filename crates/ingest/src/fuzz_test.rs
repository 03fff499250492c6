//! Property-based fuzzing of everything a sender controls: the cell parsers,
//! the CSV path (any bytes, any encoding claim) and the XLSX reader (any zip,
//! any sheet XML). Properties:
//!
//! - nothing panics;
//! - every data row a reader yields ends in exactly one of the accepted rows
//!   or the rejections (`rows_read = accepted + rejected`, each row number
//!   once), and the batches hold exactly the accepted rows;
//! - an accepted value round-trips: the number stored in the Arrow batch is
//!   the one its text parses to, and its canonical text parses back to it.
//!
//! The default case counts keep the suite short (`.ci/run`); a longer search:
//! `PROPTEST_CASES=20000 cargo test -p stmon-ingest --release fuzz_`. Inputs
//! that once failed are kept in `tests/fuzz-corpus/` and replayed by
//! [`the_corpus_of_inputs_that_once_failed_replays`].

use std::collections::BTreeSet;

use arrow::array::{Array, Decimal128Array, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;
use proptest::prelude::*;
use stmon_core::{credit_code, parse};
use stmon_schema::{Catalog, Form};

use crate::hostile_test::zip_of;
use crate::{
    ingest_file, Diagnostic, Encoding, FileOutcome, Options, Probe, Severity, Sink, Value,
};

#[derive(Default)]
struct Collect {
    batches: Vec<RecordBatch>,
    diagnostics: Vec<Diagnostic>,
}

impl Sink for Collect {
    fn rows(&mut self, _: &Form, b: RecordBatch) -> Result<(), String> {
        self.batches.push(b);
        Ok(())
    }
    fn diagnostic(&mut self, d: Diagnostic) -> Result<(), String> {
        self.diagnostics.push(d);
        Ok(())
    }
}

fn catalog() -> &'static Catalog {
    static C: std::sync::OnceLock<Catalog> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        Catalog::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas")).expect("schemas")
    })
}

fn probe_as(path: &std::path::Path, encoding: Encoding) -> Probe {
    Probe {
        sha256: "0".repeat(64),
        bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        encoding,
    }
}

/// Ingests a file; a file that cannot be read is fine, a panic is not.
fn ingest(path: &std::path::Path, probe: &Probe) -> Option<(FileOutcome, Collect)> {
    let mut sink = Collect::default();
    let mut opts = Options::new("b");
    opts.chunk_rows = 3;
    ingest_file(path, probe, catalog(), &opts, &mut sink)
        .ok()
        .map(|out| (out, sink))
}

fn column<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> &'a T {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| panic!("type of {name}"))
}

/// Every row read is accepted or rejected, once; the batches hold the accepted.
fn accounted(out: &FileOutcome, sink: &Collect) -> Result<(), TestCaseError> {
    let stored: usize = sink.batches.iter().map(RecordBatch::num_rows).sum();
    if out.file_rejected.is_some() {
        prop_assert_eq!(out.accepted, 0);
        return Ok(());
    }
    prop_assert_eq!(out.rows_read, out.accepted + out.rejected);
    prop_assert_eq!(stored as u64, out.accepted);
    let mut accepted = BTreeSet::new();
    for b in &sink.batches {
        let rn = column::<Int64Array>(b, "_row_number");
        for i in 0..b.num_rows() {
            prop_assert!(
                accepted.insert(rn.value(i)),
                "row {} stored twice",
                rn.value(i)
            );
        }
    }
    let rejected: BTreeSet<i64> = sink
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Rejected)
        .filter_map(|d| d.row)
        .map(|r| r as i64)
        .collect();
    prop_assert_eq!(rejected.len() as u64, out.rejected);
    prop_assert!(accepted.is_disjoint(&rejected));
    for d in &sink.diagnostics {
        let shown = d.value.as_deref().unwrap_or("").chars().count();
        prop_assert!(
            shown <= stmon_core::quote::SHOWN_CHARS + 1,
            "{shown} characters shown"
        );
    }
    Ok(())
}

/// Text a cell parser may meet: anything, and near-misses of each type.
fn cell_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[-+ ,，0-9.eE]{0,40}",
        "[0-9]{1,40}(\\.[0-9]{0,12})?",
        "[0-9]{1,6}[-/][0-9]{1,3}[-/][0-9]{1,3}([ T][0-9]{1,3}:[0-9]{1,3}(:[0-9]{1,3})?)?",
        "[0-9]{3,5}-?[Qq][0-9]{1,2}",
        "[0-9A-Za-z]{15,19}",
        "(Y|N|y|n|是|否|true|FALSE|1|0| |—|-)",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_cell_parsers_never_panic_and_round_trip(s in cell_text()) {
        if let Ok(v) = parse::decimal(&s) {
            prop_assert_eq!(parse::decimal(&Value::Dec(v).canonical()), Ok(v));
        }
        if let Ok(v) = parse::amount(&s) {
            prop_assert!(v >= 0);
            prop_assert_eq!(parse::amount(&Value::Dec(v).canonical()), Ok(v));
        }
        if let Ok(n) = parse::count(&s) {
            prop_assert_eq!(parse::count(&n.to_string()), Ok(n));
        }
        if let Ok(d) = parse::date(&s) {
            prop_assert_eq!(parse::date(&Value::Date(d).canonical()), Ok(d));
        }
        if let Ok(t) = parse::timestamp(&s) {
            prop_assert_eq!(parse::timestamp(&Value::Ts(t).canonical()), Ok(t));
        }
        for f in [parse::period_month, parse::period_quarter, parse::period_year] {
            if let Ok(p) = f(&s) {
                prop_assert_eq!(f(&p), Ok(p.clone()));
            }
        }
        if let Ok(b) = parse::boolean(&s) {
            prop_assert_eq!(parse::boolean(&b.to_string()), Ok(b));
        }
        if let Ok(c) = credit_code::validate(&s) {
            prop_assert_eq!(credit_code::validate(&c), Ok(c.clone()));
        }
    }
}

const ZONE_HEADER: [&str; 13] = [
    "报告期",
    "园区编号",
    "园区名称",
    "级别",
    "所在区县代码",
    "用地面积(亩)",
    "营业收入",
    "工业增加值",
    "税收",
    "综合能耗(吨标准煤)",
    "R&D经费支出",
    "高新技术企业数",
    "填报时间",
];

/// A zone_report row whose id is `Z{i}` and whose other cells are valid or
/// anything at all.
fn zone_cells() -> impl Strategy<Value = Vec<String>> {
    let valid = [
        "2023",
        "",
        "园区",
        "省级",
        "330602",
        "12000",
        "1,000.5",
        "600",
        "50",
        "30",
        "20",
        "3",
        "2024-01-10 09:00",
    ];
    let cells: Vec<BoxedStrategy<String>> = valid
        .iter()
        .map(|v| prop_oneof![3 => Just(v.to_string()), 1 => cell_text()].boxed())
        .collect();
    cells
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_every_csv_row_is_accepted_or_rejected_once_and_round_trips(
        rows in proptest::collection::vec(zone_cells(), 1..30),
        gb18030 in any::<bool>(),
        crlf in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zones.csv");
        let mut w = csv::WriterBuilder::new()
            .terminator(if crlf { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') })
            .from_writer(vec![]);
        w.write_record(ZONE_HEADER).unwrap();
        let mut sent = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            let mut r = r.clone();
            r[1] = format!("Z{i}");
            w.write_record(&r).unwrap();
            sent.push(r);
        }
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        let bytes = if gb18030 {
            let (bytes, _, unmappable) = encoding_rs::GB18030.encode(&text);
            // A few private-use characters do not survive GB18030 both ways.
            prop_assume!(!unmappable && encoding_rs::GB18030.decode(&bytes).0 == text);
            bytes.into_owned()
        } else {
            text.into_bytes()
        };
        std::fs::write(&path, &bytes).unwrap();
        let probe = crate::probe(&path).unwrap();
        let (out, sink) = ingest(&path, &probe).expect("a well-formed CSV is readable");
        prop_assert_eq!(out.file_rejected.as_deref(), None);
        prop_assert_eq!(out.rows_read, sent.len() as u64);
        accounted(&out, &sink)?;
        // Accepted values are the ones their cells parse to.
        for b in &sink.batches {
            let ids = column::<StringArray>(b, "zone_id");
            let names = column::<StringArray>(b, "name");
            let land = column::<Decimal128Array>(b, "land_mu");
            let firms = column::<Int64Array>(b, "high_tech_enterprises");
            for i in 0..b.num_rows() {
                let n: usize = ids.value(i)[1..].parse().unwrap();
                let cells = &sent[n];
                prop_assert_eq!(names.value(i), cells[2].trim());
                prop_assert_eq!(Ok(land.value(i)), parse::decimal(&cells[5]));
                prop_assert_eq!(Ok(firms.value(i)), parse::count(&cells[11]));
            }
        }
    }

    #[test]
    fn fuzz_any_bytes_under_any_encoding_claim(
        header in any::<bool>(),
        body in proptest::collection::vec(any::<u8>(), 0..2_000),
        encoding in prop_oneof![
            Just(Encoding::Utf8), Just(Encoding::Utf8Bom), Just(Encoding::Gb18030), Just(Encoding::Utf16)
        ],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("any.csv");
        let mut bytes = Vec::new();
        if header {
            bytes.extend_from_slice(ZONE_HEADER.join(",").as_bytes());
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(&body);
        std::fs::write(&path, &bytes).unwrap();
        if let Some((out, sink)) = ingest(&path, &probe_as(&path, encoding)) {
            accounted(&out, &sink)?;
        }
    }
}

/// Pieces of sheet XML, well-formed or not, in any order.
fn sheet_token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("<row>".to_string()),
        "[0-9]{1,22}".prop_map(|r| format!("<row r=\"{r}\">")),
        Just("</row>".to_string()),
        Just("<row/>".to_string()),
        (
            "[A-Z]{1,8}[0-9]{0,8}",
            "(s|str|b|d|e|n|inlineStr|x)",
            "[0-9]{1,4}"
        )
            .prop_map(|(r, t, s)| format!("<c r=\"{r}\" t=\"{t}\" s=\"{s}\">")),
        Just("<c>".to_string()),
        Just("</c>".to_string()),
        Just("<c/>".to_string()),
        Just("<v>".to_string()),
        Just("</v>".to_string()),
        Just("<is><t>".to_string()),
        Just("</t></is>".to_string()),
        Just("<rPh><t>ふ</t></rPh>".to_string()),
        "[0-9.eE+-]{1,30}",
        any::<String>().prop_map(|s| s.replace(['<', '&'], "")),
        Just("<![CDATA[x]]>".to_string()),
        Just("&amp;&#x41;&#99999999;&bogus;".to_string()),
        Just("<".to_string()),
        Just("\u{0}".to_string()),
    ]
}

const WORKBOOK: &str = r#"<workbook xmlns:r="r"><workbookPr date1904="0"/><sheets><sheet name="s" sheetId="1" r:id="rId1"/></sheets></workbook>"#;

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_any_sheet_xml_in_a_workbook(
        header in any::<bool>(),
        tokens in proptest::collection::vec(sheet_token(), 0..80),
        strings in proptest::collection::vec(sheet_token(), 0..20),
        styles in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("any.xlsx");
        let mut sheet = String::from("<worksheet><sheetData>");
        if header {
            sheet.push_str("<row r=\"1\">");
            for h in ZONE_HEADER {
                let h = h.replace('&', "&amp;");
                sheet.push_str(&format!("<c t=\"inlineStr\"><is><t>{h}</t></is></c>"));
            }
            sheet.push_str("</row>");
        }
        sheet.push_str(&tokens.concat());
        let mut parts = vec![
            ("xl/workbook.xml", WORKBOOK.as_bytes().to_vec()),
            ("xl/worksheets/sheet1.xml", sheet.into_bytes()),
            ("xl/sharedStrings.xml", format!("<sst><si><t>a</t></si>{}</sst>", strings.concat()).into_bytes()),
        ];
        if styles {
            parts.push(("xl/styles.xml", br#"<styleSheet><numFmts><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/></numFmts><cellXfs><xf numFmtId="0"/><xf numFmtId="14"/><xf numFmtId="164"/></cellXfs></styleSheet>"#.to_vec()));
        }
        let parts: Vec<(&str, &[u8])> = parts.iter().map(|(n, d)| (*n, d.as_slice())).collect();
        zip_of(&path, &parts);
        if let Some((out, sink)) = ingest(&path, &probe_as(&path, Encoding::Utf8)) {
            accounted(&out, &sink)?;
        }
    }

    #[test]
    fn fuzz_any_bytes_as_a_workbook(
        bytes in proptest::collection::vec(any::<u8>(), 0..3_000),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("any.xlsx");
        std::fs::write(&path, &bytes).unwrap();
        let _ = ingest(&path, &probe_as(&path, Encoding::Utf8));
        // A real workbook cut short or with a byte changed.
        let sheet = format!(
            "<worksheet><sheetData><row r=\"1\">{}</row><row r=\"2\"><c t=\"inlineStr\"><is><t>{}</t></is></c></row></sheetData></worksheet>",
            ZONE_HEADER.iter().map(|h| format!("<c t=\"inlineStr\"><is><t>{}</t></is></c>", h.replace('&', "&amp;"))).collect::<String>(),
            String::from_utf8_lossy(&bytes).replace(['<', '&'], "")
        );
        zip_of(&path, &[("xl/workbook.xml", WORKBOOK.as_bytes()), ("xl/worksheets/sheet1.xml", sheet.as_bytes())]);
        let mut whole = std::fs::read(&path).unwrap();
        let at = flip.index(whole.len());
        whole[at] ^= 0x5A;
        std::fs::write(&path, &whole).unwrap();
        if let Some((out, sink)) = ingest(&path, &probe_as(&path, Encoding::Utf8)) {
            accounted(&out, &sink)?;
        }
        whole.truncate(cut.index(whole.len()));
        std::fs::write(&path, &whole).unwrap();
        if let Some((out, sink)) = ingest(&path, &probe_as(&path, Encoding::Utf8)) {
            accounted(&out, &sink)?;
        }
    }
}

/// Inputs that once failed, each replayed: `tests/fuzz-corpus/<name>.<csv|xlsx>`
/// with what became of it in `<name>.expected` (the file outcome's counts and
/// the first reason).
#[test]
fn the_corpus_of_inputs_that_once_failed_replays() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz-corpus"));
    let mut seen = 0;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("corpus")
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("csv" | "xlsx")))
        .collect();
    entries.sort();
    for path in entries {
        let expected = std::fs::read_to_string(path.with_extension("expected"))
            .unwrap_or_else(|_| panic!("{} has no .expected", path.display()));
        let probe = crate::probe(&path).unwrap();
        let got = match ingest(&path, &probe) {
            None => "unreadable".to_string(),
            Some((out, sink)) => {
                let first = sink
                    .diagnostics
                    .iter()
                    .find(|d| d.severity == Severity::Rejected)
                    .map(|d| d.reason.clone())
                    .unwrap_or_default();
                format!(
                    "read {} accepted {} rejected {}\n{first}",
                    out.rows_read, out.accepted, out.rejected
                )
            }
        };
        assert_eq!(got.trim(), expected.trim(), "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 2, "the corpus holds {seen} inputs");
}
