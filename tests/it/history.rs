//! Versions over time: corrections, withdrawals, conflicts, re-ingest.

use crate::common::*;
use stmon_warehouse::IngestRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correction_replaces_and_a_withdrawal_removes() {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path());
    let r1 = ingest(&wh, &[case("enterprise_rd/correction_1_original.csv")]).await;
    assert_eq!(
        (
            r1.forms["enterprise_rd"].accepted,
            r1.forms["enterprise_rd"].corrected
        ),
        (2, 0)
    );
    let r2 = ingest(&wh, &[case("enterprise_rd/correction_2_revised.csv")]).await;
    // Both rows of the second file replace an earlier version of their key.
    assert_eq!(
        (
            r2.forms["enterprise_rd"].accepted,
            r2.forms["enterprise_rd"].corrected
        ),
        (2, 2)
    );
    assert_eq!(
        query(
            &wh,
            "select credit_code, period, rd_expenditure, submitted_at from current.enterprise_rd"
        )
        .await,
        vec![row(&[
            "91330603MA2BCD008X",
            "2023-04",
            "35.0000",
            "2023-05-20T09:00:00"
        ])]
    );
    // Every version stays in raw.
    assert_eq!(
        query(&wh, "select count(*) from raw.enterprise_rd").await,
        vec![row(&["4"])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_versions_are_rejected_and_identical_ones_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path());
    let r = ingest(&wh, &[case("enterprise_rd/conflict.csv")]).await;
    let s = &r.forms["enterprise_rd"];
    assert_eq!((s.rows_read, s.accepted, s.rejected), (4, 2, 2));
    let reason = "conflict: another row with the same key and submitted_at has different values; both are rejected and the previous version stays current";
    assert_eq!(
        quarantine(&wh).await,
        vec![
            format!("2|-|credit_code=91330681MA2BCD005K, period=2023-05 submitted_at=2023-06-05T09:00:00|{reason}"),
            format!("3|-|credit_code=91330681MA2BCD005K, period=2023-05 submitted_at=2023-06-05T09:00:00|{reason}"),
        ]
    );
    assert_eq!(
        query(
            &wh,
            "select credit_code, rd_expenditure from current.enterprise_rd"
        )
        .await,
        vec![row(&["91330683MA2BCD006K", "14.0000"])]
    );

    // A later file that contradicts the stored version at the same submitted_at:
    // the stored rows and the new one are all rejected, and the key has no
    // current version left (it had no earlier one).
    let later = dir.path().join("later.csv");
    std::fs::write(&later, "period,credit_code,county_code,industry_code,above_scale,high_tech_industry,revenue,rd_expenditure,submitted_at\n2023-05,91330683MA2BCD006K,330683,C39,Y,Y,700,15,2023-06-05 09:00\n").unwrap();
    let r = ingest(&wh, &[later]).await;
    assert_eq!(
        (
            r.forms["enterprise_rd"].accepted,
            r.forms["enterprise_rd"].rejected
        ),
        (0, 1)
    );
    assert_eq!(
        query(&wh, "select count(*) from current.enterprise_rd").await,
        vec![row(&["0"])]
    );
    assert_eq!(
        query(&wh, "select count(*) from audit.quarantine").await,
        vec![row(&["5"])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_keeps_the_previous_version_current() {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path());
    ingest(&wh, &[case("enterprise_rd/correction_1_original.csv")]).await;
    let c = dir.path().join("c.csv");
    std::fs::write(
        &c,
        "period,credit_code,county_code,industry_code,above_scale,high_tech_industry,revenue,rd_expenditure,submitted_at\n\
         2023-04,91330603MA2BCD008X,330603,C39,Y,Y,1000,40,2023-05-25 09:00\n\
         2023-04,91330603MA2BCD008X,330603,C39,Y,Y,1000,41,2023-05-25 09:00\n",
    )
    .unwrap();
    ingest(&wh, &[c]).await;
    assert_eq!(
        query(&wh, "select rd_expenditure from current.enterprise_rd where credit_code = '91330603MA2BCD008X'").await,
        vec![row(&["30.0000"])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_ingesting_the_same_files_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path());
    let folder = case("enterprise_rd");
    let first = ingest(&wh, std::slice::from_ref(&folder)).await;
    assert!(first.batch_id.is_some());
    let before = wh.versions().await.unwrap();
    let again = ingest(&wh, &[folder]).await;
    assert_eq!(again.batch_id, None);
    assert!(
        again.files.iter().all(|f| f.status == "skipped"),
        "every file is recognised by its hash"
    );
    assert_eq!(
        wh.versions().await.unwrap(),
        before,
        "no table got a new Delta version"
    );
    // The same bytes under another name are recognised too.
    let copy = dir.path().join("copy-of-valid.csv");
    std::fs::copy(case("enterprise_rd/valid_english.csv"), &copy).unwrap();
    let r = ingest(&wh, &[copy]).await;
    assert_eq!(r.batch_id, None);
    assert!(r.files[0]
        .message
        .as_deref()
        .unwrap()
        .starts_with("already ingested in batch b"));
}

/// The checks after loading sort the versions of the touched units and spill
/// the sort to disk beyond `check_memory`. Spilling must not change a single
/// answer: the same history checked with room to spare and with 16 MiB
/// gives the same corrections, conflicts, year-to-date warnings and current view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_that_spill_give_the_same_answers_as_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let later = dir.path().join("later.csv");
    std::fs::write(&later, "period,credit_code,county_code,industry_code,above_scale,high_tech_industry,revenue,rd_expenditure,submitted_at\n\
        2023-05,91330683MA2BCD006K,330683,C39,Y,Y,700,15,2023-06-05 09:00\n\
        2023-04,91330603MA2BCD008X,330603,C39,Y,Y,1000,36,2023-06-01 09:00\n").unwrap();
    // Enough rows that a few MiB make the sort spill: 10,000 units with an
    // April report, then May (lower revenue: a warning each), every 10th
    // April corrected, every 50th May in conflict with itself.
    let header = "period,credit_code,county_code,industry_code,above_scale,high_tech_industry,revenue,rd_expenditure,submitted_at\n";
    let code = |i: u32| stmon_core::credit_code::complete(&format!("91330602MA{i:07}")).unwrap();
    let (mut april, mut may) = (header.to_string(), header.to_string());
    for i in 0..10_000 {
        let c = code(i);
        april.push_str(&format!(
            "2023-04,{c},330602,C39,Y,N,1000,10,2023-05-05 09:00\n"
        ));
        may.push_str(&format!(
            "2023-05,{c},330602,C39,Y,N,900,12,2023-06-05 09:00\n"
        ));
        if i % 10 == 0 {
            may.push_str(&format!(
                "2023-04,{c},330602,C39,Y,N,1100,11,2023-06-01 09:00\n"
            ));
        }
        if i % 50 == 0 {
            may.push_str(&format!(
                "2023-05,{c},330602,C39,Y,N,901,12,2023-06-05 09:00\n"
            ));
        }
    }
    let (bulk_april, bulk_may) = (
        dir.path().join("bulk_april.csv"),
        dir.path().join("bulk_may.csv"),
    );
    std::fs::write(&bulk_april, april).unwrap();
    std::fs::write(&bulk_may, may).unwrap();
    let history = [
        vec![case("enterprise_rd/correction_1_original.csv"), bulk_april],
        vec![
            case("enterprise_rd/correction_2_revised.csv"),
            case("enterprise_rd/conflict.csv"),
            case("enterprise_rd/ytd_decrease.csv"),
            case("enterprise_rd/valid_english.csv"),
            bulk_may,
        ],
        vec![later],
    ];
    let mut outcomes = Vec::new();
    for (name, check_memory) in [("roomy", 512 << 20), ("tight", 16 << 20)] {
        let wh = warehouse(&dir.path().join(name));
        let mut counts = Vec::new();
        let mut spilled = 0;
        for paths in &history {
            let mut req = IngestRequest::new(paths.clone());
            req.check_memory = check_memory;
            let r = wh.ingest(&req, &|_| {}).await.expect("ingest runs");
            spilled += r.check_spilled_bytes;
            let s = &r.forms["enterprise_rd"];
            counts.push((s.accepted, s.corrected, s.rejected, s.warnings));
        }
        let warnings = query(
            &wh,
            "select row_number, \"column\", reason from audit.warnings order by file, row_number",
        )
        .await;
        let current = query(
            &wh,
            "select credit_code, period, rd_expenditure from current.enterprise_rd order by 1, 2",
        )
        .await;
        // The tight run must really have spilled, or the comparison is idle.
        assert_eq!(
            spilled > 0,
            name == "tight",
            "{name}: spilled {spilled} bytes"
        );
        outcomes.push((counts, quarantine(&wh).await, warnings, current));
    }
    let (counts, quarantined, warnings, _) = &outcomes[0];
    // The history exercises every check, so the comparison below means something.
    assert!(counts.iter().any(|c| c.1 > 0), "a correction: {counts:?}");
    assert!(quarantined.iter().any(|q| q.contains("conflict")));
    assert!(!warnings.is_empty(), "a year-to-date warning");
    assert_eq!(outcomes[0], outcomes[1]);
}
