//! The rules on one unit's values: pure functions, no I/O.
//!
//! A unit's *series* is its values of one column, period by period, this
//! year and last year. Year-to-date forms (monthly, quarterly) have `P`
//! periods a year (12, 4); annual forms one. Each rule returns the periods
//! it queries with the value it expected and the reason.

use crate::reason::Reason;

/// Values of one column of one unit for one year: `values[k-1]` is period
/// `k` (month, quarter; the year itself for annual forms).
#[derive(Debug, Clone, PartialEq)]
pub struct Year {
    pub values: Vec<Option<f64>>,
}

impl Year {
    pub fn new(periods: usize) -> Self {
        Year {
            values: vec![None; periods],
        }
    }

    fn get(&self, k: usize) -> Option<f64> {
        self.values.get(k - 1).copied().flatten()
    }

    /// Reported periods, in order (1-based).
    fn reported(&self) -> impl Iterator<Item = (usize, f64)> + '_ {
        self.values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i + 1, v)))
    }
}

/// A value a rule queries.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The period (1-based) within the year.
    pub period: usize,
    pub reported: f64,
    pub expected: f64,
    /// The acceptable range, where the rule has one.
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub reason: Reason,
}

impl Finding {
    /// A value queried for being off `expected` by `factor` either way.
    fn off_by_factor(
        period: usize,
        reported: f64,
        expected: f64,
        factor: f64,
        reason: Reason,
    ) -> Self {
        Finding {
            period,
            reported,
            expected,
            low: Some(expected / factor),
            high: Some(expected * factor),
            reason,
        }
    }
}

/// Median of a non-empty slice (sorted copy; the mean of the middle two).
pub fn median(xs: &[f64]) -> Option<f64> {
    quantile(xs, 0.5)
}

/// The `p` quantile with linear interpolation between order statistics
/// (type 7, R's default and SQL's `percentile_cont`).
pub fn quantile(xs: &[f64], p: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut s: Vec<f64> = xs.to_vec();
    s.sort_by(f64::total_cmp);
    let h = (s.len() - 1) as f64 * p;
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    Some(s[lo] + (h - lo as f64) * (s[hi] - s[lo]))
}

fn within(ratio: f64, factor: f64) -> bool {
    ratio > 1.0 / factor && ratio < factor
}

/// `ratio`: `value / over` within `[min, max]` widened by `tolerance`.
pub fn ratio(
    value: f64,
    over: f64,
    min: Option<f64>,
    max: Option<f64>,
    tolerance: f64,
) -> Option<(f64, Option<f64>, Option<f64>, Reason)> {
    if over <= 0.0 {
        return None;
    }
    let r = value / over;
    let low = min.map(|m| m * over);
    let high = max.map(|m| m * over);
    if let Some(m) = max {
        if r > m * (1.0 + tolerance) {
            return Some((m * over, low, high, Reason::RatioAbove { ratio: r, max: m }));
        }
    }
    if let Some(m) = min {
        if r < m * (1.0 - tolerance) {
            return Some((m * over, low, high, Reason::RatioBelow { ratio: r, min: m }));
        }
    }
    None
}

