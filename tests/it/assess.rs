//! The year-end assessment over the warehouse: a hand-computed scheme on the
//! indicator fixture, reproduction from an old Delta version after a
//! correction, the committee's files, and `stmon explain`.

use stmon_models::run::{run, RunOptions};
use stmon_reports::assessment::{self, V};

use crate::common::*;

const SCHEME: &str = "name: fixture-2023
title: 测试考核
unit: county
year: 2023
missing: redistribute
precision: 2
monte_carlo: {runs: 200, seed: 1, weight_jitter: 0.25}
indicators:
  - {id: tech_transaction_volume, label: 技术交易额, weight: 1, normalisation: goalposts, lower: 0, upper: 200}
  - {id: talent_teams, label: 人才团队, weight: 1, normalisation: min_max}
  - {id: industrial_rd_ratio, label: 规上研发, weight: 2, normalisation: target_ratio, target: 0.03, cap: 1.2}
";

fn col(t: &assessment::Table, id: &str) -> usize {
    t.columns
        .iter()
        .position(|c| c.0 == id)
        .unwrap_or_else(|| panic!("no column {id}"))
}

async fn models(wh: &stmon_warehouse::Warehouse) {
    let project = stmon_models::Project::load(&repo().join("sql")).unwrap();
    let r = run(
        wh,
        &project,
        &RunOptions {
            no_tests: true,
            ..Default::default()
        },
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(r.failed_models(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_ranking_by_hand_and_its_reproduction_after_a_correction() {
    let dir = tempfile::tempdir().unwrap();
    let wh = crate::indicators::build(dir.path()).await;
    let scheme = dir.path().join("scheme.yaml");
    std::fs::write(&scheme, SCHEME).unwrap();
    let a = assessment::run(&wh, &scheme, None).await.unwrap();
    let t = &a.tables[0];
    let (rank, id, score, notes) = (
        col(t, "rank"),
        col(t, "unit_id"),
        col(t, "score"),
        col(t, "notes"),
    );
    let got: Vec<(String, String, String)> = t
        .rows
        .iter()
        .map(|r| (r[rank].text(), r[id].text(), r[score].text()))
        .collect();
    // 2023 year end. tech_transaction_volume 0..200: 越城 100 → 50, 柯桥 50.5 → 25.25,
    // others 0 → 0. talent_teams min_max over (1, 3, 0, 0, 0, 0): 33.33, 100, 0.
    // industrial_rd_ratio / 0.03, cap 1.2: 越城 0.0325 → 108.33, 柯桥 0.025 → 83.33;
    // the other four have no value: weight redistributed (1 : 1).
    // 越城 (50 + 33.33 + 2 × 108.33) / 4 = 75.00; 柯桥 (25.25 + 100 + 2 × 83.33) / 4 = 72.98;
    // the others (0 + 0) / 2 = 0, tied at 3.
    assert_eq!(
        got,
        vec![
            ("1".into(), "330602".into(), "75.00".into()),
            ("2".into(), "330603".into(), "72.98".into()),
            ("3".into(), "330604".into(), "0.00".into()),
            ("3".into(), "330624".into(), "0.00".into()),
            ("3".into(), "330681".into(), "0.00".into()),
            ("3".into(), "330683".into(), "0.00".into()),
        ]
    );
    assert_eq!(
        t.rows[2][notes].text(),
        "规上研发：缺数，权重按比例分给其余指标"
    );
    assert!(a.provenance.scheme_hash.len() == 64);
    let v0 = a.provenance.source_version;

    // The change table: 2023 − 2022 per indicator, min_max, same weights.
    let change = &a.tables[1];
    assert_eq!(change.name, "counties_change");

    // A later correction raises 柯桥's contract T2 from 50.5 to 250.5.
    let fix = dir.path().join("t2.csv");
    std::fs::write(&fix, "contract_id,registered_on,county_code,seller_credit_code,contract_type,amount,submitted_at\n\
        T2,2023-11-20,330603,91330603MA2HND10CW,transfer,250.5,2023-12-20 09:00\n").unwrap();
    ingest(&wh, &[fix]).await;
    models(&wh).await;
    let b = assessment::run(&wh, &scheme, None).await.unwrap();
    assert!(b.provenance.source_version > v0);
    // 柯桥 (100 + 100 + 166.67) / 4 = 91.67 now leads.
    let t = &b.tables[0];
    assert_eq!(
        (t.rows[0][id].text(), t.rows[0][score].text()),
        ("330603".into(), "91.67".into())
    );

    // The old version reproduces the first table exactly.
    let c = assessment::run(&wh, &scheme, Some(v0)).await.unwrap();
    assert_eq!(c.provenance.source_version, v0);
    assert_eq!(c.provenance.scheme_hash, a.provenance.scheme_hash);
    for (x, y) in a.tables.iter().zip(&c.tables) {
        assert_eq!(x.rows, y.rows, "{}", x.name);
    }
    // Monte Carlo: same seed, same intervals.
    assert_eq!(a.intervals, c.intervals);
    let e = assessment::run(&wh, &scheme, Some(9999))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no version 9999"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_rank_within_their_level_and_institutes_get_grades() {
    let dir = tempfile::tempdir().unwrap();
    let wh = crate::indicators::build(dir.path()).await;
    let scheme = dir.path().join("zones.yaml");
    std::fs::write(&scheme, "name: z\nunit: zone\nyear: 2023\ngroup_by: zone_level\nindicators:\n  - {id: value_added_per_mu, weight: 1, normalisation: min_max}\n").unwrap();
    let a = assessment::run(&wh, &scheme, None).await.unwrap();
    let t = &a.tables[0];
    let rows: Vec<String> = t
        .rows
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r[col(t, "group")].text(),
                r[col(t, "rank")].text(),
                r[col(t, "unit_id")].text(),
                r[col(t, "score")].text()
            )
        })
        .collect();
    // Each zone alone in its level: min_max of one value is 100, rank 1.
    assert_eq!(rows, ["national 1 Z1 100.00", "provincial 1 Z2 100.00"]);
    // The table keeps the form's ids; what people read shows its labels.
    let out = dir.path().join("zone-reports");
    let csv = stmon_reports::report::write_csv(&a, &out).unwrap();
    let csv = std::fs::read_to_string(&csv[0]).unwrap();
    let groups: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(3).unwrap())
        .collect();
    assert_eq!(groups, ["国家级", "省级"]);
    let html = out.join("zones.html");
    stmon_reports::report::write_html(std::slice::from_ref(&a), &html).unwrap();
    let html = std::fs::read_to_string(&html).unwrap();
    assert!(html.contains("<td class=\"t\">国家级</td>") && !html.contains(">national<"));

    let scheme = dir.path().join("inst.yaml");
    std::fs::write(&scheme, "name: i\nunit: institute\nyear: 2023\nmissing: zero\ngrades: [{grade: A, min: 60}, {grade: B, min: 0}]\nindicators:\n  - {id: transfer_rate, weight: 1, normalisation: goalposts, lower: 0, upper: 1}\n  - {id: landing_rate, weight: 1, normalisation: goalposts, lower: 0, upper: 1}\n").unwrap();
    let a = assessment::run(&wh, &scheme, None).await.unwrap();
    let t = &a.tables[0];
    let rows: Vec<String> = t
        .rows
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r[col(t, "rank")].text(),
                r[col(t, "unit_id")].text(),
                r[col(t, "score")].text(),
                r[col(t, "grade")].text()
            )
        })
        .collect();
    // I1: (80 + 50) / 2 = 65 → A; I2: both null, scored 0 → B.
    assert_eq!(rows, ["1 I1 65.00 A", "2 I2 0.00 B"]);
    assert!(matches!(t.rows[1][col(t, "transfer_rate_score")], V::Null));
}

