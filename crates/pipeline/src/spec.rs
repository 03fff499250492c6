//! Pipelines: what `stmon run` does, as YAML under `pipelines/`.
//!
//! ```yaml
//! name: shaoxing-2023
//! year: 2023
//! inbox: ../fixtures/shaoxing/submissions   # a folder, or s3://bucket/prefix/
//! steps: [ingest, freshness, review, models, tests, progress, assessment, reports]
//! targets: targets-2023.yaml
//! schemes: [assessment-counties-2023.yaml]
//! reports: ../reports
//! on_test_failure: stop        # or continue
//! review: {on_high_score: fail} # or warn: a new high-score query ends the run with exit 1
//! progress: {as_of: latest}    # or YYYY-MM
//! engine: ballista://10.0.0.5:50050   # where models run; default: local
//! public: true                 # also write the public edition to <reports>/public/
//! ingest: {commit_rows: 400000, check_memory_mb: 512, limits: [row_xml_bytes=16MiB]}
//! freshness:
//!   as_of: today               # or a date: the day lateness is measured on
//!   rules:
//!     - {form: enterprise_rd, due_days: 15, severity: warn}
//!     - {form: tech_contract, max_age_days: 45, severity: fail}
//! ```
//!
//! Relative paths are relative to the pipeline file. Loading checks every
//! field and lists every mistake at once.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{Error, Result};
use stmon_reports::progress::parse_month;

/// A step of a run. [`Step::ALL`] is the order they run in; `as_str` is the
/// name in a pipeline's `steps:` and in the `step` column of `audit/runs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    Ingest,
    Freshness,
    Review,
    Models,
    Tests,
    Progress,
    Assessment,
    Reports,
}

impl Step {
    pub const ALL: [Step; 8] = [
        Step::Ingest,
        Step::Freshness,
        Step::Review,
        Step::Models,
        Step::Tests,
        Step::Progress,
        Step::Assessment,
        Step::Reports,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Ingest => "ingest",
            Step::Freshness => "freshness",
            Step::Review => "review",
            Step::Models => "models",
            Step::Tests => "tests",
            Step::Progress => "progress",
            Step::Assessment => "assessment",
            Step::Reports => "reports",
        }
    }

    /// The step of a name, as written in a pipeline or the run record.
    pub fn parse(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a run does when its review opens a query whose score reaches the
/// form's `high_score` (`review: {on_high_score: …}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnHighScore {
    /// The review step ends data-quality-failed: the run exits 1, like a
    /// failed data test, and the steps after it still run (the default).
    Fail,
    /// The step is ok; the queries are listed all the same.
    Warn,
}

/// `review:` of a pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewRaw {
    #[serde(default)]
    on_high_score: Option<String>,
    /// Memory the review's queries may hold before a sort spills (MiB).
    #[serde(default = "default_review_memory")]
    pub memory_mb: usize,
    /// Memory the judged units' rows may take between the read and the
    /// rules (MiB); beyond it they are read again sorted, spilling.
    #[serde(default = "default_review_rows_memory")]
    pub rows_memory_mb: usize,
}

fn default_review_memory() -> usize {
    512
}

fn default_review_rows_memory() -> usize {
    1024
}

impl Default for ReviewRaw {
    fn default() -> Self {
        ReviewRaw {
            on_high_score: None,
            memory_mb: default_review_memory(),
            rows_memory_mb: default_review_rows_memory(),
        }
    }
}

/// What a pipeline's review step does.
#[derive(Debug, Clone)]
pub struct ReviewOptions {
    pub on_high_score: OnHighScore,
    pub memory_mb: usize,
    pub rows_memory_mb: usize,
}

/// What a run does after a data test fails (`on_test_failure:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnTestFailure {
    /// Skip the steps after `tests` (the default).
    Stop,
    /// Go on to progress, assessment and reports.
    Continue,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: String,
    year: i32,
    #[serde(default)]
    description: Option<String>,
    inbox: String,
    #[serde(default)]
    steps: Option<Vec<String>>,
    #[serde(default)]
    targets: Option<String>,
    #[serde(default)]
    schemes: Vec<String>,
    #[serde(default)]
    reports: Option<String>,
    #[serde(default)]
    on_test_failure: Option<String>,
    #[serde(default)]
    ingest: IngestOptions,
    #[serde(default)]
    progress: ProgressOptions,
    #[serde(default)]
    freshness: Option<FreshnessRaw>,
    #[serde(default)]
    engine: Option<String>,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    review: ReviewRaw,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestOptions {
    #[serde(default = "default_commit_rows")]
    pub commit_rows: usize,
    /// MiB the checks after loading may hold before their sort spills.
    #[serde(default = "default_check_memory_mb")]
    pub check_memory_mb: usize,
    /// Limits of one file, as `stmon ingest --limit` takes them
    /// (`[row_xml_bytes=16MiB]`); checked when the pipeline loads.
    #[serde(default)]
    pub limits: Vec<String>,
}

