//! Typing and checking one row against its form.

use chrono::{NaiveDate, NaiveDateTime};
use stmon_core::{credit_code, parse, prefix, quote, Cell};
use stmon_schema::{Column, ColumnType, DivisionLookup, Divisions, Form, HeaderMatch, Rule};

/// A typed cell value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Str(String),
    /// A decimal scaled by 10^4.
    Dec(i128),
    Int(i64),
    Bool(bool),
    Date(NaiveDate),
    Ts(NaiveDateTime),
}

impl Value {
    /// A canonical text form, used for row hashes and messages.
    pub fn canonical(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Str(s) => s.clone(),
            Value::Dec(d) => {
                let sign = if *d < 0 { "-" } else { "" };
                let a = d.unsigned_abs();
                format!("{sign}{}.{:04}", a / 10_000, a % 10_000)
            }
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Date(d) => d.to_string(),
            Value::Ts(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        }
    }
}

/// A problem with one cell or row: the reason it was rejected (or a warning).
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub column: Option<String>,
    pub value: Option<String>,
    pub reason: String,
}

/// The outcome of one row.
#[derive(Debug, Default)]
pub struct Checked {
    /// One value per form column (in the form's order) when the row is accepted.
    pub values: Vec<Value>,
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

/// Checks rows of one file against one form.
pub struct Validator<'a> {
    form: &'a Form,
    divisions: &'a Divisions,
    /// For each form column, the file column that carries it.
    source: Vec<Option<usize>>,
    withdrawn: Option<usize>,
}

impl<'a> Validator<'a> {
    pub fn new(form: &'a Form, divisions: &'a Divisions, header: &HeaderMatch) -> Self {
        let mut source = vec![None; form.columns.len()];
        for (file_col, form_col) in header.mapping.iter().enumerate() {
            if let Some(i) = form_col {
                source[*i] = Some(file_col);
            }
        }
        Validator {
            form,
            divisions,
            source,
            withdrawn: form.column_index("withdrawn"),
        }
    }

    pub fn check(&self, cells: &[Cell]) -> Checked {
        let mut out = Checked::default();
        let cell = |i: usize| {
            self.source[i]
                .and_then(|j| cells.get(j))
                .unwrap_or(&Cell::Empty)
        };
        // A withdrawal needs only its key and submitted_at; other cells are kept when
        // they parse and otherwise left null, since they no longer carry meaning.
        let withdrawn = match self.withdrawn {
            Some(i) if !cell(i).is_blank() => match to_bool(cell(i)) {
                Ok(b) => b,
                Err(reason) => {
                    out.problems
                        .push(problem(&self.form.columns[i], cell(i), reason));
                    false
                }
            },
            _ => false,
        };
        for (i, col) in self.form.columns.iter().enumerate() {
            let c = cell(i);
            let lenient = withdrawn && !self.form.is_key(&col.name) && col.name != "submitted_at";
            let v = if c.is_blank() {
                match (&col.default, col.optional || lenient) {
                    (Some(d), true) => self
                        .typed(col, &Cell::Text(d.clone()), &mut out.warnings)
                        .unwrap_or(Value::Null),
                    (None, true) => Value::Null,
                    (_, false) => {
                        out.problems
                            .push(problem(col, c, "required value is blank".into()));
                        Value::Null
                    }
                }
            } else {
                match self.typed(col, c, &mut out.warnings) {
                    Ok(v) => v,
                    Err(_) if lenient => Value::Null,
                    Err(reason) => {
                        out.problems.push(problem(col, c, reason));
                        Value::Null
                    }
                }
            };
            out.values.push(v);
        }
        if !withdrawn && out.problems.is_empty() {
            self.check_rules(&mut out);
        }
        if !out.problems.is_empty() {
            out.values.clear();
            out.warnings.clear();
        }
        out
    }

    fn check_rules(&self, out: &mut Checked) {
        let idx = |n: &str| self.form.column_index(n).expect("rules checked at load");
        for rule in &self.form.rules {
            match rule {
                Rule::LessOrEqual { column, le } => {
                    let (a, b) = (&out.values[idx(column)], &out.values[idx(le)]);
                    let bigger = match (a, b) {
                        (Value::Dec(x), Value::Dec(y)) => x > y,
                        (Value::Int(x), Value::Int(y)) => x > y,
                        _ => false,
                    };
                    if bigger {
                        out.problems.push(Problem {
                            column: Some(column.clone()),
                            value: Some(a.canonical()),
                            reason: format!(
                                "{column} ({}) exceeds {le} ({})",
                                a.canonical(),
                                b.canonical()
                            ),
                        });
                    }
                }
                Rule::RequiredWhen {
                    column,
                    required_when,
                } => {
                    let cond = &out.values[idx(&required_when.column)];
                    if out.values[idx(column)] == Value::Null
                        && matches!(cond, Value::Str(s) if required_when.values.contains(s))
                    {
                        out.problems.push(Problem {
                            column: Some(column.clone()),
                            value: None,
                            reason: format!(
                                "{column} is required when {} is {}",
                                required_when.column,
                                cond.canonical()
                            ),
                        });
                    }
                }
            }
        }
    }

