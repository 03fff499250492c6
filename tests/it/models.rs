//! The model runner: graph order, selection, failure handling, data tests,
//! and the `.slt` files under tests/slt (sqllogictest) over the indicator fixture.

use std::path::Path;

use arrow::array::Array;

use stmon_models::run::{run, RunOptions, Status};
use stmon_models::Project;

use crate::common::*;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// a ← b ← c, and d independent; models read the division table.
fn project(dir: &Path) -> std::path::PathBuf {
    let sql = dir.join("sql");
    write(
        &sql,
        "staging/a.sql",
        "select code, level from ref.divisions",
    );
    write(
        &sql,
        "intermediate/b.sql",
        "select level, count(*) as n\nfrom staging.a\ngroup by level",
    );
    write(
        &sql,
        "marts/c.sql",
        "with x as (select * from intermediate.b) select level, n * 10 as n10 from x",
    );
    write(&sql, "marts/d.sql", "select 1 as one");
    sql
}

async fn empty_warehouse(dir: &Path) -> stmon_warehouse::Warehouse {
    let wh = warehouse(&dir.join("wh"));
    wh.ensure_tables().await.unwrap();
    wh
}

/// marts.c of [`project`]: 6 counties, 1 prefecture (330600), 2 retired
/// codes (counties by code), the region — times 10.
async fn assert_c_is_built(ctx: &datafusion::prelude::SessionContext) {
    assert_eq!(
        rows_of(ctx, "select level, n10 from marts.c order by level").await,
        vec![
            row(&["county", "80"]),
            row(&["prefecture", "10"]),
            row(&["region", "10"])
        ]
    );
}

fn ids(ms: &[&stmon_models::Model]) -> Vec<String> {
    ms.iter().map(|m| m.id.to_string()).collect()
}

#[test]
fn models_run_after_what_they_read_and_selectors_follow_the_graph() {
    let dir = tempfile::tempdir().unwrap();
    let p = Project::load(&project(dir.path())).unwrap();
    let order: Vec<String> = p.models.iter().map(|m| m.id.to_string()).collect();
    assert_eq!(order, ["staging.a", "intermediate.b", "marts.c", "marts.d"]);
    let c = p.get("c").unwrap();
    assert_eq!(c.deps.len(), 1);
    assert_eq!(c.deps[0].to_string(), "intermediate.b"); // the CTE x is not a table
    assert_eq!(p.get("a").unwrap().sources, ["ref.divisions"]);
    let sel = |s: &[&str]| {
        ids(&p
            .select(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>())
            .unwrap())
    };
    assert_eq!(sel(&["+c"]), ["staging.a", "intermediate.b", "marts.c"]);
    assert_eq!(sel(&["a+"]), ["staging.a", "intermediate.b", "marts.c"]);
    assert_eq!(sel(&["b"]), ["intermediate.b"]);
    assert_eq!(
        sel(&["marts.d", "b+"]),
        ["intermediate.b", "marts.c", "marts.d"]
    );
    assert!(p
        .select(&["nope".into()])
        .unwrap_err()
        .to_string()
        .contains("no model named nope"));
    assert!(p.graph_dot().contains("\"intermediate.b\" -> \"marts.c\";"));
    assert!(p.graph_text().contains("marts.c ← intermediate.b\n"));
}

