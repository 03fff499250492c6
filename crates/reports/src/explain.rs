//! `stmon explain`: an indicator value with its formula, its inputs and the
//! submission rows (file, row, submitted_at) it came from. The catalogue and
//! the lineage queries live in `sql/lineage/`.

use std::path::Path;

use datafusion::common::ScalarValue;
use datafusion::prelude::SessionContext;
use serde::Deserialize;

use crate::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub formula: String,
    #[serde(default)]
    pub month: Option<String>,
    pub sources: Vec<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub unit: bool,
}

/// The indicator catalogue, `<lineage_dir>/indicators.yml`, in the file's order.
pub fn catalogue(lineage_dir: &Path) -> Result<Vec<(String, Entry)>> {
    let path = lineage_dir.join("indicators.yml");
    let text = std::fs::read_to_string(&path).map_err(crate::io_error(&path))?;
    let map: serde_yaml_ng::Mapping =
        serde_yaml_ng::from_str(&text).map_err(|e| crate::file_error(&path, e))?;
    map.into_iter()
        .map(|(k, v)| {
            let id = k
                .as_str()
                .ok_or_else(|| crate::file_error(&path, "indicator ids are strings"))?
                .to_string();
            let entry: Entry = serde_yaml_ng::from_value(v)
                .map_err(|e| crate::file_error(&path, format!("{id}: {e}")))?;
            Ok((id, entry))
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct Explanation {
    pub indicator: String,
    pub unit: String,
    pub unit_name: String,
    pub year: i32,
    pub month: u32,
    pub formula: String,
    pub value: Option<f64>,
    pub numerator: Option<f64>,
    pub denominator: Option<f64>,
    pub reason: Option<String>,
    /// (form, file, row, submitted_at, key, detail)
    pub inputs: Vec<[String; 6]>,
}

async fn rows(
    ctx: &SessionContext,
    sql: &str,
    params: Vec<ScalarValue>,
) -> Result<Vec<Vec<Option<String>>>> {
    let df = ctx.sql(sql).await?.with_param_values(params)?;
    let mut out = Vec::new();
    for b in df.collect().await? {
        let cols: Vec<arrow::array::StringArray> = (0..b.num_columns())
            .map(|i| stmon_models::text_column(&b, i))
            .collect::<stmon_models::Result<_>>()?;
        for i in 0..b.num_rows() {
            out.push(
                cols.iter()
                    .map(|s| arrow::array::Array::is_valid(s, i).then(|| s.value(i).to_string()))
                    .collect(),
            );
        }
    }
    Ok(out)
}

pub async fn explain(
    ctx: &SessionContext,
    lineage_dir: &Path,
    unit: &str,
    indicator: &str,
    year: i32,
    month: u32,
) -> Result<Explanation> {
    let catalogue = catalogue(lineage_dir)?;
    let entry = catalogue
        .iter()
        .find(|(id, _)| id == indicator)
        .map(|(_, e)| e)
        .ok_or_else(|| {
            let mut known: Vec<String> = catalogue.iter().map(|(id, _)| id.clone()).collect();
            known.sort();
            Error::UnknownIndicator {
                indicator: indicator.to_string(),
                known,
            }
        })?;
    let s = |v: &str| ScalarValue::Utf8(Some(v.to_string()));
    let (sql, params) = if entry.unit {
        (
            "select unit_name, value, numerator, denominator, reason from marts.unit_indicators \
             where year = $1 and unit_id = $2 and indicator_id = $3",
            vec![ScalarValue::Int32(Some(year)), s(unit), s(indicator)],
        )
    } else {
        (
            "select division_name, value, numerator, denominator, reason from marts.indicators \
             where year = $1 and as_of_month = $2 and division_code = $3 and indicator_id = $4",
            vec![
                ScalarValue::Int32(Some(year)),
                ScalarValue::Int32(Some(month as i32)),
                s(unit),
                s(indicator),
            ],
        )
    };
    let found = rows(ctx, sql, params).await?;
    let row = found.into_iter().next().ok_or_else(|| Error::NoValue {
        indicator: indicator.to_string(),
        unit: unit.to_string(),
        year,
        month,
        kind: if entry.unit {
            "zone or institute id"
        } else {
            "division code"
        },
    })?;
    let f = |i: usize| row[i].as_deref().and_then(|x| x.parse::<f64>().ok());
    // Indicators mixed with the quarterly county form are computed at the
    // division's own latest quarter (intermediate.division_economy), which a
    // late county holds back; the calendar quarter end when it has none.
    let effective = if entry.month.as_deref() == Some("quarter") {
        let q = rows(
            ctx,
            "select cast(quarter_month as varchar) from intermediate.division_economy \
             where year = $1 and as_of_month = $2 and division_code = $3",
            vec![
                ScalarValue::Int32(Some(year)),
                ScalarValue::Int32(Some(month as i32)),
                s(unit),
            ],
        )
        .await?;
        q.first()
            .and_then(|r| r[0].as_deref())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(month / 3 * 3)
    } else {
        month
    };
    let mut inputs = Vec::new();
    for source in &entry.sources {
        let path = lineage_dir.join(format!("{source}.sql"));
        let sql = std::fs::read_to_string(&path).map_err(crate::io_error(&path))?;
        let mut params = vec![
            ScalarValue::Int32(Some(year)),
            ScalarValue::Int32(Some(effective as i32)),
            s(unit),
        ];
        if sql.contains("$4") {
            params.push(s(entry.kind.as_deref().unwrap_or_default()));
        }
        for r in rows(ctx, &sql, params).await.map_err(|e| Error::Lineage {
            path: path.clone(),
            source: Box::new(e),
        })? {
            let g = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
            inputs.push([g(0), g(1), g(2), g(3), g(4), g(5)]);
        }
    }
    Ok(Explanation {
        indicator: indicator.to_string(),
        unit: unit.to_string(),
        unit_name: row[0].clone().unwrap_or_default(),
        year,
        month,
        formula: entry.formula.clone(),
        value: f(1),
        numerator: f(2),
        denominator: f(3),
        reason: row[4].clone(),
        inputs,
    })
}
