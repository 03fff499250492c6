//! What one submission file may hold before it is rejected whole.
//!
//! A hostile or broken file must cost bounded memory and time: an XLSX of
//! 1.5 MB can inflate to 1.5 GB of sheet XML, a CSV line can hold 200 MB.
//! Each limit is checked while the bytes stream in, before they are kept, and
//! the file is then rejected with the limit it broke, by name
//! ([`TooLarge`]). The defaults are sized for the largest file the contract
//! expects, a national monthly `enterprise_rd` (480,000 firms, 13 columns: a
//! CSV of about 60 MB, an XLSX sheet of about 300 MB of XML), with a wide
//! margin; README "Reliability" lists them.

use std::fmt;

/// Bounds on one file; [`Limits::default`] is what `stmon ingest` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Columns of a row (CSV fields, XLSX column index): Excel's own last
    /// column, XFD.
    pub columns: usize,
    /// Characters of one cell: Excel's own limit.
    pub cell_chars: usize,
    /// Bytes of one CSV record, decoded (a line, or several when a quoted
    /// cell holds line breaks).
    pub record_bytes: u64,
    /// Bytes of sheet XML of one XLSX row (its cells and their markup).
    pub row_xml_bytes: u64,
    /// Bytes of the sheet's XML, decompressed.
    pub sheet_xml_bytes: u64,
    /// Bytes of the shared-strings part, decompressed: its strings stay in
    /// memory while the sheet is read.
    pub shared_strings_bytes: u64,
    /// Entries of the shared-strings table.
    pub shared_strings: usize,
    /// Bytes of each other part read (workbook, its relationships, styles).
    pub part_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            columns: 16_384,
            cell_chars: 32_767,
            record_bytes: 1 << 20,
            row_xml_bytes: 4 << 20,
            sheet_xml_bytes: 2 << 30,
            shared_strings_bytes: 512 << 20,
            shared_strings: 8_000_000,
            part_bytes: 64 << 20,
        }
    }
}

