//! Forms: what a submission file of each kind must carry.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::review::{Review, RuleKind};
use crate::{normalize_label, Divisions, Error, Result};

/// How often a form is reported; monthly and quarterly values are year-to-date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    Monthly,
    Quarterly,
    Annual,
    Event,
}

/// The type of a form column, as the contract names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Text,
    CreditCode,
    CountyCode,
    /// 万元, decimal `>= 0`, exact to 4 decimals.
    Amount,
    /// A decimal with optional bounds (`min`, `min_exclusive`).
    Decimal,
    Count,
    Bool,
    Date,
    Timestamp,
    PeriodMonth,
    PeriodQuarter,
    PeriodYear,
    Enum,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnumValue {
    pub id: String,
    pub label: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    pub name: String,
    /// The Chinese label used as a header on the official form.
    pub label: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    #[serde(default)]
    pub optional: bool,
    /// Value taken by a blank cell of an optional column.
    pub default: Option<String>,
    pub unit: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub values: Vec<EnumValue>,
    /// Inclusive lower bound of a `decimal`.
    pub min: Option<f64>,
    /// Exclusive lower bound of a `decimal`.
    pub min_exclusive: Option<f64>,
    /// Most characters a `text` cell may hold; a longer one rejects its row.
    pub max_length: Option<usize>,
}

/// A cross-field rule, checked after each cell parsed.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Rule {
    /// `column <= le` whenever both are present.
    LessOrEqual { column: String, le: String },
    /// `column` must not be blank when `required_when.column` is one of `in`.
    RequiredWhen {
        column: String,
        required_when: Condition,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub column: String,
    #[serde(rename = "in")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Form {
    pub name: String,
    pub title: String,
    pub frequency: Frequency,
    pub key: Vec<String>,
    pub columns: Vec<Column>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// A column the raw table stores after the submitted ones so that a read
    /// of some of its values skips the files holding none of them.
    #[serde(default)]
    pub prune_by: Option<PruneBy>,
    /// Plausibility rules for the review of submissions (`review:`).
    #[serde(default)]
    pub review: Option<Review>,
    #[serde(skip)]
    by_header: HashMap<String, usize>,
}

/// Columns every raw table carries after the form's own, in this order
/// (then [`Form::prune_by`]'s, if the form has one).
pub const META_COLUMNS: [&str; 7] = [
    "_extra",
    "_row_hash",
    "_batch_id",
    "_source_file",
    "_source_sha256",
    "_row_number",
    "_ingested_at",
];

/// A part of a key column, stored in the raw table as a column of its own:
/// `substr(column, start, length)`. Delta keeps each file's smallest and
/// largest value of it, so a read of some of its values (one credit
/// province's firms) opens only the files that may hold them. Derived from a
/// key column, it is the same for every version of a key.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PruneBy {
    /// The stored column's name; starts with `_` like the provenance columns.
    pub name: String,
    /// The key column it is part of.
    pub column: String,
    /// First character, from 1 (as SQL's `substr`).
    pub start: usize,
    /// Characters taken.
    pub length: usize,
}

impl PruneBy {
    /// The same value as SQL, as a model names it (`substr(credit_code, 3, 2)`).
    pub fn sql(&self) -> String {
        format!("substr({}, {}, {})", self.column, self.start, self.length)
    }

    /// Whether `expr` is [`PruneBy::sql`], ignoring case and blanks.
    pub fn is(&self, expr: &str) -> bool {
        let plain = |s: &str| -> String {
            s.chars()
                .filter(|c| !c.is_whitespace())
                .flat_map(char::to_lowercase)
                .collect()
        };
        plain(expr) == plain(&self.sql())
    }

    /// The value for one key value: its characters `start..start+length`
    /// (fewer when it is shorter), as SQL's `substr` gives them.
    pub fn of<'a>(&self, value: &'a str) -> &'a str {
        let mut at = value.char_indices().map(|(i, _)| i).chain([value.len()]);
        let from = at.nth(self.start - 1).unwrap_or(value.len());
        let to = at.nth(self.length - 1).unwrap_or(value.len());
        &value[from..to]
    }
}

/// How well a header row fits a form.
#[derive(Debug, Clone)]
pub struct HeaderMatch {
    /// For each file column, the form column it carries (None = unknown extra).
    pub mapping: Vec<Option<usize>>,
    pub missing: Vec<String>,
    pub extra: Vec<String>,
    pub matched: usize,
}

