//! `stmon-models`: SQL models over the warehouse.
//!
//! A project is a folder (`sql/`) of layers — `staging/`, `intermediate/`,
//! `marts/` — with one model per `.sql` file: a single DataFusion `SELECT`, no
//! template language. A model's dependencies are the tables its SQL names,
//! found with DataFusion's own parser; a reference `<layer>.<name>` to another
//! model is an edge of the graph, anything else (`current.*`, `raw.*`,
//! `ref.*`) is a source. Models run in dependency order and each is written as
//! the Delta table `<warehouse>/<layer>/<model>` (see [`run`]), or, declared
//! `materialized: view`, defined as a view in every session
//! ([`checks::Materialized`]). A YAML file
//! beside a model (`<model>.yml`) describes it and declares its data tests
//! (see [`checks`]).
//!
//! ```
//! let sql = concat!(env!("CARGO_MANIFEST_DIR"), "/../../sql");
//! let project = stmon_models::Project::load(std::path::Path::new(sql)).unwrap();
//! let order: Vec<String> = project.models.iter().map(|m| m.id.to_string()).collect();
//! // Every model comes after the models it reads.
//! for m in &project.models {
//!     let me = order.iter().position(|x| *x == m.id.to_string()).unwrap();
//!     for d in &m.deps {
//!         assert!(order.iter().position(|x| *x == d.to_string()).unwrap() < me);
//!     }
//! }
//! ```

pub mod checks;
pub mod describe;
pub mod incremental;
pub mod reference;
pub mod run;
pub mod runs;
pub mod state;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use datafusion::sql::parser::DFParser;

/// Column `i` of a batch as text, whatever its Arrow type (Utf8View, numbers…).
pub fn text_column(b: &arrow::array::RecordBatch, i: usize) -> Result<arrow::array::StringArray> {
    let c = arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8)?;
    Ok(c.as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .expect("cast to Utf8")
        .clone())
}

/// Column `i` of a batch as f64.
pub fn float_column(b: &arrow::array::RecordBatch, i: usize) -> Result<arrow::array::Float64Array> {
    let c = arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Float64)?;
    Ok(c.as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .expect("cast to Float64")
        .clone())
}

/// The first value of a one-value query as i64: None when it returns no row
/// or a null.
pub async fn query_i64(
    ctx: &datafusion::prelude::SessionContext,
    sql: &str,
) -> Result<Option<i64>> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let c = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Int64)?;
    let a = c
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .expect("cast to Int64");
    Ok(arrow::array::Array::is_valid(a, 0).then(|| a.value(0)))
}

/// The layers of a project, in the order data flows through them.
pub const LAYERS: [&str; 3] = ["staging", "intermediate", "marts"];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {message}")]
    Model { path: PathBuf, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no models found under {} (expected {}/<model>.sql)", dir.display(), LAYERS.join("|"))]
    NoModels { dir: PathBuf },
    #[error("--select {selector}: no model named {name} (see `stmon models list`)")]
    UnknownModel { selector: String, name: String },
    #[error("models depend on each other in a cycle: {}", models.join(", "))]
    Cycle { models: Vec<String> },
    #[error("no run {run_id} in audit/runs (see `stmon runs`)")]
    NoRun { run_id: String },
    #[error("run {run_id} did not finish ({status}), so it published no versions")]
    RunUnpublished {
        run_id: String,
        status: runs::RowStatus,
    },
    #[error("audit/runs, run {run_id}: {message}")]
    RunRecord { run_id: String, message: String },
    #[error(transparent)]
    Warehouse(Box<stmon_warehouse::Error>),
    #[error("query failed: {0}")]
    Query(Box<datafusion::error::DataFusionError>),
    #[error("delta: {0}")]
    Delta(Box<deltalake::DeltaTableError>),
    #[error("arrow: {0}")]
    Arrow(Box<arrow::error::ArrowError>),
}

/// `From` impls that box a wrapped error: `boxed_from!(Variant: Type, …)`
/// writes `impl From<Type> for Error { … Error::Variant(Box::new(e)) }` for
/// the `Error` in scope where it is called. Boxing keeps each crate's `Error`
/// small (clippy's `result_large_err`); the crates above this one use it for
/// theirs.
#[macro_export]
macro_rules! boxed_from {
    ($($variant:ident: $ty:ty),*) => {$(
        impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Error::$variant(Box::new(e))
            }
        }
    )*};
}

