//! Who sees what: a user's scope (`divisions`, `microdata`) and the session
//! that plans every query of that user over tables already filtered to it.
//!
//! A scoped session holds copies of the snapshot's catalogs in which each
//! table is replaced by what the user may read of it:
//!
//! - a table of unit-level rows (a firm, a zone, an institute, a raw value:
//!   [`Level::Unit`]) is, for a user without `microdata`, a [`Denied`]
//!   provider: it has the table's columns (so `information_schema` and
//!   `pg_catalog` list them) and any plan that scans it is refused with
//!   SQLSTATE 42501 before it runs ([`denied_table`]);
//! - any other table with a division column (`division_code`,
//!   `county_code`) is a view of the table filtered to the divisions the
//!   user covers ([`covered`]): the counties of the codes given, every
//!   division under them, and the retired codes that became one of them;
//! - a table with no division column is whole when it is open
//!   ([`OPEN_TABLES`]: the reference tables, the runs) or an aggregate over
//!   every division ([`AGGREGATE_TABLES`]); denied otherwise to a user whose
//!   scope is not everything, since no filter can be put on it.
//!
//! Because the filter sits in the table the planner resolves a name to,
//! every form of query — subqueries, CTEs, joins, UNION, EXPLAIN, prepared
//! statements, a pinned older run — reads only the filtered rows. The
//! server never parses a query's text to decide what it may see.

use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemoryCatalogProviderList, MemorySchemaProvider,
    SchemaProvider, Session, TableProvider,
};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::{provider_as_source, source_as_provider, TableType, ViewTable};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{col, lit, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{Expr, SessionContext};
use stmon_schema::Divisions;

/// Tables of published division-level values: readable by every user,
/// filtered to the user's divisions. For a user without microdata,
/// `marts.indicators` has the values `marts.disclosure` withholds nulled
/// ([`SUPPRESSED`]). The intermediate sums per division
/// (`intermediate.division_*`, `county_enterprise`) are not here: they hold
/// a county's R&D of two firms as plainly as a firm's row, so they are
/// unit-level to the server.
pub const AGGREGATE_TABLES: &[&str] = &[
    "marts.indicators",
    "marts.disclosure",
    "intermediate.form_months",
    "intermediate.periods",
];

/// The columns of `marts.indicators` a withheld value is nulled in.
pub const SUPPRESSED: &[&str] = &[
    "value",
    "numerator",
    "denominator",
    "queried_share",
    "held_value",
];

/// Tables every user reads whole: the reference tables (`ref.*`, the
/// division table and the targets), and which runs and batches there were.
pub const OPEN_TABLES: &[&str] = &["audit.runs", "audit.batches"];

/// The columns a table's rows are filtered by, the first one it has.
pub const DIVISION_COLUMNS: &[&str] = &["division_code", "county_code"];

/// Schemas a scoped session does not copy: the catalog tables are built
/// again over the scoped catalog, and the physical Delta tables are never
/// served.
const NOT_COPIED: &[&str] = &["pg_catalog", "information_schema", "delta"];

/// What a table's rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// One row per firm, zone, institute, submission or raw value.
    Unit,
    /// Division-level figures.
    Aggregate,
    /// Reference and run tables, the same for every user.
    Open,
}

/// The level of `schema.table`: unit-level unless listed.
pub fn level(schema: &str, table: &str) -> Level {
    let name = format!("{schema}.{table}");
    if schema == "ref" || OPEN_TABLES.contains(&name.as_str()) {
        Level::Open
    } else if AGGREGATE_TABLES.contains(&name.as_str()) {
        Level::Aggregate
    } else {
        Level::Unit
    }
}

/// What one user may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Division codes (a county, or a city or province covering its
    /// counties); `None` is every division.
    pub divisions: Option<Vec<String>>,
    /// Whether unit-level tables may be read (within the divisions).
    pub microdata: bool,
}

impl Scope {
    /// Everything: what a user without a scope in the config reads.
    pub fn all() -> Scope {
        Scope {
            divisions: None,
            microdata: true,
        }
    }

    pub fn is_all(&self) -> bool {
        self.divisions.is_none() && self.microdata
    }
}