impl Limits {
    /// Every limit by the name `stmon ingest --limit NAME=VALUE` takes, with
    /// its value (counts, characters, or bytes).
    pub fn named(&self) -> [(&'static str, u64); 8] {
        [
            ("columns", self.columns as u64),
            ("cell_chars", self.cell_chars as u64),
            ("record_bytes", self.record_bytes),
            ("row_xml_bytes", self.row_xml_bytes),
            ("sheet_xml_bytes", self.sheet_xml_bytes),
            ("shared_strings_bytes", self.shared_strings_bytes),
            ("shared_strings", self.shared_strings as u64),
            ("part_bytes", self.part_bytes),
        ]
    }

    /// Sets one limit from `NAME=VALUE`; a byte limit takes `KiB`, `MiB` or
    /// `GiB` after its number (`row_xml_bytes=16MiB`).
    pub fn set(&mut self, setting: &str) -> Result<(), String> {
        let names = || {
            self.named()
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (name, value) = setting
            .split_once('=')
            .ok_or_else(|| format!("`{setting}`: expected NAME=VALUE, NAME one of {}", names()))?;
        let (name, value) = (name.trim(), value.trim());
        let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit: u64 = match &value[digits.len()..] {
            "" => 1,
            "KiB" if name.ends_with("_bytes") => 1 << 10,
            "MiB" if name.ends_with("_bytes") => 1 << 20,
            "GiB" if name.ends_with("_bytes") => 1 << 30,
            other => {
                return Err(format!(
                    "`{setting}`: unknown unit `{other}` (a byte limit takes KiB, MiB or GiB)"
                ))
            }
        };
        let n = digits
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(unit))
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{setting}`: the value is not a positive whole number"))?;
        let count = || usize::try_from(n).map_err(|_| format!("`{setting}`: too large"));
        match name {
            "columns" => self.columns = count()?,
            "cell_chars" => self.cell_chars = count()?,
            "record_bytes" => self.record_bytes = n,
            "row_xml_bytes" => self.row_xml_bytes = n,
            "sheet_xml_bytes" => self.sheet_xml_bytes = n,
            "shared_strings_bytes" => self.shared_strings_bytes = n,
            "shared_strings" => self.shared_strings = count()?,
            "part_bytes" => self.part_bytes = n,
            _ => {
                return Err(format!(
                    "`{setting}`: unknown limit `{name}` (known: {})",
                    names()
                ))
            }
        }
        Ok(())
    }
}

/// Which limit a file broke and where; the file is rejected whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TooLarge {
    /// A CSV record longer than [`Limits::record_bytes`].
    Record { line: u64, limit: u64 },
    /// An XLSX row with more than [`Limits::row_xml_bytes`] of XML.
    RowXml { row: u64, limit: u64 },
    /// A cell longer than [`Limits::cell_chars`]; `at` is `line 7, column 3`
    /// or `row 7, cell C7`.
    Cell { at: String, limit: usize },
    /// A row past [`Limits::columns`].
    Columns { at: String, limit: usize },
    /// An XLSX part that inflates past its limit, `name` in [`Limits::named`].
    Part {
        part: String,
        name: &'static str,
        limit: u64,
    },
    /// More shared strings than [`Limits::shared_strings`].
    SharedStrings { limit: usize },
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TooLarge::Record { line, limit } => write!(
                f,
                "line {line}: a CSV record longer than {} (limit record_bytes)",
                bytes(*limit)
            ),
            TooLarge::RowXml { row, limit } => write!(
                f,
                "row {row}: more than {} of sheet XML in one row (limit row_xml_bytes)",
                bytes(*limit)
            ),
            TooLarge::Cell { at, limit } => write!(
                f,
                "{at}: a cell longer than {} characters (limit cell_chars)",
                thousands(*limit as u64)
            ),
            TooLarge::Columns { at, limit } => write!(
                f,
                "{at}: more than {} columns (limit columns)",
                thousands(*limit as u64)
            ),
            TooLarge::Part { part, name, limit } => write!(
                f,
                "{part} inflates to more than {} (limit {name})",
                bytes(*limit)
            ),
            TooLarge::SharedStrings { limit } => write!(
                f,
                "xl/sharedStrings.xml holds more than {} strings (limit shared_strings)",
                thousands(*limit as u64)
            ),
        }
    }
}

/// Why a reader stopped before the end of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The file cannot be read as what it claims to be (a broken zip, XML
    /// that ends half-way, an I/O error): it is tried again next time.
    Broken(String),
    /// A limit: the file is rejected whole, and not read again.
    TooLarge(TooLarge),
}

impl From<String> for ReadError {
    fn from(s: String) -> Self {
        ReadError::Broken(s)
    }
}

impl From<&str> for ReadError {
    fn from(s: &str) -> Self {
        ReadError::Broken(s.to_string())
    }
}

impl From<TooLarge> for ReadError {
    fn from(t: TooLarge) -> Self {
        ReadError::TooLarge(t)
    }
}

/// `1 MiB`, `4 MiB`, `2 GiB`, else bytes with separators.
pub(crate) fn bytes(n: u64) -> String {
    const MIB: u64 = 1 << 20;
    match n {
        n if n >= 1 << 30 && n.is_multiple_of(1 << 30) => format!("{} GiB", n >> 30),
        n if n >= MIB && n.is_multiple_of(MIB) => format!("{} MiB", n / MIB),
        n => format!("{} bytes", thousands(n)),
    }
}

pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_is_set_by_name_with_a_unit() {
        let mut l = Limits::default();
        l.set("row_xml_bytes=16MiB").unwrap();
        l.set("columns = 100").unwrap();
        assert_eq!((l.row_xml_bytes, l.columns), (16 << 20, 100));
        assert_eq!(
            l.set("columns=1KiB").unwrap_err(),
            "`columns=1KiB`: unknown unit `KiB` (a byte limit takes KiB, MiB or GiB)"
        );
        assert!(l
            .set("rows=1")
            .unwrap_err()
            .starts_with("`rows=1`: unknown limit `rows` (known: columns, cell_chars,"));
        assert!(l.set("columns=0").is_err());
        assert!(l.set("columns").is_err());
    }

    #[test]
    fn limits_read_as_a_person_writes_them() {
        assert_eq!(bytes(1 << 20), "1 MiB");
        assert_eq!(bytes(2 << 30), "2 GiB");
        assert_eq!(bytes(1000), "1,000 bytes");
        assert_eq!(thousands(32_767), "32,767");
        assert_eq!(thousands(16_384_000), "16,384,000");
        assert_eq!(
            TooLarge::Record {
                line: 2,
                limit: 1 << 20
            }
            .to_string(),
            "line 2: a CSV record longer than 1 MiB (limit record_bytes)"
        );
    }
}