#[test]
fn the_committee_files_carry_the_tables_and_their_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let stmon = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_stmon"));
        c.current_dir(repo())
            .env("STMON_WAREHOUSE", &wh)
            .env_remove("STMON_SQL");
        c
    };
    for args in [
        vec!["ingest", "fixtures/indicators/base"],
        vec!["models", "run", "--no-tests"],
    ] {
        assert!(stmon().args(&args).output().unwrap().status.success());
    }
    let scheme = dir.path().join("scheme.yaml");
    std::fs::write(&scheme, SCHEME).unwrap();
    let out = dir.path().join("out");
    let o = stmon()
        .args([
            "assess",
            "--year",
            "2023",
            "--scheme",
            scheme.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.contains("测试考核"), "{text}");
    let csv = std::fs::read_to_string(out.join("assessment_counties.csv")).unwrap();
    let head = csv.lines().next().unwrap();
    assert!(
        head.starts_with(
            "\u{feff}排名,代码,名称,总分,上年排名,名次变化,优势指标,劣势指标,模拟中位排名"
        ),
        "{head}"
    );
    assert!(
        head.ends_with("方案,方案哈希,数据表,数据版本,生成时间"),
        "{head}"
    );
    assert!(csv
        .lines()
        .nth(1)
        .unwrap()
        .starts_with("1,330602,越城区,75.00,"));

    // The workbook: a sheet per table and the provenance sheet, Chinese headers.
    let mut zip =
        zip::ZipArchive::new(std::fs::File::open(out.join("assessment-2023.xlsx")).unwrap())
            .unwrap();
    let mut read = |name: &str| {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut zip.by_name(name).unwrap(), &mut s).unwrap();
        s
    };
    let workbook = read("xl/workbook.xml");
    for sheet in [
        "name=\"区县排名\"",
        "name=\"区县进步排名\"",
        "name=\"说明\"",
    ] {
        assert!(workbook.contains(sheet), "{workbook}");
    }
    let strings = read("xl/sharedStrings.xml");
    assert!(
        strings.contains("排名") && strings.contains("越城区") && strings.contains("方案哈希"),
        "{strings}"
    );
    assert!(
        read("xl/worksheets/sheet1.xml").contains(
            "ySplit=\"1\" topLeftCell=\"D2\" activePane=\"bottomRight\" state=\"frozen\""
        ),
        "frozen header row and names"
    );

    let html = std::fs::read_to_string(out.join("assessment-2023.html")).unwrap();
    assert!(
        !html.contains("<script") && !html.contains("src=\"http"),
        "self-contained"
    );
    // One bar per county, and one rank interval per county.
    assert_eq!(html.matches("<rect class=\"bar\"").count(), 6 + 6);
    assert_eq!(html.matches("class=\"interval\"").count(), 6);
    assert!(html.contains("越城区") && html.contains("Delta 版本"));
    // Everything a committee reads is in Chinese: no English words outside
    // the tags, the provenance's values (table, file and command) and ids.
    let text = html
        .split('<')
        .filter_map(|part| part.split_once('>').map(|(_, t)| t))
        .collect::<String>();
    for english in [
        "ranking",
        "scores",
        "rank intervals",
        "indicator detail",
        "warehouse version",
        "ran at",
        "reproduce",
        "missing",
        "weight redistributed",
        "change against",
        "rank 1",
    ] {
        assert!(!text.contains(english), "{english} in the report's text");
    }

    // Delta tables for the warehouse, with provenance.
    let o = stmon()
        .args(["sql", "--format", "csv", "-c", "select unit_id, score, source_version, length(scheme_hash) as h from marts.assessment_counties order by rank, unit_id limit 1"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        // Version 1 of marts.indicators: the data's commit, then the digest
        // of its rows that its readers (marts.disclosure's steps) are
        // fingerprinted by.
        "unit_id,score,source_version,h\n330602,75.0,1,64\n"
    );

    let o = stmon()
        .args([
            "explain",
            "--unit",
            "330603",
            "--indicator",
            "tech_transaction_volume",
            "--year",
            "2023",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("value        50.5"), "{text}");
    assert!(text.contains("1 submission row(s)"), "{text}");
    assert!(
        text.contains("fixtures/indicators/base/tech_contract.csv") && text.contains("T2"),
        "{text}"
    );
}