impl Column {
    /// The id of an enumeration value given by id (any case) or Chinese label.
    pub fn enum_id(&self, raw: &str) -> Option<&str> {
        let n = normalize_label(raw);
        self.values
            .iter()
            .find(|v| normalize_label(&v.id) == n || normalize_label(&v.label) == n)
            .map(|v| v.id.as_str())
    }
}

impl Form {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The column a header cell names, by English name or Chinese label.
    pub fn column_for_header(&self, header: &str) -> Option<&Column> {
        self.by_header
            .get(&normalize_label(header))
            .map(|&i| &self.columns[i])
    }

    pub fn is_key(&self, column: &str) -> bool {
        self.key.iter().any(|k| k == column)
    }

    /// Maps a header row onto this form's columns.
    pub fn match_header(&self, headers: &[String]) -> HeaderMatch {
        let mut seen = vec![false; self.columns.len()];
        let mut mapping = Vec::with_capacity(headers.len());
        let mut extra = Vec::new();
        for h in headers {
            match self.by_header.get(&normalize_label(h)) {
                // A column named twice keeps its first occurrence; the second is extra.
                Some(&i) if !seen[i] => {
                    seen[i] = true;
                    mapping.push(Some(i));
                }
                _ => {
                    if !h.trim().is_empty() {
                        extra.push(h.trim().to_string());
                    }
                    mapping.push(None);
                }
            }
        }
        let missing = self
            .columns
            .iter()
            .zip(&seen)
            .filter(|(c, s)| !c.optional && !**s)
            .map(|(c, _)| format!("{} ({})", c.name, c.label))
            .collect();
        let matched = seen.iter().filter(|s| **s).count();
        HeaderMatch {
            mapping,
            missing,
            extra,
            matched,
        }
    }

    fn check(&mut self, path: &Path) -> Result<()> {
        let bad = |message: String| Error::Invalid {
            path: path.to_path_buf(),
            message,
        };
        for (i, c) in self.columns.iter().enumerate() {
            for h in [&c.name, &c.label] {
                if self
                    .by_header
                    .insert(normalize_label(h), i)
                    .is_some_and(|j| j != i)
                {
                    return Err(bad(format!("header '{h}' names two columns")));
                }
            }
            if c.ty == ColumnType::Enum && c.values.is_empty() {
                return Err(bad(format!("enum column '{}' lists no values", c.name)));
            }
            match c.max_length {
                Some(_) if c.ty != ColumnType::Text => {
                    return Err(bad(format!(
                        "max_length of column '{}': only text columns take one",
                        c.name
                    )))
                }
                Some(0) => {
                    return Err(bad(format!(
                        "max_length of column '{}' must be at least 1",
                        c.name
                    )))
                }
                _ => {}
            }
        }
        for k in &self.key {
            match self.column(k) {
                None => return Err(bad(format!("key column '{k}' is not a column"))),
                Some(c) if c.optional => {
                    return Err(bad(format!("key column '{k}' cannot be optional")))
                }
                _ => {}
            }
        }
        if self.column("submitted_at").map(|c| c.ty) != Some(ColumnType::Timestamp) {
            return Err(bad(
                "every form needs a submitted_at timestamp column".into()
            ));
        }
        for r in &self.rules {
            let names = match r {
                Rule::LessOrEqual { column, le } => vec![column, le],
                Rule::RequiredWhen {
                    column,
                    required_when,
                } => vec![column, &required_when.column],
            };
            if let Some(n) = names.into_iter().find(|n| self.column(n).is_none()) {
                return Err(bad(format!("rule names unknown column '{n}'")));
            }
        }
        if let Some(r) = &self.review {
            self.check_review(r).map_err(bad)?;
        }
        if let Some(p) = &self.prune_by {
            let text = self.column(&p.column).is_some_and(|c| {
                matches!(
                    c.ty,
                    ColumnType::Text | ColumnType::CreditCode | ColumnType::CountyCode
                )
            });
            if !self.key.contains(&p.column) || !text {
                return Err(bad(format!(
                    "prune_by.column '{}' must be a key column of text, credit codes or county codes",
                    p.column
                )));
            }
            if !p.name.starts_with('_')
                || self.column(&p.name).is_some()
                || META_COLUMNS.contains(&p.name.as_str())
            {
                return Err(bad(format!(
                    "prune_by.name '{}' must start with '_' and name no other column",
                    p.name
                )));
            }
            if p.start == 0 || p.length == 0 {
                return Err(bad("prune_by.start and .length count from 1".into()));
            }
        }
        Ok(())
    }
}

