//! The review (审核): known mistakes typed into the bundled Shaoxing data
//! are found, scored and closed when corrected; the clean data raise none.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use stmon_review::{Options, Query, Status};

use crate::common::{ingest, query, repo, warehouse};

/// One injected mistake: the firm, the month and the columns it changes.
struct Incident {
    kind: &'static str,
    firm: String,
    months: Vec<u32>,
    /// The column whose value the review must query.
    column: &'static str,
}

/// A firm's 2023 reports as current: month → (county, industry, above,
/// high-tech, revenue, rd, basic, value added, submitted_at).
type Reports = Vec<(u32, Vec<String>)>;

/// A kind of mistake: its name, the months it touches, the column to be
/// queried, and what it does to (revenue, rd, basic research, value added).
type Kind = (&'static str, Vec<u32>, &'static str, fn(&mut [f64; 4]));

const COLS: &str = "period,credit_code,county_code,industry_code,above_scale,high_tech_industry,revenue,rd_expenditure,basic_research,value_added,submitted_at";

async fn reports(wh: &stmon_warehouse::Warehouse, firm: &str) -> Reports {
    let rows = query(
        wh,
        &format!(
            "select cast(substr(period, 6, 2) as int), county_code, industry_code, \
             case when above_scale then 'Y' else 'N' end, case when high_tech_industry then 'Y' else 'N' end, \
             cast(revenue as double), cast(rd_expenditure as double), cast(basic_research as double), \
             cast(value_added as double), cast(submitted_at as varchar) \
             from current.enterprise_rd where credit_code = '{firm}' and period like '2023-%' order by period"
        ),
    )
    .await;
    rows.into_iter()
        .map(|r| (r[0].parse().unwrap(), r[1..].to_vec()))
        .collect()
}

