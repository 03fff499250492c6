//! The same-period rules of indicators.md, on the worked examples of issue 12,
//! each computed by hand.
//!
//! 越城 330602 sends GDP for 2023-Q2 (2,000,000) and no Q3; its one firm
//! reports R&D 40,000 as of June and 60,000 as of September. Its high-tech
//! investment: 2022-Q2 200, 2022-Q3 300, 2023-Q2 220, no 2023-Q3. 柯桥 330603
//! has a firm reporting R&D (10,000 as of June) but sends no GDP at all.
//! 新昌 330624 sends nothing.

use std::path::Path;

use stmon_models::run::{run, RunOptions};

use crate::common::*;

const RD_HEADER: &str = "period,credit_code,name,county_code,industry_code,above_scale,high_tech_industry,revenue,rd_expenditure,basic_research,value_added,submitted_at";

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

async fn build(dir: &Path) -> stmon_warehouse::Warehouse {
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    write(
        &inbox,
        "economy.csv",
        "period,county_code,gdp,high_tech_investment,submitted_at\n\
         2022-Q2,330602,1800000,200,2022-07-15 09:00\n\
         2022-Q3,330602,2700000,300,2022-10-15 09:00\n\
         2023-Q2,330602,2000000,220,2023-07-15 09:00\n",
    );
    write(
        &inbox,
        "rd.csv",
        &format!(
            "{RD_HEADER}\n\
             2023-06,91330602MA2HND10A8,甲,330602,C39,Y,Y,500000,40000,0,100000,2023-07-10 09:00\n\
             2023-09,91330602MA2HND10A8,甲,330602,C39,Y,Y,800000,60000,0,160000,2023-10-10 09:00\n\
             2023-06,91330603MA2HND10CW,丙,330603,C39,Y,N,300000,10000,0,50000,2023-07-10 09:00\n"
        ),
    );
    let wh = warehouse(&dir.join("wh"));
    let r = ingest(&wh, &[inbox]).await;
    assert_eq!(r.rejected_rows(), 0, "{r:?}");
    let project = stmon_models::Project::load(&repo().join("sql")).expect("project loads");
    let report = run(&wh, &project, &RunOptions::default(), &|_| {})
        .await
        .expect("models run");
    assert!(report.ok(), "{:?}", report.models);
    wh
}

/// (value, reason) of one indicator of 2023.
async fn get(
    wh: &stmon_warehouse::Warehouse,
    month: u32,
    code: &str,
    id: &str,
) -> (Option<f64>, Option<String>) {
    let project = stmon_models::Project::load(&repo().join("sql")).unwrap();
    let ctx = stmon_models::run::session(wh, &project).await.unwrap();
    let rows = rows_of(
        &ctx,
        &format!(
            "select cast(value as varchar), reason from marts.indicators \
             where year = 2023 and as_of_month = {month} and division_code = '{code}' and indicator_id = '{id}'"
        ),
    )
    .await;
    assert_eq!(rows.len(), 1, "2023-{month:02} {code} {id}: {rows:?}");
    let r = &rows[0];
    (
        (r[0] != "NULL").then(|| r[0].parse().unwrap()),
        (r[1] != "NULL").then(|| r[1].clone()),
    )
}

fn close(v: Option<f64>, want: f64) -> bool {
    v.is_some_and(|v| (v - want).abs() < 1e-12)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worked_examples_of_the_same_period_rules() {
    let dir = tempfile::tempdir().unwrap();
    let wh = build(dir.path()).await;

    // rd_intensity as of October: no Q3 GDP, so June's R&D over Q2 GDP
    // (40,000 / 2,000,000 = 2.0 %), not September's (3.0 %); the reason names Q2.
    let (v, reason) = get(&wh, 10, "330602", "rd_intensity").await;
    assert!(close(v, 0.02), "{v:?} {reason:?}");
    assert_eq!(
        reason.as_deref(),
        Some("computed at 2023-Q2: enterprise R&D as of 2023-06 over 2023-Q2 GDP; institute R&D (annual) enters at year end")
    );

    // high_tech_investment_growth as of September: 2023-Q2 over 2022-Q2
    // (220 / 200 − 1 = +10 %), not 2023-Q2 over 2022-Q3 (−26.7 %).
    let (v, reason) = get(&wh, 9, "330602", "high_tech_investment_growth").await;
    assert!(close(v, 220.0 / 200.0 - 1.0), "{v:?} {reason:?}");
    assert_eq!(
        reason.as_deref(),
        Some("computed at 2023-Q2 against 2022-Q2 (latest quarter reported)")
    );

    // The city: 柯桥's firm reports R&D but 柯桥 sends no GDP, so it is left
    // out of numerator and denominator alike, and the reason says so.
    let (v, reason) = get(&wh, 10, "330600", "rd_intensity").await;
    assert!(close(v, 0.02), "{v:?} {reason:?}");
    assert!(
        reason
            .as_deref()
            .unwrap()
            .ends_with("; 1 of 2 counties with data left out: no GDP for 2023-Q2"),
        "{reason:?}"
    );
    // 柯桥 itself: no GDP, no value.
    let (v, reason) = get(&wh, 10, "330603", "rd_intensity").await;
    assert_eq!(v, None);
    assert_eq!(
        reason.as_deref(),
        Some("no GDP reported for 2023 up to month 10")
    );
    let (v, _) = get(&wh, 9, "330600", "high_tech_investment_growth").await;
    assert!(close(v, 0.1), "{v:?}");

    // 新昌 sent no submission: its counts are 0, and say why.
    let (v, reason) = get(&wh, 10, "330624", "new_high_tech_enterprises").await;
    assert_eq!(v, Some(0.0));
    assert_eq!(
        reason.as_deref(),
        Some("no recognition submissions for 2023 up to month 10: 0 over no rows")
    );

    // stmon progress carries the reason beside the 0 and its red light.
    let targets = dir.path().join("targets.yaml");
    write(
        dir.path(),
        "targets.yaml",
        "year: 2023\nindicators:\n  new_high_tech_enterprises:\n    label: 新认定国家高新技术企业\n    kind: cumulative\n    unit: count\n    targets: {\"330624\": 40}\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stmon"))
        .current_dir(repo())
        .args(["--warehouse", dir.path().join("wh").to_str().unwrap()])
        .args(["progress", "--year", "2023", "--as-of", "2023-10"])
        .args(["--targets", targets.to_str().unwrap()])
        .args(["--out", dir.path().join("reports").to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "330624 新昌县 new_high_tech_enterprises: no recognition submissions for 2023 up to month 10: 0 over no rows"
        ),
        "{stdout}"
    );
}

/// `stmon explain` names the rows behind the city's value: the pool's GDP
/// and firms at the quarter used, not the left-out county's firm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_lists_the_rows_of_the_period_and_pool_used() {
    let dir = tempfile::tempdir().unwrap();
    let wh = build(dir.path()).await;
    let project = stmon_models::Project::load(&repo().join("sql")).unwrap();
    let ctx = stmon_models::run::session(&wh, &project).await.unwrap();
    let e = stmon_reports::explain::explain(
        &ctx,
        &repo().join("sql/lineage"),
        "330600",
        "rd_intensity",
        2023,
        10,
    )
    .await
    .unwrap();
    let keys: Vec<(&str, &str)> = e
        .inputs
        .iter()
        .map(|i| (i[0].as_str(), i[4].as_str()))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("enterprise_rd", "91330602MA2HND10A8 2023-06"),
            ("county_economy", "330602 2023-Q2"),
        ]
    );
    assert_eq!(e.value, Some(0.02));
}
