//! Streaming CSV rows, decoded from the file's encoding, each with the line
//! number an editor shows for its first line.
//!
//! The `csv` crate's `Position::line()` is not that number: it counts the
//! `\n` bytes the parser had consumed when a record *began*, and the parser
//! stops a CRLF record at its `\r`, leaves the `\n` to the next record and
//! skips blank lines inside the next read. So in CRLF files (what Excel on
//! Windows writes) every row came out one line too low, in CR-only files
//! every row was "line 1", and blank lines before a row were not counted.
//! [`LineIndex`] numbers lines itself, on the decoded bytes the parser reads:
//! `\n`, `\r\n` and a lone `\r` each end a line, as in an editor.
//!
//! The same pass bounds what one record may cost: the `csv` parser keeps a
//! whole record in memory, so [`LineIndex`] follows its quoting (a `"` opens
//! a quoted cell only as a cell's first character; `""` inside one is a
//! quote) and stops the read at a record, a cell or a column count past
//! [`Limits`], before the parser has buffered it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::rc::Rc;

use encoding_rs_io::DecodeReaderBytesBuilder;
use stmon_core::Cell;

use crate::limits::{Limits, ReadError, TooLarge};
use crate::source::Encoding;

/// Streams the records of a CSV file to `on_row(line_number, cells)`; the line
/// number is the one an editor shows for the record's first line (the header
/// is row 1; a quoted cell with line breaks makes its record span several
/// lines, and the next record's number counts them). Blank lines and rows
/// whose cells are all blank are skipped. A record past one of `limits`
/// stops the read with [`ReadError::TooLarge`].
pub(crate) fn for_each_row(
    path: &Path,
    encoding: Encoding,
    limits: &Limits,
    on_row: impl FnMut(u64, Vec<Cell>) -> Result<bool, String>,
) -> Result<(), ReadError> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let enc = match encoding {
        Encoding::Gb18030 => encoding_rs::GB18030,
        Encoding::Utf16 => encoding_rs::UTF_16LE,
        Encoding::Utf8 | Encoding::Utf8Bom => encoding_rs::UTF_8,
    };
    // BOM sniffing stays on: it strips a UTF-8 BOM and picks the UTF-16 byte order.
    let decoded = DecodeReaderBytesBuilder::new()
        .encoding(Some(enc))
        .bom_sniffing(true)
        .build(file);
    read_records(decoded, limits, on_row)
}

/// The records of decoded CSV text, numbered by [`LineIndex`].
pub(crate) fn read_records<R: Read>(
    text: R,
    limits: &Limits,
    mut on_row: impl FnMut(u64, Vec<Cell>) -> Result<bool, String>,
) -> Result<(), ReadError> {
    let (reader, lines) = LineIndex::new(text, limits);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let mut record = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let at = record.position().map(|p| p.byte()).unwrap_or(0);
                let line = lines.line_at(at);
                let cells: Vec<Cell> = record.iter().map(|s| Cell::Text(s.to_string())).collect();
                if cells.iter().all(Cell::is_blank) {
                    continue;
                }
                if !on_row(line, cells)? {
                    return Ok(());
                }
            }
            Err(e) => {
                if let Some(too_large) = lines.too_large() {
                    return Err(too_large.into());
                }
                let line = e.position().map(|p| lines.line_at(p.byte())).unwrap_or(0);
                return Err(format!("CSV syntax error near line {line}: {e}").into());
            }
        }
    }
}

/// Wraps the decoded text and remembers where each non-blank line starts, so
/// that the byte offset where the parser began a record tells its line.
pub(crate) struct LineIndex<R> {
    inner: R,
    state: Rc<RefCell<Lines>>,
}

/// The other half of a [`LineIndex`]: asks for the line of a record.
pub(crate) struct LineLookup(Rc<RefCell<Lines>>);

/// Where the parser is in a record, as `csv` quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Quoting {
    /// At a cell's first character.
    #[default]
    CellStart,
    /// In a cell that did not begin with a quote.
    Plain,
    /// In a quoted cell.
    Quoted,
    /// Just after a quote in a quoted cell: `"` makes a literal quote.
    QuoteInQuoted,
}

#[derive(Default)]
struct Lines {
    /// Decoded bytes seen so far.
    offset: u64,
    /// Number of the line the next byte belongs to.
    line: u64,
    at_line_start: bool,
    after_cr: bool,
    /// (offset, line) of every non-blank line start the parser has not yet
    /// passed: at most a read buffer's worth, however long the file.
    starts: VecDeque<(u64, u64)>,
    limits: Limits,
    quoting: Quoting,
    /// Bytes of the record so far, 0 between records.
    record_bytes: u64,
    /// Line the record began on.
    record_line: u64,
    /// Characters of the cell so far (quotes included), and its column from 1.
    cell_chars: usize,
    column: usize,
    too_large: Option<TooLarge>,
}

