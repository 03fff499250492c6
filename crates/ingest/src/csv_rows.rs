//! Streaming CSV rows, decoded from the file's encoding.

use std::fs::File;
use std::path::Path;

use encoding_rs_io::DecodeReaderBytesBuilder;
use stmon_core::Cell;

use crate::source::Encoding;

/// Streams the records of a CSV file to `on_row(line_number, cells)`; the line
/// number is the one an editor shows (the header is row 1). Blank lines and
/// rows whose cells are all blank are skipped.
pub fn for_each_row(
    path: &Path,
    encoding: Encoding,
    mut on_row: impl FnMut(u64, Vec<Cell>) -> Result<bool, String>,
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
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(decoded);
    let mut record = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let line = record.position().map(|p| p.line()).unwrap_or(0);
                let cells: Vec<Cell> = record.iter().map(|s| Cell::Text(s.to_string())).collect();
                if cells.iter().all(Cell::is_blank) {
                    continue;
                }
                if !on_row(line, cells)? {
                    return Ok(());
                }
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                return Err(format!("CSV syntax error near line {line}: {e}"));
            }
        }
    }
}