/// `history`: each period of `this` against the same period of `last`
/// (times the unit's growth over its other periods within `factor`), and,
/// where last year has no positive value, against the level of the unit's
/// reference run of periods this year at their pace (`value · P / k`).
///
/// Runs: consecutive reported periods whose paced levels stay within
/// `factor` of each other. The reference run is the one holding most of
/// the periods that agree with last year; without such periods, the
/// earliest run of at least two periods (the periods published and
/// reviewed first), else the first. A period outside the reference run is
/// a *spike* when it is alone and the run after it returns to the
/// reference level, else a *step* from the run's first period. Zeros are
/// not judged (an unreported month is no digit slip; the increment rule
/// sees falls).
pub fn history(this: &Year, last: Option<&Year>, factor: f64) -> Vec<Finding> {
    let p = this.values.len();
    let mut out = Vec::new();
    let reported: Vec<(usize, f64)> = this.reported().filter(|(_, v)| *v > 0.0).collect();
    // Growth against last year, for the periods that have it.
    let vs_last: Vec<(usize, f64, f64)> = reported
        .iter()
        .filter_map(|&(k, v)| {
            last.and_then(|l| l.get(k))
                .filter(|ly| *ly > 0.0)
                .map(|ly| (k, v, ly))
        })
        .collect();
    let mut agrees = vec![false; p + 1];
    for &(k, v, ly) in &vs_last {
        let others: Vec<f64> = vs_last
            .iter()
            .filter(|(j, _, _)| *j != k)
            .map(|(_, v, ly)| v / ly)
            .filter(|r| within(*r, factor))
            .collect();
        let growth = median(&others).unwrap_or(1.0);
        let expected = ly * growth;
        let r = v / expected;
        if within(r, factor) {
            agrees[k] = true;
        } else {
            out.push(Finding::off_by_factor(
                k,
                v,
                expected,
                factor,
                Reason::VsLastYear {
                    ratio: r,
                    last_year: ly,
                },
            ));
        }
    }
    // Periods without last year: runs of this year's paced levels.
    let judged: Vec<usize> = vs_last.iter().map(|(k, _, _)| *k).collect();
    if reported.iter().all(|(k, _)| judged.contains(k)) || p == 1 {
        return out;
    }
    let level = |k: usize, v: f64| v * p as f64 / k as f64;
    let mut runs: Vec<Vec<(usize, f64)>> = Vec::new();
    for &(k, v) in &reported {
        match runs.last_mut() {
            Some(run)
                if {
                    let &(j, w) = run.last().expect("runs are not empty");
                    within(level(k, v) / level(j, w), factor)
                } =>
            {
                run.push((k, v))
            }
            _ => runs.push(vec![(k, v)]),
        }
    }
    let agreeing = |run: &Vec<(usize, f64)>| run.iter().filter(|(k, _)| agrees[*k]).count();
    let reference = match (0..runs.len()).max_by_key(|&i| (agreeing(&runs[i]), usize::MAX - i)) {
        Some(i) if agreeing(&runs[i]) > 0 => i,
        _ => (0..runs.len()).find(|&i| runs[i].len() >= 2).unwrap_or(0),
    };
    let ref_levels: Vec<f64> = runs[reference].iter().map(|&(k, v)| level(k, v)).collect();
    let ref_level = median(&ref_levels).expect("a run is not empty");
    for (i, run) in runs.iter().enumerate() {
        let levels: Vec<f64> = run.iter().map(|&(k, v)| level(k, v)).collect();
        if i == reference || within(median(&levels).expect("not empty") / ref_level, factor) {
            continue;
        }
        let back = runs
            .get(i + 1)
            .is_some_and(|next| within(level(next[0].0, next[0].1) / ref_level, factor));
        for &(k, v) in run {
            if judged.contains(&k) {
                continue;
            }
            let expected = ref_level * k as f64 / p as f64;
            let ratio = v / expected;
            let reason = if run.len() == 1 && back {
                Reason::Spike { ratio }
            } else {
                Reason::Step {
                    ratio,
                    since: run[0].0 as u32,
                }
            };
            out.push(Finding::off_by_factor(k, v, expected, factor, reason));
        }
    }
    out.sort_by_key(|f| f.period);
    out
}

