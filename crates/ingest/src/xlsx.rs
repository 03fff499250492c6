//! A streaming reader for the first sheet of an XLSX workbook.
//!
//! Why not calamine's range reader: it loads the whole sheet into memory and
//! turns every numeric cell into an `f64`, so an 18-digit credit code that a
//! spreadsheet stored as a number comes back as `9.14403001922038E17` with its
//! check character lost. The contract requires those 18 digits, so this reader
//! keeps each numeric cell's digits exactly as written in the sheet XML and
//! streams rows one at a time (memory is bounded by one row plus the shared
//! strings table).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek};
use std::path::Path;

use chrono::{Duration, NaiveDate, NaiveDateTime};
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use stmon_core::Cell;

type XResult<T> = std::result::Result<T, String>;

fn attr(e: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

fn part<R: Read + Seek>(zip: &mut zip::ZipArchive<R>, name: &str) -> XResult<Option<Vec<u8>>> {
    match zip.by_name(name) {
        Ok(mut f) => {
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)
                .map_err(|e| format!("{name}: {e}"))?;
            Ok(Some(buf))
        }
        Err(zip::result::ZipError::FileNotFound) => Ok(None),
        Err(e) => Err(format!("{name}: {e}")),
    }
}

/// Reads the text of an element until its end, skipping phonetic runs (`rPh`).
fn text_until_end<B: BufRead>(
    xml: &mut Reader<B>,
    end: &[u8],
    buf: &mut Vec<u8>,
) -> XResult<String> {
    let mut out = String::new();
    let mut in_t = false;
    let mut skip = 0usize;
    loop {
        buf.clear();
        match xml.read_event_into(buf).map_err(|e| e.to_string())? {
            Event::Start(e) if e.local_name().as_ref() == b"rPh" => skip += 1,
            Event::End(e) if e.local_name().as_ref() == b"rPh" => skip = skip.saturating_sub(1),
            Event::Start(e) if e.local_name().as_ref() == b"t" => in_t = true,
            Event::End(e) if e.local_name().as_ref() == b"t" => in_t = false,
            Event::Text(t) if in_t && skip == 0 => {
                out.push_str(&t.unescape().map_err(|e| e.to_string())?)
            }
            Event::CData(t) if in_t && skip == 0 => out.push_str(&String::from_utf8_lossy(&t)),
            Event::End(e) if e.local_name().as_ref() == end => return Ok(out),
            Event::Eof => return Err("unexpected end of XML".into()),
            _ => {}
        }
    }
}

fn shared_strings(data: &[u8]) -> XResult<Vec<String>> {
    let mut xml = Reader::from_reader(data);
    let mut buf = Vec::new();
    let mut inner = Vec::new();
    let mut out = Vec::new();
    loop {
        buf.clear();
        match xml.read_event_into(&mut buf).map_err(|e| e.to_string())? {
            Event::Start(e) if e.local_name().as_ref() == b"si" => {
                out.push(text_until_end(&mut xml, b"si", &mut inner)?)
            }
            Event::Empty(e) if e.local_name().as_ref() == b"si" => out.push(String::new()),
            Event::Eof => return Ok(out),
            _ => {}
        }
    }
}

/// Whether a number format code shows a date or time.
fn is_date_format(code: &str) -> bool {
    let mut plain = String::new();
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                for d in chars.by_ref() {
                    if d == '"' {
                        break;
                    }
                }
            }
            '[' => {
                let inside: String = chars.by_ref().take_while(|d| *d != ']').collect();
                if matches!(
                    inside.to_ascii_lowercase().as_str(),
                    "h" | "hh" | "m" | "mm" | "s" | "ss"
                ) {
                    plain.push('h');
                }
            }
            '\\' | '_' | '*' => {
                chars.next();
            }
            _ => plain.push(c.to_ascii_lowercase()),
        }
    }
    plain != "general"
        && plain
            .chars()
            .any(|c| matches!(c, 'y' | 'm' | 'd' | 'h' | 's'))
}

fn date_styles(data: &[u8]) -> XResult<Vec<bool>> {
    let mut xml = Reader::from_reader(data);
    let mut buf = Vec::new();
    let mut custom: HashMap<u32, bool> = HashMap::new();
    let mut out = Vec::new();
    let mut in_cell_xfs = false;
    loop {
        buf.clear();
        match xml.read_event_into(&mut buf).map_err(|e| e.to_string())? {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == b"numFmt" => {
                if let (Some(id), Some(code)) = (attr(&e, b"numFmtId"), attr(&e, b"formatCode")) {
                    if let Ok(id) = id.parse() {
                        custom.insert(id, is_date_format(&code));
                    }
                }
            }
            Event::Start(e) if e.local_name().as_ref() == b"cellXfs" => in_cell_xfs = true,
            Event::End(e) if e.local_name().as_ref() == b"cellXfs" => in_cell_xfs = false,
            Event::Start(e) | Event::Empty(e)
                if in_cell_xfs && e.local_name().as_ref() == b"xf" =>
            {
                let id: u32 = attr(&e, b"numFmtId")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let builtin = matches!(id, 14..=22 | 27..=36 | 45..=47 | 50..=58);
                out.push(custom.get(&id).copied().unwrap_or(builtin));
            }
            Event::Eof => return Ok(out),
            _ => {}
        }
    }
}