impl IngestOptions {
    /// The limits of one file: the defaults with `limits` applied.
    pub fn limits(&self) -> std::result::Result<stmon_warehouse::Limits, String> {
        let mut l = stmon_warehouse::Limits::default();
        for s in &self.limits {
            l.set(s)?;
        }
        Ok(l)
    }
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            commit_rows: default_commit_rows(),
            check_memory_mb: default_check_memory_mb(),
            limits: Vec::new(),
        }
    }
}

fn default_commit_rows() -> usize {
    400_000
}
fn default_check_memory_mb() -> usize {
    512
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressOptions {
    /// `latest` (the latest month of the year with enterprise reports) or `YYYY-MM`.
    #[serde(default)]
    pub as_of: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FreshnessRaw {
    #[serde(default)]
    as_of: Option<String>,
    #[serde(default)]
    rules: Vec<FreshnessRule>,
}

/// When a county's submissions of a form are late.
///
/// For a form with periods (monthly, quarterly, annual), period P is due
/// `due_days` after P ends: on the reference day, every period already due
/// should be in, so a county is late when its latest period is older than the
/// latest period due. For an event form (contracts, recognitions, program
/// ledger), a county is late when its latest submission is older than
/// `max_age_days`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FreshnessRule {
    pub form: String,
    #[serde(default)]
    pub due_days: Option<i64>,
    #[serde(default)]
    pub max_age_days: Option<i64>,
    #[serde(default = "default_severity")]
    pub severity: Severity,
}

fn default_severity() -> Severity {
    Severity::Warn
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warn,
    Fail,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warn => "warn",
            Severity::Fail => "fail",
        }
    }
}

/// The reference day of the freshness rules.
#[derive(Debug, Clone, PartialEq)]
pub enum AsOf {
    Today,
    Date(chrono::NaiveDate),
}

#[derive(Debug, Clone)]
pub struct Freshness {
    pub as_of: AsOf,
    pub rules: Vec<FreshnessRule>,
}

/// A loaded, checked pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub description: Option<String>,
    pub year: i32,
    pub file: PathBuf,
    /// The sha256 of the pipeline file.
    pub hash: String,
    /// A local folder or an object-store URL.
    pub inbox: String,
    /// In [`Step::ALL`] order, each once.
    pub steps: Vec<Step>,
    pub targets: PathBuf,
    pub schemes: Vec<PathBuf>,
    pub reports: PathBuf,
    pub on_test_failure: OnTestFailure,
    pub review: ReviewOptions,
    pub ingest: IngestOptions,
    pub progress: ProgressOptions,
    pub freshness: Freshness,
    /// Where the models step runs its SQL: `local` (`None`, the default)
    /// or a cluster's address, `ballista://HOST:PORT`. The models, their
    /// fingerprints and the Delta commits are the same on both; only
    /// where the rows are computed differs.
    pub engine: Option<String>,
    /// Whether the reports step also writes the public edition (withheld
    /// values as 保密, `marts.disclosure`) to `<reports>/public/`.
    pub public: bool,
}