/// `increment` (year-to-date forms): each period's increment over the last
/// earlier period not queried by this rule, per period elapsed, against the
/// unit's usual increment per period (the median of its other increments
/// this year and of last year's). Queried when the increment is above
/// `factor` times the usual one and the excess reaches `min_share` of the
/// unit's expected year total (the median of its paced levels, both
/// years), or when the value falls below the base by that share.
pub fn increment(this: &Year, last: Option<&Year>, factor: f64, min_share: f64) -> Vec<Finding> {
    let p = this.values.len();
    let steps = |y: &Year| -> Vec<(usize, f64)> {
        let mut prev = (0usize, 0.0f64);
        let mut out = Vec::new();
        for (k, v) in y.reported() {
            out.push((k, (v - prev.1) / (k - prev.0) as f64));
            prev = (k, v);
        }
        out
    };
    let level = |k: usize, v: f64| v * p as f64 / k as f64;
    let mut levels: Vec<f64> = this.reported().map(|(k, v)| level(k, v)).collect();
    let last_steps = last.map(steps).unwrap_or_default();
    if let Some(l) = last {
        levels.extend(l.reported().map(|(k, v)| level(k, v)));
    }
    let Some(total) = median(&levels).filter(|t| *t > 0.0) else {
        return Vec::new();
    };
    let this_steps = steps(this);
    let margin = min_share * total;
    // The value judged from an earlier one: a rise far above the usual
    // increment, or a fall by the margin.
    let judge = |k: usize, v: f64, from: (usize, f64)| -> Option<Finding> {
        let usual_pool: Vec<f64> = this_steps
            .iter()
            .filter(|(j, _)| *j != k)
            .chain(last_steps.iter())
            .map(|(_, d)| *d)
            .collect();
        let usual = median(&usual_pool).unwrap_or(total / p as f64).max(0.0);
        let elapsed = (k - from.0) as f64;
        let d = (v - from.1) / elapsed;
        let expected = from.1 + usual * elapsed;
        if d > factor * usual && (d - usual) * elapsed >= margin {
            Some(Finding {
                period: k,
                reported: v,
                expected,
                low: None,
                high: Some(from.1 + factor * usual * elapsed),
                reason: Reason::IncrementHigh {
                    increment: d * elapsed,
                    usual: usual * elapsed,
                },
            })
        } else if v < from.1 - margin {
            Some(Finding {
                period: k,
                reported: v,
                expected,
                low: Some(from.1),
                high: None,
                reason: Reason::Fall {
                    previous: from.1,
                    since: from.0 as u32,
                },
            })
        } else {
            None
        }
    };
    let mut out = Vec::new();
    // `base`: the last period not queried; `prev`: the last period. A value
    // is queried when it is out of line with both: a value that continues
    // from a queried one (the queried increment was real, or carried on)
    // is not queried again, and one that returns to the level before a
    // queried one is not queried for the fall back.
    let mut base = (0usize, 0.0f64);
    let mut prev = (0usize, 0.0f64);
    for (k, v) in this.reported() {
        match judge(k, v, base) {
            Some(f) if prev == base || judge(k, v, prev).is_some() => out.push(f),
            _ => base = (k, v),
        }
        prev = (k, v);
    }
    out
}

/// Hidiroglou–Berthelot bounds of one group: the median ratio and the
/// interval of accepted effects.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HbBounds {
    pub median_ratio: f64,
    pub low: f64,
    pub high: f64,
    pub units: usize,
}

/// The HB effect of one unit: centred ratio times size.
pub fn hb_effect(x: f64, y: f64, median_ratio: f64, u: f64) -> Option<f64> {
    if y <= 0.0 || x <= 0.0 || median_ratio <= 0.0 {
        return None;
    }
    let r = x / y;
    let s = if r < median_ratio {
        1.0 - median_ratio / r
    } else {
        r / median_ratio - 1.0
    };
    Some(s * x.max(y).powf(u))
}

/// HB bounds from a group's units `(x, y)` (ratio `x / y`); units with a
/// zero or negative side do not count. None when fewer than `min_units`.
pub fn hb_bounds(
    units: &[(f64, f64)],
    hb: &stmon_schema::review::Hb,
    min_units: usize,
) -> Option<HbBounds> {
    let ratios: Vec<f64> = units
        .iter()
        .filter(|(x, y)| *x > 0.0 && *y > 0.0)
        .map(|(x, y)| x / y)
        .collect();
    if ratios.len() < min_units {
        return None;
    }
    let rm = median(&ratios)?;
    let effects: Vec<f64> = units
        .iter()
        .filter_map(|&(x, y)| hb_effect(x, y, rm, hb.u))
        .collect();
    let (q1, em, q3) = (
        quantile(&effects, 0.25)?,
        quantile(&effects, 0.5)?,
        quantile(&effects, 0.75)?,
    );
    let d1 = (em - q1).max((hb.a * em).abs());
    let d3 = (q3 - em).max((hb.a * em).abs());
    Some(HbBounds {
        median_ratio: rm,
        low: em - hb.c * d1,
        high: em + hb.c * d3,
        units: ratios.len(),
    })
}

