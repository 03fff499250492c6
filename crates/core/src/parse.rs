//! Parsers for the contract's value types. Each returns the typed value or a
//! reason a person can act on ("not an amount: '12,3x'").

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime};
use rust_decimal::prelude::*;

use crate::quote;

/// Amount and decimal columns are stored as integers scaled by 10^4
/// (万元 with four decimals: exact to one yuan).
pub const SCALE: u32 = 4;

/// Blank in the contract's sense: empty, spaces, or a dash standing for "none".
pub fn is_blank(s: &str) -> bool {
    matches!(s.trim(), "" | "—" | "--" | "-" | "－" | "——" | "－－")
}

/// A decimal number: `1,234.5`, ` 12 `, `1.2E3`. Returns the value scaled by 10^4,
/// rounded half away from zero at the fourth decimal.
pub fn decimal(s: &str) -> Result<i128, String> {
    let t: String = s
        .trim()
        .chars()
        .filter(|c| *c != ',' && *c != '，')
        .collect();
    let parsed = if t.contains(['e', 'E']) {
        Decimal::from_scientific(&t)
    } else {
        Decimal::from_str(&t)
    };
    let d = parsed.map_err(|_| format!("not a number: {}", quote(s.trim())))?;
    let range = || format!("number out of range: {}", quote(s.trim()));
    // Checked: `*` panics past Decimal's 96 bits (a 29-digit cell did).
    d.checked_mul(Decimal::from(10i64.pow(SCALE)))
        .ok_or_else(range)?
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
        .to_i128()
        .ok_or_else(range)
}

/// An amount in 万元: a decimal `>= 0`, scaled by 10^4.
pub fn amount(s: &str) -> Result<i128, String> {
    let v = decimal(s)?;
    if v < 0 {
        return Err(format!("amount must be >= 0, got {}", quote(s.trim())));
    }
    Ok(v)
}

/// A count: an integer `>= 0` (`1,200` and `12.0` are accepted).
pub fn count(s: &str) -> Result<i64, String> {
    let v = decimal(s).map_err(|_| format!("not a count: {}", quote(s.trim())))?;
    if v % 10i128.pow(SCALE) != 0 {
        return Err(format!(
            "a count must be a whole number, got {}",
            quote(s.trim())
        ));
    }
    if v < 0 {
        return Err(format!("a count must be >= 0, got {}", quote(s.trim())));
    }
    i64::try_from(v / 10i128.pow(SCALE))
        .map_err(|_| format!("count out of range: {}", quote(s.trim())))
}

/// `Y`/`N`, `是`/`否`, `true`/`false`, `1`/`0`, any letter case.
pub fn boolean(s: &str) -> Result<bool, String> {
    match s.trim().to_lowercase().as_str() {
        "y" | "是" | "true" | "1" => Ok(true),
        "n" | "否" | "false" | "0" => Ok(false),
        _ => Err(format!(
            "not a yes/no value (Y/N, 是/否, true/false, 1/0): {}",
            quote(s.trim())
        )),
    }
}

fn ymd(y: &str, m: &str, d: &str) -> Option<NaiveDate> {
    if y.len() != 4 || m.is_empty() || m.len() > 2 || d.is_empty() || d.len() > 2 {
        return None;
    }
    NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}

/// `YYYY-MM-DD`, `YYYY-M-D` or `YYYY/M/D`.
pub fn date(s: &str) -> Result<NaiveDate, String> {
    let t = s.trim();
    let parts: Vec<&str> = t.split(['-', '/']).collect();
    match parts.as_slice() {
        [y, m, d] if t.split('-').count() == 3 || t.split('/').count() == 3 => ymd(y, m, d),
        _ => None,
    }
    .ok_or_else(|| format!("not a date (YYYY-MM-DD): {}", quote(t)))
}

/// `YYYY-MM-DD HH:MM[:SS]` (also with `/` or `T`), local time without zone.
pub fn timestamp(s: &str) -> Result<NaiveDateTime, String> {
    let t = s.trim();
    let err = || format!("not a timestamp (YYYY-MM-DD HH:MM[:SS]): {}", quote(t));
    let (d, time) = t.split_once([' ', 'T']).ok_or_else(err)?;
    let d = date(d).map_err(|_| err())?;
    let time = time.trim();
    let tm = NaiveTime::parse_from_str(time, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(time, "%H:%M"))
        .map_err(|_| err())?;
    Ok(d.and_time(tm))
}

