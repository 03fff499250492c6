//! A streaming reader for the first sheet of an XLSX workbook.
//!
//! Why not calamine's range reader: it loads the whole sheet into memory and
//! turns every numeric cell into an `f64`, so an 18-digit credit code that a
//! spreadsheet stored as a number comes back as `9.14403001922038E17` with its
//! check character lost. The contract requires those 18 digits, so this reader
//! keeps each numeric cell's digits exactly as written in the sheet XML and
//! streams rows one at a time.
//!
//! Memory is bounded by one row plus the shared-strings table, and both are
//! bounded by [`Limits`]: every part is read through a [`Metered`] reader
//! that counts the inflated bytes and refuses to read past the part's limit,
//! or past the end of the row being read, so a zip bomb is stopped after a
//! row's worth of XML, not after it filled the memory.

use std::cell::Cell as StdCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;
use std::rc::Rc;

use chrono::{Duration, NaiveDate, NaiveDateTime};
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use stmon_core::Cell;

use crate::limits::{Limits, ReadError, TooLarge};

type XResult<T> = std::result::Result<T, ReadError>;

/// What a read buffer may hold beyond a window: the reader is asked for more
/// bytes than the parser has used, so a window closes this much later and the
/// exact rule is checked on the parser's position.
const SLACK: u64 = 64 << 10;

fn attr(e: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

/// The limit a [`Metered`] reader stopped at.
#[derive(Debug, Clone, Copy)]
enum Hit {
    Part,
    Window,
}

/// The count of one part's inflated bytes and where reading must stop.
struct Meter {
    read: StdCell<u64>,
    /// The part's limit, and its name in [`Limits::named`].
    total: u64,
    name: &'static str,
    /// Where the current window (one row, one string) ends.
    window: StdCell<u64>,
    hit: StdCell<Option<Hit>>,
}

/// Reads a part's inflated bytes, and fails instead of reading past its limit
/// or its window.
struct Metered<R> {
    inner: R,
    meter: Rc<Meter>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let m = &self.meter;
        let read = m.read.get();
        let (end, hit) = if m.window.get() < m.total {
            (m.window.get(), Hit::Window)
        } else {
            (m.total, Hit::Part)
        };
        if read >= end {
            // At the limit: fine only if the part ends here.
            let mut one = [0u8; 1];
            if self.inner.read(&mut one)? == 0 {
                return Ok(0);
            }
            m.hit.set(Some(hit));
            return Err(std::io::Error::other("limit reached"));
        }
        let room = usize::try_from(end - read)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..room])?;
        m.read.set(read + n as u64);
        Ok(n)
    }
}

/// One part of the workbook as XML events, its inflated bytes metered.
struct Xml<R> {
    reader: Reader<BufReader<Metered<R>>>,
    meter: Rc<Meter>,
    part: String,
}

impl<R: Read> Xml<R> {
    fn new(inner: R, part: &str, (name, total): (&'static str, u64)) -> Self {
        let meter = Rc::new(Meter {
            read: StdCell::new(0),
            total,
            name,
            window: StdCell::new(u64::MAX),
            hit: StdCell::new(None),
        });
        let metered = Metered {
            inner,
            meter: meter.clone(),
        };
        Xml {
            reader: Reader::from_reader(BufReader::new(metered)),
            meter,
            part: part.to_string(),
        }
    }

    /// The next event; a window that closes becomes `window()`'s reason.
    fn next<'b>(
        &mut self,
        buf: &'b mut Vec<u8>,
        window: &dyn Fn() -> TooLarge,
    ) -> XResult<Event<'b>> {
        buf.clear();
        let event = self.reader.read_event_into(buf);
        event.map_err(|e| self.error(e.to_string(), window))
    }

    fn error(&self, e: String, window: &dyn Fn() -> TooLarge) -> ReadError {
        match self.meter.hit.get() {
            Some(Hit::Part) => TooLarge::Part {
                part: self.part.clone(),
                name: self.meter.name,
                limit: self.meter.total,
            }
            .into(),
            Some(Hit::Window) => window().into(),
            None => ReadError::Broken(format!("{}: {e}", self.part)),
        }
    }

    /// Bytes the parser has used.
    fn position(&self) -> u64 {
        self.reader.buffer_position()
    }

    /// Lets the parser read `n` bytes on from `from` (plus [`SLACK`]).
    fn allow(&self, from: u64, n: u64) {
        self.meter
            .window
            .set(from.saturating_add(n).saturating_add(SLACK));
    }
}