impl Form {
    /// The period column (`period_*` type) of the key, if the form has one.
    pub fn period_column(&self) -> Option<&Column> {
        self.key.iter().filter_map(|k| self.column(k)).find(|c| {
            matches!(
                c.ty,
                ColumnType::PeriodMonth | ColumnType::PeriodQuarter | ColumnType::PeriodYear
            )
        })
    }

    /// The key less its period: what a review compares over time.
    pub fn unit_key(&self) -> Vec<&str> {
        let period = self.period_column().map(|c| c.name.as_str());
        self.key
            .iter()
            .map(String::as_str)
            .filter(|k| Some(*k) != period)
            .collect()
    }

    fn check_review(&self, r: &Review) -> std::result::Result<(), String> {
        let numeric = |name: &str, what: &str, id: &str| -> std::result::Result<(), String> {
            match self.column(name) {
                None => Err(format!(
                    "review rule '{id}': {what} '{name}' is not a column"
                )),
                Some(c)
                    if !matches!(
                        c.ty,
                        ColumnType::Amount | ColumnType::Decimal | ColumnType::Count
                    ) =>
                {
                    Err(format!(
                        "review rule '{id}': {what} '{name}' is not a number column"
                    ))
                }
                _ => Ok(()),
            }
        };
        if self.period_column().is_none() {
            return Err("review: the form's key has no period column".into());
        }
        if let Some(d) = &r.division {
            if self
                .column(d)
                .is_none_or(|c| c.ty != ColumnType::CountyCode)
            {
                return Err(format!("review.division '{d}' is not a county_code column"));
            }
        }
        if !above(r.high_score, 0.0) {
            return Err("review.high_score must be above 0".into());
        }
        let mut ids = std::collections::HashSet::new();
        for rule in &r.rules {
            let id = rule.id.as_str();
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("review rule id '{id}': letters, digits and _ only"));
            }
            if !ids.insert(id) {
                return Err(format!("review rule id '{id}' is given twice"));
            }
            numeric(&rule.column, "column", id)?;
            match &rule.kind {
                RuleKind::Ratio {
                    over,
                    min,
                    max,
                    tolerance,
                } => {
                    numeric(over, "over", id)?;
                    if min.is_none() && max.is_none() {
                        return Err(format!("review rule '{id}': a ratio needs min or max"));
                    }
                    if !(0.0..1.0).contains(tolerance) {
                        return Err(format!("review rule '{id}': tolerance must be in [0, 1)"));
                    }
                }
                RuleKind::History { factor } => {
                    if !above(*factor, 1.0) {
                        return Err(format!("review rule '{id}': factor must be above 1"));
                    }
                }
                RuleKind::Increment { factor, min_share } => {
                    if self.frequency == Frequency::Annual {
                        return Err(format!(
                            "review rule '{id}': increments need a year-to-date (monthly or quarterly) form"
                        ));
                    }
                    if !above(*factor, 1.0) || !above(*min_share, 0.0) {
                        return Err(format!(
                            "review rule '{id}': factor must be above 1 and min_share above 0"
                        ));
                    }
                }
                RuleKind::Peer {
                    over,
                    group_by,
                    min_units,
                    hb,
                } => {
                    numeric(over, "over", id)?;
                    if let Some(g) = group_by.iter().find(|g| self.column(g).is_none()) {
                        return Err(format!(
                            "review rule '{id}': group_by '{g}' is not a column"
                        ));
                    }
                    if *min_units < 4 {
                        return Err(format!(
                            "review rule '{id}': min_units must be at least 4 (quartiles)"
                        ));
                    }
                    if !(0.0..=1.0).contains(&hb.u) || hb.a < 0.0 || !above(hb.c, 0.0) {
                        return Err(format!(
                            "review rule '{id}': hb needs 0 <= u <= 1, a >= 0, c > 0"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// `x > bound`, false for NaN (so a NaN parameter is refused).
fn above(x: f64, bound: f64) -> bool {
    x > bound
}

/// Headers as a message lists them: each cut to a prefix, at most 30.
pub fn listed(headers: &[String]) -> String {
    const SHOWN: usize = 30;
    let mut out: Vec<String> = headers
        .iter()
        .take(SHOWN)
        .map(|h| stmon_core::prefix(h))
        .collect();
    if headers.len() > SHOWN {
        out.push(format!("… {} more", headers.len() - SHOWN));
    }
    out.join(", ")
}

/// All forms and the division table.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub forms: BTreeMap<String, Form>,
    pub divisions: Divisions,
}

impl Catalog {
    /// Loads `<dir>/forms/*.yaml` and `<dir>/divisions.csv`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        Self::load_with_divisions(dir, &dir.join("divisions.csv"))
    }

    /// Loads the forms of `dir` with another division table (a province's, the nation's).
    pub fn load_with_divisions(dir: &Path, divisions: &Path) -> Result<Self> {
        let forms_dir = dir.join("forms");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&forms_dir)
            .map_err(io(&forms_dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        paths.sort();
        let mut forms = BTreeMap::new();
        for p in paths {
            let text = std::fs::read_to_string(&p).map_err(io(&p))?;
            let mut form: Form = serde_yaml_ng::from_str(&text).map_err(|e| Error::Invalid {
                path: p.clone(),
                message: e.to_string(),
            })?;
            form.check(&p)?;
            forms.insert(form.name.clone(), form);
        }
        if forms.is_empty() {
            return Err(Error::Invalid {
                path: forms_dir,
                message: "no form YAML found".into(),
            });
        }
        Ok(Catalog {
            forms,
            divisions: Divisions::load(divisions)?,
        })
    }

    pub fn form(&self, name: &str) -> Option<&Form> {
        self.forms.get(name)
    }

    /// Recognises the form of a header row: the one form whose required columns
    /// are all present. Returns the form or a message for a person.
    pub fn recognise(
        &self,
        headers: &[String],
    ) -> std::result::Result<(&Form, HeaderMatch), String> {
        let scored: Vec<(&Form, HeaderMatch)> = self
            .forms
            .values()
            .map(|f| (f, f.match_header(headers)))
            .collect();
        let complete: Vec<&(&Form, HeaderMatch)> = scored
            .iter()
            .filter(|(_, m)| m.missing.is_empty())
            .collect();
        match complete.as_slice() {
            [one] => return Ok((one.0, one.1.clone())),
            [] => {}
            many => {
                let names: Vec<&str> = many.iter().map(|(f, _)| f.name.as_str()).collect();
                return Err(format!(
                    "the header fits more than one form ({}); name it with --form",
                    names.join(", ")
                ));
            }
        }
        // No form is complete: if one form clearly fits best, name what it lacks.
        let mut best: Vec<&(&Form, HeaderMatch)> =
            scored.iter().filter(|(_, m)| m.matched > 0).collect();
        best.sort_by_key(|(f, m)| {
            (
                std::cmp::Reverse(m.matched * 1000 / f.columns.len()),
                f.name.clone(),
            )
        });
        match best.first() {
            Some((f, m)) if m.matched * 2 >= f.columns.iter().filter(|c| !c.optional).count() => {
                Err(format!(
                    "missing required columns of form {}: {}",
                    f.name,
                    m.missing.join(", ")
                ))
            }
            _ => Err(format!(
                "the header fits no form (columns: {}); name the form with --form",
                listed(headers)
            )),
        }
    }

    /// Checks a header against a named form (`--form`).
    pub fn against(
        &self,
        form: &str,
        headers: &[String],
    ) -> std::result::Result<(&Form, HeaderMatch), String> {
        let f = self.form(form).ok_or_else(|| {
            format!(
                "unknown form '{form}' (known: {})",
                self.forms.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        let m = f.match_header(headers);
        if m.missing.is_empty() {
            Ok((f, m))
        } else {
            Err(format!(
                "missing required columns of form {}: {}",
                f.name,
                m.missing.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PruneBy;

    fn province() -> PruneBy {
        PruneBy {
            name: "_credit_province".into(),
            column: "credit_code".into(),
            start: 3,
            length: 2,
        }
    }

    /// The value is SQL's `substr` of the key: characters, not bytes, and
    /// fewer of them when the key is short.
    #[test]
    fn prune_value_is_substr_of_the_key() {
        let p = province();
        assert_eq!(p.of("91330602MA2D4XPC3T"), "33");
        assert_eq!(p.of("913"), "3");
        assert_eq!(p.of("91"), "");
        assert_eq!(p.of("甲乙丙丁戊"), "丙丁");
    }

    #[test]
    fn prune_expression_matches_the_models_text() {
        let p = province();
        assert!(p.is("substr(credit_code, 3, 2)"));
        assert!(p.is(" SUBSTR( credit_code,3,2 )"));
        assert!(!p.is("substr(credit_code, 3, 6)"));
        assert!(!p.is("substr(county_code, 3, 2)"));
    }
}
