//! The one look of every HTML page stmon writes: the ranking report, the
//! progress report and the documentation site share this stylesheet, page
//! shell, provenance block and these charts, so a reader sees one product.
//!
//! Pages are self-contained: the style is inline, charts are inline SVG that
//! scale to the width of the screen (laptop or phone), and nothing is loaded
//! from elsewhere, so a page opens from an e-mail attachment. This module
//! draws; it never reads the warehouse or decides what a page says.

use std::fmt::Write as _;

/// The shared stylesheet (system fonts first, then Noto CJK for Chinese).
pub const STYLE: &str = "\
:root{--ink:#1f2328;--muted:#59636e;--line:#d1d9e0;--head:#f6f8fa;--accent:#2f6fcf;\
--red:#cf222e;--red-bg:#ffebe9;--yellow:#9a6700;--yellow-bg:#fff8c5;--green:#1a7f37;--green-bg:#dafbe1;--none:#8c959f}\
*{box-sizing:border-box}\
body{font-family:system-ui,-apple-system,\"Segoe UI\",\"Noto Sans CJK SC\",\"Noto Sans SC\",\"Microsoft YaHei\",sans-serif;\
margin:0 auto;padding:16px 20px 48px;max-width:1200px;color:var(--ink);line-height:1.5}\
h1{font-size:1.5rem;margin:.4em 0}h2{font-size:1.25rem;margin:1.8em 0 .4em;border-bottom:1px solid var(--line);padding-bottom:.2em}\
h3{font-size:1rem;margin:1.2em 0 .3em}a{color:var(--accent)}code,pre{font-family:ui-monospace,\"Noto Sans Mono CJK SC\",monospace;font-size:.85em}\
pre{background:var(--head);padding:8px 10px;overflow-x:auto;border-radius:4px}\
table{border-collapse:collapse;font-size:.8rem;margin:6px 0 18px}\
th,td{border:1px solid var(--line);padding:3px 7px;text-align:right;white-space:nowrap}\
th{background:var(--head);text-align:center}td.t{text-align:left}td.note{text-align:left;white-space:normal;min-width:16em}\
.wide{overflow-x:auto;max-width:100%}\
dl.prov{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;font-size:.8rem;color:var(--muted);margin:6px 0 12px}\
dl.prov dt{font-weight:600}dl.prov dd{margin:0;word-break:break-all}\
.chart{display:block;margin:6px 0;width:100%;height:auto}\
.light{display:inline-block;min-width:1.8em;text-align:center;border-radius:3px;padding:0 4px;font-weight:600}\
.light.red{color:var(--red);background:var(--red-bg)}.light.yellow{color:var(--yellow);background:var(--yellow-bg)}\
.light.green{color:var(--green);background:var(--green-bg)}.light.none{color:var(--none);background:var(--head)}\
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:10px}\
.card{border:1px solid var(--line);border-radius:6px;padding:8px 10px;border-top-width:4px}\
.card.red{border-top-color:var(--red)}.card.yellow{border-top-color:#d4a72c}.card.green{border-top-color:var(--green)}.card.none{border-top-color:var(--none)}\
.card h4{margin:0 0 2px;font-size:.9rem}.card .nums{font-size:.8rem;color:var(--muted)}\
.card .queried{font-size:.8rem;color:#9a6700;background:#fff8c5;padding:1px 4px;margin-top:2px}\
.counts{font-size:.85rem;color:var(--muted)}\
nav.top{font-size:.85rem;margin-bottom:8px}nav.top a{margin-right:12px}\
.muted{color:var(--muted)}\
@media (max-width:600px){body{padding:10px 10px 32px}h1{font-size:1.2rem}dl.prov{grid-template-columns:1fr}\
.cards{grid-template-columns:1fr}}\
";

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A whole page: doctype, Chinese language, viewport, the shared style,
/// `head_extra` (e.g. a page's own script) and the body.
pub fn page(title: &str, body: &str, head_extra: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style>{head_extra}</head><body>{body}</body></html>\n",
        esc(title)
    )
}

/// Provenance as a definition list: label, then value in code type.
pub fn provenance(lines: &[(String, String)]) -> String {
    let mut s = String::from("<dl class=\"prov\">");
    for (k, v) in lines {
        let _ = write!(s, "<dt>{}</dt><dd><code>{}</code></dd>", esc(k), esc(v));
    }
    s.push_str("</dl>");
    s
}