fn part<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
    limits: &Limits,
) -> XResult<Option<Vec<u8>>> {
    match zip.by_name(name) {
        Ok(f) => {
            let mut xml = Xml::new(f, name, ("part_bytes", limits.part_bytes));
            let mut buf = Vec::new();
            xml.reader
                .get_mut()
                .read_to_end(&mut buf)
                .map_err(|e| xml.error(e.to_string(), &|| unreachable!("no window")))?;
            Ok(Some(buf))
        }
        Err(zip::result::ZipError::FileNotFound) => Ok(None),
        Err(e) => Err(format!("{name}: {e}").into()),
    }
}

/// Reads the text of an element until its end, skipping phonetic runs
/// (`rPh`); longer than `max_chars` characters is `too_long()`, a window
/// that closes is `window()`.
fn text_until_end<R: Read>(
    xml: &mut Xml<R>,
    end: &[u8],
    buf: &mut Vec<u8>,
    max_chars: usize,
    window: &dyn Fn() -> TooLarge,
    too_long: &dyn Fn() -> TooLarge,
) -> XResult<String> {
    let mut out = String::new();
    let mut chars = 0usize;
    let mut in_t = false;
    let mut skip = 0usize;
    loop {
        match xml.next(buf, window)? {
            Event::Start(e) if e.local_name().as_ref() == b"rPh" => skip += 1,
            Event::End(e) if e.local_name().as_ref() == b"rPh" => skip = skip.saturating_sub(1),
            Event::Start(e) if e.local_name().as_ref() == b"t" => in_t = true,
            Event::End(e) if e.local_name().as_ref() == b"t" => in_t = false,
            Event::Text(t) if in_t && skip == 0 => {
                let t = t.unescape().map_err(|e| e.to_string())?;
                chars += t.chars().count();
                out.push_str(&t)
            }
            Event::CData(t) if in_t && skip == 0 => {
                let t = String::from_utf8_lossy(&t);
                chars += t.chars().count();
                out.push_str(&t)
            }
            Event::End(e) if e.local_name().as_ref() == end => return Ok(out),
            Event::Eof => return Err(format!("{}: unexpected end of XML", xml.part).into()),
            _ => {}
        }
        if chars > max_chars {
            return Err(too_long().into());
        }
    }
}

/// The shared-strings table, in one buffer: an entry costs its text and one
/// offset, so its limit in bytes bounds its memory.
#[derive(Default)]
struct Strings {
    text: String,
    ends: Vec<usize>,
}

impl Strings {
    fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.text[start..end])
    }

    fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.ends.push(self.text.len());
    }
}

