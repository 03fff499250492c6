//! Freshness: for each form and county, when its latest submission came and
//! for which period, against the pipeline's rules (see
//! [`crate::spec::FreshnessRule`]).
//!
//! Every committed submission counts (`raw.<form>`: a row later corrected
//! or withdrawn still shows the county submitted), which is also a cheap scan.
//! Lateness is measured on the form's own `submitted_at` (the day the county
//! or firm submitted), so a rerun on another day of the same files gives the
//! same answer for the same reference day; when the row reached the warehouse
//! (`_ingested_at`) is reported beside it.

use chrono::{Datelike, NaiveDate};
use datafusion::prelude::SessionContext;
use stmon_schema::{Catalog, Frequency};

use stmon_models::text_column;

use crate::spec::{FreshnessRule, Severity};
use crate::Result;

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub form: String,
    pub county_code: String,
    pub county_name: String,
    /// Latest period submitted (periodic forms).
    pub latest_period: Option<String>,
    /// Latest `submitted_at` (local time, as submitted).
    pub latest_submitted_at: Option<String>,
    /// When that county's latest row reached the warehouse (UTC).
    pub arrived_at: Option<String>,
    /// The latest period due on the reference day (periodic forms).
    pub expected_period: Option<String>,
    pub status: Standing,
    /// Days since the first missing period fell due, or since the event
    /// form's allowed age ran out.
    pub days_overdue: Option<i64>,
    pub severity: Severity,
}

/// Where a county stands with a form on the reference day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Ok,
    Late,
    /// Never submitted.
    Missing,
}

impl Standing {
    /// The `status` column of `freshness.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Ok => "ok",
            Standing::Late => "late",
            Standing::Missing => "missing",
        }
    }
}

impl std::fmt::Display for Standing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl From<Standing> for stmon_models::runs::RowStatus {
    fn from(s: Standing) -> Self {
        use stmon_models::runs::RowStatus;
        match s {
            Standing::Ok => RowStatus::Ok,
            Standing::Late => RowStatus::Late,
            Standing::Missing => RowStatus::Missing,
        }
    }
}

impl Row {
    pub fn is_late(&self) -> bool {
        self.status != Standing::Ok
    }
}

/// The last day of a period string (`YYYY-MM`, `YYYY-Qn`, `YYYY`).
pub fn period_end(p: &str) -> Option<NaiveDate> {
    let year: i32 = p.get(0..4)?.parse().ok()?;
    let last_month = match p.get(4..) {
        Some("") => 12,
        Some(rest) if rest.starts_with("-Q") => rest[2..].parse::<u32>().ok()? * 3,
        Some(rest) if rest.starts_with('-') => rest[1..].parse().ok()?,
        _ => return None,
    };
    let first_next = if last_month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(year, last_month + 1, 1)?
    };
    first_next.pred_opt()
}

fn period_of(freq: Frequency, year: i32, index: u32) -> String {
    match freq {
        Frequency::Monthly => format!("{year}-{index:02}"),
        Frequency::Quarterly => format!("{year}-Q{index}"),
        _ => format!("{year}"),
    }
}

/// The period after `p`.
pub fn next_period(freq: Frequency, p: &str) -> Option<String> {
    let year: i32 = p.get(0..4)?.parse().ok()?;
    Some(match freq {
        Frequency::Monthly => {
            let m: u32 = p.get(5..)?.parse().ok()?;
            if m == 12 {
                period_of(freq, year + 1, 1)
            } else {
                period_of(freq, year, m + 1)
            }
        }
        Frequency::Quarterly => {
            let q: u32 = p.get(6..)?.parse().ok()?;
            if q == 4 {
                period_of(freq, year + 1, 1)
            } else {
                period_of(freq, year, q + 1)
            }
        }
        _ => period_of(freq, year + 1, 1),
    })
}

/// The latest period due on `day`: the latest whose end + `due_days` ≤ `day`.
pub fn latest_due(freq: Frequency, due_days: i64, day: NaiveDate) -> Option<String> {
    let mut year = day.year();
    let mut idx = match freq {
        Frequency::Monthly => day.month(),
        Frequency::Quarterly => day.month().div_ceil(3),
        _ => 1,
    };
    let per_year = match freq {
        Frequency::Monthly => 12,
        Frequency::Quarterly => 4,
        _ => 1,
    };
    for _ in 0..(per_year * 3 + 2) {
        let p = period_of(freq, year, idx);
        if period_end(&p)? + chrono::Duration::days(due_days) <= day {
            return Some(p);
        }
        if idx == 1 {
            year -= 1;
            idx = per_year;
        } else {
            idx -= 1;
        }
    }
    None
}

/// A county's latest period, `submitted_at` and arrival.
type Latest = (Option<String>, Option<String>, Option<String>);

