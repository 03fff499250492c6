//! `stmon-core`: the vocabulary every other stmon crate speaks.
//!
//! It knows nothing of files, forms or warehouses. It holds the cell values a
//! reader hands over ([`Cell`]), the typed values a form column turns them
//! into ([`Value`]), and the parsers of the data contract
//! (`../shared/spec/submissions.md`): amounts in 万元, counts, booleans, dates,
//! periods, timestamps and the unified social credit code.
//!
//! ```
//! use stmon_core::{credit_code, parse};
//! assert_eq!(credit_code::validate("91330100716105852f").unwrap(), "91330100716105852F");
//! assert_eq!(parse::amount(" 1,234.50 ").unwrap(), 12_345_000); // 1234.5 万元, 4 decimals
//! assert_eq!(parse::boolean("是").unwrap(), true);
//! ```

pub mod cell;
pub mod credit_code;
pub mod parse;
pub mod quote;

pub use cell::Cell;
pub use quote::{prefix, quote};