/// An SVG that scales to the width available, up to its natural width.
fn svg_open(w: f64, h: f64, aria: &str, class: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart {class}\" viewBox=\"0 0 {w} {h}\" \
         style=\"max-width:{w}px\" role=\"img\" aria-label=\"{}\">",
        esc(aria)
    )
}

/// One bar: its label, value on the axis and the text printed beside it.
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub text: String,
}

/// Horizontal bars on a 0..`max` axis with five ticks, one bar per row.
pub fn bar_chart(bars: &[Bar], max: f64, aria: &str) -> String {
    let left = label_room(bars.iter().map(|b| b.label.as_str()));
    let (bar_h, w) = (22.0, 380.0);
    let height = 30.0 + bars.len() as f64 * bar_h;
    let mut s = svg_open(left + w + 60.0, height, aria, "bars");
    for i in 0..=4 {
        let tick = max * f64::from(i) / 4.0;
        let x = left + w * f64::from(i) / 4.0;
        let _ = write!(
            s,
            "<line x1=\"{x}\" y1=\"10\" x2=\"{x}\" y2=\"{}\" stroke=\"#ddd\"/><text x=\"{x}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#666\">{}</text>",
            height - 15.0,
            height - 3.0,
            tick_text(tick)
        );
    }
    for (i, b) in bars.iter().enumerate() {
        let y = 10.0 + i as f64 * bar_h;
        let bw = (w * b.value.clamp(0.0, 1.2 * max) / max).max(0.0);
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"end\">{}</text><rect class=\"bar\" x=\"{left}\" y=\"{}\" width=\"{bw:.1}\" height=\"{}\" fill=\"#2f6fcf\"/><text x=\"{:.1}\" y=\"{}\" font-size=\"11\">{}</text>",
            left - 6.0,
            y + 15.0,
            esc(&b.label),
            y + 3.0,
            bar_h - 6.0,
            left + bw + 4.0,
            y + 15.0,
            esc(&b.text)
        );
    }
    s.push_str("</svg>");
    s
}

/// Room for the longest label at 12 px (CJK 12 px, others about 7), so
/// that a chart is no wider than it needs to be and scales less on a phone.
fn label_room<'a>(labels: impl Iterator<Item = &'a str>) -> f64 {
    let widest = labels
        .map(|l| {
            l.chars()
                .map(|c| if c.is_ascii() { 7.0 } else { 12.0 })
                .sum::<f64>()
        })
        .fold(0.0f64, f64::max);
    (widest + 12.0).clamp(60.0, 240.0)
}

fn tick_text(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// One row of a rank-interval chart: P5 and P95, the median and the nominal rank.
pub struct Interval {
    pub label: String,
    pub lo: f64,
    pub hi: f64,
    pub median: f64,
    pub rank: f64,
}

/// Rank intervals over ranks 1..`n`: a line from P5 to P95, a dot at the
/// median, a tick at the nominal rank.
pub fn interval_chart(rows: &[Interval], n: f64, aria: &str) -> String {
    let left = label_room(rows.iter().map(|r| r.label.as_str()));
    let (row_h, w) = (20.0, 380.0);
    let height = 30.0 + rows.len() as f64 * row_h;
    let xr = |rank: f64| left + w * (rank - 1.0) / (n - 1.0).max(1.0);
    let mut s = svg_open(left + w + 40.0, height, aria, "intervals");
    for (i, r) in rows.iter().enumerate() {
        let y = 18.0 + i as f64 * row_h;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"end\">{}</text>\
             <line class=\"interval\" x1=\"{:.1}\" y1=\"{y}\" x2=\"{:.1}\" y2=\"{y}\" stroke=\"#999\" stroke-width=\"4\"/>\
             <circle cx=\"{:.1}\" cy=\"{y}\" r=\"5\" fill=\"#d8603b\"/>\
             <line x1=\"{:.1}\" y1=\"{}\" x2=\"{:.1}\" y2=\"{}\" stroke=\"#000\" stroke-width=\"2\"/>",
            left - 6.0,
            y + 4.0,
            esc(&r.label),
            xr(r.lo),
            xr(r.hi),
            xr(r.median),
            xr(r.rank),
            y - 7.0,
            xr(r.rank),
            y + 7.0
        );
    }
    let _ = write!(
        s,
        "<text x=\"{left}\" y=\"{}\" font-size=\"10\" fill=\"#666\">第1名</text><text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"#666\" text-anchor=\"end\">第{n}名</text></svg>",
        height - 3.0,
        left + w,
        height - 3.0
    );
    s
}