impl Pipeline {
    pub fn load(path: &Path, catalog: &stmon_schema::Catalog) -> Result<Pipeline> {
        let text = std::fs::read_to_string(path).map_err(crate::io(path))?;
        let raw: Raw = serde_yaml_ng::from_str(&text).map_err(|e| Error::Pipeline {
            path: path.to_path_buf(),
            problems: vec![e.to_string()],
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let rel = |p: &str| -> PathBuf {
            let p = PathBuf::from(p);
            if p.is_absolute() {
                p
            } else {
                clean(&dir.join(p))
            }
        };
        let mut problems: Vec<String> = Vec::new();
        let mut steps: Vec<Step> = Vec::new();
        match &raw.steps {
            None => steps.extend(Step::ALL),
            Some(names) => {
                for name in names {
                    match Step::parse(name) {
                        Some(s) => steps.push(s),
                        None => problems.push(format!(
                            "steps: unknown step `{name}` (known: {})",
                            Step::ALL.map(Step::as_str).join(", ")
                        )),
                    }
                }
            }
        }
        let mut ordered = steps;
        ordered.sort();
        ordered.dedup();
        let inbox = if raw.inbox.contains("://") {
            raw.inbox.clone()
        } else {
            let p = rel(&raw.inbox);
            if ordered.contains(&Step::Ingest) && !p.exists() {
                problems.push(format!("inbox: {} does not exist", p.display()));
            }
            p.display().to_string()
        };
        let targets = rel(raw
            .targets
            .as_deref()
            .unwrap_or(&format!("targets-{}.yaml", raw.year)));
        if ordered.contains(&Step::Progress) && !targets.is_file() {
            problems.push(format!("targets: {} does not exist", targets.display()));
        }
        let schemes: Vec<PathBuf> = raw.schemes.iter().map(|s| rel(s)).collect();
        for s in &schemes {
            if !s.is_file() {
                problems.push(format!("schemes: {} does not exist", s.display()));
            }
        }
        if ordered.contains(&Step::Assessment) && schemes.is_empty() {
            problems.push("schemes: the assessment step needs at least one scheme".into());
        }
        let on_test_failure = match raw.on_test_failure.as_deref() {
            None | Some("stop") => OnTestFailure::Stop,
            Some("continue") => OnTestFailure::Continue,
            Some(o) => {
                problems.push(format!(
                    "on_test_failure: `{o}` (expected stop or continue)"
                ));
                OnTestFailure::Stop
            }
        };
        let on_high_score = match raw.review.on_high_score.as_deref() {
            None | Some("fail") => OnHighScore::Fail,
            Some("warn") => OnHighScore::Warn,
            Some(o) => {
                problems.push(format!(
                    "review.on_high_score: `{o}` (expected fail or warn)"
                ));
                OnHighScore::Fail
            }
        };
        if let Some(a) = &raw.progress.as_of {
            if a != "latest" && parse_month(a, raw.year).is_none() {
                problems.push(format!(
                    "progress.as_of: `{a}` (expected latest or a month YYYY-MM of {})",
                    raw.year
                ));
            }
        }
        let mut freshness = Freshness {
            as_of: AsOf::Today,
            rules: Vec::new(),
        };
        if let Some(f) = &raw.freshness {
            match f.as_of.as_deref() {
                None | Some("today") => {}
                Some(d) => match chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d") {
                    Ok(d) => freshness.as_of = AsOf::Date(d),
                    Err(_) => problems.push(format!(
                        "freshness.as_of: `{d}` (expected today or YYYY-MM-DD)"
                    )),
                },
            }
            for r in &f.rules {
                let Some(form) = catalog.forms.get(&r.form) else {
                    problems.push(format!(
                        "freshness: unknown form `{}` (known: {})",
                        r.form,
                        catalog.forms.keys().cloned().collect::<Vec<_>>().join(", ")
                    ));
                    continue;
                };
                let periodic = form.frequency != stmon_schema::Frequency::Event;
                match (periodic, r.due_days, r.max_age_days) {
                    (true, Some(d), None) | (false, None, Some(d)) if d >= 0 => {}
                    (true, _, _) => problems.push(format!(
                        "freshness: {} has periods: give due_days (≥ 0), the days after a period ends by which it is due",
                        r.form
                    )),
                    (false, _, _) => problems.push(format!(
                        "freshness: {} is an event form: give max_age_days (≥ 0), the longest a county may go without a submission",
                        r.form
                    )),
                }
                if !form.columns.iter().any(|c| c.name == "county_code") {
                    problems.push(format!("freshness: {} has no county_code column", r.form));
                }
            }
            freshness.rules = f.rules.clone();
        }
        if let Err(e) = raw.ingest.limits() {
            problems.push(format!("ingest.limits: {e}"));
        }
        let engine = match raw.engine.as_deref() {
            None | Some("local") => None,
            Some(e) if e.starts_with("ballista://") => Some(e.to_string()),
            Some(e) => {
                problems.push(format!(
                    "engine: `{e}` (expected local or ballista://HOST:PORT)"
                ));
                None
            }
        };
        if !problems.is_empty() {
            return Err(Error::Pipeline {
                path: path.to_path_buf(),
                problems,
            });
        }
        Ok(Pipeline {
            name: raw.name,
            description: raw.description,
            year: raw.year,
            file: path.to_path_buf(),
            hash: stmon_models::state::sha256_hex(&[text.as_bytes()]),
            inbox,
            steps: ordered,
            targets,
            schemes,
            reports: rel(raw.reports.as_deref().unwrap_or("reports")),
            on_test_failure,
            review: ReviewOptions {
                on_high_score,
                memory_mb: raw.review.memory_mb.max(16),
                rows_memory_mb: raw.review.rows_memory_mb,
            },
            ingest: raw.ingest,
            progress: raw.progress,
            freshness,
            engine,
            public: raw.public,
        })
    }
}

/// `a/b/../c` → `a/c`, lexically (no file system access).
fn clean(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}
