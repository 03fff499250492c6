//! Accepted rows as Arrow record batches in the raw layer's schema.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, Utc};
use stmon_schema::{ColumnType, Form};

use crate::validate::Value;

/// Precision and scale of amounts and decimals (万元 to one yuan).
pub const DECIMAL_PRECISION: u8 = 38;
pub const DECIMAL_SCALE: i8 = 4;

pub use stmon_schema::META_COLUMNS;

pub fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Text
        | ColumnType::CreditCode
        | ColumnType::CountyCode
        | ColumnType::Enum
        | ColumnType::PeriodMonth
        | ColumnType::PeriodQuarter
        | ColumnType::PeriodYear => DataType::Utf8,
        ColumnType::Amount | ColumnType::Decimal => {
            DataType::Decimal128(DECIMAL_PRECISION, DECIMAL_SCALE)
        }
        ColumnType::Count => DataType::Int64,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Date => DataType::Date32,
        // Local time (Asia/Shanghai) without zone: Delta's timestamp_ntz.
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
    }
}

/// The raw layer's schema of a form: its columns (nullable, since a withdrawal
/// may leave them blank) followed by the provenance columns and the form's
/// [`stmon_schema::PruneBy`] column, if it has one.
pub fn raw_schema(form: &Form) -> SchemaRef {
    let mut fields: Vec<Field> = form
        .columns
        .iter()
        .map(|c| Field::new(&c.name, arrow_type(c.ty), true))
        .collect();
    fields.push(Field::new("_extra", DataType::Utf8, true));
    fields.push(Field::new("_row_hash", DataType::Utf8, false));
    fields.push(Field::new("_batch_id", DataType::Utf8, false));
    fields.push(Field::new("_source_file", DataType::Utf8, false));
    fields.push(Field::new("_source_sha256", DataType::Utf8, false));
    fields.push(Field::new("_row_number", DataType::Int64, false));
    fields.push(Field::new(
        "_ingested_at",
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        false,
    ));
    if let Some(p) = &form.prune_by {
        fields.push(Field::new(&p.name, DataType::Utf8, true));
    }
    Arc::new(Schema::new(fields))
}

/// One accepted row with its provenance.
pub struct Row {
    pub values: Vec<Value>,
    pub extra: Option<String>,
    pub hash: String,
    pub row_number: u64,
}

/// Where a file's rows came from, stamped on each of them.
#[derive(Debug, Clone)]
pub struct Provenance {
    pub batch_id: String,
    pub source_file: String,
    pub sha256: String,
    pub ingested_at: DateTime<Utc>,
}

pub fn to_batch(
    form: &Form,
    schema: &SchemaRef,
    rows: &[Row],
    prov: &Provenance,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let n = rows.len();
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (i, col) in form.columns.iter().enumerate() {
        let vals = rows.iter().map(|r| &r.values[i]);
        let array: ArrayRef = match arrow_type(col.ty) {
            DataType::Utf8 => {
                let mut b = StringBuilder::with_capacity(n, n * 8);
                for v in vals {
                    match v {
                        Value::Str(s) => b.append_value(s),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            DataType::Decimal128(p, s) => {
                let mut b = Decimal128Builder::with_capacity(n);
                for v in vals {
                    match v {
                        Value::Dec(d) => b.append_value(*d),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish().with_precision_and_scale(p, s)?)
            }
            DataType::Int64 => {
                let mut b = Int64Builder::with_capacity(n);
                for v in vals {
                    match v {
                        Value::Int(x) => b.append_value(*x),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            DataType::Boolean => {
                let mut b = BooleanBuilder::with_capacity(n);
                for v in vals {
                    match v {
                        Value::Bool(x) => b.append_value(*x),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            DataType::Date32 => {
                let mut b = Date32Builder::with_capacity(n);
                for v in vals {
                    match v {
                        Value::Date(d) => b.append_value((*d - epoch).num_days() as i32),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            _ => {
                let mut b = TimestampMicrosecondBuilder::with_capacity(n);
                for v in vals {
                    match v {
                        Value::Ts(t) => b.append_value(t.and_utc().timestamp_micros()),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
        };
        arrays.push(array);
    }
    let strings = |f: &dyn Fn(&Row) -> Option<String>| -> ArrayRef {
        let mut b = StringBuilder::with_capacity(n, n * 16);
        for r in rows {
            b.append_option(f(r));
        }
        Arc::new(b.finish())
    };
    arrays.push(strings(&|r| r.extra.clone()));
    arrays.push(strings(&|r| Some(r.hash.clone())));
    arrays.push(strings(&|_| Some(prov.batch_id.clone())));
    arrays.push(strings(&|_| Some(prov.source_file.clone())));
    arrays.push(strings(&|_| Some(prov.sha256.clone())));
    let mut rn = Int64Builder::with_capacity(n);
    rows.iter()
        .for_each(|r| rn.append_value(r.row_number as i64));
    arrays.push(Arc::new(rn.finish()));
    let mut ts = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    (0..n).for_each(|_| ts.append_value(prov.ingested_at.timestamp_micros()));
    arrays.push(Arc::new(ts.finish()));
    if let Some(p) = &form.prune_by {
        let at = form.column_index(&p.column).expect("checked: a key column");
        let mut b = StringBuilder::with_capacity(n, n * p.length);
        for r in rows {
            match &r.values[at] {
                Value::Str(s) => b.append_value(p.of(s)),
                _ => b.append_null(),
            }
        }
        arrays.push(Arc::new(b.finish()));
    }
    RecordBatch::try_new(schema.clone(), arrays)
}