impl Lines {
    /// Follows one decoded byte through the record; false past a limit.
    fn meter(&mut self, b: u8) -> bool {
        let ends_line = b == b'\r' || b == b'\n';
        if self.record_bytes == 0 {
            if ends_line {
                return true;
            }
            self.record_line = self.line;
            self.column = 1;
        }
        self.quoting = match (self.quoting, b) {
            (Quoting::Quoted, b'"') => Quoting::QuoteInQuoted,
            (Quoting::Quoted, _) => Quoting::Quoted,
            (Quoting::CellStart, b'"') | (Quoting::QuoteInQuoted, b'"') => Quoting::Quoted,
            (_, b',') => {
                self.column += 1;
                self.cell_chars = 0;
                if self.column > self.limits.columns {
                    self.too_large = Some(TooLarge::Columns {
                        at: format!("line {}", self.record_line),
                        limit: self.limits.columns,
                    });
                    return false;
                }
                Quoting::CellStart
            }
            (_, _) if ends_line => {
                self.record_bytes = 0;
                self.cell_chars = 0;
                return true;
            }
            (_, _) => Quoting::Plain,
        };
        self.record_bytes += 1;
        // A character is counted at its first byte.
        if b & 0xC0 != 0x80 && b != b',' {
            self.cell_chars += 1;
        }
        if self.record_bytes > self.limits.record_bytes {
            self.too_large = Some(TooLarge::Record {
                line: self.record_line,
                limit: self.limits.record_bytes,
            });
            return false;
        }
        if self.cell_chars > self.limits.cell_chars {
            self.too_large = Some(TooLarge::Cell {
                at: format!("line {}, column {}", self.record_line, self.column),
                limit: self.limits.cell_chars,
            });
            return false;
        }
        true
    }
}

impl<R: Read> LineIndex<R> {
    pub(crate) fn new(inner: R, limits: &Limits) -> (Self, LineLookup) {
        let state = Rc::new(RefCell::new(Lines {
            line: 1,
            at_line_start: true,
            limits: *limits,
            ..Lines::default()
        }));
        (
            LineIndex {
                inner,
                state: state.clone(),
            },
            LineLookup(state),
        )
    }
}

impl<R: Read> Read for LineIndex<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut s = self.state.borrow_mut();
        for &b in &buf[..n] {
            if !s.meter(b) {
                return Err(std::io::Error::other("a limit of one record"));
            }
            match b {
                b'\r' => {
                    s.line += 1;
                    s.at_line_start = true;
                    s.after_cr = true;
                }
                b'\n' => {
                    // The `\n` of a `\r\n` ends the same line as its `\r`.
                    if !std::mem::take(&mut s.after_cr) {
                        s.line += 1;
                        s.at_line_start = true;
                    }
                }
                _ => {
                    s.after_cr = false;
                    if std::mem::take(&mut s.at_line_start) {
                        let (offset, line) = (s.offset, s.line);
                        s.starts.push_back((offset, line));
                    }
                }
            }
            s.offset += 1;
        }
        Ok(n)
    }
}

impl LineLookup {
    /// The limit the read stopped at, if it did.
    pub(crate) fn too_large(&self) -> Option<TooLarge> {
        self.0.borrow().too_large.clone()
    }

    /// The line of a record the parser began at byte `at`: the first non-blank
    /// line that starts there or after (the parser skips line ends and blank
    /// lines before a record). Records are asked for in file order, so the
    /// starts before `at` are dropped.
    pub(crate) fn line_at(&self, at: u64) -> u64 {
        let mut s = self.0.borrow_mut();
        while s.starts.front().is_some_and(|&(o, _)| o < at) {
            s.starts.pop_front();
        }
        match s.starts.front() {
            Some(&(_, line)) => line,
            None => s.line,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(text: &[u8]) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        read_records(text, &Limits::default(), |line, cells| {
            out.push((line, cells[0].display()));
            Ok(true)
        })
        .unwrap();
        out
    }

    #[test]
    fn every_line_ending_numbers_rows_as_an_editor_does() {
        let want = vec![(1, "h".to_string()), (2, "a".into()), (3, "b".into())];
        assert_eq!(lines_of(b"h,x\na,1\nb,2\n"), want);
        assert_eq!(lines_of(b"h,x\r\na,1\r\nb,2\r\n"), want);
        assert_eq!(lines_of(b"h,x\ra,1\rb,2"), want);
    }

    #[test]
    fn blank_lines_and_quoted_line_breaks_count() {
        let got = lines_of(b"h,x\r\n\r\n\"a\r\nstill a\",1\r\n\nb,\"2\n\n\"\nc,3");
        let lines: Vec<u64> = got.iter().map(|r| r.0).collect();
        assert_eq!(lines, vec![1, 3, 6, 9]);
    }

    #[test]
    fn a_line_longer_than_the_read_buffer_keeps_the_count() {
        let long = "x".repeat(30_000); // under the cell limit, over any buffer
        let text = format!("h,x\r\n{long},1\r\n\r\nb,2\r\n");
        let lines: Vec<u64> = lines_of(text.as_bytes()).iter().map(|r| r.0).collect();
        assert_eq!(lines, vec![1, 2, 4]);
    }
}
