//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, StringArray};
use stmon_warehouse::{BatchReport, IngestRequest, Warehouse};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn case(rel: &str) -> PathBuf {
    repo().join("fixtures/cases").join(rel)
}

pub fn catalog() -> Arc<stmon_schema::Catalog> {
    Arc::new(stmon_schema::Catalog::load(repo().join("schemas")).expect("schemas load"))
}

/// Copies a folder tree (a warehouse, an inbox).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

pub fn warehouse(dir: &Path) -> Warehouse {
    Warehouse::open(dir.to_str().expect("utf8 path"), catalog()).expect("warehouse opens")
}

pub async fn ingest(wh: &Warehouse, paths: &[PathBuf]) -> BatchReport {
    wh.ingest(&IngestRequest::new(paths.to_vec()), &|_| {})
        .await
        .expect("ingest runs")
}

/// Rows of a query, every value cast to text ("NULL" for null).
pub async fn query(wh: &Warehouse, sql: &str) -> Vec<Vec<String>> {
    let ctx = wh.session().await.expect("session");
    rows_of(&ctx, sql).await
}

/// Rows of a query in a session, every value cast to text ("NULL" for null).
pub async fn rows_of(ctx: &datafusion::prelude::SessionContext, sql: &str) -> Vec<Vec<String>> {
    let batches = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .expect("collect");
    let mut rows = Vec::new();
    for b in batches {
        let cols: Vec<StringArray> = b
            .columns()
            .iter()
            .map(|c| {
                let s = arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8)
                    .expect("cast to text");
                s.as_any()
                    .downcast_ref::<StringArray>()
                    .expect("utf8")
                    .clone()
            })
            .collect();
        for i in 0..b.num_rows() {
            rows.push(
                cols.iter()
                    .map(|c| {
                        if c.is_null(i) {
                            "NULL".to_string()
                        } else {
                            c.value(i).to_string()
                        }
                    })
                    .collect(),
            );
        }
    }
    rows
}

/// Quarantine entries as `row|column|value|reason`, in file and row order.
pub async fn quarantine(wh: &Warehouse) -> Vec<String> {
    query(wh, "select coalesce(cast(row_number as varchar), '-'), coalesce(\"column\", '-'), coalesce(raw_value, '-'), reason from audit.quarantine order by file, row_number, \"column\"")
        .await
        .into_iter()
        .map(|r| r.join("|"))
        .collect()
}

pub fn row(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}