    fn typed(&self, col: &Column, c: &Cell, warnings: &mut Vec<Problem>) -> Result<Value, String> {
        let text = c.display();
        let t = text.trim();
        Ok(match col.ty {
            ColumnType::Text => {
                if let Some(max) = col.max_length {
                    let n = t.chars().count();
                    if n > max {
                        return Err(format!(
                            "longer than {max} characters ({n}), the most this column holds"
                        ));
                    }
                }
                Value::Str(t.to_string())
            }
            ColumnType::CreditCode => {
                if matches!(c, Cell::Number(_)) && !t.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!(
                        "credit code stored as a number lost its digits: {}",
                        quote(t)
                    ));
                }
                Value::Str(credit_code::validate(t)?)
            }
            ColumnType::CountyCode => {
                let code = t.strip_suffix(".0").unwrap_or(t);
                if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("a county code has 6 digits: {}", quote(t)));
                }
                match self.divisions.lookup(code) {
                    DivisionLookup::County => Value::Str(code.to_string()),
                    DivisionLookup::Retired { successor } => {
                        let name = |c: &str| {
                            self.divisions
                                .get(c)
                                .map(|d| d.name.clone())
                                .unwrap_or_default()
                        };
                        warnings.push(Problem {
                            column: Some(col.name.clone()),
                            value: Some(code.to_string()),
                            reason: format!(
                                "retired county code {code} ({}) mapped to its successor {successor} ({})",
                                name(code),
                                name(&successor)
                            ),
                        });
                        Value::Str(successor)
                    }
                    DivisionLookup::NotCounty => {
                        let name = self
                            .divisions
                            .get(code)
                            .map(|d| d.name.as_str())
                            .unwrap_or("");
                        return Err(format!("{code} ({name}) is not a county-level division"));
                    }
                    DivisionLookup::Unknown => {
                        return Err(format!(
                            "unknown county code {code} (not in the division table)"
                        ))
                    }
                }
            }
            ColumnType::Amount => Value::Dec(parse::amount(t)?),
            ColumnType::Decimal => {
                let v = parse::decimal(t)?;
                let f = v as f64 / 10_000.0;
                if let Some(m) = col.min_exclusive.filter(|m| f <= *m) {
                    return Err(format!("must be > {m}, got {}", quote(t)));
                }
                if let Some(m) = col.min.filter(|m| f < *m) {
                    return Err(format!("must be >= {m}, got {}", quote(t)));
                }
                Value::Dec(v)
            }
            ColumnType::Count => Value::Int(parse::count(t)?),
            ColumnType::Bool => Value::Bool(to_bool(c)?),
            ColumnType::Date => match c {
                Cell::DateTime(d) => Value::Date(d.date()),
                _ => Value::Date(parse::date(t)?),
            },
            ColumnType::Timestamp => match c {
                Cell::DateTime(d) => Value::Ts(*d),
                _ => Value::Ts(parse::timestamp(t)?),
            },
            ColumnType::PeriodMonth => match c {
                Cell::DateTime(d) => Value::Str(parse::month_of(*d)),
                _ => Value::Str(parse::period_month(t)?),
            },
            ColumnType::PeriodQuarter => Value::Str(parse::period_quarter(t)?),
            ColumnType::PeriodYear => Value::Str(parse::period_year(t)?),
            ColumnType::Enum => match col.enum_id(t) {
                Some(id) => Value::Str(id.to_string()),
                None => {
                    let allowed: Vec<String> = col
                        .values
                        .iter()
                        .map(|v| format!("{} {}", v.id, v.label))
                        .collect();
                    return Err(format!(
                        "{} is not one of: {}",
                        quote(t),
                        allowed.join(", ")
                    ));
                }
            },
        })
    }
}

fn to_bool(c: &Cell) -> Result<bool, String> {
    match c {
        Cell::Bool(b) => Ok(*b),
        other => parse::boolean(&other.display()),
    }
}

/// A cell's problem; the value kept is at most a prefix of the cell
/// ([`stmon_core::prefix`]).
fn problem(col: &Column, c: &Cell, reason: String) -> Problem {
    let raw = c.display();
    Problem {
        column: Some(col.name.clone()),
        value: (!raw.is_empty()).then(|| prefix(&raw)),
        reason,
    }
}
