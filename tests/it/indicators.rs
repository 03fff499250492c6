//! Every indicator on a fixture small enough to compute by hand.
//!
//! `fixtures/indicators/README.md` works each expected value out on paper;
//! the numbers below are those, not outputs of the code. The fixture holds a
//! correction that must replace the original (firm 甲's 2023-06 R&D 20 → 21),
//! a year-to-date series with missing months (firm 乙 reports March and
//! September only), a county with no data (330624), zero denominators (柯桥's
//! 2022 high-tech investment, institute 二's researchers, zone Z2's revenue),
//! a firm above scale in one year only (乙), a revoked certificate, an expired
//! one and a firm recognised in two counties.

use stmon_models::run::{run, RunOptions};

use crate::common::*;

struct Ind {
    rows: Vec<Vec<String>>,
}

impl Ind {
    /// (value, reason) of one indicator; panics when the row is missing.
    fn get(&self, month: u32, code: &str, id: &str) -> (Option<f64>, Option<String>) {
        let r = self
            .rows
            .iter()
            .find(|r| r[0] == "2023" && r[1] == month.to_string() && r[2] == code && r[3] == id)
            .unwrap_or_else(|| panic!("no row for 2023-{month:02} {code} {id}"));
        let value = (r[4] != "NULL").then(|| r[4].parse().expect("a number"));
        let reason = (r[5] != "NULL").then(|| r[5].clone());
        (value, reason)
    }

    fn value(&self, month: u32, code: &str, id: &str) -> f64 {
        match self.get(month, code, id) {
            (Some(v), _) => v,
            (None, reason) => panic!("2023-{month:02} {code} {id} is null: {reason:?}"),
        }
    }

    fn assert(&self, month: u32, code: &str, id: &str, expected: f64) {
        let v = self.value(month, code, id);
        assert!(
            (v - expected).abs() <= 1e-9 * expected.abs().max(1.0),
            "2023-{month:02} {code} {id}: {v}, expected {expected}"
        );
    }

    fn assert_null(&self, month: u32, code: &str, id: &str, reason_has: &str) {
        let (v, reason) = self.get(month, code, id);
        assert_eq!(v, None, "2023-{month:02} {code} {id} should be null");
        let reason = reason.unwrap_or_default();
        assert!(
            reason.contains(reason_has),
            "2023-{month:02} {code} {id}: reason {reason:?} lacks {reason_has:?}"
        );
    }
}

pub async fn build(dir: &std::path::Path) -> stmon_warehouse::Warehouse {
    let wh = warehouse(&dir.join("wh"));
    ingest(&wh, &[repo().join("fixtures/indicators/base")]).await;
    let r = ingest(&wh, &[repo().join("fixtures/indicators/later")]).await;
    assert_eq!(r.forms["enterprise_rd"].corrected, 1);
    let project = stmon_models::Project::load(&repo().join("sql")).expect("project loads");
    let report = run(&wh, &project, &RunOptions::default(), &|_| {})
        .await
        .expect("models run");
    for m in &report.models {
        if let Some(t) = m.tests.iter().find(|t| !t.passed()) {
            panic!(
                "{} test {} failed:\n{}{:?}",
                m.id, t.name, t.sample, t.error
            );
        }
    }
    assert!(report.ok(), "{:?}", report.models);
    wh
}

