//! Assessment schemes: YAML under `pipelines/`, validated on load.
//!
//! ```yaml
//! name: county-2023
//! title: 2023年度区、县(市)科技进步目标责任制考核
//! unit: county                 # county | zone | institute
//! year: 2023
//! aggregation: arithmetic      # or geometric
//! missing: redistribute        # or zero
//! precision: 2                 # decimals of the total that ranks compare
//! targets: targets-2023.yaml   # target_ratio targets per unit (relative to this file)
//! group_by: zone_level         # zones: ranked within their level
//! grades: [{grade: A, min: 85}, {grade: B, min: 70}, {grade: C, min: 60}, {grade: D, min: 0}]
//! monte_carlo: {runs: 1000, seed: 2023, weight_jitter: 0.25, normalisations: [min_max, rank]}
//! indicators:
//!   - {id: rd_intensity, weight: 20, direction: higher, normalisation: target_ratio, cap: 1.2}
//!   - {id: tech_transaction_volume, weight: 10, normalisation: goalposts, lower: 0, upper: 400000}
//!   - {id: basic_research_growth, weight: 10, normalisation: z_score, center: 60, spread: 15}
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    County,
    Zone,
    Institute,
}

impl UnitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitKind::County => "county",
            UnitKind::Zone => "zone",
            UnitKind::Institute => "institute",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    #[default]
    Arithmetic,
    Geometric,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// A missing value scores 0.
    #[default]
    Zero,
    /// A missing value's weight is spread over the unit's other indicators.
    Redistribute,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Higher,
    Lower,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    TargetRatio,
    Goalposts,
    MinMax,
    ZScore,
    Rank,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::TargetRatio => "target_ratio",
            Method::Goalposts => "goalposts",
            Method::MinMax => "min_max",
            Method::ZScore => "z_score",
            Method::Rank => "rank",
        }
    }
    /// Methods that need no parameters (usable as Monte Carlo alternatives).
    pub fn parameter_free(self) -> bool {
        matches!(self, Method::MinMax | Method::ZScore | Method::Rank)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndicatorSpec {
    pub id: String,
    #[serde(default)]
    pub label: Option<String>,
    pub weight: f64,
    #[serde(default)]
    pub direction: Direction,
    pub normalisation: Method,
    /// target_ratio: the score's ceiling as a ratio (1.0 national monitoring, 1.2 counties).
    #[serde(default)]
    pub cap: Option<f64>,
    /// target_ratio: one target for every unit (else the scheme's targets file).
    #[serde(default)]
    pub target: Option<f64>,
    /// goalposts: the bounds.
    #[serde(default)]
    pub lower: Option<f64>,
    #[serde(default)]
    pub upper: Option<f64>,
    /// z_score: score = clamp(center + spread × z, 0, 100).
    #[serde(default)]
    pub center: Option<f64>,
    #[serde(default)]
    pub spread: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grade {
    pub grade: String,
    /// Lowest rounded total that earns the grade.
    pub min: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonteCarlo {
    #[serde(default = "default_runs")]
    pub runs: usize,
    pub seed: u64,
    /// Each weight is multiplied by 1 + U(−j, j), then all are renormalised.
    #[serde(default = "default_jitter")]
    pub weight_jitter: f64,
    /// Alternative normalisations: each run uses the scheme's own or one of
    /// these for every indicator, chosen uniformly.
    #[serde(default)]
    pub normalisations: Vec<Method>,
}

fn default_runs() -> usize {
    1000
}
fn default_jitter() -> f64 {
    0.25
}
fn default_precision() -> u32 {
    2
}
fn default_month() -> u32 {
    12
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scheme {
    pub name: String,
    #[serde(default)]
    pub title: Option<String>,
    pub unit: UnitKind,
    pub year: i32,
    #[serde(default = "default_month")]
    pub as_of_month: u32,
    #[serde(default)]
    pub aggregation: Aggregation,
    #[serde(default)]
    pub missing: Missing,
    #[serde(default = "default_precision")]
    pub precision: u32,
    /// Targets YAML (as `stmon progress` reads) for target_ratio, relative to the scheme.
    #[serde(default)]
    pub targets: Option<PathBuf>,
    /// Rank within groups of this attribute (zones: `zone_level`).
    #[serde(default)]
    pub group_by: Option<String>,
    #[serde(default)]
    pub grades: Vec<Grade>,
    #[serde(default)]
    pub monte_carlo: Option<MonteCarlo>,
    pub indicators: Vec<IndicatorSpec>,
    /// sha256 of the file's bytes (set by [`Scheme::load`]).
    #[serde(skip)]
    pub hash: String,
    /// Targets per indicator and unit, read from `targets` (set by [`Scheme::load`]).
    #[serde(skip)]
    pub unit_targets: BTreeMap<String, BTreeMap<String, f64>>,
}

/// Indicators a unit kind can be assessed on, with whether the indicator can
/// be zero or negative (a geometric mean over such an indicator is refused).
pub fn known_indicators(unit: UnitKind) -> &'static [(&'static str, bool)] {
    match unit {
        UnitKind::County => &[
            ("rd_intensity", false),
            ("industrial_rd_ratio", false),
            ("high_tech_va_share", false),
            ("high_tech_investment_growth", true),
            ("new_high_tech_enterprises", true),
            ("new_tech_smes", true),
            ("tech_transaction_volume", true),
            ("basic_research_growth", true),
            ("high_tech_enterprise_share_change", true),
            ("corridor_key_project_investment", true),
            ("sci_tech_finance", true),
            ("new_provincial_enterprise_research_institutes", true),
            ("new_provincial_high_tech_rd_centers", true),
            ("innovation_consortia", true),
            ("talent_teams", true),
            ("key_tech_projects", true),
            ("import_substitutions", true),
            ("incubators", true),
            ("tech_commissioners", true),
            ("agricultural_enterprise_research_institutes", true),
            ("star_innovation_bases", true),
        ],
        UnitKind::Zone => &[
            ("value_added_per_mu", false),
            ("tax_per_mu", false),
            ("energy_per_value_added", false),
            ("rd_intensity", true),
            ("high_tech_enterprise_growth", true),
        ],
        UnitKind::Institute => &[
            ("rd_output_rate", true),
            ("transfer_rate", true),
            ("landing_rate", true),
            ("horizontal_income", true),
        ],
    }
}

#[derive(Deserialize)]
struct TargetsFile {
    year: i32,
    indicators: BTreeMap<String, TargetEntry>,
}

#[derive(Deserialize)]
struct TargetEntry {
    targets: BTreeMap<String, f64>,
}

impl Scheme {
    pub fn load(path: &Path) -> Result<Scheme> {
        let bad = |message: String| Error::Scheme {
            path: path.display().to_string(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let mut s: Scheme = serde_yaml_ng::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        s.hash = hex::encode(Sha256::digest(&bytes));
        if let Some(t) = &s.targets {
            let tp = path.parent().unwrap_or(Path::new(".")).join(t);
            let text = std::fs::read_to_string(&tp)
                .map_err(|e| bad(format!("targets {}: {e}", tp.display())))?;
            let tf: TargetsFile = serde_yaml_ng::from_str(&text)
                .map_err(|e| bad(format!("targets {}: {e}", tp.display())))?;
            if tf.year != s.year {
                return Err(bad(format!(
                    "targets {} are for {}, the scheme for {}",
                    tp.display(),
                    tf.year,
                    s.year
                )));
            }
            s.unit_targets = tf
                .indicators
                .into_iter()
                .map(|(k, v)| (k, v.targets))
                .collect();
            // The targets' bytes are part of what the scheme means.
            let mut h = Sha256::new();
            h.update(&bytes);
            h.update(text.as_bytes());
            s.hash = hex::encode(h.finalize());
        }
        s.validate().map_err(bad)?;
        Ok(s)
    }

    /// Every mistake at once, one per line.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let mut errs = Vec::new();
        let known = known_indicators(self.unit);
        if self.indicators.is_empty() {
            errs.push("no indicators".to_string());
        }
        if !(1..=12).contains(&self.as_of_month) {
            errs.push(format!("as_of_month {} is not 1..12", self.as_of_month));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, ind) in self.indicators.iter().enumerate() {
            let at = format!("indicators[{i}] ({})", ind.id);
            if !seen.insert(ind.id.clone()) {
                errs.push(format!("{at}: listed twice"));
            }
            let Some((_, can_be_zero)) = known.iter().find(|(k, _)| *k == ind.id) else {
                errs.push(format!(
                    "{at}: unknown indicator for {} units (known: {})",
                    self.unit.as_str(),
                    known.iter().map(|k| k.0).collect::<Vec<_>>().join(", ")
                ));
                continue;
            };
            if !(ind.weight.is_finite() && ind.weight > 0.0) {
                errs.push(format!("{at}: weight {} must be positive", ind.weight));
            }
            match ind.normalisation {
                Method::TargetRatio => {
                    match ind.cap {
                        Some(c) if c.is_finite() && c > 0.0 => {}
                        Some(c) => errs.push(format!("{at}: cap {c} must be positive")),
                        None => {
                            errs.push(format!("{at}: target_ratio needs a cap (1.0 or e.g. 1.2)"))
                        }
                    }
                    match ind.target {
                        Some(t) if !(t.is_finite() && t > 0.0) => {
                            errs.push(format!("{at}: target {t} must be positive"))
                        }
                        Some(_) => {}
                        None => match self.unit_targets.get(&ind.id) {
                            None => errs.push(format!(
                                "{at}: target_ratio needs a target: `target:` here or the indicator in the scheme's targets file"
                            )),
                            Some(m) => {
                                for (u, t) in m {
                                    if !(t.is_finite() && *t > 0.0) {
                                        errs.push(format!("{at}: target {t} for {u} must be positive"));
                                    }
                                }
                            }
                        },
                    }
                }
                Method::Goalposts => match (ind.lower, ind.upper) {
                    (Some(l), Some(u)) if l < u => {}
                    (Some(l), Some(u)) => errs.push(format!(
                        "{at}: goalposts need lower < upper, got {l} and {u}"
                    )),
                    _ => errs.push(format!("{at}: goalposts need lower and upper bounds")),
                },
                Method::ZScore => {
                    if ind.spread.is_some_and(|s| s.is_nan() || s <= 0.0) {
                        errs.push(format!("{at}: spread must be positive"));
                    }
                }
                Method::MinMax | Method::Rank => {}
            }
            if self.aggregation == Aggregation::Geometric {
                if *can_be_zero {
                    errs.push(format!(
                        "{at}: a geometric mean over {} is refused: the indicator can be zero or negative",
                        ind.id
                    ));
                } else if matches!(
                    ind.normalisation,
                    Method::MinMax | Method::Rank | Method::Goalposts
                ) {
                    errs.push(format!(
                        "{at}: a geometric mean over {} scores is refused: they reach 0 by construction",
                        ind.normalisation.as_str()
                    ));
                }
            }
        }
        if let Some(mc) = &self.monte_carlo {
            if mc.runs == 0 {
                errs.push("monte_carlo.runs must be positive".into());
            }
            if !(0.0..1.0).contains(&mc.weight_jitter) {
                errs.push(format!(
                    "monte_carlo.weight_jitter {} must be in [0, 1)",
                    mc.weight_jitter
                ));
            }
            for m in &mc.normalisations {
                if !m.parameter_free() {
                    errs.push(format!(
                        "monte_carlo.normalisations: {} needs parameters; use min_max, z_score or rank",
                        m.as_str()
                    ));
                }
            }
        }
        let mut last = f64::INFINITY;
        for g in &self.grades {
            if g.min >= last {
                errs.push("grades must be listed from the highest cut-off down".into());
            }
            last = g.min;
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs.join("\n"))
        }
    }

    /// The target of an indicator for a unit (target_ratio).
    pub fn target(&self, ind: &IndicatorSpec, unit: &str) -> Option<f64> {
        ind.target.or_else(|| {
            self.unit_targets
                .get(&ind.id)
                .and_then(|m| m.get(unit).copied())
        })
    }
}
