//! A model's description and data tests, from `<model>.yml` beside its SQL.
//!
//! ```yaml
//! description: One row per year × as-of month × division × indicator.
//! grain: [year, as_of_month, division_code, indicator_id]   # unique together
//! columns:
//!   - name: division_code
//!     description: GB/T 2260 code, or 000000 for the whole region
//!     tests:
//!       - not_null
//!       - relationships: {to: ref.divisions, field: code}
//!   - name: level
//!     tests:
//!       - accepted_values: [county, prefecture, province, region]
//!   - name: value
//!     tests:
//!       - accepted_range: {min: -1, max: 100}
//! tests:                       # SQL assertions: every row returned is a failure
//!   - name: no_value_without_reason_when_null
//!     sql: select * from marts.indicators where value is null and reason is null
//! ```
//!
//! Every test becomes a query that returns the failing rows; a test passes
//! when it returns none.

use std::path::Path;

use serde::Deserialize;

use crate::{Error, ModelId, Result};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    #[serde(default)]
    pub description: Option<String>,
    /// Columns that identify a row: together they must be unique.
    #[serde(default)]
    pub grain: Vec<String>,
    #[serde(default)]
    pub columns: Vec<ColumnSpec>,
    #[serde(default)]
    pub tests: Vec<SqlAssertion>,
    /// Build by partition (see [`Incremental`]); absent: rebuilt whole.
    #[serde(default)]
    pub incremental: Option<Incremental>,
    /// A Delta table (the default) or a view (see [`Materialized`]).
    #[serde(default)]
    pub materialized: Materialized,
}

/// How a model is kept (`materialized:` in its YAML, dbt's word).
///
/// - `table` (the default): a Delta table, rebuilt when its fingerprint
///   changes; readers read what was written.
/// - `view`: nothing is written. Every session defines the model as a view
///   of its SQL over what it reads, so its readers compute it as part of
///   their own plans. For a wide per-firm model that only one aggregate reads
///   this saves a copy of the data on disk and a write and read of it per
///   build. A view may declare `incremental:`: it then partitions like a
///   table would, and an incremental reader rebuilt by partition computes
///   only those partitions of it. A view has no data tests (they would
///   recompute it at every run): test the models that read it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Materialized {
    #[default]
    Table,
    View,
}

/// An incrementally built model (`incremental:` in its YAML):
///
/// ```yaml
/// incremental:
///   partition_by: credit_division       # a column of this model
///   sources:                            # per form it reads: the partition of a raw row
///     current.enterprise_rd: substr(credit_code, 3, 6)
/// ```
///
/// The table is a Delta table partitioned by `partition_by`. The model
/// promises that its rows of one partition are computed from the rows of the
/// same partition of its *partitioned inputs* — the sources listed here and
/// the models it reads that are incremental with the same `partition_by` —
/// and from the whole of its other inputs. A run that finds only new files of
/// those forms (nothing else changed) rebuilds just the partitions the new
/// rows fall in, in one Delta commit (`replaceWhere`); any other change
/// rebuilds the whole table. A source's expression must depend only on the
/// form's key, so that every version of a row falls in one partition.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incremental {
    pub partition_by: String,
    #[serde(default)]
    pub sources: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tests: Vec<ColumnTest>,
}

/// A column test as written: a bare name (`not_null`, `unique`) or a
/// one-key map (`accepted_values: [..]`, `relationships: {to, field}`,
/// `accepted_range: {min, max}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "serde_yaml_ng::Value")]
pub enum ColumnTest {
    NotNull,
    Unique,
    AcceptedValues(Vec<serde_yaml_ng::Value>),
    Relationships { to: String, field: String },
    AcceptedRange { min: Option<f64>, max: Option<f64> },
}

impl TryFrom<serde_yaml_ng::Value> for ColumnTest {
    type Error = String;

