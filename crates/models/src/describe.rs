//! What a table or column of the warehouse holds, in a line: a model's
//! description from its YAML, a form's title and column labels from
//! `schemas/forms`, and the warehouse's own tables (audit, ref).

use datafusion::prelude::SessionContext;
use stmon_schema::Catalog;

use crate::Project;

/// One line describing `<layer>.<table>`; empty when nothing is known.
pub fn table(project: &Project, catalog: &Catalog, layer: &str, table: &str) -> String {
    if let Some(m) = project.get(&format!("{layer}.{table}")) {
        if let Some(d) = &m.spec.description {
            return d.split_whitespace().collect::<Vec<_>>().join(" ");
        }
        return format!("model {}", m.path.display());
    }
    if let Some(f) = catalog.form(table) {
        return match layer {
            "raw" => format!("{} — every version of every accepted row", f.title),
            "current" => format!("{} — latest version per key", f.title),
            _ => f.title.clone(),
        };
    }
    match (layer, table) {
        ("audit", "batches") => "one row per ingested file: the commit record".into(),
        ("audit", "quarantine") => "rejected rows and files, with reasons".into(),
        ("audit", "warnings") => "rows accepted with a warning".into(),
        ("ref", "divisions") => "the division table, with level; 000000 = whole region".into(),
        ("ref", "division_ancestors") => {
            "each county with itself and every division above it".into()
        }
        _ => String::new(),
    }
}

/// Every table a session reads, `<layer>.<table>`, sorted (DataFusion's own
/// `public` schema and the warehouse's internal `delta` schema left out).
pub fn tables(ctx: &SessionContext) -> Vec<String> {
    let catalog = ctx.catalog("datafusion").expect("default catalog");
    let mut out = Vec::new();
    for s in catalog.schema_names() {
        if s == "delta" || s == "public" {
            continue;
        }
        let schema = catalog.schema(&s).expect("listed");
        out.extend(schema.table_names().into_iter().map(|t| format!("{s}.{t}")));
    }
    out.sort();
    out
}

/// One line describing a column of `name` (`<layer>.<table>`): the model's
/// column description, else the form's column label; empty when neither.
pub fn column(project: &Project, catalog: &Catalog, name: &str, column: &str) -> String {
    let table = name.split_once('.').map_or(name, |(_, t)| t);
    project
        .get(name)
        .and_then(|m| m.spec.columns.iter().find(|c| c.name == column))
        .and_then(|c| c.description.clone())
        .or_else(|| {
            catalog
                .form(table)
                .and_then(|form| form.column(column))
                .map(|c| c.label.clone())
        })
        .unwrap_or_default()
}