/// A CSV row of a firm's month with some amounts replaced, submitted 30
/// days after `base` (a resubmission).
fn line(
    firm: &str,
    month: u32,
    r: &[String],
    change: &dyn Fn(&mut [f64; 4]),
    later_days: i64,
) -> String {
    let mut v: [f64; 4] = [4, 5, 6, 7].map(|i| r[i].parse::<f64>().unwrap_or(0.0));
    let va_blank = r[7] == "NULL";
    change(&mut v);
    let ts = chrono::NaiveDateTime::parse_from_str(&r[8][..19], "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(&r[8][..19], "%Y-%m-%d %H:%M:%S"))
        .unwrap()
        + chrono::Duration::days(later_days);
    format!(
        "2023-{month:02},{firm},{},{},{},{},{:.4},{:.4},{:.4},{},{}\n",
        r[0],
        r[1],
        r[2],
        r[3],
        v[0],
        v[1],
        v[2],
        if va_blank {
            String::new()
        } else {
            format!("{:.4}", v[3])
        },
        ts.format("%Y-%m-%d %H:%M:%S")
    )
}

fn stmon(wh: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stmon"));
    c.arg("--warehouse")
        .arg(wh)
        .env("STMON_SCHEMAS", repo().join("schemas"));
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_mistakes_are_queried_scored_and_closed_when_corrected() {
    let dir = tempfile::tempdir().unwrap();
    let whp = dir.path().join("wh");
    let wh = warehouse(&whp);
    ingest(&wh, &[repo().join("fixtures/shaoxing/submissions")]).await;
    let s = stmon_review::review(&wh, &Options::default())
        .await
        .unwrap();
    assert_eq!(s.batches.len(), 1);
    assert_eq!(s.units["enterprise_rd"], 7_500);
    // The bundled data are clean (their ×1.05 corrections replace whole
    // versions): no query, of any rule.
    assert_eq!(s.opened, 0, "queries on clean data");
    let clean_firm_months: u64 = query(&wh, "select count(*) from current.enterprise_rd").await[0]
        [0]
    .parse()
    .unwrap();

    // Firms with all twelve 2023 months, industrial (value added), picked
    // spread over the credit codes.
    let firms: Vec<String> = query(
        &wh,
        "select credit_code from current.enterprise_rd where period like '2023-%' \
         and value_added > 0 and rd_expenditure > 0 and revenue > 0 \
         group by credit_code having count(*) = 12 order by credit_code",
    )
    .await
    .into_iter()
    .map(|r| r[0].clone())
    .collect();
    assert!(firms.len() > 1_000);
    let pick = |i: usize| firms[(i * 397 + 11) % firms.len()].clone();
    let kinds: [Kind; 8] = [
        ("yuan one month", vec![5], "rd_expenditure", |v| {
            v[1] *= 10_000.0
        }),
        (
            "yuan to december",
            vec![8, 9, 10, 11, 12],
            "rd_expenditure",
            |v| v[1] *= 10_000.0,
        ),
        ("extra digit", vec![6], "rd_expenditure", |v| v[1] *= 10.0),
        ("dropped digit", vec![9], "rd_expenditure", |v| v[1] /= 10.0),
        ("rd above revenue", vec![7], "rd_expenditure", |v| {
            v[1] = v[0] * 1.5
        }),
        ("va above revenue", vec![10], "value_added", |v| {
            v[3] = v[0] * 1.3
        }),
        ("revenue in yuan", vec![4], "revenue", |v| v[0] *= 10_000.0),
        ("row in yuan", vec![3], "revenue", |v| {
            for x in v.iter_mut() {
                *x *= 10_000.0
            }
        }),
    ];
    let mut incidents = Vec::new();
    let mut csv = format!("{COLS}\n");
    let mut fix = format!("{COLS}\n");
    for (i, (kind, months, column, change)) in kinds.iter().enumerate() {
        for copy in 0..2 {
            let firm = pick(i * 2 + copy);
            let r = reports(&wh, &firm).await;
            for &m in months {
                let row = &r.iter().find(|(k, _)| *k == m).unwrap().1;
                csv.push_str(&line(&firm, m, row, change, 30));
                fix.push_str(&line(&firm, m, row, &|_| {}, 40));
            }
            incidents.push(Incident {
                kind,
                firm,
                months: months.clone(),
                column,
            });
        }
    }
    let inj = dir.path().join("resubmitted.csv");
    std::fs::write(&inj, &csv).unwrap();
    let report = ingest(&wh, std::slice::from_ref(&inj)).await;
    assert_eq!(report.forms["enterprise_rd"].rejected, 0);
    let s = stmon_review::review(&wh, &Options::default())
        .await
        .unwrap();
    assert_eq!(s.batches.len(), 1);
    assert_eq!(
        s.units["enterprise_rd"], 16,
        "only the touched firms are reviewed"
    );
    let qs: Vec<Query> = stmon_review::queries::read(&wh).await.unwrap();
    let open: Vec<&Query> = qs.iter().filter(|q| q.status == Status::Open).collect();
    // Recall: every injected value is queried, on its column.
    let mut missed = String::new();
    for inc in &incidents {
        for m in &inc.months {
            let period = format!("2023-{m:02}");
            if !open
                .iter()
                .any(|q| q.unit == inc.firm && q.period == period && q.column == inc.column)
            {
                writeln!(missed, "{} {} {period} {}", inc.kind, inc.firm, inc.column).unwrap();
            }
        }
    }
    assert!(missed.is_empty(), "not queried:\n{missed}");
    // False queries: open queries on values nobody changed (a whole row in
    // 元 also doubts its R&D and value added, which were changed too).
    let injected = |q: &Query| {
        incidents.iter().any(|i| {
            i.firm == q.unit
                && i.months.iter().any(|m| q.period == format!("2023-{m:02}"))
                && (i.column == q.column || i.kind == "row in yuan")
        })
    };
    let false_queries: Vec<&&Query> = open.iter().filter(|q| !injected(q)).collect();
    eprintln!(
        "review: {} incidents, {} open queries, {} on values not changed, of {clean_firm_months} firm-months",
        incidents.len(),
        open.len(),
        false_queries.len()
    );
    assert!(
        (false_queries.len() as f64) <= 0.005 * clean_firm_months as f64,
        "{} false queries: {:?}",
        false_queries.len(),
        false_queries.iter().take(5).collect::<Vec<_>>()
    );
    // The expected value of a unit slip is the firm's own level, and the
    // slips in 元 score highest: they lead the list.
    let mut by_score = open.clone();
    by_score.sort_by(|a, b| b.score.total_cmp(&a.score));
    for q in by_score.iter().take(4) {
        assert!(q.reported / q.expected > 1_000.0, "{q:?}");
        assert!(q.high_score);
    }
    let yuan = open
        .iter()
        .find(|q| q.unit == incidents[0].firm && q.period == "2023-05")
        .unwrap();
    let truth: f64 = reports(&wh, &incidents[0].firm).await[4].1[5]
        .parse::<f64>()
        .unwrap()
        / 10_000.0;
    assert!(
        (yuan.expected / truth - 1.0).abs() < 0.2,
        "{} vs {truth}",
        yuan.expected
    );
    assert_eq!(yuan.opened_batch, report.batch_id.clone().unwrap());
    assert!(yuan
        .why_zh(wh.catalog.form("enterprise_rd"))
        .contains("疑将“元”填为“万元”"));

    // One list per county office, highest score first, in Chinese.
    let lists = dir.path().join("lists");
    let out = stmon(&whp)
        .args(["review", "lists", "--out"])
        .arg(&lists)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counties: std::collections::BTreeSet<String> =
        open.iter().filter_map(|q| q.division.clone()).collect();
    for c in &counties {
        let page = std::fs::read_to_string(lists.join(format!("review-{c}.html"))).unwrap();
        let here: Vec<&&Query> = open
            .iter()
            .filter(|q| q.division.as_ref() == Some(c))
            .collect();
        assert!(page.contains(&format!("待核实 {} 条", here.len())), "{c}");
        let top = here
            .iter()
            .max_by(|a, b| a.score.total_cmp(&b.score))
            .unwrap();
        let first_row = &page[page.find("<tbody>").unwrap()..];
        let first_row = &first_row[..first_row.find("</tr>").unwrap()];
        assert!(first_row.contains(&top.unit), "{c}: {first_row}");
        assert!(lists.join(format!("review-{c}.xlsx")).is_file());
    }
    assert_eq!(
        std::fs::read_dir(&lists).unwrap().count(),
        counties.len() * 2
    );

    // The offices answer: 确认 closes the value added query of the first
    // firm with its explanation, 更正 records the answer on the first slip
    // in 元 (open until the corrected row comes); an answer naming no
    // query is reported.
    let va = &incidents[10];
    assert_eq!(va.kind, "va above revenue");
    let answers = dir.path().join("answers.csv");
    std::fs::write(
        &answers,
        format!(
            "报表,单位代码,报告期,指标,核实结果,说明,填报时间\n\
             企业研发活动情况,{},2023-10,value_added,确认,含受托加工收入，数据属实,2024-03-01 10:00\n\
             enterprise_rd,{},2023-05,rd_expenditure,更正,误填为元，将重报,2024-03-01 10:05\n\
             enterprise_rd,{},2023-01,revenue,确认,,2024-03-01 10:06\n",
            va.firm, incidents[0].firm, incidents[0].firm
        ),
    )
    .unwrap();
    let report = ingest(&wh, std::slice::from_ref(&answers)).await;
    assert_eq!(report.forms["review_response"].accepted, 3);
    let s = stmon_review::review(&wh, &Options::default())
        .await
        .unwrap();
    assert_eq!(s.closed.get("confirmed"), Some(&1));
    assert_eq!(
        s.unmatched,
        [format!(
            "enterprise_rd {} 2023-01 revenue",
            incidents[0].firm
        )]
    );
    let qs = stmon_review::queries::read(&wh).await.unwrap();
    let cell = |firm: &str, period: &str, column: &str| -> Query {
        qs.iter()
            .find(|q| q.unit == firm && q.period == period && q.column == column)
            .unwrap()
            .clone()
    };
    let confirmed = cell(&va.firm, "2023-10", "value_added");
    assert_eq!(confirmed.status, Status::Confirmed);
    assert_eq!(
        confirmed.answer.as_deref(),
        Some("含受托加工收入，数据属实")
    );
    assert_eq!(confirmed.closed_batch, report.batch_id);
    let promised = cell(&incidents[0].firm, "2023-05", "rd_expenditure");
    assert_eq!(promised.status, Status::Open);
    assert_eq!(promised.answer_batch, report.batch_id);
    // A confirmed value is not queried again while it stands: reviewing
    // every batch again leaves it confirmed and opens nothing.
    let s = stmon_review::review(
        &wh,
        &Options {
            all: true,
            ..Options::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(s.opened, 0);
    assert_eq!(
        cell(&va.firm, "2023-10", "value_added").status,
        Status::Confirmed
    );

    // The office corrects them: every open query closes as corrected.
    let fixed = dir.path().join("corrected.csv");
    std::fs::write(&fixed, &fix).unwrap();
    ingest(&wh, std::slice::from_ref(&fixed)).await;
    let s = stmon_review::review(&wh, &Options::default())
        .await
        .unwrap();
    assert_eq!(s.opened, 0);
    assert_eq!(s.open, false_queries.len() as u64);
    let qs = stmon_review::queries::read(&wh).await.unwrap();
    for q in qs.iter().filter(|q| injected(q)) {
        let was_confirmed = q.unit == va.firm && q.column == "value_added";
        let status = if was_confirmed {
            Status::Confirmed
        } else {
            Status::Corrected
        };
        assert_eq!(q.status, status, "{q:?}");
        assert!(q.closed_batch.is_some());
    }
    let corrected = qs
        .iter()
        .find(|q| q.unit == incidents[0].firm && q.period == "2023-05")
        .unwrap();
    assert_eq!(corrected.answer.as_deref(), Some("误填为元，将重报"));
    // Nothing new: nothing written, and `stmon review run` exits 0.
    let out = stmon(&whp).args(["review", "run"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing new"));

    // A new slip through the command: a high-score query exits 1, and the
    // list shows it first.
    let firm = pick(40);
    let r = reports(&wh, &firm).await;
    let row = &r.iter().find(|(k, _)| *k == 11).unwrap().1;
    let slip = dir.path().join("slip.csv");
    std::fs::write(
        &slip,
        format!(
            "{COLS}\n{}",
            line(&firm, 11, row, &|v| v[1] *= 10_000.0, 50)
        ),
    )
    .unwrap();
    ingest(&wh, std::slice::from_ref(&slip)).await;
    let out = stmon(&whp).args(["review", "run"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = stmon(&whp)
        .args(["review", "list", "--limit", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&firm) && text.contains("2023-11"), "{text}");
}

/// Runs a `stmon` command, asserting its exit code; returns stdout.
fn ok(c: &mut Command, code: i32) -> String {
    let out = c.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{:?}\n{}\n{}",
        c,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Rows of a CSV text (header first).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// The generator's own typing slips (R&D with an extra digit, corrected in
/// its corrections file) are queried while only the first version is in,
/// and close as corrected when the correction comes; then mistakes typed by
/// `stmon fixtures mistakes` are found, and what rests on them shows
/// downstream: marts.indicators' queried, queried_share and held_value (checked
/// against the queries themselves), the ranking tables' 待核实 and the ranks
/// with queried values held at expected (`stmon assess --hold-queried`), the
/// progress page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slips_close_as_corrected_and_queries_show_downstream() {
    let dir = tempfile::tempdir().unwrap();
    let whp = dir.path().join("wh");
    let wh = warehouse(&whp);
    let subs = repo().join("fixtures/shaoxing/submissions");
    let mut first: Vec<std::path::PathBuf> = std::fs::read_dir(&subs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("enterprise_rd"))
        .collect();
    first.push(subs.join("enterprise_rd/2022"));
    first.push(subs.join("enterprise_rd/2023"));
    ingest(&wh, &first).await;
    // The slips: corrections whose R&D is a tenth of the first version's.
    let corrections = subs.join("enterprise_rd/corrections-2023.csv");
    let rows = csv_rows(&std::fs::read_to_string(&corrections).unwrap());
    let h = |name: &str| {
        rows[0]
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
            .unwrap()
    };
    let (pi, ci, ri, wi) = (
        h("period"),
        h("credit_code"),
        h("rd_expenditure"),
        h("withdrawn"),
    );
    let current: std::collections::HashMap<(String, String), f64> = query(
        &wh,
        "select credit_code, period, cast(rd_expenditure as double) from current.enterprise_rd where period like '2023-%'",
    )
    .await
    .into_iter()
    .map(|r| ((r[0].clone(), r[1].clone()), r[2].parse().unwrap()))
    .collect();
    let slips: Vec<(String, String)> = rows[1..]
        .iter()
        .filter(|r| r[wi].is_empty())
        .filter(|r| {
            let was = current[&(r[ci].clone(), r[pi].clone())];
            let now: f64 = r[ri].parse().unwrap();
            (was - now * 10.0).abs() < 0.02
        })
        .map(|r| (r[ci].clone(), r[pi].clone()))
        .collect();
    assert!(slips.len() >= 20, "{} slips", slips.len());
    let s = stmon_review::review(&wh, &Options::default())
        .await
        .unwrap();
    let qs = stmon_review::queries::read(&wh).await.unwrap();
    for (firm, period) in &slips {
        assert!(
            qs.iter().any(|q| q.unit == *firm
                && q.period == *period
                && q.column == "rd_expenditure"
                && q.status == Status::Open),
            "slip {firm} {period} not queried"
        );
    }
    assert!(
        s.opened as usize <= slips.len() + 2,
        "{} queries for {} slips",
        s.opened,
        slips.len()
    );
    // Rows beyond the review's memory are judged from a sorted read: the
    // same queries. Reviewed again that way, nothing opens or closes.
    let sorted = Options {
        rows_memory: 0,
        ..Options::default()
    };
    let again = stmon_review::review(
        &wh,
        &Options {
            all: true,
            ..sorted.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!((again.opened, again.open), (0, s.open));
    assert!(again.closed.is_empty(), "{:?}", again.closed);
    let key = |q: &Query| {
        (
            q.query_id.clone(),
            q.status.as_str(),
            q.rule.clone(),
            format!("{:.6e}", q.score),
        )
    };
    let mut was: Vec<_> = qs.iter().map(key).collect();
    let mut now: Vec<_> = stmon_review::queries::read(&wh)
        .await
        .unwrap()
        .iter()
        .map(key)
        .collect();
    was.sort();
    now.sort();
    assert_eq!(was, now);
    ingest(&wh, &[corrections]).await;
    // The night, sorted too.
    let s = stmon_review::review(&wh, &sorted).await.unwrap();
    assert_eq!(s.opened, 0);
    let qs = stmon_review::queries::read(&wh).await.unwrap();
    for (firm, period) in &slips {
        let q = qs
            .iter()
            .find(|q| q.unit == *firm && q.period == *period && q.column == "rd_expenditure")
            .unwrap();
        assert_eq!(q.status, Status::Corrected, "{q:?}");
    }
    assert!(
        s.closed.get("corrected").copied().unwrap_or(0) >= slips.len() as u64,
        "{:?}",
        s.closed
    );

    // Mistakes typed into the clean data.
    ok(stmon(&whp).args(["models", "run"]), 0);
    let mistakes = dir.path().join("mistakes.csv");
    let manifest = dir.path().join("manifest.csv");
    let said = ok(
        stmon(&whp)
            .args([
                "fixtures", "mistakes", "--count", "24", "--seed", "9", "--out",
            ])
            .arg(&mistakes)
            .arg("--manifest")
            .arg(&manifest),
        0,
    );
    assert!(said.starts_with("24 incidents"), "{said}");
    let report = ingest(&wh, std::slice::from_ref(&mistakes)).await;
    assert_eq!(report.forms["enterprise_rd"].rejected, 0);
    stmon_review::review(&wh, &Options::default())
        .await
        .unwrap();
    let qs = stmon_review::queries::read(&wh).await.unwrap();
    let open: Vec<&Query> = qs.iter().filter(|q| q.status == Status::Open).collect();
    // Each query names its firm as the firm's latest report does.
    let names: std::collections::HashMap<String, String> = query(
        &wh,
        "select credit_code, last_value(name order by period) from current.enterprise_rd group by credit_code",
    )
    .await
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect();
    for q in &open {
        assert_eq!(q.name.as_ref(), names.get(&q.unit), "{q:?}");
    }
    let man = csv_rows(&std::fs::read_to_string(&manifest).unwrap());
    // incident,kind,credit_code,county_code,period_month,column,true,typed,impact
    let queried = |r: &Vec<String>| {
        let period = format!("2023-{:02}", r[4].parse::<u32>().unwrap());
        open.iter()
            .any(|q| q.unit == r[2] && q.period == period && q.column == r[5])
    };
    let found = man[1..].iter().filter(|r| queried(r)).count();
    assert!(
        found as f64 >= 0.95 * (man.len() - 1) as f64,
        "{found} of {} typed values queried",
        man.len() - 1
    );
    // Every incident that moves its county's year end by 1 % is among the
    // 20 highest-scored open queries of its county.
    for r in man[1..]
        .iter()
        .filter(|r| r[8].parse::<f64>().unwrap() >= 0.01)
    {
        let mut here: Vec<&&Query> = open
            .iter()
            .filter(|q| q.division.as_deref() == Some(r[3].as_str()))
            .collect();
        here.sort_by(|a, b| b.score.total_cmp(&a.score));
        assert!(
            here.iter().take(20).any(|q| q.unit == r[2]),
            "high-impact incident {} not in {}'s top 20",
            r[0],
            r[3]
        );
    }

    // marts.indicators, against the queries: at year end a firm's
    // December report is its latest, so a county's rd_intensity rests on
    // the open R&D queries of its firms' December rows.
    ok(stmon(&whp).args(["models", "run"]), 0);
    let ind = csv_rows(&ok(
        stmon(&whp).args([
            "sql",
            "--format",
            "csv",
            "-c",
            "select division_code, numerator, denominator, value, queried, queried_share, held_value \
             from marts.indicators where year = 2023 and as_of_month = 12 and level = 'county' \
             and indicator_id = 'rd_intensity' order by division_code",
        ]),
        0,
    ));
    let f = |s: &str| s.parse::<f64>().ok();
    let mut rested = 0;
    for r in &ind[1..] {
        let dec: Vec<&&Query> = open
            .iter()
            .filter(|q| {
                q.form == "enterprise_rd"
                    && q.period == "2023-12"
                    && q.column == "rd_expenditure"
                    && q.division.as_deref() == Some(r[0].as_str())
            })
            .collect();
        assert_eq!(r[4], dec.len().to_string(), "{r:?}");
        let (Some(num), Some(den)) = (f(&r[1]), f(&r[2])) else {
            continue;
        };
        if dec.is_empty() {
            assert_eq!(r[5], "", "{r:?}");
            assert_eq!(f(&r[6]), f(&r[3]), "{r:?}");
            continue;
        }
        rested += 1;
        let share: f64 = dec.iter().map(|q| q.reported).sum::<f64>() / num;
        let held = (num + dec.iter().map(|q| q.expected - q.reported).sum::<f64>()) / den;
        assert!((f(&r[5]).unwrap() - share).abs() < 1e-9, "{r:?} vs {share}");
        assert!((f(&r[6]).unwrap() - held).abs() < 1e-12, "{r:?} vs {held}");
    }
    assert!(
        rested >= 2,
        "{rested} counties rest on December R&D queries"
    );

    // The ranking tables: 待核实 per county, and beside the rank the rank
    // with queried values held where it differs; --hold-queried ranks on
    // them and writes beside the published tables.
    let out = dir.path().join("reports");
    ok(
        stmon(&whp)
            .args(["assess", "--year", "2023", "--out"])
            .arg(&out),
        0,
    );
    ok(
        stmon(&whp)
            .args(["assess", "--year", "2023", "--hold-queried", "--out"])
            .arg(&out),
        0,
    );
    let table = |name: &str| csv_rows(&std::fs::read_to_string(out.join(name)).unwrap());
    let (published, held) = (
        table("assessment_counties.csv"),
        table("assessment_counties_held.csv"),
    );
    let col = |t: &[Vec<String>], name: &str| t[0].iter().position(|c| c == name).unwrap();
    let (code, rank, mark, beside) = (
        col(&published, "代码"),
        col(&published, "排名"),
        col(&published, "待核实"),
        col(&published, "待核实值按期望值计排名"),
    );
    let held_rank: std::collections::HashMap<&str, &str> = held[1..]
        .iter()
        .map(|r| {
            (
                r[col(&held, "代码")].as_str(),
                r[col(&held, "排名")].as_str(),
            )
        })
        .collect();
    for r in &published[1..] {
        let want = held_rank[r[code].as_str()];
        if want == r[rank] {
            assert_eq!(r[beside], "", "{r:?}");
        } else {
            assert_eq!(r[beside], want, "{r:?}");
        }
        let queried = ind[1..].iter().any(|i| i[0] == r[code] && i[4] != "0");
        if queried {
            assert!(r[mark].contains("全社会R&D经费占GDP比重"), "{r:?}");
            assert!(r[mark].contains("占分子"), "{r:?}");
        }
    }
    assert!(out.join("assessment-2023-held.xlsx").is_file());
    assert!(out.join("assessment-2023-held.html").is_file());

    // The progress page marks what rests on open queries.
    ok(
        stmon(&whp)
            .args(["progress", "--year", "2023", "--html", "--out"])
            .arg(&out),
        0,
    );
    let page = std::fs::read_to_string(out.join("progress-2023-12.html")).unwrap();
    assert!(page.contains("class=\"queried\""), "no 待核实 on the page");
    let rows = table("progress-2023-12.csv");
    let mark = col(&rows, "待核实");
    assert!(rows[1..].iter().any(|r| r[mark].contains("项")));
}