boxed_from!(
    Warehouse: stmon_warehouse::Error,
    Query: datafusion::error::DataFusionError,
    Delta: deltalake::DeltaTableError,
    Arrow: arrow::error::ArrowError
);

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `<layer>.<name>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModelId {
    pub layer: String,
    pub name: String,
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.layer, self.name)
    }
}

/// One model: a file of SQL, what it reads, and its description and tests.
#[derive(Debug, Clone)]
pub struct Model {
    pub id: ModelId,
    pub path: PathBuf,
    pub sql: String,
    /// Models this one reads.
    pub deps: Vec<ModelId>,
    /// Other tables it reads (`current.enterprise_rd`, `ref.divisions`…).
    pub sources: Vec<String>,
    pub spec: checks::ModelSpec,
}

impl Model {
    /// Kept as a view, not a table (see [`checks::Materialized`]).
    pub fn is_view(&self) -> bool {
        self.spec.materialized == checks::Materialized::View
    }
}

/// All models of a folder, in dependency order (ties by layer, then name).
#[derive(Debug, Clone)]
pub struct Project {
    pub dir: PathBuf,
    pub models: Vec<Model>,
    /// The disclosure rules (`<dir>/disclosure.yaml`), as `ref.disclosure_rules`.
    pub disclosure: DisclosureRules,
}

/// When a published value is withheld (`marts.disclosure`): a base of at
/// least one and fewer than `min_units` contributing units, or one unit
/// holding more than `max_share` of it.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisclosureRules {
    pub min_units: u32,
    pub max_share: f64,
}

impl Default for DisclosureRules {
    fn default() -> Self {
        DisclosureRules {
            min_units: 3,
            max_share: 0.85,
        }
    }
}

impl DisclosureRules {
    /// `<dir>/disclosure.yaml`, or the defaults when there is none.
    pub fn load(dir: &Path) -> Result<DisclosureRules> {
        let path = dir.join("disclosure.yaml");
        if !path.exists() {
            return Ok(DisclosureRules::default());
        }
        let bad = |message: String| Error::Model {
            path: path.clone(),
            message,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
        let rules: DisclosureRules =
            serde_yaml_ng::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if rules.min_units < 1 || !(rules.max_share > 0.0 && rules.max_share <= 1.0) {
            return Err(bad(format!(
                "min_units must be at least 1 and max_share in (0, 1]: {} and {}",
                rules.min_units, rules.max_share
            )));
        }
        Ok(rules)
    }
}

impl Project {
    /// Reads every `<dir>/<layer>/*.sql` and its `.yml`, parses the SQL and orders the graph.
    pub fn load(dir: &Path) -> Result<Project> {
        let mut found = Vec::new();
        for layer in LAYERS {
            let folder = dir.join(layer);
            if !folder.is_dir() {
                continue;
            }
            let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
                .map_err(|source| Error::Io {
                    path: folder.clone(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "sql"))
                .collect();
            files.sort();
            for path in files {
                found.push(read_model(layer, path)?);
            }
        }
        if found.is_empty() {
            return Err(Error::NoModels {
                dir: dir.to_path_buf(),
            });
        }
        let known: BTreeSet<ModelId> = found.iter().map(|m| m.id.clone()).collect();
        for m in &mut found {
            let mut deps = Vec::new();
            let mut sources = Vec::new();
            for r in std::mem::take(&mut m.sources) {
                match r.split_once('.') {
                    Some((layer, name)) if LAYERS.contains(&layer) => {
                        let id = ModelId {
                            layer: layer.into(),
                            name: name.into(),
                        };
                        if !known.contains(&id) {
                            return Err(Error::Model {
                                path: m.path.clone(),
                                message: format!(
                                    "reads {id}, which is not a model of this project"
                                ),
                            });
                        }
                        if id == m.id {
                            return Err(Error::Model {
                                path: m.path.clone(),
                                message: "reads itself".into(),
                            });
                        }
                        deps.push(id);
                    }
                    _ => sources.push(r),
                }
            }
            deps.sort();
            deps.dedup();
            sources.sort();
            sources.dedup();
            m.deps = deps;
            m.sources = sources;
        }
        let models = order(found)?;
        let project = Project {
            dir: dir.to_path_buf(),
            models,
            disclosure: DisclosureRules::load(dir)?,
        };
        for m in &project.models {
            incremental::check(&project, m)?;
        }
        Ok(project)
    }

    /// The models kept as Delta tables (not views), in run order.
    pub fn tables(&self) -> impl Iterator<Item = &Model> {
        self.models.iter().filter(|m| !m.is_view())
    }

    /// The model `id` names.
    pub fn model(&self, id: &ModelId) -> Option<&Model> {
        self.models.iter().find(|m| &m.id == id)
    }

    pub fn get(&self, id: &str) -> Option<&Model> {
        self.models
            .iter()
            .find(|m| m.id.to_string() == id || m.id.name == id)
    }

    /// The models a selection names, in run order. Each selector is a model
    /// (`indicators` or `marts.indicators`), `+name` (it and everything it
    /// reads, transitively), `name+` (it and everything that reads it), or
    /// `+name+`. No selector selects everything.
    pub fn select(&self, selectors: &[String]) -> Result<Vec<&Model>> {
        if selectors.is_empty() {
            return Ok(self.models.iter().collect());
        }
        let mut chosen: BTreeSet<ModelId> = BTreeSet::new();
        for s in selectors {
            let up = s.starts_with('+');
            let down = s.ends_with('+') && s.len() > 1;
            let name = s.trim_matches('+');
            let m = self.get(name).ok_or_else(|| Error::UnknownModel {
                selector: s.clone(),
                name: name.to_string(),
            })?;
            chosen.insert(m.id.clone());
            if up {
                chosen.extend(self.upstream(&m.id));
            }
            if down {
                chosen.extend(self.downstream(&m.id));
            }
        }
        Ok(self
            .models
            .iter()
            .filter(|m| chosen.contains(&m.id))
            .collect())
    }

    fn upstream(&self, id: &ModelId) -> BTreeSet<ModelId> {
        let mut out = BTreeSet::new();
        let mut stack = vec![id.clone()];
        while let Some(x) = stack.pop() {
            if let Some(m) = self.models.iter().find(|m| m.id == x) {
                for d in &m.deps {
                    if out.insert(d.clone()) {
                        stack.push(d.clone());
                    }
                }
            }
        }
        out
    }

    fn downstream(&self, id: &ModelId) -> BTreeSet<ModelId> {
        let mut out = BTreeSet::new();
        let mut stack = vec![id.clone()];
        while let Some(x) = stack.pop() {
            for m in &self.models {
                if m.deps.contains(&x) && out.insert(m.id.clone()) {
                    stack.push(m.id.clone());
                }
            }
        }
        out
    }

    /// The graph as text: each model with what it reads.
    pub fn graph_text(&self) -> String {
        let mut out = String::new();
        for m in &self.models {
            out.push_str(&m.id.to_string());
            let reads: Vec<String> = m
                .deps
                .iter()
                .map(|d| d.to_string())
                .chain(m.sources.iter().cloned())
                .collect();
            if !reads.is_empty() {
                out.push_str(" ← ");
                out.push_str(&reads.join(", "));
            }
            out.push('\n');
        }
        out
    }

    /// The graph in Graphviz DOT: models as boxes clustered by layer, sources as ellipses.
    pub fn graph_dot(&self) -> String {
        let mut out = String::from("digraph models {\n  rankdir=LR;\n  node [shape=box];\n");
        let mut sources = BTreeSet::new();
        for layer in LAYERS {
            out.push_str(&format!(
                "  subgraph cluster_{layer} {{\n    label=\"{layer}\";\n"
            ));
            for m in self.models.iter().filter(|m| m.id.layer == layer) {
                out.push_str(&format!("    \"{}\";\n", m.id));
            }
            out.push_str("  }\n");
        }
        for m in &self.models {
            for d in &m.deps {
                out.push_str(&format!("  \"{d}\" -> \"{}\";\n", m.id));
            }
            for s in &m.sources {
                sources.insert(s.clone());
                out.push_str(&format!("  \"{s}\" -> \"{}\";\n", m.id));
            }
        }
        for s in sources {
            out.push_str(&format!("  \"{s}\" [shape=ellipse];\n"));
        }
        out.push_str("}\n");
        out
    }
}

fn read_model(layer: &str, path: PathBuf) -> Result<Model> {
    let bad = |message: String| Error::Model {
        path: path.clone(),
        message,
    };
    let sql = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| bad("file name is not UTF-8".into()))?
        .to_string();
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(bad(format!(
            "model name {name:?}: use lower-case letters, digits and _"
        )));
    }
    let sources = table_references(&sql).map_err(bad)?;
    let yml = path.with_extension("yml");
    let spec = if yml.is_file() {
        checks::ModelSpec::load(&yml)?
    } else {
        checks::ModelSpec::default()
    };
    Ok(Model {
        id: ModelId {
            layer: layer.into(),
            name,
        },
        path,
        sql,
        deps: Vec::new(),
        sources,
        spec,
    })
}

/// Tables a statement reads, as `schema.table` (CTE names excluded), found by
/// DataFusion's SQL parser. The statement must be exactly one query.
pub fn table_references(sql: &str) -> std::result::Result<Vec<String>, String> {
    let mut statements = DFParser::parse_sql(sql).map_err(|e| e.to_string())?;
    if statements.len() != 1 {
        return Err(format!(
            "a model is exactly one SELECT statement; found {}",
            statements.len()
        ));
    }
    let statement = statements.pop_front().expect("one statement");
    let (refs, _ctes) = datafusion::sql::resolve::resolve_table_references(&statement, true)
        .map_err(|e| e.to_string())?;
    Ok(refs.iter().map(|r| r.to_string()).collect())
}

/// Kahn's algorithm; among ready models, the earlier layer, then the name, first.
fn order(models: Vec<Model>) -> Result<Vec<Model>> {
    let rank = |m: &Model| {
        (
            LAYERS.iter().position(|l| *l == m.id.layer).unwrap_or(9),
            m.id.name.clone(),
        )
    };
    let mut pending: BTreeMap<(usize, String), Model> =
        models.into_iter().map(|m| (rank(&m), m)).collect();
    let mut done: BTreeSet<ModelId> = BTreeSet::new();
    let mut out = Vec::new();
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .find(|(_, m)| m.deps.iter().all(|d| done.contains(d)))
            .map(|(k, _)| k.clone());
        match ready {
            Some(k) => {
                let m = pending.remove(&k).expect("present");
                done.insert(m.id.clone());
                out.push(m);
            }
            None => {
                return Err(Error::Cycle {
                    models: pending.values().map(|m| m.id.to_string()).collect(),
                });
            }
        }
    }
    Ok(out)
}
