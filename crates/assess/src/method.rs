//! The method of `assessment.md`: normalise, aggregate, rank.

use crate::scheme::{Aggregation, Direction, IndicatorSpec, Method, Missing, Scheme};

/// One unit to assess: its id, name, group (zones: their level) and one value
/// per scheme indicator, in the scheme's order (None = missing).
#[derive(Debug, Clone)]
pub struct UnitInput {
    pub id: String,
    pub name: String,
    pub group: Option<String>,
    pub values: Vec<Option<f64>>,
}

/// What happened to one cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Scored,
    /// Missing, scored 0 (policy `zero`).
    MissingZero,
    /// Missing, its weight spread over the unit's other indicators.
    MissingRedistributed,
    /// target_ratio without a target for this unit: treated as missing.
    NoTarget,
}

impl Cell {
    pub fn note(&self) -> &'static str {
        match self {
            Cell::Scored => "",
            Cell::MissingZero => "missing: scored 0",
            Cell::MissingRedistributed => "missing: weight redistributed",
            Cell::NoTarget => "no target: treated as missing",
        }
    }

    /// The note as the committee's tables say it (备注).
    pub fn note_zh(&self) -> &'static str {
        match self {
            Cell::Scored => "",
            Cell::MissingZero => "缺数，计0分",
            Cell::MissingRedistributed => "缺数，权重按比例分给其余指标",
            Cell::NoTarget => "无目标值，按缺数处理",
        }
    }
}

#[derive(Debug, Clone)]
pub struct UnitResult {
    pub id: String,
    pub name: String,
    pub group: Option<String>,
    pub values: Vec<Option<f64>>,
    /// Normalised scores 0..100 (None where the weight was redistributed).
    pub scores: Vec<Option<f64>>,
    /// Effective weights after redistribution (sum 1).
    pub weights: Vec<f64>,
    /// weight × score (arithmetic: they sum to the total).
    pub contributions: Vec<f64>,
    pub cells: Vec<Cell>,
    pub total: f64,
    /// The total rounded to the scheme's precision: what ranks compare.
    pub total_rounded: f64,
    /// Standard competition rank within the unit's group.
    pub rank: usize,
    pub grade: Option<String>,
    /// Indicator ids where the unit gains and loses most against the others.
    pub strongest: Option<String>,
    pub weakest: Option<String>,
}

pub fn round_to(x: f64, precision: u32) -> f64 {
    let f = 10f64.powi(precision as i32);
    (x * f).round() / f
}

