//! `review/queries`: one row per doubtful value, its life and its answer.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};

use crate::Reason;

/// Where a query stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Doubtful and not answered.
    Open,
    /// The office confirmed the value (核实无误): closed with its explanation;
    /// not queried again unless the value changes.
    Confirmed,
    /// A later version of the row changed the value to one no rule doubts.
    Corrected,
    /// The query no longer stands as raised: the value changed to another
    /// doubtful one (a new query is opened on it), the row was withdrawn,
    /// or the rules no longer doubt the same value.
    Superseded,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Open,
        Status::Confirmed,
        Status::Corrected,
        Status::Superseded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Confirmed => "confirmed",
            Status::Corrected => "corrected",
            Status::Superseded => "superseded",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// 中文 for a county office.
    pub fn zh(self) -> &'static str {
        match self {
            Status::Open => "待核实",
            Status::Confirmed => "已确认",
            Status::Corrected => "已更正",
            Status::Superseded => "已失效",
        }
    }

    pub fn is_closed(self) -> bool {
        self != Status::Open
    }
}

/// One query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// sha256 of form, unit, period, column and the reported value: a
    /// changed value is a new query.
    pub query_id: String,
    pub form: String,
    /// The unit's key column(s) (`credit_code`) and value(s), `|`-joined.
    pub unit_column: String,
    pub unit: String,
    pub name: Option<String>,
    /// The unit's county in that period (its row's division column).
    pub division: Option<String>,
    pub period: String,
    pub column: String,
    pub reported: f64,
    pub expected: f64,
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// The rule whose query scores highest; `rules`: every rule that doubts
    /// the value, comma-separated, in the form's order.
    pub rule: String,
    pub rules: String,
    pub reason: Reason,
    /// Selective-editing score: `|reported − expected|` as a share of the
    /// division's total of the column in the period with the value at its
    /// expected value (or of the expected value, for forms without a
    /// division).
    pub score: f64,
    pub high_score: bool,
    pub status: Status,
    /// The batch of the row version that carries the value.
    pub opened_batch: String,
    pub opened_at: DateTime<Utc>,
    pub closed_batch: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The office's answer (核实说明) and the batch it came in.
    pub answer: Option<String>,
    pub answer_batch: Option<String>,
}

pub fn schema() -> SchemaRef {
    let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("query_id", DataType::Utf8, false),
        Field::new("form", DataType::Utf8, false),
        Field::new("unit_column", DataType::Utf8, false),
        Field::new("unit", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("division", DataType::Utf8, true),
        Field::new("period", DataType::Utf8, false),
        Field::new("column", DataType::Utf8, false),
        Field::new("reported", DataType::Float64, false),
        Field::new("expected", DataType::Float64, false),
        Field::new("low", DataType::Float64, true),
        Field::new("high", DataType::Float64, true),
        Field::new("rule", DataType::Utf8, false),
        Field::new("rules", DataType::Utf8, false),
        Field::new("reason_code", DataType::Utf8, false),
        Field::new("reason_args", DataType::Utf8, false),
        Field::new("score", DataType::Float64, false),
        Field::new("high_score", DataType::Boolean, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("opened_batch", DataType::Utf8, false),
        Field::new("opened_at", ts(), false),
        Field::new("closed_batch", DataType::Utf8, true),
        Field::new("closed_at", ts(), true),
        Field::new("answer", DataType::Utf8, true),
        Field::new("answer_batch", DataType::Utf8, true),
    ]))
}

pub fn to_batch(rows: &[Query]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let s = |f: &dyn Fn(&Query) -> String| -> ArrayRef {
        Arc::new(rows.iter().map(|q| Some(f(q))).collect::<StringArray>())
    };
    let o = |f: &dyn Fn(&Query) -> Option<String>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    let n = |f: &dyn Fn(&Query) -> Option<f64>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<Float64Array>())
    };
    let t = |f: &dyn Fn(&Query) -> Option<DateTime<Utc>>| -> ArrayRef {
        Arc::new(
            rows.iter()
                .map(|q| f(q).map(|d| d.timestamp_micros()))
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        )
    };
    RecordBatch::try_new(
        schema(),
        vec![
            s(&|q| q.query_id.clone()),
            s(&|q| q.form.clone()),
            s(&|q| q.unit_column.clone()),
            s(&|q| q.unit.clone()),
            o(&|q| q.name.clone()),
            o(&|q| q.division.clone()),
            s(&|q| q.period.clone()),
            s(&|q| q.column.clone()),
            n(&|q| Some(q.reported)),
            n(&|q| Some(q.expected)),
            n(&|q| q.low),
            n(&|q| q.high),
            s(&|q| q.rule.clone()),
            s(&|q| q.rules.clone()),
            s(&|q| q.reason.code().to_string()),
            s(&|q| q.reason.args_json()),
            n(&|q| Some(q.score)),
            Arc::new(
                rows.iter()
                    .map(|q| Some(q.high_score))
                    .collect::<BooleanArray>(),
            ),
            s(&|q| q.status.as_str().to_string()),
            s(&|q| q.opened_batch.clone()),
            t(&|q| Some(q.opened_at)),
            o(&|q| q.closed_batch.clone()),
            t(&|q| q.closed_at),
            o(&|q| q.answer.clone()),
            o(&|q| q.answer_batch.clone()),
        ],
    )
}