/// A traffic light's class and Chinese word (`none` for no status).
pub fn light_class(light: Option<crate::progress::Light>) -> (&'static str, &'static str) {
    match light {
        Some(l) => (l.as_str(), l.zh()),
        None => ("none", "无"),
    }
}

/// One month of a completion series.
pub struct MonthPoint {
    pub month: u32,
    pub completion: f64,
    pub light: crate::progress::Light,
}

/// Completion month by month against time progress: months 1–12 across,
/// completion up (100 % marked); the time progress as a dashed line (m/12
/// for cumulative indicators, 100 % for rates), the completion as a line
/// with a dot per month in its light's colour, and the as-of month marked.
pub fn month_chart(points: &[MonthPoint], cumulative: bool, as_of: u32, aria: &str) -> String {
    let (w, h, left, right, top, bottom) = (260.0, 110.0, 30.0, 8.0, 8.0, 18.0);
    let top_value = points
        .iter()
        .map(|p| p.completion)
        .fold(1.0f64, f64::max)
        .min(2.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let x = |m: f64| left + pw * (m - 0.5) / 12.0;
    let y = |c: f64| top + ph * (1.0 - c.clamp(0.0, top_value) / top_value);
    let mut s = svg_open(w, h, aria, "months");
    // Axes: 0 and 100 %, months 1, 3, 6, 9, 12.
    for (v, label) in [(0.0, "0"), (1.0, "100%")] {
        let _ = write!(
            s,
            "<line x1=\"{left}\" y1=\"{yy:.1}\" x2=\"{}\" y2=\"{yy:.1}\" stroke=\"#d1d9e0\"/>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"end\" fill=\"#59636e\">{label}</text>",
            w - right,
            left - 3.0,
            y(v) + 3.0,
            yy = y(v)
        );
    }
    for m in [1u32, 3, 6, 9, 12] {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"9\" text-anchor=\"middle\" fill=\"#59636e\">{m}月</text>",
            x(f64::from(m)),
            h - 4.0
        );
    }
    // The as-of month.
    let _ = write!(
        s,
        "<line class=\"asof\" x1=\"{xx:.1}\" y1=\"{top}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"#8c959f\" stroke-width=\"1\" stroke-dasharray=\"1 2\"/>",
        h - bottom,
        xx = x(f64::from(as_of))
    );
    // Time progress.
    let tp: Vec<String> = (1..=12u32)
        .map(|m| {
            let v = if cumulative { f64::from(m) / 12.0 } else { 1.0 };
            format!("{:.1},{:.1}", x(f64::from(m)), y(v))
        })
        .collect();
    let _ = write!(
        s,
        "<polyline class=\"time\" points=\"{}\" fill=\"none\" stroke=\"#8c959f\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/>",
        tp.join(" ")
    );
    if !points.is_empty() {
        let line: Vec<String> = points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(f64::from(p.month)), y(p.completion)))
            .collect();
        let _ = write!(
            s,
            "<polyline class=\"completion\" points=\"{}\" fill=\"none\" stroke=\"#2f6fcf\" stroke-width=\"2\"/>",
            line.join(" ")
        );
    }
    for p in points {
        let colour = match p.light {
            crate::progress::Light::Green => "#1a7f37",
            crate::progress::Light::Yellow => "#d4a72c",
            crate::progress::Light::Red => "#cf222e",
        };
        let _ = write!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.2\" fill=\"{colour}\" data-month=\"{}\" data-completion=\"{:.4}\"><title>{}月 完成率 {:.1}%</title></circle>",
            x(f64::from(p.month)),
            y(p.completion),
            p.month,
            p.completion,
            p.month,
            p.completion * 100.0
        );
    }
    s.push_str("</svg>");
    s
}