/// `peer`: one unit's `(x, y)` against its group's bounds. The expected
/// value is `x` at the group's median ratio (`r_M · y`).
pub fn peer(x: f64, y: f64, b: &HbBounds, u: f64) -> Option<Finding> {
    let e = hb_effect(x, y, b.median_ratio, u)?;
    if e >= b.low && e <= b.high {
        return None;
    }
    Some(Finding {
        period: 0,
        reported: x,
        expected: b.median_ratio * y,
        low: None,
        high: None,
        reason: Reason::Peer {
            ratio: x / y,
            median: b.median_ratio,
            units: b.units as u32,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn year(values: &[f64]) -> Year {
        Year {
            values: values.iter().map(|v| (!v.is_nan()).then_some(*v)).collect(),
        }
    }

    /// A firm spending 10 a month; last year 8 a month.
    fn linear(per: f64, n: usize) -> Vec<f64> {
        (1..=n).map(|k| per * k as f64).collect()
    }

    #[test]
    fn quantiles_interpolate_as_type_7() {
        let xs = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(median(&xs), Some(2.5));
        assert_eq!(quantile(&xs, 0.25), Some(1.75));
        assert_eq!(quantile(&xs, 0.75), Some(3.25));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn ratio_bounds_with_tolerance() {
        // R&D 104 on revenue 100 with 5 % tolerance: accepted; 106 queried.
        assert!(ratio(104.0, 100.0, None, Some(1.0), 0.05).is_none());
        let (expected, low, high, reason) = ratio(106.0, 100.0, None, Some(1.0), 0.05).unwrap();
        assert_eq!((expected, low, high), (100.0, None, Some(100.0)));
        assert_eq!(
            reason,
            Reason::RatioAbove {
                ratio: 1.06,
                max: 1.0
            }
        );
        // Zero revenue is not judged.
        assert!(ratio(5.0, 0.0, None, Some(1.0), 0.0).is_none());
        let (e, ..) = ratio(1.0, 100.0, Some(0.05), None, 0.0).unwrap();
        assert_eq!(e, 5.0);
    }

    #[test]
    fn one_month_in_yuan_is_a_single_query_against_last_year() {
        let last = year(&linear(8.0, 12));
        let mut v = linear(10.0, 12);
        v[4] *= 10_000.0; // May typed in 元
        let f = history(&year(&v), Some(&last), 5.0);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].period, 5);
        // Expected: May last year (40) times the growth of the other
        // months (10/8 = 1.25) = 50.
        assert!((f[0].expected - 50.0).abs() < 1e-9);
        assert!(
            matches!(f[0].reason, Reason::VsLastYear { ratio, .. } if (ratio - 10_000.0).abs() < 1e-6)
        );
    }

    #[test]
    fn yuan_from_august_to_december_queries_every_month_of_it() {
        let last = year(&linear(8.0, 12));
        let mut v = linear(10.0, 12);
        for x in &mut v[7..] {
            *x *= 10_000.0;
        }
        let f = history(&year(&v), Some(&last), 5.0);
        assert_eq!(
            f.iter().map(|f| f.period).collect::<Vec<_>>(),
            [8, 9, 10, 11, 12]
        );
        assert!((f[4].expected - 120.0).abs() < 1e-9);
        // From March: more than half the year is wrong; the growth of the
        // wrong months is out of range, so last year's level is the guide.
        let mut v = linear(10.0, 12);
        for x in &mut v[2..] {
            *x *= 10_000.0;
        }
        let f = history(&year(&v), Some(&last), 5.0);
        assert_eq!(f.len(), 10);
        // December: last year's 96 times the growth of January and February.
        assert!((f[9].expected - 120.0).abs() < 1e-9);
    }

    #[test]
    fn without_last_year_a_spike_and_a_step_are_told_apart() {
        // A new firm: 10 a month, June with an extra digit.
        let mut v = linear(10.0, 12);
        v[5] *= 10.0;
        let f = history(&year(&v), None, 5.0);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].period, 6);
        assert_eq!(f[0].reason, Reason::Spike { ratio: 10.0 });
        assert!((f[0].expected - 60.0).abs() < 1e-9);
        // A dropped digit from October on: a step.
        let mut v = linear(10.0, 12);
        for x in &mut v[9..] {
            *x /= 10.0;
        }
        let f = history(&year(&v), None, 5.0);
        assert_eq!(f.iter().map(|f| f.period).collect::<Vec<_>>(), [10, 11, 12]);
        assert!(matches!(f[0].reason, Reason::Step { since: 10, .. }));
        // January alone in 元: the run of February on is the reference.
        let mut v = linear(10.0, 12);
        v[0] *= 10_000.0;
        let f = history(&year(&v), None, 5.0);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].period, 1);
        assert!((f[0].expected - 10.0).abs() < 1e-9);
    }

    #[test]
    fn ordinary_growth_and_seasonality_are_not_queried() {
        let last = year(&linear(8.0, 12));
        // Growth of 60 %, a December twice the usual month.
        let mut v = linear(12.8, 12);
        v[11] += 12.8;
        assert!(history(&year(&v), Some(&last), 5.0).is_empty());
        assert!(increment(&year(&v), Some(&last), 5.0, 0.25).is_empty());
        // A firm that starts in May (year-to-date from January).
        let mut v = vec![f64::NAN; 4];
        v.extend(linear(10.0, 12).into_iter().skip(4));
        assert!(history(&year(&v), None, 5.0).is_empty());
        assert!(increment(&year(&v), None, 5.0, 0.25).is_empty());
    }

    #[test]
    fn an_increment_far_above_the_usual_and_a_fall() {
        // 10 a month; March's increment is 100 (YTD 120), then back on course.
        let mut v = linear(10.0, 12);
        for x in &mut v[2..] {
            *x += 90.0;
        }
        let f = increment(&year(&v), None, 5.0, 0.25);
        // The usual increment is 10, the year total 120 + ... (median of
        // paced levels); March's excess 90 is above a quarter of it.
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].period, 3);
        assert!((f[0].expected - 30.0).abs() < 1e-9);
        assert!(
            matches!(f[0].reason, Reason::IncrementHigh { increment, usual } if increment == 100.0 && usual == 10.0)
        );
        // A dropped digit in June only: June is a fall; July's increment is
        // measured from May, so July is not queried.
        let mut v = linear(10.0, 12);
        v[5] /= 10.0;
        let f = increment(&year(&v), None, 5.0, 0.25);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].period, 6);
        assert!((f[0].expected - 60.0).abs() < 1e-9);
        assert_eq!(
            f[0].reason,
            Reason::Fall {
                previous: 50.0,
                since: 5
            }
        );
    }

    #[test]
    fn hidiroglou_berthelot_bounds_by_hand() {
        let hb = stmon_schema::review::Hb {
            u: 0.0,
            a: 0.05,
            c: 4.0,
        };
        // Ratios 0.01..0.08 at y = 100 (u = 0: effects are the centred ratios).
        let units: Vec<(f64, f64)> = (1..=8).map(|i| (i as f64, 100.0)).collect();
        let b = hb_bounds(&units, &hb, 4).unwrap();
        // r_M = 0.045; effects: 1 - 4.5/i below, i/4.5 - 1 above.
        assert!((b.median_ratio - 0.045).abs() < 1e-12);
        let e: Vec<f64> = (1..=8)
            .map(|i| {
                let i = i as f64;
                if i < 4.5 {
                    1.0 - 4.5 / i
                } else {
                    i / 4.5 - 1.0
                }
            })
            .collect();
        let (q1, em, q3) = (
            quantile(&e, 0.25).unwrap(),
            quantile(&e, 0.5).unwrap(),
            quantile(&e, 0.75).unwrap(),
        );
        assert!((b.low - (em - 4.0 * (em - q1))).abs() < 1e-12);
        assert!((b.high - (em + 4.0 * (q3 - em))).abs() < 1e-12);
        // A ratio of 0.45 (ten times the median) is far outside; 0.05 is not.
        assert!(peer(45.0, 100.0, &b, 0.0).is_some());
        assert!(peer(5.0, 100.0, &b, 0.0).is_none());
        assert!(hb_bounds(&units, &hb, 9).is_none());
    }
}
