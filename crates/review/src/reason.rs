//! Why a value is queried: a code with its arguments, stored as such
//! (`reason_code`, `reason_args` as JSON) and worded in Chinese wherever a
//! person reads it. Nothing parses the wording back.

use serde::{Deserialize, Serialize};

/// A query's reason. The variant is the code; its fields are the arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Reason {
    /// `column / over` above `max`.
    RatioAbove { ratio: f64, max: f64 },
    /// `column / over` below `min`.
    RatioBelow { ratio: f64, min: f64 },
    /// Against the same period last year (times the unit's growth).
    VsLastYear { ratio: f64, last_year: f64 },
    /// One period off the unit's level this year, the next back on it.
    Spike { ratio: f64 },
    /// Off the unit's level this year from period `since` on.
    Step { ratio: f64, since: u32 },
    /// The period's increment far above the unit's usual one.
    IncrementHigh { increment: f64, usual: f64 },
    /// The year-to-date value fell below the value of period `since`.
    Fall { previous: f64, since: u32 },
    /// The ratio against the peers' median (Hidiroglou–Berthelot).
    Peer { ratio: f64, median: f64, units: u32 },
}

impl Reason {
    /// The stored code.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::RatioAbove { .. } => "ratio_above",
            Reason::RatioBelow { .. } => "ratio_below",
            Reason::VsLastYear { .. } => "vs_last_year",
            Reason::Spike { .. } => "spike",
            Reason::Step { .. } => "step",
            Reason::IncrementHigh { .. } => "increment_high",
            Reason::Fall { .. } => "fall",
            Reason::Peer { .. } => "peer",
        }
    }

    /// The arguments as a JSON object (without the code).
    pub fn args_json(&self) -> String {
        let mut v = serde_json::to_value(self).expect("reasons serialise");
        if let Some(o) = v.as_object_mut() {
            o.remove("code");
        }
        v.to_string()
    }

    /// Reads a stored code and its arguments back.
    pub fn from_stored(code: &str, args: &str) -> Option<Reason> {
        let mut v: serde_json::Value = serde_json::from_str(args).ok()?;
        v.as_object_mut()?
            .insert("code".into(), serde_json::Value::String(code.into()));
        serde_json::from_value(v).ok()
    }

    /// The reason in Chinese, for a county office. `column` and `over` are
    /// the columns' labels; `period` names a period of the same year
    /// (`3月`, `第3季度`).
    pub fn zh(&self, column: &str, over: Option<&str>, period: &dyn Fn(u32) -> String) -> String {
        let over = over.unwrap_or("");
        match self {
            Reason::RatioAbove { ratio, max } => {
                format!("{column}为{over}的{}，超过上限{}", pct(*ratio), pct(*max))
            }
            Reason::RatioBelow { ratio, min } => {
                format!("{column}为{over}的{}，低于下限{}", pct(*ratio), pct(*min))
            }
            Reason::VsLastYear { ratio, last_year } => format!(
                "{column}为上年同期（{}）按本单位增速推算值的{}倍{}",
                amount(*last_year),
                times(*ratio),
                digit_hint(*ratio)
            ),
            Reason::Spike { ratio } => format!(
                "{column}为本单位本年其他期水平的{}倍，下期又恢复正常{}",
                times(*ratio),
                digit_hint(*ratio)
            ),
            Reason::Step { ratio, since } => format!(
                "{column}自{}起为本单位此前水平的{}倍{}",
                period(*since),
                times(*ratio),
                digit_hint(*ratio)
            ),
            Reason::IncrementHigh { increment, usual } => format!(
                "{column}本期增量{}，为本单位通常增量（{}）的{}倍",
                amount(*increment),
                amount(*usual),
                times(increment / usual.max(f64::MIN_POSITIVE))
            ),
            Reason::Fall { previous, since } => format!(
                "{column}累计值低于{}的{}",
                period(*since),
                amount(*previous)
            ),
            Reason::Peer {
                ratio,
                median,
                units,
            } => format!(
                "{column}为{over}的{}，同行业同规模{}家单位的中位数为{}",
                pct(*ratio),
                units,
                pct(*median)
            ),
        }
    }
}

/// What a ratio near a power of ten suggests: a unit or a digit.
fn digit_hint(ratio: f64) -> &'static str {
    let l = ratio.log10();
    let near = |x: f64| (l - x).abs() < 0.15;
    if near(4.0) {
        "，疑将“元”填为“万元”"
    } else if near(-4.0) {
        "，疑将“万元”填为“元”后换算有误"
    } else if near(1.0) || near(2.0) {
        "，疑多填一位或多位数字"
    } else if near(-1.0) || near(-2.0) {
        "，疑漏填一位或多位数字"
    } else {
        ""
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn times(x: f64) -> String {
    if x >= 100.0 {
        format!("{:.0}", x)
    } else if x >= 0.1 {
        format!("{:.2}", x)
    } else {
        format!("{:.4}", x)
    }
}

fn amount(x: f64) -> String {
    format!("{x:.2}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_through_their_stored_form() {
        let r = Reason::Step {
            ratio: 10_000.0,
            since: 8,
        };
        assert_eq!(r.code(), "step");
        assert_eq!(r.args_json(), r#"{"ratio":10000.0,"since":8}"#);
        assert_eq!(Reason::from_stored("step", &r.args_json()), Some(r));
        assert_eq!(Reason::from_stored("nonsense", "{}"), None);
    }

    #[test]
    fn reasons_read_in_chinese() {
        let month = |m: u32| format!("{m}月");
        let r = Reason::Step {
            ratio: 10_000.0,
            since: 8,
        };
        assert_eq!(
            r.zh("研发经费", None, &month),
            "研发经费自8月起为本单位此前水平的10000倍，疑将“元”填为“万元”"
        );
        let r = Reason::RatioAbove {
            ratio: 1.25,
            max: 1.0,
        };
        assert_eq!(
            r.zh("研发经费", Some("营业收入"), &month),
            "研发经费为营业收入的125.0%，超过上限100.0%"
        );
        let r = Reason::Spike { ratio: 0.1 };
        assert_eq!(
            r.zh("营业收入", None, &month),
            "营业收入为本单位本年其他期水平的0.10倍，下期又恢复正常，疑漏填一位或多位数字"
        );
    }
}