/// The codes `divisions` covers: each code, every division under it (by
/// `parent_code`, any depth), and every retired code whose successor is one
/// of those. Errors name a code the division table does not know.
pub fn covered(divisions: &[String], table: &Divisions) -> Result<BTreeSet<String>, String> {
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    for d in &table.rows {
        if let Some(p) = &d.parent_code {
            children.entry(p.as_str()).or_default().push(&d.code);
        }
    }
    let mut out = BTreeSet::new();
    let mut todo: Vec<&str> = Vec::new();
    for code in divisions {
        if table.get(code).is_none() {
            return Err(format!("division {code} is not in the division table"));
        }
        todo.push(code);
    }
    while let Some(code) = todo.pop() {
        if out.insert(code.to_string()) {
            todo.extend(children.get(code).into_iter().flatten().copied());
        }
    }
    // Retired codes: rows submitted under one belong to its successor.
    for d in &table.rows {
        if d.successor.is_some() {
            if let Ok(now) = table.current(&d.code) {
                if out.contains(&now) {
                    out.insert(d.code.clone());
                }
            }
        }
    }
    Ok(out)
}

/// A unit-level table a user may not read: its columns, no rows. A plan
/// that scans it is refused before it runs ([`denied_table`]); the scan
/// itself fails too, should a plan reach it.
#[derive(Debug)]
pub struct Denied {
    pub table: String,
    pub user: String,
    pub reason: String,
    schema: SchemaRef,
}

impl Denied {
    pub fn message(&self) -> String {
        format!(
            "permission denied for table {}: user {} {}",
            self.table, self.user, self.reason
        )
    }
}

#[async_trait]
impl TableProvider for Denied {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::Plan(self.message()))
    }
}

