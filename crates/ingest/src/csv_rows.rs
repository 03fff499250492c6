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

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::rc::Rc;

use encoding_rs_io::DecodeReaderBytesBuilder;
use stmon_core::Cell;

use crate::source::Encoding;

/// Streams the records of a CSV file to `on_row(line_number, cells)`; the line
/// number is the one an editor shows for the record's first line (the header
/// is row 1; a quoted cell with line breaks makes its record span several
/// lines, and the next record's number counts them). Blank lines and rows
/// whose cells are all blank are skipped.
pub fn for_each_row(
    path: &Path,
    encoding: Encoding,
    on_row: impl FnMut(u64, Vec<Cell>) -> Result<bool, String>,
) -> Result<(), String> {
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
    read_records(decoded, on_row)
}

/// The records of decoded CSV text, numbered by [`LineIndex`].
pub(crate) fn read_records<R: Read>(
    text: R,
    mut on_row: impl FnMut(u64, Vec<Cell>) -> Result<bool, String>,
) -> Result<(), String> {
    let (reader, lines) = LineIndex::new(text);
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
                let line = e.position().map(|p| lines.line_at(p.byte())).unwrap_or(0);
                return Err(format!("CSV syntax error near line {line}: {e}"));
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
}

impl<R: Read> LineIndex<R> {
    pub(crate) fn new(inner: R) -> (Self, LineLookup) {
        let state = Rc::new(RefCell::new(Lines {
            line: 1,
            at_line_start: true,
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
        read_records(text, |line, cells| {
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
        let long = "x".repeat(100_000);
        let text = format!("h,x\r\n{long},1\r\n\r\nb,2\r\n");
        let lines: Vec<u64> = lines_of(text.as_bytes()).iter().map(|r| r.0).collect();
        assert_eq!(lines, vec![1, 2, 4]);
    }
}
