//! Each tiny hand-made fixture ingested alone, with the accepted rows, the
//! rejected rows and their reasons worked out by hand (fixtures/cases/README.md).

use crate::common::*;

async fn one(
    rel: &str,
) -> (
    tempfile::TempDir,
    stmon_warehouse::Warehouse,
    stmon_warehouse::FormSummary,
) {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path());
    let r = ingest(&wh, &[case(rel)]).await;
    assert!(r.batch_id.is_some(), "{rel}: a batch was committed");
    let summary = r.forms.values().next().cloned().unwrap_or_default();
    (dir, wh, summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_rows_are_typed_exactly() {
    let (_d, wh, s) = one("enterprise_rd/valid_english.csv").await;
    assert_eq!((s.rows_read, s.accepted, s.rejected), (3, 3, 0));
    let rows = query(&wh, "select period, credit_code, coalesce(name,'NULL'), county_code, above_scale, high_tech_industry, revenue, rd_expenditure, basic_research, value_added, submitted_at, _row_number from raw.enterprise_rd order by _row_number").await;
    assert_eq!(
        rows,
        vec![
            row(&[
                "2023-01",
                "91330100716105852F",
                "Alpha Co",
                "330602",
                "true",
                "true",
                "1234.5000",
                "1200.0000",
                "0.0000",
                "300.0000",
                "2023-02-05T09:30:00",
                "2"
            ]),
            row(&[
                "2023-02",
                "91330100716105852F",
                "Alpha Co",
                "330602",
                "true",
                "true",
                "2469.0000",
                "80.2500",
                "1.5000",
                "600.5000",
                "2023-03-05T09:30:15",
                "3"
            ]),
            row(&[
                "2023-01",
                "914403001922038216",
                "NULL",
                "330603",
                "false",
                "false",
                "500.0000",
                "10.0000",
                "0.0000",
                "NULL",
                "2023-02-06T10:00:00",
                "4"
            ]),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_codes_are_checked() {
    let (_d, wh, s) = one("enterprise_rd/bad_credit_code.csv").await;
    assert_eq!((s.accepted, s.rejected), (1, 3));
    assert_eq!(
        quarantine(&wh).await,
        vec![
            "2|credit_code|91330100716105852G|wrong check character 'G', expected 'F'",
            "3|credit_code|330100400012345|a 15-digit registration number is not a credit code",
            "4|credit_code|91330602MA2BCD001I|character 18 ('I') is not allowed in a credit code",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn county_codes_follow_the_division_table() {
    let (_d, wh, s) = one("enterprise_rd/bad_county.csv").await;
    assert_eq!((s.accepted, s.rejected, s.warnings), (1, 3, 1));
    assert_eq!(
        quarantine(&wh).await,
        vec![
            "2|county_code|339999|unknown county code 339999 (not in the division table)",
            "3|county_code|330600|330600 (绍兴市) is not a county-level division",
            "5|county_code|33060|a county code has 6 digits: '33060'",
        ]
    );
    // The retired code 330621 (绍兴县) is stored as its successor 330603 (柯桥区), with a warning.
    assert_eq!(
        query(&wh, "select county_code from raw.enterprise_rd").await,
        vec![row(&["330603"])]
    );
    assert_eq!(
        query(
            &wh,
            "select row_number, raw_value, reason from audit.warnings"
        )
        .await,
        vec![row(&[
            "4",
            "330621",
            "retired county code 330621 (绍兴县) mapped to its successor 330603 (柯桥区)"
        ])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_ranges_and_cross_field_rules() {
    let (_d, wh, s) = one("enterprise_rd/bad_values.csv").await;
    assert_eq!((s.rows_read, s.accepted, s.rejected), (6, 1, 5));
    assert_eq!(
        quarantine(&wh).await,
        vec![
            "2|revenue|-100|amount must be >= 0, got '-100'",
            "3|revenue|abc|not a number: 'abc'",
            "4|revenue|--|required value is blank",
            "5|basic_research|6.0000|basic_research (6.0000) exceeds rd_expenditure (5.0000)",
            "6|above_scale|maybe|not a yes/no value (Y/N, 是/否, true/false, 1/0): 'maybe'",
            "6|period|2023-13|not a monthly period (YYYY-MM): '2023-13'",
            "6|submitted_at|yesterday|not a timestamp (YYYY-MM-DD HH:MM[:SS]): 'yesterday'",
        ]
    );
    // basic_research equal to rd_expenditure is allowed.
    assert_eq!(
        query(
            &wh,
            "select credit_code, basic_research from raw.enterprise_rd"
        )
        .await,
        vec![row(&["91330683MA2BCD006K", "5.0000"])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_missing_columns_is_rejected_whole() {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path());
    let r = ingest(&wh, &[case("enterprise_rd/missing_columns.csv")]).await;
    let f = &r.files[0];
    assert_eq!(f.status, stmon_warehouse::FileStatus::Rejected);
    let expected = "missing required columns of form enterprise_rd: rd_expenditure (研究与试验发展(R&D)经费支出), submitted_at (填报时间)";
    assert_eq!(f.message.as_deref(), Some(expected));
    assert_eq!(quarantine(&wh).await, vec![format!("-|-|-|{expected}")]);
    assert_eq!(
        query(&wh, "select count(*) from raw.enterprise_rd").await,
        vec![row(&["0"])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_columns_are_kept_and_reported() {
    let (_d, wh, s) = one("enterprise_rd/extra_column.csv").await;
    assert_eq!((s.accepted, s.warnings), (1, 1));
    assert_eq!(
        query(&wh, "select _extra from raw.enterprise_rd").await,
        vec![row(&[r#"{"联系人":"张三"}"#])]
    );
    assert_eq!(
        query(&wh, "select reason from audit.warnings").await,
        vec![row(&["unknown columns kept in raw._extra: 联系人"])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gb18030_and_bom_files_keep_chinese_intact() {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path());
    let r = ingest(
        &wh,
        &[
            case("enterprise_rd/gb18030_chinese_headers.csv"),
            case("enterprise_rd/utf8_bom.csv"),
        ],
    )
    .await;
    let enc: Vec<_> = r
        .files
        .iter()
        .map(|f| f.encoding.clone().unwrap())
        .collect();
    assert_eq!(enc, vec!["GB18030", "UTF-8 (BOM)"]);
    assert_eq!(
        query(&wh, "select name, county_code, above_scale, revenue, basic_research, value_added from raw.enterprise_rd order by name").await,
        vec![
            row(&["嵊州市领带织造股份有限公司", "330683", "false", "200.0000", "0.0000", "NULL"]),
            row(&["新昌县轴承有限公司", "330624", "true", "100.0000", "0.0000", "NULL"]),
            row(&["绍兴越城精密机械有限公司", "330602", "true", "1000.0000", "2.0000", "250.0000"]),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xlsx_cells_are_read_as_stored() {
    let (_d, wh, s) = one("enterprise_rd/xlsx_cells.xlsx").await;
    assert_eq!((s.accepted, s.rejected), (1, 1));
    assert_eq!(
        query(&wh, "select period, credit_code, name, county_code, above_scale, high_tech_industry, revenue, rd_expenditure, submitted_at, _row_number from raw.enterprise_rd").await,
        vec![row(&["2023-04", "914403001922038216", "诸暨袜业有限公司", "330681", "true", "false", "1234.5000", "61.7250", "2023-05-05T12:00:00", "2"])]
    );
    assert_eq!(
        quarantine(&wh).await,
        vec!["4|credit_code|9.14403001922038E+17|credit code stored as a number lost its digits: '9.14403001922038E+17'"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn institute_achievements_are_ordered() {
    let (_d, wh, s) = one("institute_report/achievements_order.csv").await;
    assert_eq!((s.accepted, s.rejected), (1, 3));
    assert_eq!(
        quarantine(&wh).await,
        vec![
            "3|achievements_transferred|25|achievements_transferred (25) exceeds achievements (20)",
            "4|achievements_landed|11|achievements_landed (11) exceeds achievements_transferred (10)",
            "5|researchers|20.5|a count must be a whole number, got '20.5'",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_money_rows_need_an_amount_and_quantity_defaults_to_one() {
    let (_d, wh, s) = one("program_ledger/money_and_quantity.csv").await;
    assert_eq!((s.accepted, s.rejected), (3, 3));
    assert_eq!(
        query(&wh, "select record_id, kind, occurred_on, quantity, coalesce(cast(amount as varchar), 'NULL') from raw.program_ledger order by record_id").await,
        vec![
            row(&["L1", "sci_tech_finance", "2023-03-01", "1", "500.0000"]),
            row(&["L3", "talent_team", "2023-04-01", "1", "NULL"]),
            row(&["L4", "talent_team", "2023-05-01", "3", "NULL"]),
        ]
    );
    let q = quarantine(&wh).await;
    assert_eq!(
        q[0],
        "3|amount|-|amount is required when kind is sci_tech_finance"
    );
    assert!(q[1].starts_with("6|kind|moon_base|'moon_base' is not one of: corridor_key_project_investment 科创走廊重点项目投资,"), "{}", q[1]);
    assert_eq!(
        q[2],
        "7|occurred_on|2023-02-30|not a date (YYYY-MM-DD): '2023-02-30'"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recognition_accepts_labels_and_ids() {
    let (_d, wh, s) = one("recognition/labels_and_dates.csv").await;
    assert_eq!((s.accepted, s.rejected), (3, 1));
    assert_eq!(
        query(&wh, "select credit_code, kind, recognized_on, status from raw.recognition order by _row_number").await,
        vec![
            row(&["91330602MA2BCD001R", "national_high_tech_enterprise", "2023-03-07", "new"]),
            row(&["91330603MA2BCD002B", "provincial_tech_sme", "2023-04-01", "new"]),
            row(&["91330604MA2BCD003W", "national_high_tech_enterprise", "2023-08-01", "revoked"]),
        ]
    );
    assert!(
        quarantine(&wh).await[0].starts_with("5|kind|高新技术企业|'高新技术企业' is not one of:")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarters_contracts_and_zones() {
    let (_d, wh, s) = one("county_economy/quarters.csv").await;
    assert_eq!((s.accepted, s.rejected), (2, 2));
    assert_eq!(
        query(
            &wh,
            "select period, gdp from raw.county_economy order by period"
        )
        .await,
        vec![
            row(&["2023-Q1", "1000000.5000"]),
            row(&["2023-Q2", "2100000.0000"])
        ]
    );
    assert_eq!(
        quarantine(&wh).await,
        vec![
            "4|period|2023Q5|not a quarterly period (YYYY-Qn): '2023Q5'",
            "5|period|2023-03|not a quarterly period (YYYY-Qn): '2023-03'"
        ]
    );

    let (_d, wh, s) = one("tech_contract/amounts.csv").await;
    assert_eq!((s.accepted, s.rejected), (3, 1));
    assert_eq!(
        query(
            &wh,
            "select contract_type, amount from raw.tech_contract order by contract_id"
        )
        .await,
        vec![
            row(&["development", "1200.0000"]),
            row(&["licensing", "2500.1250"]),
            row(&["service", "0.0001"])
        ]
    );

    let (_d, wh, s) = one("zone_report/land_and_energy.csv").await;
    assert_eq!((s.accepted, s.rejected), (1, 2));
    assert_eq!(
        query(&wh, "select zone_id, level from raw.zone_report").await,
        vec![row(&["Z01", "national"])]
    );
    assert_eq!(
        quarantine(&wh).await,
        vec![
            "3|land_mu|0|must be > 0, got '0'",
            "4|energy_tce|-1|must be >= 0, got '-1'"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_falling_year_to_date_value_is_accepted_with_a_warning() {
    let (_d, wh, s) = one("enterprise_rd/ytd_decrease.csv").await;
    assert_eq!((s.accepted, s.rejected, s.warnings), (3, 0, 1));
    assert_eq!(
        query(
            &wh,
            "select row_number, \"column\", reason from audit.warnings"
        )
        .await,
        vec![row(&[
            "3",
            "rd_expenditure",
            "year-to-date rd_expenditure (2.5000) is lower than for 2023-01 (3.0000)"
        ])]
    );
}

/// Issue 12's smallest case: a CRLF file with Chinese headers (as Excel on
/// Windows writes it). Rows are stored at the lines an editor shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crlf_rows_are_stored_at_the_editors_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("zones.csv");
    let line = |id: &str, land: &str| {
        format!("2023,{id},甲高新区,provincial,330604,{land},2000000,450000,120000,200000,60000,150,2024-02-01 10:00:00\r\n")
    };
    std::fs::write(
        &file,
        format!(
            "报告期,园区编号,园区名称,级别,所在区县代码,用地面积(亩),营业收入,工业增加值,税收,综合能耗(吨标准煤),R&D经费支出,高新技术企业数,填报时间\r\n{}{}{}",
            line("Z-1", "12000"),
            line("Z-2", "0"),
            line("Z-3", "12000")
        ),
    )
    .unwrap();
    let wh = warehouse(&dir.path().join("wh"));
    ingest(&wh, &[file]).await;
    let rows = query(
        &wh,
        "select zone_id, _row_number from raw.zone_report order by zone_id",
    )
    .await;
    assert_eq!(rows, vec![row(&["Z-1", "2"]), row(&["Z-3", "4"])]);
    assert_eq!(
        quarantine(&wh).await,
        vec!["3|land_mu|0|must be > 0, got '0'".to_string()]
    );
}
