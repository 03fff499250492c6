//! Plausibility rules (审核规则): what the review of a form checks, declared
//! in the form's YAML under `review:`. Rust knows the *kinds* of rule; each
//! rule, its columns and its parameters are data, so a new rule is a YAML
//! change.
//!
//! ```yaml
//! review:
//!   division: county_code          # whose total a query's score is a share of
//!   rules:
//!     - {id: rd_le_revenue, kind: ratio, column: rd_expenditure, over: revenue, max: 1}
//!     - {id: rd_history, kind: history, column: rd_expenditure, factor: 5}
//!     - {id: rd_increment, kind: increment, column: rd_expenditure, factor: 5, min_share: 0.25}
//!     - {id: rd_peers, kind: peer, column: rd_expenditure, over: revenue,
//!        group_by: [industry_code, above_scale]}
//! ```

use serde::Deserialize;

/// A form's `review:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Review {
    /// The division column whose total of the queried column (same period)
    /// a query's score is a share of. None: the score is the deviation as a
    /// share of the unit's own expected value (forms whose units are
    /// themselves ranked or published: zones, institutes, counties).
    #[serde(default)]
    pub division: Option<String>,
    /// A query whose score reaches this is *high* (it may move a published
    /// figure): a night that opens one ends with exit 1. Default 0.01 (1 %
    /// of the division's total).
    #[serde(default = "default_high_score")]
    pub high_score: f64,
    pub rules: Vec<ReviewRule>,
}

fn default_high_score() -> f64 {
    0.01
}

/// One rule: an id (stable: queries and answers name it), a kind and its
/// parameters.
#[derive(Debug, Clone, Deserialize)]
pub struct ReviewRule {
    pub id: String,
    /// The column whose value is queried.
    pub column: String,
    #[serde(flatten)]
    pub kind: RuleKind,
    /// What the query list tells the office to check (Chinese), shown with
    /// each query of this rule.
    #[serde(default)]
    pub advice: Option<String>,
}

/// The kinds of rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleKind {
    /// Within a row: `column / over` must lie in `[min, max]`, widened by
    /// `tolerance` (a fraction of the bound). Rows where `over` is blank or
    /// zero are not judged.
    Ratio {
        over: String,
        #[serde(default)]
        min: Option<f64>,
        #[serde(default)]
        max: Option<f64>,
        #[serde(default)]
        tolerance: f64,
    },
    /// Against the unit's own history: the value against the same period
    /// last year (times the unit's own growth over its other periods) and,
    /// where last year has no report, against the unit's other periods this
    /// year at their pace. A value off by `factor` or more either way is
    /// queried; a single period that jumps and returns to normal the period
    /// after is told apart from a step that persists.
    History {
        #[serde(default = "default_factor")]
        factor: f64,
    },
    /// Year-to-date forms: the period's increment (this period's value less
    /// the last unqueried earlier one) against the unit's usual increment
    /// (the same period's increment last year times the unit's growth, else
    /// the median of its other increments this year). Queried when it is
    /// more than `factor` times the usual one and the excess is at least
    /// `min_share` of the unit's expected year total, or when the value
    /// falls by `min_share` of that total.
    Increment {
        #[serde(default = "default_factor")]
        factor: f64,
        #[serde(default = "default_min_share")]
        min_share: f64,
    },
    /// Against peers: the ratio `column / over` against the units of the
    /// same `group_by` values in the same period, by the Hidiroglou–
    /// Berthelot edit (see [`Hb`]). Groups of fewer than `min_units`
    /// units are not judged.
    Peer {
        over: String,
        group_by: Vec<String>,
        #[serde(default = "default_min_units")]
        min_units: usize,
        #[serde(default)]
        hb: Hb,
    },
}

fn default_factor() -> f64 {
    5.0
}
fn default_min_share() -> f64 {
    0.25
}
fn default_min_units() -> usize {
    20
}

/// Parameters of the Hidiroglou–Berthelot edit (1986), as in Statistics
/// Canada's Banff and R's `univOutl::HBmethod`: ratios are centred on the
/// group's median `r_M` (`s = 1 - r_M/r` below it, `r/r_M - 1` above),
/// weighted by size (`E = s · max(x, y)^u`), and a unit is queried when
/// `E` lies outside `[E_M - c·d_Q1, E_M + c·d_Q3]` with
/// `d_Q1 = max(E_M - E_Q1, |a·E_M|)`, `d_Q3 = max(E_Q3 - E_M, |a·E_M|)`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hb {
    #[serde(default = "hb_u")]
    pub u: f64,
    #[serde(default = "hb_a")]
    pub a: f64,
    #[serde(default = "hb_c")]
    pub c: f64,
}

fn hb_u() -> f64 {
    0.5
}
fn hb_a() -> f64 {
    0.05
}
fn hb_c() -> f64 {
    4.0
}

impl Default for Hb {
    fn default() -> Self {
        Hb {
            u: hb_u(),
            a: hb_a(),
            c: hb_c(),
        }
    }
}

impl RuleKind {
    /// The stored spelling of the kind.
    pub fn as_str(&self) -> &'static str {
        match self {
            RuleKind::Ratio { .. } => "ratio",
            RuleKind::History { .. } => "history",
            RuleKind::Increment { .. } => "increment",
            RuleKind::Peer { .. } => "peer",
        }
    }

    /// The other columns the rule reads.
    pub fn columns(&self) -> Vec<&str> {
        match self {
            RuleKind::Ratio { over, .. } => vec![over],
            RuleKind::Peer { over, group_by, .. } => std::iter::once(over.as_str())
                .chain(group_by.iter().map(String::as_str))
                .collect(),
            RuleKind::History { .. } | RuleKind::Increment { .. } => vec![],
        }
    }
}