/// The message of the first table in `plan` (its subqueries included) the
/// user may not read.
pub fn denied_table(plan: &LogicalPlan) -> Option<String> {
    let mut found = None;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if let Ok(provider) = source_as_provider(&scan.source) {
                let any: &dyn Any = provider.as_ref();
                if let Some(d) = any.downcast_ref::<Denied>() {
                    found = Some(d.message());
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// `marts.indicators` as users without microdata read it: every value
/// `marts.disclosure` withholds is null in [`SUPPRESSED`], and its reason
/// says 保密 and why. `None` when `marts.disclosure` is not built.
async fn withheld_view(
    ctx: &SessionContext,
    indicators: &Arc<dyn TableProvider>,
) -> DfResult<Option<Arc<dyn TableProvider>>> {
    if !ctx.table_exist("marts.disclosure")? {
        return Ok(None);
    }
    let withheld = "d.status is not null and d.status <> 'published'";
    let columns: Vec<String> = indicators
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let c = f.name();
            if SUPPRESSED.contains(&c.as_str()) {
                format!("case when {withheld} then null else i.\"{c}\" end as \"{c}\"")
            } else if c == "reason" {
                format!(
                    "case when {withheld} then concat('保密: withheld by disclosure control (', d.status, ', ', d.rule, ')') else i.reason end as reason"
                )
            } else {
                format!("i.\"{c}\"")
            }
        })
        .collect();
    let sql = format!(
        "select {} from marts.indicators i left join marts.disclosure d \
         on d.year = i.year and d.as_of_month = i.as_of_month \
         and d.division_code = i.division_code and d.indicator_id = i.indicator_id",
        columns.join(", ")
    );
    let plan = ctx.state().create_logical_plan(&sql).await?;
    Ok(Some(Arc::new(ViewTable::new(plan, None))))
}

/// What `user` gets in place of `provider` (`schema.table`).
async fn scoped_table(
    ctx: &SessionContext,
    schema: &str,
    table: &str,
    provider: Arc<dyn TableProvider>,
    user: &str,
    scope: &Scope,
    codes: Option<&BTreeSet<String>>,
) -> DfResult<Arc<dyn TableProvider>> {
    let name = format!("{schema}.{table}");
    let lvl = level(schema, table);
    let columns = provider.schema();
    let deny = |reason: String| -> DfResult<Arc<dyn TableProvider>> {
        Ok(Arc::new(Denied {
            table: name.clone(),
            user: user.to_string(),
            reason,
            schema: columns.clone(),
        }))
    };
    if lvl == Level::Open {
        return Ok(provider);
    }
    if lvl == Level::Unit && !scope.microdata {
        return deny(
            "reads division-level aggregates only (microdata: false), and this table holds unit-level rows; ask the data team for the aggregate you need".into(),
        );
    }
    let provider = if !scope.microdata && name == "marts.indicators" {
        match withheld_view(ctx, &provider).await? {
            Some(view) => view,
            None => return deny("reads values after disclosure control, and marts.disclosure is not built yet (run `stmon models run`)".into()),
        }
    } else {
        provider
    };
    let Some(codes) = codes else {
        return Ok(provider);
    };
    let arrow = provider.schema();
    let Some(column) = DIVISION_COLUMNS
        .iter()
        .find(|c| arrow.field_with_name(c).is_ok())
    else {
        return if lvl == Level::Aggregate {
            Ok(provider)
        } else {
            deny("reads some divisions only, and this table has no division column to keep its rows to them".into())
        };
    };
    let list: Vec<Expr> = codes.iter().map(|c| lit(c.as_str())).collect();
    let filter = col(*column).in_list(list, false);
    let plan = LogicalPlanBuilder::scan(name.as_str(), provider_as_source(provider), None)?
        .filter(filter)?
        .build()?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

/// A session like `ctx` whose tables are what `user` may read of them.
/// `codes` is what the scope's divisions cover (`None`: every division).
pub async fn scoped(
    ctx: &SessionContext,
    user: &str,
    scope: &Scope,
    codes: Option<&BTreeSet<String>>,
) -> DfResult<SessionContext> {
    let list = Arc::new(MemoryCatalogProviderList::new());
    let state = SessionStateBuilder::new_from_existing(ctx.state())
        .with_catalog_list(list.clone())
        .build();
    let out = SessionContext::new_with_state(state);
    for catalog_name in ctx.catalog_names() {
        let Some(catalog) = ctx.catalog(&catalog_name) else {
            continue;
        };
        let copy = Arc::new(MemoryCatalogProvider::new());
        for schema_name in catalog.schema_names() {
            if NOT_COPIED.contains(&schema_name.as_str()) {
                continue;
            }
            let Some(schema) = catalog.schema(&schema_name) else {
                continue;
            };
            let s = Arc::new(MemorySchemaProvider::new());
            for table in schema.table_names() {
                if let Some(provider) = schema.table(&table).await? {
                    s.register_table(
                        table.clone(),
                        scoped_table(ctx, &schema_name, &table, provider, user, scope, codes)
                            .await?,
                    )?;
                }
            }
            copy.register_schema(&schema_name, s)?;
        }
        datafusion::catalog::CatalogProviderList::register_catalog(
            list.as_ref(),
            catalog_name,
            copy,
        );
    }
    Ok(out)
}

/// A scope and the codes it covers, as a session is built from them.
pub type Covered = (Scope, Option<Arc<BTreeSet<String>>>);

/// Every configured user's scope, with the codes each covers.
#[derive(Debug, Default)]
pub struct Scopes(HashMap<String, Covered>);

impl Scopes {
    /// The scopes of `users`; errors name the user and the code the
    /// division table does not know.
    pub fn new(users: &[crate::User], divisions: &Divisions) -> crate::Result<Scopes> {
        let mut out = HashMap::new();
        for u in users {
            let scope = u.scope();
            let codes = match &scope.divisions {
                None => None,
                Some(d) => Some(Arc::new(covered(d, divisions).map_err(|reason| {
                    crate::Error::Scope {
                        user: u.name.clone(),
                        reason,
                    }
                })?)),
            };
            out.insert(u.name.clone(), (scope, codes));
        }
        Ok(Scopes(out))
    }

    /// What `user` may read: everything for a user the config does not
    /// scope (no users at all: a trusted loopback server).
    pub fn of(&self, user: &str) -> Covered {
        self.0
            .get(user)
            .cloned()
            .unwrap_or_else(|| (Scope::all(), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::datasource::MemTable;
    use stmon_schema::Division;

    fn divisions() -> Divisions {
        let row = |code: &str, parent: &str, successor: &str| Division {
            code: code.into(),
            name: code.into(),
            parent_code: (!parent.is_empty()).then(|| parent.into()),
            successor: (!successor.is_empty()).then(|| successor.into()),
        };
        Divisions::from_rows(vec![
            row("330000", "", ""),
            row("330600", "330000", ""),
            row("330602", "330600", ""),
            row("330603", "330600", ""),
            row("330621", "330600", "330603"),
            row("330100", "330000", ""),
            row("330102", "330100", ""),
        ])
        .unwrap()
    }

    #[test]
    fn a_city_covers_its_counties_and_a_county_its_retired_codes() {
        let d = divisions();
        let set = |codes: &[&str]| {
            covered(&codes.iter().map(|c| c.to_string()).collect::<Vec<_>>(), &d).unwrap()
        };
        let keqiao = set(&["330603"]);
        assert_eq!(keqiao.into_iter().collect::<Vec<_>>(), ["330603", "330621"]);
        let city = set(&["330600"]);
        assert_eq!(
            city.into_iter().collect::<Vec<_>>(),
            ["330600", "330602", "330603", "330621"]
        );
        assert_eq!(set(&["330000"]).len(), 7);
        let e = covered(&["339999".to_string()], &d).unwrap_err();
        assert!(e.contains("339999"), "{e}");
    }

    async fn ctx() -> SessionContext {
        let ctx = SessionContext::new();
        let schema = Arc::new(Schema::new(vec![
            Field::new("county_code", DataType::Utf8, false),
            Field::new("v", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![
                    "330602", "330603", "330621", "330102",
                ])),
                Arc::new(Int64Array::from(vec![1, 10, 100, 1000])),
            ],
        )
        .unwrap();
        let catalog = ctx.catalog("datafusion").unwrap();
        for s in ["current", "marts", "ref"] {
            catalog
                .register_schema(s, Arc::new(MemorySchemaProvider::new()))
                .unwrap();
        }
        let t = || Arc::new(MemTable::try_new(schema.clone(), vec![vec![batch.clone()]]).unwrap());
        ctx.register_table("current.enterprise_rd", t()).unwrap();
        ctx.register_table("marts.indicators", t()).unwrap();
        ctx.register_table("ref.targets", t()).unwrap();
        ctx
    }

    async fn sum(ctx: &SessionContext, sql: &str) -> Result<i64, String> {
        let plan = ctx
            .state()
            .create_logical_plan(sql)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(d) = denied_table(&plan) {
            return Err(d);
        }
        let b = ctx
            .execute_logical_plan(plan)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        Ok(b[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0))
    }

    #[tokio::test]
    async fn each_form_of_query_reads_the_scope_only() {
        let base = ctx().await;
        let d = divisions();
        let keqiao = Scope {
            divisions: Some(vec!["330603".into()]),
            microdata: true,
        };
        let codes = covered(keqiao.divisions.as_ref().unwrap(), &d).unwrap();
        let s = scoped(&base, "keqiao", &keqiao, Some(&codes))
            .await
            .unwrap();
        for sql in [
            "select sum(v) from current.enterprise_rd",
            "with a as (select * from current.enterprise_rd) select sum(v) from a",
            "select sum(v) from (select v from current.enterprise_rd union all select v from current.enterprise_rd where v < 0)",
            "select sum(v) from marts.indicators where county_code in (select county_code from current.enterprise_rd)",
            "select sum(e.v) from current.enterprise_rd e join marts.indicators m using (county_code)",
        ] {
            // 330603 and its retired 330621: 10 + 100.
            assert_eq!(sum(&s, sql).await, Ok(110), "{sql}");
        }
        // Reference tables are whole.
        assert_eq!(sum(&s, "select sum(v) from ref.targets").await, Ok(1111));

        let analyst = Scope {
            divisions: None,
            microdata: false,
        };
        let a = scoped(&base, "analyst", &analyst, None).await.unwrap();
        assert_eq!(sum(&a, "select sum(v) from ref.targets").await, Ok(1111));
        // Without marts.disclosure no value could be withheld from the
        // analyst: the indicators are refused (the integration tests read
        // them withheld, tests/it/serve.rs).
        let e = sum(&a, "select sum(v) from marts.indicators")
            .await
            .unwrap_err();
        assert!(e.contains("marts.disclosure is not built"), "{e}");
        for sql in [
            "select sum(v) from current.enterprise_rd",
            "select sum(v) from ref.targets where v in (select v from current.enterprise_rd)",
            "explain select sum(v) from current.enterprise_rd",
        ] {
            let e = sum(&a, sql).await.unwrap_err();
            assert!(
                e.contains("permission denied for table current.enterprise_rd")
                    && e.contains("analyst"),
                "{sql}: {e}"
            );
        }
    }
}