/// Scores 0..100 of one indicator over the units (None = missing / no target).
pub fn normalise(
    method: Method,
    ind: &IndicatorSpec,
    values: &[Option<f64>],
    targets: &[Option<f64>],
) -> Vec<Option<f64>> {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    let higher = ind.direction == Direction::Higher;
    let n = present.len();
    let (min, max) = present
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let mean = present.iter().sum::<f64>() / n.max(1) as f64;
    // Sample standard deviation (n − 1), as R's sd() and the JRC tools.
    let sd = if n > 1 {
        (present.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    values
        .iter()
        .zip(targets)
        .map(|(v, t)| {
            let x = (*v)?;
            let s = match method {
                Method::TargetRatio => {
                    let t = (*t)?;
                    let cap = ind.cap.unwrap_or(1.0);
                    let ratio = if higher {
                        x / t
                    } else if x <= 0.0 {
                        cap
                    } else {
                        t / x
                    };
                    ratio.clamp(0.0, cap) * 100.0
                }
                Method::Goalposts => {
                    let (l, u) = (ind.lower.unwrap_or(0.0), ind.upper.unwrap_or(1.0));
                    let r = if higher {
                        (x - l) / (u - l)
                    } else {
                        (u - x) / (u - l)
                    };
                    r.clamp(0.0, 1.0) * 100.0
                }
                Method::MinMax => {
                    if max - min == 0.0 {
                        100.0
                    } else if higher {
                        (x - min) / (max - min) * 100.0
                    } else {
                        (max - x) / (max - min) * 100.0
                    }
                }
                Method::ZScore => {
                    let z = if sd == 0.0 { 0.0 } else { (x - mean) / sd };
                    let z = if higher { z } else { -z };
                    let (c, s) = (ind.center.unwrap_or(50.0), ind.spread.unwrap_or(10.0));
                    (c + s * z).clamp(0.0, 100.0)
                }
                Method::Rank => {
                    // Competition rank (1 = best), mapped to 100 (best) … 0 (worst).
                    let better = present
                        .iter()
                        .filter(|&&y| if higher { y > x } else { y < x })
                        .count();
                    if n <= 1 {
                        100.0
                    } else {
                        (n - 1 - better) as f64 / (n - 1) as f64 * 100.0
                    }
                }
            };
            Some(s)
        })
        .collect()
}

/// Standard competition ranking (1, 2, 2, 4) of rounded totals, descending.
pub fn competition_ranks(totals: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..totals.len()).collect();
    order.sort_by(|&a, &b| totals[b].total_cmp(&totals[a]));
    let mut ranks = vec![0; totals.len()];
    for (pos, &u) in order.iter().enumerate() {
        ranks[u] = if pos > 0 && totals[order[pos - 1]] == totals[u] {
            ranks[order[pos - 1]]
        } else {
            pos + 1
        };
    }
    ranks
}

/// Totals of all units for given weights and per-indicator scores
/// (`scores[i][u]`), with the scheme's missing policy and aggregation.
pub fn totals(
    scheme: &Scheme,
    weights: &[f64],
    scores: &[Vec<Option<f64>>],
    units: usize,
) -> Vec<(f64, Vec<f64>, Vec<Cell>)> {
    (0..units)
        .map(|u| {
            let mut cells = Vec::with_capacity(weights.len());
            let mut w: Vec<f64> = Vec::with_capacity(weights.len());
            let mut s: Vec<f64> = Vec::with_capacity(weights.len());
            for (i, wi) in weights.iter().enumerate() {
                match scores[i][u] {
                    Some(x) => {
                        cells.push(Cell::Scored);
                        w.push(*wi);
                        s.push(x);
                    }
                    None => match scheme.missing {
                        Missing::Zero => {
                            cells.push(Cell::MissingZero);
                            w.push(*wi);
                            s.push(0.0);
                        }
                        Missing::Redistribute => {
                            cells.push(Cell::MissingRedistributed);
                            w.push(0.0);
                            s.push(0.0);
                        }
                    },
                }
            }
            let sum: f64 = w.iter().sum();
            let w: Vec<f64> = if sum > 0.0 {
                w.iter().map(|x| x / sum).collect()
            } else {
                w
            };
            let total = match scheme.aggregation {
                Aggregation::Arithmetic => w.iter().zip(&s).map(|(a, b)| a * b).sum(),
                Aggregation::Geometric => {
                    if sum == 0.0 {
                        0.0
                    } else {
                        w.iter()
                            .zip(&s)
                            .filter(|(a, _)| **a > 0.0)
                            .map(|(a, b)| b.powf(*a))
                            .product()
                    }
                }
            };
            (total, w, cells)
        })
        .collect()
}

/// Targets per indicator and unit (target_ratio only; None elsewhere).
pub fn targets_of(scheme: &Scheme, units: &[UnitInput]) -> Vec<Vec<Option<f64>>> {
    scheme
        .indicators
        .iter()
        .map(|ind| units.iter().map(|u| scheme.target(ind, &u.id)).collect())
        .collect()
}

/// Scores per indicator (`[i][u]`) with each indicator's own method, or with
/// `method` for all when given; ranks within groups use only the group's units.
pub fn scores_with(
    scheme: &Scheme,
    units: &[UnitInput],
    targets: &[Vec<Option<f64>>],
    method: Option<Method>,
) -> Vec<Vec<Option<f64>>> {
    let groups = group_indices(units);
    scheme
        .indicators
        .iter()
        .enumerate()
        .map(|(i, ind)| {
            let mut out = vec![None; units.len()];
            for members in &groups {
                let vals: Vec<Option<f64>> = members.iter().map(|&u| units[u].values[i]).collect();
                let tg: Vec<Option<f64>> = members.iter().map(|&u| targets[i][u]).collect();
                let s = normalise(method.unwrap_or(ind.normalisation), ind, &vals, &tg);
                for (k, &u) in members.iter().enumerate() {
                    out[u] = s[k];
                }
            }
            out
        })
        .collect()
}

/// Unit indices per group (one group when the scheme has none), in input order.
pub fn group_indices(units: &[UnitInput]) -> Vec<Vec<usize>> {
    let mut keys: Vec<Option<String>> = Vec::new();
    let mut out: Vec<Vec<usize>> = Vec::new();
    for (u, unit) in units.iter().enumerate() {
        match keys.iter().position(|k| *k == unit.group) {
            Some(g) => out[g].push(u),
            None => {
                keys.push(unit.group.clone());
                out.push(vec![u]);
            }
        }
    }
    out
}

/// Ranks within groups of the rounded totals.
pub fn ranks_in_groups(units: &[UnitInput], rounded: &[f64]) -> Vec<usize> {
    let mut ranks = vec![0; units.len()];
    for members in group_indices(units) {
        let t: Vec<f64> = members.iter().map(|&u| rounded[u]).collect();
        for (k, r) in competition_ranks(&t).into_iter().enumerate() {
            ranks[members[k]] = r;
        }
    }
    ranks
}

/// The whole assessment of `units` under `scheme`.
pub fn assess(scheme: &Scheme, units: &[UnitInput]) -> Vec<UnitResult> {
    let targets = targets_of(scheme, units);
    let scores = scores_with(scheme, units, &targets, None);
    let weights: Vec<f64> = scheme.indicators.iter().map(|i| i.weight).collect();
    let agg = totals(scheme, &weights, &scores, units.len());
    let rounded: Vec<f64> = agg
        .iter()
        .map(|(t, _, _)| round_to(*t, scheme.precision))
        .collect();
    let ranks = ranks_in_groups(units, &rounded);
    let groups = group_indices(units);
    // Mean weighted score per indicator within each group: the yardstick of
    // "where a unit gains and loses most against the others".
    let mut results: Vec<UnitResult> = Vec::with_capacity(units.len());
    for (u, unit) in units.iter().enumerate() {
        let (total, w, mut cells) = agg[u].clone();
        for (i, c) in cells.iter_mut().enumerate() {
            if scheme.indicators[i].normalisation == Method::TargetRatio
                && targets[i][u].is_none()
                && unit.values[i].is_some()
            {
                *c = Cell::NoTarget;
            }
        }
        let contributions: Vec<f64> = (0..w.len())
            .map(|i| w[i] * scores[i][u].unwrap_or(0.0))
            .collect();
        let members = groups.iter().find(|g| g.contains(&u)).expect("in a group");
        let base_w: f64 = scheme.indicators.iter().map(|i| i.weight).sum();
        let mut edge: Vec<(f64, usize)> = Vec::new();
        for (i, ind) in scheme.indicators.iter().enumerate() {
            let Some(s) = scores[i][u] else { continue };
            let others: Vec<f64> = members.iter().filter_map(|&v| scores[i][v]).collect();
            let mean = others.iter().sum::<f64>() / others.len().max(1) as f64;
            edge.push(((s - mean) * ind.weight / base_w, i));
        }
        let strongest = edge
            .iter()
            .filter(|e| e.0 > 0.0)
            .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)))
            .map(|e| scheme.indicators[e.1].id.clone());
        let weakest = edge
            .iter()
            .filter(|e| e.0 < 0.0)
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
            .map(|e| scheme.indicators[e.1].id.clone());
        let grade = scheme
            .grades
            .iter()
            .find(|g| rounded[u] >= g.min)
            .map(|g| g.grade.clone());
        results.push(UnitResult {
            id: unit.id.clone(),
            name: unit.name.clone(),
            group: unit.group.clone(),
            values: unit.values.clone(),
            scores: (0..w.len()).map(|i| scores[i][u]).collect(),
            weights: w,
            contributions,
            cells,
            total,
            total_rounded: rounded[u],
            rank: ranks[u],
            grade,
            strongest,
            weakest,
        });
    }
    results
}