#[test]
fn cycles_and_unknown_models_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sql = dir.path().join("sql");
    write(&sql, "staging/a.sql", "select * from staging.b");
    write(&sql, "staging/b.sql", "select * from staging.a");
    let e = Project::load(&sql).unwrap_err().to_string();
    assert!(e.contains("cycle") && e.contains("staging.a"), "{e}");
    std::fs::remove_file(sql.join("staging/b.sql")).unwrap();
    let e = Project::load(&sql).unwrap_err().to_string();
    assert!(
        e.contains("a.sql") && e.contains("staging.b, which is not a model"),
        "{e}"
    );
    write(&sql, "staging/a.sql", "select 1; select 2");
    let e = Project::load(&sql).unwrap_err().to_string();
    assert!(e.contains("exactly one SELECT"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_are_written_as_delta_tables_and_read_by_their_dependents() {
    let dir = tempfile::tempdir().unwrap();
    let p = Project::load(&project(dir.path())).unwrap();
    let wh = empty_warehouse(dir.path()).await;
    let report = run(&wh, &p, &RunOptions::default(), &|_| {}).await.unwrap();
    assert!(report.ok());
    // 6 counties, 1 prefecture (330600), 2 retired codes (counties by code), the region.
    let rows: Vec<(String, u64)> = report
        .models
        .iter()
        .map(|m| (m.id.to_string(), m.rows))
        .collect();
    assert_eq!(rows[0], ("staging.a".to_string(), 10));
    assert_eq!(rows[1], ("intermediate.b".to_string(), 3));
    assert!(dir.path().join("wh/marts/c/_delta_log").is_dir());
    let ctx = stmon_models::run::session(&wh, &p).await.unwrap();
    assert_c_is_built(&ctx).await;
    // Running again overwrites (one more Delta version, same rows).
    run(&wh, &p, &RunOptions::default(), &|_| {}).await.unwrap();
    assert_eq!(
        rows_of(&ctx, "select count(*) from marts.c").await,
        vec![row(&["3"])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_model_writes_nothing_and_its_readers_compute_it() {
    let dir = tempfile::tempdir().unwrap();
    let sql = project(dir.path());
    write(&sql, "staging/a.yml", "materialized: view\n");
    let p = Project::load(&sql).unwrap();
    assert!(p.get("a").unwrap().is_view());
    let wh = empty_warehouse(dir.path()).await;
    let report = run(&wh, &p, &RunOptions::default(), &|_| {}).await.unwrap();
    assert!(report.ok(), "{report:?}");
    let status: Vec<(String, Status)> = report
        .models
        .iter()
        .map(|m| (m.id.to_string(), m.status.clone()))
        .collect();
    assert_eq!(status[0], ("staging.a".to_string(), Status::View));
    assert_eq!(status[1], ("intermediate.b".to_string(), Status::Ok));
    assert!(!dir.path().join("wh/staging/a").exists());
    assert!(dir.path().join("wh/intermediate/b/_delta_log").is_dir());
    let ctx = stmon_models::run::session(&wh, &p).await.unwrap();
    // The same rows as when staging.a is a table (the test above).
    assert_c_is_built(&ctx).await;
    // Sessions define the view: analysts query it like a table.
    assert_eq!(
        rows_of(&ctx, "select count(*) from staging.a").await,
        vec![row(&["10"])]
    );
    // Nothing changed: its readers are up to date.
    let opts = RunOptions {
        incremental: true,
        ..Default::default()
    };
    let again = run(&wh, &p, &opts, &|_| {}).await.unwrap();
    assert_eq!(again.models[0].status, Status::View);
    assert!(again.models[1..]
        .iter()
        .all(|m| m.status == Status::UpToDate));

    // A view whose SQL fails names its file and stops its readers.
    write(
        &sql,
        "staging/a.sql",
        "select code,\n  no_such_column\nfrom ref.divisions",
    );
    let p = Project::load(&sql).unwrap();
    let report = run(&wh, &p, &RunOptions::default(), &|_| {}).await.unwrap();
    match &report.models[0].status {
        Status::Failed(m) => assert!(m.contains("a.sql:2") && m.contains("no_such_column"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(&report.models[1].status, Status::Skipped(m) if m.contains("staging.a")));

    // Data tests on a view are refused when the project loads.
    write(&sql, "staging/a.yml", "materialized: view\ngrain: [code]\n");
    let e = Project::load(&sql).unwrap_err().to_string();
    assert!(
        e.contains("a.yml") && e.contains("view declares data tests"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_model_names_file_and_line_and_stops_its_dependents() {
    let dir = tempfile::tempdir().unwrap();
    let sql = project(dir.path());
    write(
        &sql,
        "intermediate/b.sql",
        "select level,\n       count(*) as n,\n       max(no_such_column) as m\nfrom staging.a\ngroup by level",
    );
    let p = Project::load(&sql).unwrap();
    let wh = empty_warehouse(dir.path()).await;
    let report = run(&wh, &p, &RunOptions::default(), &|_| {}).await.unwrap();
    let status: Vec<(String, Status)> = report
        .models
        .iter()
        .map(|m| (m.id.to_string(), m.status.clone()))
        .collect();
    assert_eq!(status[0], ("staging.a".into(), Status::Ok));
    match &status[1].1 {
        Status::Failed(m) => {
            assert!(m.contains("intermediate/b.sql:3:"), "{m}");
            assert!(m.contains("no_such_column"), "{m}");
        }
        other => panic!("b should fail: {other:?}"),
    }
    assert_eq!(
        status[2],
        (
            "marts.c".into(),
            Status::Skipped("upstream intermediate.b did not run".into())
        )
    );
    assert_eq!(status[3], ("marts.d".into(), Status::Ok));
    assert!(!report.ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_tests_report_failing_rows_and_fail_fast_stops() {
    let dir = tempfile::tempdir().unwrap();
    let sql = project(dir.path());
    write(
        &sql,
        "staging/a.yml",
        "description: divisions\n\
         grain: [code]\n\
         columns:\n\
         \x20 - name: level\n\
         \x20   tests:\n\
         \x20     - not_null\n\
         \x20     - accepted_values: [county, region]\n\
         \x20 - name: code\n\
         \x20   tests: [unique, {relationships: {to: ref.divisions, field: code}}]\n\
         tests:\n\
         \x20 - name: no_prefecture\n\
         \x20   sql: select code from staging.a where level = 'prefecture'\n",
    );
    let p = Project::load(&sql).unwrap();
    let wh = empty_warehouse(dir.path()).await;
    let report = run(&wh, &p, &RunOptions::default(), &|_| {}).await.unwrap();
    let a = &report.models[0];
    let results: Vec<(String, u64)> = a
        .tests
        .iter()
        .map(|t| (t.name.clone(), t.failures))
        .collect();
    assert_eq!(
        results,
        vec![
            ("grain(code)".to_string(), 0),
            ("not_null(level)".to_string(), 0),
            ("accepted_values(level)".to_string(), 1),
            ("unique(code)".to_string(), 0),
            ("relationships(code → ref.divisions.code)".to_string(), 0),
            ("no_prefecture".to_string(), 1),
        ]
    );
    let bad = a.tests.iter().find(|t| t.name == "no_prefecture").unwrap();
    assert!(bad.sample.contains("330600"), "{}", bad.sample);
    assert_eq!(report.failed_tests(), 2);
    // A failing test does not stop dependents…
    assert!(report.models.iter().all(|m| m.status == Status::Ok));
    // …but --fail-fast stops at the first failure.
    let opts = RunOptions {
        fail_fast: true,
        ..Default::default()
    };
    let report = run(&wh, &p, &opts, &|_| {}).await.unwrap();
    assert_eq!(report.models[0].tests.len(), 3);
    assert!(report.models[1..]
        .iter()
        .all(|m| matches!(m.status, Status::Skipped(_))));
}

/// sqllogictest over a session of the indicator fixture's warehouse.
struct Df(datafusion::prelude::SessionContext);

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for Df {
    type Error = datafusion::error::DataFusionError;
    type ColumnType = sqllogictest::DefaultColumnType;

    async fn run(
        &mut self,
        sql: &str,
    ) -> Result<sqllogictest::DBOutput<Self::ColumnType>, Self::Error> {
        use arrow::datatypes::DataType as T;
        use sqllogictest::DefaultColumnType as C;
        let df = self.0.sql(sql).await?;
        let types: Vec<C> = df
            .schema()
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                T::Int8
                | T::Int16
                | T::Int32
                | T::Int64
                | T::UInt8
                | T::UInt16
                | T::UInt32
                | T::UInt64 => C::Integer,
                T::Float32 | T::Float64 | T::Decimal128(..) => C::FloatingPoint,
                _ => C::Text,
            })
            .collect();
        let batches = df.collect().await?;
        let mut rows = Vec::new();
        for b in &batches {
            let cols: Vec<arrow::array::ArrayRef> = b.columns().to_vec();
            for i in 0..b.num_rows() {
                rows.push(
                    cols.iter()
                        .map(|c| {
                            if c.is_null(i) {
                                "NULL".to_string()
                            } else {
                                arrow::util::display::array_value_to_string(c, i)
                                    .unwrap_or_default()
                            }
                        })
                        .collect(),
                );
            }
        }
        Ok(sqllogictest::DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slt_files_pass() {
    let dir = tempfile::tempdir().unwrap();
    let wh = crate::indicators::build(dir.path()).await;
    let project = Project::load(&repo().join("sql")).unwrap();
    let ctx = stmon_models::run::session(&wh, &project).await.unwrap();
    let mut files: Vec<_> = std::fs::read_dir(repo().join("tests/slt"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in files {
        let ctx = ctx.clone();
        let mut runner = sqllogictest::Runner::new(move || {
            let ctx = ctx.clone();
            async move { Ok::<_, datafusion::error::DataFusionError>(Df(ctx)) }
        });
        runner
            .run_file_async(&f)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}