/// A monthly period `YYYY-MM` or `YYYY-M`, normalised to `YYYY-MM`.
pub fn period_month(s: &str) -> Result<String, String> {
    let t = s.trim();
    let ok = t.split_once(['-', '/']).and_then(|(y, m)| {
        let (y, m): (i32, u32) = (
            y.parse().ok().filter(|_| y.len() == 4)?,
            m.parse().ok().filter(|_| !m.is_empty() && m.len() <= 2)?,
        );
        (1..=12).contains(&m).then(|| format!("{y:04}-{m:02}"))
    });
    ok.ok_or_else(|| format!("not a monthly period (YYYY-MM): {}", quote(t)))
}

/// A quarterly period `YYYY-Qn` or `YYYYQn`, any case, normalised to `YYYY-Qn`.
pub fn period_quarter(s: &str) -> Result<String, String> {
    let t = s.trim().to_ascii_uppercase();
    let ok = t.split_once('Q').and_then(|(y, q)| {
        let y = y.strip_suffix('-').unwrap_or(y);
        let (y, q): (i32, u32) = (
            y.parse().ok().filter(|_| y.len() == 4)?,
            q.parse().ok().filter(|_| q.len() == 1)?,
        );
        (1..=4).contains(&q).then(|| format!("{y:04}-Q{q}"))
    });
    ok.ok_or_else(|| format!("not a quarterly period (YYYY-Qn): {}", quote(s.trim())))
}

/// An annual period `YYYY`.
pub fn period_year(s: &str) -> Result<String, String> {
    let t = s.trim();
    let t = t.strip_suffix(".0").unwrap_or(t);
    if t.len() == 4 && t.bytes().all(|b| b.is_ascii_digit()) {
        Ok(t.to_string())
    } else {
        Err(format!("not an annual period (YYYY): {}", quote(s.trim())))
    }
}

/// The monthly period of a date cell (an XLSX date stands for its year and month).
pub fn month_of(d: NaiveDateTime) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact_to_four_decimals() {
        assert_eq!(amount(" 1,234.50 ").unwrap(), 12_345_000);
        assert_eq!(amount("1.2E3").unwrap(), 12_000_000);
        assert_eq!(amount("0.00005").unwrap(), 1); // rounds half away from zero
        assert_eq!(amount("0.00004").unwrap(), 0);
        assert_eq!(amount("12").unwrap(), 120_000);
        assert!(amount("-1").unwrap_err().contains(">= 0"));
        assert!(amount("12,3x").unwrap_err().contains("not a number"));
    }

    #[test]
    fn counts_are_whole_and_non_negative() {
        assert_eq!(count("1,200").unwrap(), 1200);
        assert_eq!(count("7.0").unwrap(), 7);
        assert!(count("7.5").unwrap_err().contains("whole"));
        assert!(count("-3").unwrap_err().contains(">= 0"));
    }

    #[test]
    fn booleans_in_every_spelling() {
        for t in ["Y", "y", "是", "TRUE", "true", "1"] {
            assert!(boolean(t).unwrap(), "{t}");
        }
        for f in ["N", "n", "否", "False", "0"] {
            assert!(!boolean(f).unwrap(), "{f}");
        }
        assert!(boolean("maybe").is_err());
    }

    #[test]
    fn dates_periods_and_timestamps() {
        assert_eq!(
            date("2023-3-7").unwrap(),
            NaiveDate::from_ymd_opt(2023, 3, 7).unwrap()
        );
        assert_eq!(
            date("2023/03/07").unwrap(),
            NaiveDate::from_ymd_opt(2023, 3, 7).unwrap()
        );
        assert!(date("2023-02-30").is_err());
        assert!(date("2023-03/07").is_err());
        assert_eq!(period_month("2023-3").unwrap(), "2023-03");
        assert!(period_month("2023-13").is_err());
        assert_eq!(period_quarter("2023q2").unwrap(), "2023-Q2");
        assert_eq!(period_quarter("2023-Q4").unwrap(), "2023-Q4");
        assert!(period_quarter("2023-Q5").is_err());
        assert_eq!(period_year("2023").unwrap(), "2023");
        assert!(period_year("23").is_err());
        let ts = timestamp("2023-04-10 09:30").unwrap();
        assert_eq!(ts.to_string(), "2023-04-10 09:30:00");
        assert_eq!(
            timestamp("2023/4/10 09:30:15").unwrap().to_string(),
            "2023-04-10 09:30:15"
        );
        assert!(timestamp("2023-04-10").is_err());
    }

    #[test]
    fn dashes_are_blank() {
        for b in ["", "  ", "—", "--", "-"] {
            assert!(is_blank(b), "{b:?}");
        }
        assert!(!is_blank("0"));
    }
}