fn shared_strings<R: Read>(f: R, limits: &Limits) -> XResult<Strings> {
    let mut xml = Xml::new(
        f,
        "xl/sharedStrings.xml",
        ("shared_strings_bytes", limits.shared_strings_bytes),
    );
    let mut buf = Vec::new();
    let mut inner = Vec::new();
    let mut out = Strings::default();
    loop {
        let i = out.ends.len();
        if i > limits.shared_strings {
            return Err(TooLarge::SharedStrings {
                limit: limits.shared_strings,
            }
            .into());
        }
        let too_long = || TooLarge::Cell {
            at: format!("xl/sharedStrings.xml, string {}", i + 1),
            limit: limits.cell_chars,
        };
        xml.allow(xml.position(), limits.row_xml_bytes);
        match xml.next(&mut buf, &too_long)? {
            Event::Start(e) if e.local_name().as_ref() == b"si" => {
                let s = text_until_end(
                    &mut xml,
                    b"si",
                    &mut inner,
                    limits.cell_chars,
                    &too_long,
                    &too_long,
                )?;
                out.push(&s)
            }
            Event::Empty(e) if e.local_name().as_ref() == b"si" => out.push(""),
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

fn xml_err(part: &str) -> impl Fn(quick_xml::Error) -> ReadError + '_ {
    move |e| ReadError::Broken(format!("{part}: {e}"))
}

fn date_styles(data: &[u8]) -> XResult<Vec<bool>> {
    let mut xml = Reader::from_reader(data);
    let mut buf = Vec::new();
    let mut custom: HashMap<u32, bool> = HashMap::new();
    let mut out = Vec::new();
    let mut in_cell_xfs = false;
    loop {
        buf.clear();
        match xml
            .read_event_into(&mut buf)
            .map_err(xml_err("xl/styles.xml"))?
        {
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

/// Column index (0-based) of a cell reference such as `AB12`; a reference of
/// many letters saturates (and is then past any column limit).
fn column_of(reference: &str) -> Option<usize> {
    let mut col = 0usize;
    let mut any = false;
    for b in reference.bytes().take_while(|b| b.is_ascii_alphabetic()) {
        col = col
            .saturating_mul(26)
            .saturating_add((b.to_ascii_uppercase() - b'A' + 1) as usize);
        any = true;
    }
    any.then(|| col - 1)
}

/// A column index as Excel names it: 0 → `A`, 27 → `AB`.
fn column_name(mut col: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (col % 26) as u8);
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII")
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
/// Row numbers are the sheet's own (1 = first row). Rows with no cells are
/// skipped. A file past one of `limits` stops with [`ReadError::TooLarge`].
pub(crate) fn for_each_row(
    path: &Path,
    limits: &Limits,
    mut on_row: impl FnMut(u64, Vec<Cell>) -> Result<bool, String>,
) -> XResult<()> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| format!("not an XLSX workbook: {e}"))?;
    let workbook = part(&mut zip, "xl/workbook.xml", limits)?
        .ok_or("not an XLSX workbook: no xl/workbook.xml")?;
    let (rel_id, is_1904) = {
        let mut xml = Reader::from_reader(workbook.as_slice());
        let mut buf = Vec::new();
        let (mut rid, mut d1904) = (None, false);
        loop {
            buf.clear();
            match xml
                .read_event_into(&mut buf)
                .map_err(xml_err("xl/workbook.xml"))?
            {
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
    if let Some(rels) = part(&mut zip, "xl/_rels/workbook.xml.rels", limits)? {
        let mut xml = Reader::from_reader(rels.as_slice());
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match xml
                .read_event_into(&mut buf)
                .map_err(xml_err("xl/_rels/workbook.xml.rels"))?
            {
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
    let strings = match zip.by_name("xl/sharedStrings.xml") {
        Ok(f) => shared_strings(f, limits)?,
        Err(zip::result::ZipError::FileNotFound) => Strings::default(),
        Err(e) => return Err(format!("xl/sharedStrings.xml: {e}").into()),
    };
    let dates = match part(&mut zip, "xl/styles.xml", limits)? {
        Some(d) => date_styles(&d)?,
        None => Vec::new(),
    };
    let sheet = zip
        .by_name(&sheet_path)
        .map_err(|e| format!("{sheet_path}: {e}"))?;
    let mut xml = Xml::new(
        sheet,
        &sheet_path,
        ("sheet_xml_bytes", limits.sheet_xml_bytes),
    );
    let mut buf = Vec::new();
    let mut inner = Vec::new();
    let mut row_no = 0u64;
    // Where the row being read began, in the sheet's XML.
    let mut row_start: Option<u64> = None;
    let mut cells: Vec<Cell> = Vec::new();
    let mut col = 0usize;
    let row_limit = limits.row_xml_bytes;
    loop {
        let pos = xml.position();
        if row_start.is_none() {
            xml.allow(pos, row_limit);
        }
        let next_row = if row_start.is_some() {
            row_no
        } else {
            row_no + 1
        };
        let too_long = move || TooLarge::RowXml {
            row: next_row,
            limit: row_limit,
        };
        match xml.next(&mut buf, &too_long)? {
            Event::Start(e) if e.local_name().as_ref() == b"row" => {
                row_no = attr(&e, b"r")
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(row_no + 1);
                row_start = Some(pos);
                xml.allow(pos, row_limit);
                cells.clear();
                col = 0;
            }
            Event::Empty(e) if e.local_name().as_ref() == b"row" => {
                row_no = attr(&e, b"r")
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(row_no + 1);
            }
            Event::End(e) if e.local_name().as_ref() == b"row" => {
                let start = row_start.take().unwrap_or(pos);
                if xml.position() - start > row_limit {
                    return Err(TooLarge::RowXml {
                        row: row_no,
                        limit: row_limit,
                    }
                    .into());
                }
                if cells.iter().any(|c| !c.is_blank())
                    && !on_row(row_no, std::mem::take(&mut cells))?
                {
                    return Ok(());
                }
            }
            Event::Empty(e) if e.local_name().as_ref() == b"c" => {
                col = attr(&e, b"r").and_then(|r| column_of(&r)).unwrap_or(col);
                if col >= limits.columns {
                    return Err(past_last_column(row_no, col, limits));
                }
                col += 1;
            }
            Event::Start(e) if e.local_name().as_ref() == b"c" => {
                let c_idx = attr(&e, b"r").and_then(|r| column_of(&r)).unwrap_or(col);
                if c_idx >= limits.columns {
                    return Err(past_last_column(row_no, c_idx, limits));
                }
                col = c_idx + 1;
                let t = attr(&e, b"t").unwrap_or_default();
                let style: usize = attr(&e, b"s").and_then(|s| s.parse().ok()).unwrap_or(0);
                let cell_too_long = || TooLarge::Cell {
                    at: format!("row {row_no}, cell {}{row_no}", column_name(c_idx)),
                    limit: limits.cell_chars,
                };
                let mut value: Option<String> = None;
                let mut inline: Option<String> = None;
                loop {
                    match xml.next(&mut buf, &too_long)? {
                        Event::Start(v) if v.local_name().as_ref() == b"v" => {
                            value = Some(text_in_v(
                                &mut xml,
                                &mut inner,
                                limits.cell_chars,
                                &too_long,
                                &cell_too_long,
                            )?);
                        }
                        Event::Start(v) if v.local_name().as_ref() == b"is" => {
                            inline = Some(text_until_end(
                                &mut xml,
                                b"is",
                                &mut inner,
                                limits.cell_chars,
                                &too_long,
                                &cell_too_long,
                            )?);
                        }
                        Event::End(v) if v.local_name().as_ref() == b"c" => break,
                        Event::Eof => {
                            return Err(format!("{sheet_path}: unexpected end of sheet XML").into())
                        }
                        _ => {}
                    }
                }
                let cell = match (t.as_str(), value, inline) {
                    (_, _, Some(s)) => Cell::Text(s),
                    ("s", Some(v), _) => {
                        let i: usize = v.trim().parse().map_err(|_| {
                            format!("bad shared string index {}", stmon_core::quote(&v))
                        })?;
                        Cell::Text(
                            strings
                                .get(i)
                                .ok_or(format!("shared string {i} missing"))?
                                .to_string(),
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

fn past_last_column(row: u64, col: usize, limits: &Limits) -> ReadError {
    let name = if col < 1 << 20 {
        column_name(col)
    } else {
        format!("number {}", crate::limits::thousands(col as u64 + 1))
    };
    TooLarge::Columns {
        at: format!("row {row}, column {name}"),
        limit: limits.columns,
    }
    .into()
}

/// The text of a `<v>` element; longer than `max_chars` is `cell_too_long()`.
fn text_in_v<R: Read>(
    xml: &mut Xml<R>,
    buf: &mut Vec<u8>,
    max_chars: usize,
    window: &dyn Fn() -> TooLarge,
    cell_too_long: &dyn Fn() -> TooLarge,
) -> XResult<String> {
    let mut out = String::new();
    loop {
        match xml.next(buf, window)? {
            Event::Text(t) => out.push_str(&t.unescape().map_err(|e| e.to_string())?),
            Event::End(e) if e.local_name().as_ref() == b"v" => return Ok(out),
            Event::Eof => return Err(format!("{}: unexpected end of XML in <v>", xml.part).into()),
            _ => {}
        }
        if out.len() > max_chars && out.chars().count() > max_chars {
            return Err(cell_too_long().into());
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