async fn models_query(wh: &stmon_warehouse::Warehouse, sql: &str) -> Vec<Vec<String>> {
    let project = stmon_models::Project::load(&repo().join("sql")).unwrap();
    let ctx = stmon_models::run::session(wh, &project).await.unwrap();
    rows_of(&ctx, sql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_indicator_matches_the_hand_computation() {
    let dir = tempfile::tempdir().unwrap();
    let wh = build(dir.path()).await;
    let ind = Ind {
        rows: models_query(
            &wh,
            "select cast(year as varchar), cast(as_of_month as varchar), division_code, indicator_id, \
             cast(value as varchar), reason from marts.indicators",
        )
        .await,
    };
    let (yue, ke, xin, city, all) = ("330602", "330603", "330624", "330600", "000000");

    // rd_intensity at year end: enterprise + institute R&D over Q4 GDP.
    ind.assert(12, yue, "rd_intensity", 102.0 / 11000.0);
    ind.assert(12, ke, "rd_intensity", 50.0 / 9000.0);
    ind.assert(12, city, "rd_intensity", 152.0 / 20000.0);
    ind.assert(12, all, "rd_intensity", 152.0 / 20000.0);
    ind.assert_null(12, xin, "rd_intensity", "no GDP");
    // As of June: the correction (21, not 20) and 乙's March figures, over Q2 GDP.
    ind.assert(6, yue, "rd_intensity", 25.0 / 5000.0);
    // As of August: still the June quarter end.
    ind.assert(8, yue, "rd_intensity", 25.0 / 5000.0);
    // As of September: 越城 sent no Q3 GDP, so its period is Q2: the firms'
    // R&D as of June (甲 21 + 乙's March 4), not 乙's September report.
    ind.assert(9, yue, "rd_intensity", 25.0 / 5000.0);
    let sep = ind.get(9, yue, "rd_intensity").1.unwrap();
    assert!(sep.contains("computed at 2023-Q2"), "{sep}");
    ind.assert_null(2, yue, "rd_intensity", "no quarter");
    assert!(ind
        .get(6, yue, "rd_intensity")
        .1
        .unwrap()
        .contains("year end"));

    ind.assert(12, yue, "industrial_rd_ratio", 52.0 / 1600.0);
    ind.assert(12, ke, "industrial_rd_ratio", 25.0 / 1000.0);
    ind.assert(12, city, "industrial_rd_ratio", 77.0 / 2600.0);
    ind.assert_null(12, xin, "industrial_rd_ratio", "no above-scale");
    // June: 甲 (corrected 21 / 600) and 乙 (March: 4 / 150).
    ind.assert(6, yue, "industrial_rd_ratio", 25.0 / 750.0);

    ind.assert(12, yue, "high_tech_va_share", 250.0 / 340.0);
    ind.assert(12, ke, "high_tech_va_share", 0.0);
    ind.assert(12, city, "high_tech_va_share", 250.0 / 490.0);

    ind.assert(12, yue, "high_tech_investment_growth", 600.0 / 500.0 - 1.0);
    ind.assert_null(
        12,
        ke,
        "high_tech_investment_growth",
        "previous-year base for 2022-Q4 is zero",
    );
    ind.assert(12, city, "high_tech_investment_growth", 900.0 / 500.0 - 1.0);
    ind.assert_null(
        12,
        xin,
        "high_tech_investment_growth",
        "no high-tech investment",
    );
    ind.assert_null(6, yue, "high_tech_investment_growth", "no previous-year");

    ind.assert(12, yue, "basic_research_growth", 5.0 / 2.0 - 1.0);
    ind.assert(12, ke, "basic_research_growth", 8.0 / 1.0 - 1.0);
    ind.assert(12, city, "basic_research_growth", 13.0 / 3.0 - 1.0);

    // 越城: 2023 above-scale industrial {甲, 乙}, 甲 revoked on 11-01: 1/2; 2022 {甲} certified: 1/1.
    ind.assert(12, yue, "high_tech_enterprise_share_change", 0.5 - 1.0);
    // 柯桥: 丙's 2019 certificate expired in March 2022, renewed April 2023: 1/1 − 0/1.
    ind.assert(12, ke, "high_tech_enterprise_share_change", 1.0);
    ind.assert(
        12,
        city,
        "high_tech_enterprise_share_change",
        2.0 / 3.0 - 0.5,
    );
    // October: no 2022 report yet as of October (甲 reported only in December).
    ind.assert_null(
        10,
        yue,
        "high_tech_enterprise_share_change",
        "previous year",
    );

    ind.assert(12, yue, "new_high_tech_enterprises", 1.0);
    ind.assert(12, ke, "new_high_tech_enterprises", 1.0); // 戊: new, later revoked, still new
    ind.assert(12, city, "new_high_tech_enterprises", 2.0);
    ind.assert(6, yue, "new_high_tech_enterprises", 0.0);
    ind.assert(6, ke, "new_high_tech_enterprises", 1.0);
    ind.assert(12, xin, "new_high_tech_enterprises", 0.0);
    // 新昌 sent nothing: 0, and the reason says it is not a counted zero.
    assert_eq!(
        ind.get(12, xin, "new_high_tech_enterprises").1.as_deref(),
        Some("no recognition submissions for 2023 up to month 12: 0 over no rows")
    );
    assert_eq!(ind.get(12, yue, "new_high_tech_enterprises").1, None);

    // 甲 twice in 越城 counts once; 己 in both counties counts once in the city.
    ind.assert(12, yue, "new_tech_smes", 2.0);
    ind.assert(12, ke, "new_tech_smes", 1.0);
    ind.assert(12, city, "new_tech_smes", 2.0);

    ind.assert(12, yue, "tech_transaction_volume", 100.0);
    ind.assert(12, ke, "tech_transaction_volume", 50.5);
    ind.assert(12, city, "tech_transaction_volume", 150.5);
    ind.assert(6, ke, "tech_transaction_volume", 0.0);

    ind.assert(12, yue, "corridor_key_project_investment", 1000.0);
    ind.assert(12, ke, "sci_tech_finance", 200.0);
    ind.assert(12, yue, "talent_teams", 1.0); // a blank quantity counts as one
    ind.assert(12, ke, "talent_teams", 3.0);
    ind.assert(12, city, "talent_teams", 4.0);
    ind.assert(6, yue, "talent_teams", 1.0);
    ind.assert(6, ke, "talent_teams", 0.0);
    for id in [
        "new_provincial_enterprise_research_institutes",
        "new_provincial_high_tech_rd_centers",
        "innovation_consortia",
        "key_tech_projects",
        "import_substitutions",
        "incubators",
        "tech_commissioners",
        "agricultural_enterprise_research_institutes",
        "star_innovation_bases",
    ] {
        ind.assert(12, city, id, 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_and_institute_indicators_match_the_hand_computation() {
    let dir = tempfile::tempdir().unwrap();
    let wh = build(dir.path()).await;
    let rows = models_query(
        &wh,
        "select unit_id, indicator_id, coalesce(cast(value as varchar), concat('null: ', reason)) \
         from marts.unit_indicators where year = 2023 order by unit_id, indicator_id",
    )
    .await;
    let got: Vec<String> = rows.iter().map(|r| r.join(" ")).collect();
    assert_eq!(
        got,
        vec![
            "I1 horizontal_income 30.0",
            "I1 landing_rate 0.5",
            "I1 rd_output_rate 0.8",
            "I1 transfer_rate 0.8",
            "I2 horizontal_income 0.0",
            "I2 landing_rate null: denominator is zero",
            "I2 rd_output_rate null: denominator is zero",
            "I2 transfer_rate null: denominator is zero",
            "Z1 energy_per_value_added 0.5",
            "Z1 high_tech_enterprise_growth 0.25",
            "Z1 rd_intensity 0.03",
            "Z1 tax_per_mu 0.3",
            "Z1 value_added_per_mu 2.0",
            "Z2 energy_per_value_added 0.2",
            "Z2 high_tech_enterprise_growth null: no previous-year report of the zone",
            "Z2 rd_intensity null: denominator is zero",
            "Z2 tax_per_mu 0.2",
            "Z2 value_added_per_mu 2.0",
        ]
    );
}