    fn try_from(v: serde_yaml_ng::Value) -> std::result::Result<Self, String> {
        use serde_yaml_ng::Value;
        const KNOWN: &str = "not_null, unique, accepted_values, relationships, accepted_range";
        match v {
            Value::String(s) => match s.as_str() {
                "not_null" => Ok(ColumnTest::NotNull),
                "unique" => Ok(ColumnTest::Unique),
                other => Err(format!("unknown column test {other:?} (known: {KNOWN})")),
            },
            Value::Mapping(m) if m.len() == 1 => {
                let (k, arg) = m.into_iter().next().expect("one entry");
                let name = k.as_str().unwrap_or_default().to_string();
                let get = |arg: &Value, key: &str| arg.get(key).cloned();
                match name.as_str() {
                    "accepted_values" => match arg {
                        Value::Sequence(values) => Ok(ColumnTest::AcceptedValues(values)),
                        _ => Err("accepted_values takes a list of values".into()),
                    },
                    "relationships" => {
                        let to = get(&arg, "to").and_then(|v| v.as_str().map(String::from));
                        let field = get(&arg, "field").and_then(|v| v.as_str().map(String::from));
                        match (to, field) {
                            (Some(to), Some(field)) => Ok(ColumnTest::Relationships { to, field }),
                            _ => Err("relationships takes {to: TABLE, field: COLUMN}".into()),
                        }
                    }
                    "accepted_range" => {
                        let min = get(&arg, "min").and_then(|v| v.as_f64());
                        let max = get(&arg, "max").and_then(|v| v.as_f64());
                        if min.is_none() && max.is_none() {
                            return Err(
                                "accepted_range takes {min: N, max: N} (one or both)".into()
                            );
                        }
                        Ok(ColumnTest::AcceptedRange { min, max })
                    }
                    other => Err(format!("unknown column test {other:?} (known: {KNOWN})")),
                }
            }
            other => Err(format!(
                "a column test is a name or a one-key map, not {other:?}"
            )),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlAssertion {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// A query whose rows are failures.
    pub sql: String,
}

impl ModelSpec {
    pub fn load(path: &Path) -> Result<ModelSpec> {
        let bad = |message: String| Error::Model {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let spec: ModelSpec = serde_yaml_ng::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if spec.materialized == Materialized::View
            && (!spec.grain.is_empty()
                || !spec.tests.is_empty()
                || spec.columns.iter().any(|c| !c.tests.is_empty()))
        {
            return Err(bad(
                "materialized: view declares data tests; a view's tests would recompute it \
                 at every run: test the models that read it, or make it a table"
                    .into(),
            ));
        }
        Ok(spec)
    }
}

/// One data test, compiled to SQL that returns the failing rows.
#[derive(Debug, Clone)]
pub struct DataTest {
    /// `unique(division_code)`, `grain(year, …)`, an assertion's name…
    pub name: String,
    pub sql: String,
}

fn literal(v: &serde_yaml_ng::Value) -> String {
    match v {
        serde_yaml_ng::Value::Number(n) => n.to_string(),
        serde_yaml_ng::Value::Bool(b) => b.to_string(),
        serde_yaml_ng::Value::String(s) => format!("'{}'", s.replace('\'', "''")),
        other => format!("'{}'", format!("{other:?}").replace('\'', "''")),
    }
}

/// The tests a model's YAML declares, as queries over the model `id`.
pub fn compile(id: &ModelId, spec: &ModelSpec) -> Vec<DataTest> {
    let t = id.to_string();
    let mut out = Vec::new();
    if !spec.grain.is_empty() {
        let g = spec.grain.join(", ");
        out.push(DataTest {
            name: format!("grain({g})"),
            sql: format!(
                "select {g}, count(*) as n from {t} group by {g} having count(*) > 1 order by n desc"
            ),
        });
    }
    for c in &spec.columns {
        let col = &c.name;
        for test in &c.tests {
            let (name, sql) = match test {
                ColumnTest::NotNull => (
                    format!("not_null({col})"),
                    format!("select * from {t} where {col} is null"),
                ),
                ColumnTest::Unique => (
                    format!("unique({col})"),
                    format!(
                        "select {col}, count(*) as n from {t} where {col} is not null group by {col} having count(*) > 1 order by n desc"
                    ),
                ),
                ColumnTest::AcceptedValues(values) => {
                    let list: Vec<String> = values.iter().map(literal).collect();
                    (
                        format!("accepted_values({col})"),
                        format!(
                            "select {col}, count(*) as n from {t} where {col} is not null and {col} not in ({}) group by {col}",
                            list.join(", ")
                        ),
                    )
                }
                ColumnTest::Relationships { to, field } => (
                    format!("relationships({col} → {to}.{field})"),
                    format!(
                        "select m.{col}, count(*) as n from {t} m left join {to} r on m.{col} = r.{field} \
                         where m.{col} is not null and r.{field} is null group by m.{col}"
                    ),
                ),
                ColumnTest::AcceptedRange { min, max } => {
                    let mut cond = Vec::new();
                    if let Some(lo) = min {
                        cond.push(format!("{col} < {lo}"));
                    }
                    if let Some(hi) = max {
                        cond.push(format!("{col} > {hi}"));
                    }
                    if cond.is_empty() {
                        continue;
                    }
                    (
                        format!(
                            "accepted_range({col}: {}..{})",
                            min.map(|v| v.to_string()).unwrap_or_default(),
                            max.map(|v| v.to_string()).unwrap_or_default()
                        ),
                        format!("select * from {t} where {}", cond.join(" or ")),
                    )
                }
            };
            out.push(DataTest { name, sql });
        }
    }
    for a in &spec.tests {
        out.push(DataTest {
            name: a.name.clone(),
            sql: a.sql.clone(),
        });
    }
    out
}
