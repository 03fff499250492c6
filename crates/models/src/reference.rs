//! Reference tables from configuration, registered in every model session:
//!
//! * `ref.divisions` — the division table (`code, name, parent_code,
//!   successor, level`) plus the whole region, `000000`;
//! * `ref.division_ancestors` — for every current county, itself and each
//!   division above it up to `000000` (`county_code, division_code, level`):
//!   joining facts on `county_code` and grouping by `division_code` rolls any
//!   sum up every level at once, pooled (never an average of ratios).
//!
//! Levels follow the GB/T 2260 code: `xx0000` province, `xxxx00`
//! prefecture, otherwise county; `000000` is the region.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use stmon_schema::Divisions;

use crate::Result;

/// Code of the whole region the warehouse covers.
pub const REGION: &str = "000000";
pub const REGION_NAME: &str = "全域";

pub fn level_of(code: &str) -> &'static str {
    if code == REGION {
        "region"
    } else if code.ends_with("0000") {
        "province"
    } else if code.ends_with("00") {
        "prefecture"
    } else {
        "county"
    }
}

/// `(county_code, division_code, level)` for every current county.
pub fn ancestors(divisions: &Divisions) -> Vec<(String, String, &'static str)> {
    let mut out = Vec::new();
    for county in divisions.counties() {
        let mut code = Some(county.code.clone());
        let mut guard = 0;
        while let Some(c) = code {
            out.push((county.code.clone(), c.clone(), level_of(&c)));
            code = divisions.get(&c).and_then(|d| d.parent_code.clone());
            guard += 1;
            if guard > 16 {
                break;
            }
        }
        out.push((county.code.clone(), REGION.to_string(), "region"));
    }
    out
}

fn strings(v: Vec<Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

pub fn register(ctx: &SessionContext, divisions: &Divisions) -> Result<()> {
    let catalog = ctx.catalog("datafusion").expect("default catalog");
    if catalog.schema("ref").is_none() {
        catalog.register_schema("ref", Arc::new(MemorySchemaProvider::new()))?;
    }
    let f = |n: &str, null| Field::new(n, DataType::Utf8, null);
    let schema = Arc::new(Schema::new(vec![
        f("code", false),
        f("name", false),
        f("parent_code", true),
        f("successor", true),
        f("level", false),
    ]));
    let mut rows: Vec<_> = divisions.rows.iter().collect();
    rows.sort_by(|a, b| a.code.cmp(&b.code));
    let top_parent = |p: &Option<String>| match p {
        Some(p) => Some(p.clone()),
        None => Some(REGION.to_string()),
    };
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            strings(
                std::iter::once(Some(REGION.to_string()))
                    .chain(rows.iter().map(|d| Some(d.code.clone())))
                    .collect(),
            ),
            strings(
                std::iter::once(Some(REGION_NAME.to_string()))
                    .chain(rows.iter().map(|d| Some(d.name.clone())))
                    .collect(),
            ),
            strings(
                std::iter::once(None)
                    .chain(rows.iter().map(|d| top_parent(&d.parent_code)))
                    .collect(),
            ),
            strings(
                std::iter::once(None)
                    .chain(rows.iter().map(|d| d.successor.clone()))
                    .collect(),
            ),
            strings(
                std::iter::once(Some("region".to_string()))
                    .chain(rows.iter().map(|d| Some(level_of(&d.code).to_string())))
                    .collect(),
            ),
        ],
    )?;
    ctx.deregister_table("ref.divisions")?;
    ctx.register_table(
        "ref.divisions",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;

    let a = ancestors(divisions);
    let schema = Arc::new(Schema::new(vec![
        f("county_code", false),
        f("division_code", false),
        f("level", false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            strings(a.iter().map(|x| Some(x.0.clone())).collect()),
            strings(a.iter().map(|x| Some(x.1.clone())).collect()),
            strings(a.iter().map(|x| Some(x.2.to_string())).collect()),
        ],
    )?;
    ctx.deregister_table("ref.division_ancestors")?;
    ctx.register_table(
        "ref.division_ancestors",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;
    Ok(())
}

/// `ref.disclosure_rules`: one row, the thresholds `marts.disclosure` applies.
pub fn register_disclosure(ctx: &SessionContext, rules: &crate::DisclosureRules) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("min_units", DataType::Int64, false),
        Field::new("max_share", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![i64::from(rules.min_units)])),
            Arc::new(Float64Array::from(vec![rules.max_share])),
        ],
    )?;
    ctx.deregister_table("ref.disclosure_rules")?;
    ctx.register_table(
        "ref.disclosure_rules",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_code() {
        assert_eq!(level_of("330602"), "county");
        assert_eq!(level_of("330600"), "prefecture");
        assert_eq!(level_of("330000"), "province");
        assert_eq!(level_of("000000"), "region");
    }
}