/// Every county × rule, against the reference `day`.
pub async fn check(
    ctx: &SessionContext,
    catalog: &Catalog,
    rules: &[FreshnessRule],
    day: NaiveDate,
) -> Result<Vec<Row>> {
    let counties: Vec<(String, String)> = catalog
        .divisions
        .counties()
        .map(|d| (d.code.clone(), d.name.clone()))
        .collect();
    let mut out = Vec::new();
    for rule in rules {
        let Some(form) = catalog.forms.get(&rule.form) else {
            continue;
        };
        let periodic = form.frequency != Frequency::Event;
        let has_period = form.columns.iter().any(|c| c.name == "period");
        let period = if periodic && has_period {
            "max(period)"
        } else {
            "cast(null as varchar)"
        };
        let batches = ctx
            .sql(&format!(
                "select county_code, {period}, \
                 cast(max(submitted_at) as varchar), cast(max(_ingested_at) as varchar) \
                 from raw.{} group by county_code",
                rule.form
            ))
            .await?
            .collect()
            .await?;
        let mut seen: std::collections::BTreeMap<String, Latest> = Default::default();
        for b in &batches {
            let (c, p, s, a) = (
                text_column(b, 0)?,
                text_column(b, 1)?,
                text_column(b, 2)?,
                text_column(b, 3)?,
            );
            use arrow::array::Array;
            let get = |x: &arrow::array::StringArray, i: usize| {
                (!x.is_null(i)).then(|| x.value(i).to_string())
            };
            for i in 0..b.num_rows() {
                if let Some(code) = get(&c, i) {
                    seen.insert(code, (get(&p, i), get(&s, i), get(&a, i)));
                }
            }
        }
        let expected = if periodic {
            latest_due(form.frequency, rule.due_days.unwrap_or(0), day)
        } else {
            None
        };
        for (code, name) in &counties {
            let (latest_period, latest_submitted_at, arrived_at) =
                seen.get(code).cloned().unwrap_or((None, None, None));
            let mut row = Row {
                form: rule.form.clone(),
                county_code: code.clone(),
                county_name: name.clone(),
                latest_period,
                latest_submitted_at,
                arrived_at,
                expected_period: expected.clone(),
                status: Standing::Ok,
                days_overdue: None,
                severity: rule.severity,
            };
            if row.latest_submitted_at.is_none() {
                row.status = Standing::Missing;
            } else if periodic {
                if let (Some(exp), Some(latest)) = (&expected, &row.latest_period) {
                    if latest < exp {
                        row.status = Standing::Late;
                        row.days_overdue = next_period(form.frequency, latest)
                            .and_then(|n| period_end(&n))
                            .map(|end| (day - end).num_days() - rule.due_days.unwrap_or(0));
                    }
                }
            } else if let Some(max_age) = rule.max_age_days {
                let last = row
                    .latest_submitted_at
                    .as_deref()
                    .and_then(|s| s.get(0..10))
                    .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok());
                if let Some(last) = last {
                    let age = (day - last).num_days();
                    if age > max_age {
                        row.status = Standing::Late;
                        row.days_overdue = Some(age - max_age);
                    }
                }
            }
            out.push(row);
        }
    }
    Ok(out)
}

/// Writes the rows as CSV (UTF-8 with BOM, Chinese and English headers).
pub fn write_csv(rows: &[Row], path: &std::path::Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(crate::io(dir))?;
    }
    let mut s = String::from("\u{feff}");
    s.push_str("报表 form,区县代码 county_code,区县 county_name,最新报告期 latest_period,最新填报时间 latest_submitted_at,入库时间 arrived_at,应报至 expected_period,状态 status,逾期天数 days_overdue,级别 severity\n");
    for r in rows {
        let f = |x: &Option<String>| x.clone().unwrap_or_default();
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            r.form,
            r.county_code,
            r.county_name,
            f(&r.latest_period),
            f(&r.latest_submitted_at),
            f(&r.arrived_at),
            f(&r.expected_period),
            r.status,
            r.days_overdue.map(|d| d.to_string()).unwrap_or_default(),
            r.severity.as_str()
        ));
    }
    std::fs::write(path, s).map_err(crate::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn periods_end_and_fall_due() {
        assert_eq!(period_end("2023-02"), Some(d("2023-02-28")));
        assert_eq!(period_end("2023-Q4"), Some(d("2023-12-31")));
        assert_eq!(period_end("2024"), Some(d("2024-12-31")));
        // Monthly, due 15 days after the month: on 15 Jan 2024 December is
        // due (31 Dec + 15 = 15 Jan); on 14 Jan only November.
        assert_eq!(
            latest_due(Frequency::Monthly, 15, d("2024-01-15")).as_deref(),
            Some("2023-12")
        );
        assert_eq!(
            latest_due(Frequency::Monthly, 15, d("2024-01-14")).as_deref(),
            Some("2023-11")
        );
        // Quarterly, due 20 days after: on 31 Jan 2024 Q4 2023 is due.
        assert_eq!(
            latest_due(Frequency::Quarterly, 20, d("2024-01-31")).as_deref(),
            Some("2023-Q4")
        );
        assert_eq!(
            latest_due(Frequency::Quarterly, 20, d("2024-01-19")).as_deref(),
            Some("2023-Q3")
        );
        // Annual, due 90 days after: on 31 Jan 2024 the year 2022.
        assert_eq!(
            latest_due(Frequency::Annual, 90, d("2024-01-31")).as_deref(),
            Some("2022")
        );
        assert_eq!(
            next_period(Frequency::Monthly, "2023-12").as_deref(),
            Some("2024-01")
        );
        assert_eq!(
            next_period(Frequency::Quarterly, "2023-Q2").as_deref(),
            Some("2023-Q3")
        );
    }
}