/// Reads rows written by [`to_batch`] (columns by name).
pub fn from_batch(b: &RecordBatch) -> Vec<Query> {
    let col = |name: &str| -> &ArrayRef { b.column_by_name(name).expect("review.queries column") };
    let schema = b.schema();
    let texts: std::collections::HashMap<&str, StringArray> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            matches!(
                f.data_type(),
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
            )
        })
        .filter_map(|(i, f)| {
            let a = arrow::compute::cast(b.column(i), &DataType::Utf8).ok()?;
            Some((f.name().as_str(), a.as_string::<i32>().clone()))
        })
        .collect();
    let text = |name: &str, i: usize| -> Option<String> {
        let a = texts.get(name).expect("review.queries text column");
        a.is_valid(i).then(|| a.value(i).to_string())
    };
    let num = |name: &str, i: usize| -> Option<f64> {
        let a = col(name).as_primitive::<arrow::datatypes::Float64Type>();
        a.is_valid(i).then(|| a.value(i))
    };
    let time = |name: &str, i: usize| -> Option<DateTime<Utc>> {
        let a = col(name).as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        a.is_valid(i)
            .then(|| DateTime::from_timestamp_micros(a.value(i)))
            .flatten()
    };
    (0..b.num_rows())
        .filter_map(|i| {
            let t = |n: &str| text(n, i).unwrap_or_default();
            Some(Query {
                query_id: t("query_id"),
                form: t("form"),
                unit_column: t("unit_column"),
                unit: t("unit"),
                name: text("name", i),
                division: text("division", i),
                period: t("period"),
                column: t("column"),
                reported: num("reported", i)?,
                expected: num("expected", i)?,
                low: num("low", i),
                high: num("high", i),
                rule: t("rule"),
                rules: t("rules"),
                reason: Reason::from_stored(&t("reason_code"), &t("reason_args"))?,
                score: num("score", i)?,
                high_score: col("high_score").as_boolean().value(i),
                status: Status::parse(&t("status"))?,
                opened_batch: t("opened_batch"),
                opened_at: time("opened_at", i)?,
                closed_batch: text("closed_batch", i),
                closed_at: time("closed_at", i),
                answer: text("answer", i),
                answer_batch: text("answer_batch", i),
            })
        })
        .collect()
}

/// The id of a query on a value.
pub fn query_id(form: &str, unit: &str, period: &str, column: &str, reported: f64) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [form, unit, period, column, &format!("{reported}")] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..16])
}

/// Every query in the warehouse (none before the first review).
pub async fn read(wh: &stmon_warehouse::Warehouse) -> crate::Result<Vec<Query>> {
    let table = wh.table(&crate::run::table_id()).await?;
    if table.version().is_none() {
        return Ok(Vec::new());
    }
    let ctx = wh.session().await?;
    let batches = ctx
        .sql("select * from review.queries")
        .await?
        .collect()
        .await?;
    Ok(batches.iter().flat_map(from_batch).collect())
}

impl Query {
    /// Why, in Chinese: the reason worded with the form's column labels.
    pub fn why_zh(&self, form: Option<&stmon_schema::Form>) -> String {
        let label = |c: &str| {
            form.and_then(|f| f.column(c))
                .map(|c| c.label.clone())
                .unwrap_or_else(|| c.to_string())
        };
        let rule = form
            .and_then(|f| f.review.as_ref())
            .and_then(|r| r.rules.iter().find(|r| r.id == self.rule));
        let over = rule.and_then(|r| match &r.kind {
            stmon_schema::review::RuleKind::Ratio { over, .. }
            | stmon_schema::review::RuleKind::Peer { over, .. } => Some(label(over)),
            _ => None,
        });
        let freq = form.map(|f| f.frequency);
        let period = |k: u32| match freq {
            Some(stmon_schema::Frequency::Quarterly) => format!("第{k}季度"),
            _ => format!("{k}月"),
        };
        self.reason
            .zh(&label(&self.column), over.as_deref(), &period)
    }

    /// What to do next, from the rule's `advice` (Chinese).
    pub fn advice(&self, form: Option<&stmon_schema::Form>) -> Option<String> {
        form.and_then(|f| f.review.as_ref())
            .and_then(|r| r.rules.iter().find(|r| r.id == self.rule))
            .and_then(|r| r.advice.clone())
    }
}
