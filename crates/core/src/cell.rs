//! Cells as a reader hands them over, before any form's typing.

use chrono::NaiveDateTime;

/// One cell of a submitted file.
///
/// CSV cells are always [`Cell::Text`]; XLSX cells keep what the workbook
/// stored, so that a date cell or an 18-digit number stays exact.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    /// A numeric cell with the digits exactly as the workbook stored them.
    Number(String),
    Bool(bool),
    /// A numeric cell formatted as a date or time (converted from the serial).
    DateTime(NaiveDateTime),
}

impl Cell {
    /// The cell as a person would read it, for error messages and the quarantine.
    pub fn display(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(s) | Cell::Number(s) => s.clone(),
            Cell::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
            Cell::DateTime(d) => {
                if d.time() == chrono::NaiveTime::MIN {
                    d.format("%Y-%m-%d").to_string()
                } else {
                    d.format("%Y-%m-%d %H:%M:%S").to_string()
                }
            }
        }
    }

    /// Blank in the contract's sense: empty, spaces, or one of `—`, `--`, `-`.
    pub fn is_blank(&self) -> bool {
        match self {
            Cell::Empty => true,
            Cell::Text(s) | Cell::Number(s) => crate::parse::is_blank(s),
            _ => false,
        }
    }
}