/// Column index (0-based) of a cell reference such as `AB12`.
fn column_of(reference: &str) -> Option<usize> {
    let mut col = 0usize;
    let mut any = false;
    for b in reference.bytes().take_while(|b| b.is_ascii_alphabetic()) {
        col = col * 26 + (b.to_ascii_uppercase() - b'A' + 1) as usize;
        any = true;
    }
    any.then(|| col - 1)
}

fn serial_to_datetime(serial: f64, is_1904: bool) -> Option<NaiveDateTime> {
    if !serial.is_finite() || !(0.0..3_000_000.0).contains(&serial) {
        return None;
    }
    let base = if is_1904 {
        NaiveDate::from_ymd_opt(1904, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(1899, 12, 30)?
    };
    let ms = (serial * 86_400_000.0).round() as i64;
    // Round to the second: spreadsheets store times as binary fractions of a day.
    let secs = (ms + 500).div_euclid(1000);
    base.and_hms_opt(0, 0, 0)
        .map(|d| d + Duration::seconds(secs))
}

/// Streams the rows of the first sheet to `on_row(row_number, cells)`.
/// Row numbers are the sheet's own (1 = first row). Rows with no cells are skipped.
pub fn for_each_row(
    path: &Path,
    mut on_row: impl FnMut(u64, Vec<Cell>) -> XResult<bool>,
) -> XResult<()> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| format!("not an XLSX workbook: {e}"))?;
    let workbook =
        part(&mut zip, "xl/workbook.xml")?.ok_or("not an XLSX workbook: no xl/workbook.xml")?;
    let (rel_id, is_1904) = {
        let mut xml = Reader::from_reader(workbook.as_slice());
        let mut buf = Vec::new();
        let (mut rid, mut d1904) = (None, false);
        loop {
            buf.clear();
            match xml.read_event_into(&mut buf).map_err(|e| e.to_string())? {
                Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == b"workbookPr" => {
                    d1904 = matches!(attr(&e, b"date1904").as_deref(), Some("1" | "true"));
                }
                Event::Start(e) | Event::Empty(e)
                    if e.local_name().as_ref() == b"sheet" && rid.is_none() =>
                {
                    rid = attr(&e, b"id");
                }
                Event::Eof => break,
                _ => {}
            }
        }
        (rid.ok_or("the workbook has no sheet")?, d1904)
    };
    let mut sheet_path = "xl/worksheets/sheet1.xml".to_string();
    if let Some(rels) = part(&mut zip, "xl/_rels/workbook.xml.rels")? {
        let mut xml = Reader::from_reader(rels.as_slice());
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match xml.read_event_into(&mut buf).map_err(|e| e.to_string())? {
                Event::Start(e) | Event::Empty(e)
                    if e.local_name().as_ref() == b"Relationship"
                        && attr(&e, b"Id").as_deref() == Some(rel_id.as_str()) =>
                {
                    if let Some(t) = attr(&e, b"Target") {
                        sheet_path = match t.strip_prefix('/') {
                            Some(abs) => abs.to_string(),
                            None => format!("xl/{t}"),
                        };
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
    }
    let strings = match part(&mut zip, "xl/sharedStrings.xml")? {
        Some(d) => shared_strings(&d)?,
        None => Vec::new(),
    };
    let dates = match part(&mut zip, "xl/styles.xml")? {
        Some(d) => date_styles(&d)?,
        None => Vec::new(),
    };
    let sheet = zip
        .by_name(&sheet_path)
        .map_err(|e| format!("{sheet_path}: {e}"))?;
    let mut xml = Reader::from_reader(BufReader::new(sheet));
    let mut buf = Vec::new();
    let mut inner = Vec::new();
    let mut row_no = 0u64;
    let mut cells: Vec<Cell> = Vec::new();
    let mut col = 0usize;
    loop {
        buf.clear();
        match xml.read_event_into(&mut buf).map_err(|e| e.to_string())? {
            Event::Start(e) if e.local_name().as_ref() == b"row" => {
                row_no = attr(&e, b"r")
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(row_no + 1);
                cells.clear();
                col = 0;
            }
            Event::Empty(e) if e.local_name().as_ref() == b"row" => {
                row_no = attr(&e, b"r")
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(row_no + 1);
            }
            Event::End(e)
                if e.local_name().as_ref() == b"row"
                    && cells.iter().any(|c| !c.is_blank())
                    && !on_row(row_no, std::mem::take(&mut cells))? =>
            {
                return Ok(());
            }
            Event::Empty(e) if e.local_name().as_ref() == b"c" => {
                col = attr(&e, b"r").and_then(|r| column_of(&r)).unwrap_or(col) + 1;
            }
            Event::Start(e) if e.local_name().as_ref() == b"c" => {
                let c_idx = attr(&e, b"r").and_then(|r| column_of(&r)).unwrap_or(col);
                col = c_idx + 1;
                let t = attr(&e, b"t").unwrap_or_default();
                let style: usize = attr(&e, b"s").and_then(|s| s.parse().ok()).unwrap_or(0);
                let mut value: Option<String> = None;
                let mut inline: Option<String> = None;
                loop {
                    buf.clear();
                    match xml.read_event_into(&mut buf).map_err(|e| e.to_string())? {
                        Event::Start(v) if v.local_name().as_ref() == b"v" => {
                            value = Some(text_in_v(&mut xml, &mut inner)?);
                        }
                        Event::Start(v) if v.local_name().as_ref() == b"is" => {
                            inline = Some(text_until_end(&mut xml, b"is", &mut inner)?);
                        }
                        Event::End(v) if v.local_name().as_ref() == b"c" => break,
                        Event::Eof => return Err("unexpected end of sheet XML".into()),
                        _ => {}
                    }
                }
                let cell = match (t.as_str(), value, inline) {
                    (_, _, Some(s)) => Cell::Text(s),
                    ("s", Some(v), _) => {
                        let i: usize = v
                            .trim()
                            .parse()
                            .map_err(|_| format!("bad shared string index '{v}'"))?;
                        Cell::Text(
                            strings
                                .get(i)
                                .cloned()
                                .ok_or(format!("shared string {i} missing"))?,
                        )
                    }
                    ("str" | "e", Some(v), _) => Cell::Text(v),
                    ("b", Some(v), _) => Cell::Bool(v.trim() != "0"),
                    ("d", Some(v), _) => {
                        match NaiveDateTime::parse_from_str(v.trim(), "%Y-%m-%dT%H:%M:%S%.f")
                            .or_else(|_| {
                                NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d")
                                    .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight"))
                            }) {
                            Ok(d) => Cell::DateTime(d),
                            Err(_) => Cell::Text(v),
                        }
                    }
                    (_, Some(v), _) if dates.get(style).copied().unwrap_or(false) => {
                        match v
                            .trim()
                            .parse::<f64>()
                            .ok()
                            .and_then(|f| serial_to_datetime(f, is_1904))
                        {
                            Some(d) => Cell::DateTime(d),
                            None => Cell::Number(v),
                        }
                    }
                    (_, Some(v), _) => Cell::Number(v.trim().to_string()),
                    (_, None, None) => Cell::Empty,
                };
                if cells.len() <= c_idx {
                    cells.resize(c_idx + 1, Cell::Empty);
                }
                cells[c_idx] = cell;
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

fn text_in_v<B: BufRead>(xml: &mut Reader<B>, buf: &mut Vec<u8>) -> XResult<String> {
    let mut out = String::new();
    loop {
        buf.clear();
        match xml.read_event_into(buf).map_err(|e| e.to_string())? {
            Event::Text(t) => out.push_str(&t.unescape().map_err(|e| e.to_string())?),
            Event::End(e) if e.local_name().as_ref() == b"v" => return Ok(out),
            Event::Eof => return Err("unexpected end of XML in <v>".into()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_formats_are_recognised() {
        assert!(is_date_format("yyyy-mm-dd"));
        assert!(is_date_format("yyyy\"年\"m\"月\"d\"日\""));
        assert!(is_date_format("[$-F800]dddd, mmmm dd, yyyy"));
        assert!(!is_date_format("#,##0.00"));
        assert!(!is_date_format("0.00E+00"));
        assert!(!is_date_format("General"));
        assert!(!is_date_format("@"));
    }

    #[test]
    fn serials_convert_like_excel() {
        // 45000 is 2023-03-15 in the 1900 system; .5 is noon.
        assert_eq!(
            serial_to_datetime(45000.5, false).unwrap().to_string(),
            "2023-03-15 12:00:00"
        );
        assert_eq!(
            serial_to_datetime(0.0, true).unwrap().to_string(),
            "1904-01-01 00:00:00"
        );
        assert_eq!(column_of("AB12"), Some(27));
        assert_eq!(column_of("A1"), Some(0));
    }
}
