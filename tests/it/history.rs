//! Versions over time: corrections, withdrawals, conflicts, re-ingest.

use crate::common::*;
use std::path::PathBuf;

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

/// Row hashes were 32 hex digits before they were 16: a table holding both
/// still tells the same submission (counted once) from a conflicting one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_hashed_at_32_digits_agree_with_the_same_rows_at_16() {
    use stmon_warehouse::TableId;
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(&dir.path().join("wh"));
    let header = "period,credit_code,county_code,industry_code,above_scale,high_tech_industry,revenue,rd_expenditure,submitted_at\n";
    let x = "2023-04,91330603MA2BCD008X,330603,C39,Y,Y,1000,40,2023-05-25 09:00\n";
    let file = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("{header}{body}")).unwrap();
        p
    };
    ingest(&wh, &[file("1.csv", x)]).await;
    // Make the stored row look as an older stmon wrote it.
    let raw = TableId::new("raw", "enterprise_rd");
    wh.table(&raw)
        .await
        .unwrap()
        .update()
        .with_update("_row_hash", "concat(_row_hash, '0123456789abcdef')")
        .await
        .unwrap();
    assert_eq!(
        query(&wh, "select length(_row_hash) from raw.enterprise_rd").await,
        vec![row(&["32"])]
    );
    // The same row in a new file: one submission, nothing rejected.
    let other = "2023-04,91330681MA2BCD005K,330681,C39,Y,Y,500,5,2023-05-25 09:00\n";
    let r = ingest(&wh, &[file("2.csv", &format!("{x}{other}"))]).await;
    assert_eq!(
        (
            r.forms["enterprise_rd"].accepted,
            r.forms["enterprise_rd"].rejected
        ),
        (2, 0)
    );
    assert_eq!(
        query(&wh, "select credit_code, rd_expenditure, length(_row_hash) from current.enterprise_rd order by 1").await,
        vec![
            row(&["91330603MA2BCD008X", "40.0000", "32"]),
            row(&["91330681MA2BCD005K", "5.0000", "16"]),
        ]
    );
    // A different row at the same key and time is still a conflict.
    let changed = x.replace(",40,", ",41,");
    let r = ingest(&wh, &[file("3.csv", &changed)]).await;
    assert_eq!(r.forms["enterprise_rd"].rejected, 1);
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
        again
            .files
            .iter()
            .all(|f| f.status == stmon_warehouse::FileStatus::Skipped),
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
    // At 8 MiB the sort spills dozens of runs that merge in passes (a bounded
    // fan-in: unbounded, the first merge took the whole pool and the final
    // merge of the partitions failed with "resources exhausted").
    for (name, check_memory) in [
        ("roomy", 512 << 20),
        ("tight", 16 << 20),
        ("tighter", 8 << 20),
    ] {
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
            name != "roomy",
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
    assert_eq!(outcomes[0], outcomes[2]);
}

/// `current.<form>` reads the decisions each batch stored
/// (`audit/superseded_<form>`); the rule itself is `current_view_sql`, an
/// aggregate over every version. The two must agree after every batch of a
/// history with each way a version stops being current — a correction, a
/// withdrawal and a later re-submission, identical rows in two files, a
/// conflict at the latest time (the older version is current again) and a
/// newer version that ends the conflict — and a warehouse written before the
/// decisions were stored gets them, equal again, from its next `ensure_tables`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decided_current_view_equals_the_aggregate_over_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let header = "period,credit_code,county_code,industry_code,above_scale,high_tech_industry,revenue,rd_expenditure,submitted_at,withdrawn\n";
    let a = "91330602MA2BCD0010";
    let b = "91330602MA2BCD0029";
    let c = "91330602MA2BCD0037";
    let (a, b, c) = (
        stmon_core::credit_code::complete(&a[..17]).unwrap(),
        stmon_core::credit_code::complete(&b[..17]).unwrap(),
        stmon_core::credit_code::complete(&c[..17]).unwrap(),
    );
    let file = |name: &str, rows: &[String]| {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("{header}{}\n", rows.join("\n"))).unwrap();
        p
    };
    let r = |who: &str, period: &str, rd: u32, at: &str, withdrawn: &str| {
        format!("{period},{who},330602,C39,Y,N,1000,{rd},2023-{at} 09:00,{withdrawn}")
    };
    let history: Vec<Vec<PathBuf>> = vec![
        vec![
            file(
                "1a.csv",
                &[
                    r(&a, "2023-04", 10, "05-05", "N"),
                    r(&b, "2023-04", 20, "05-05", "N"),
                ],
            ),
            // The same row of b in a second file of the batch: shown once.
            file(
                "1b.csv",
                &[
                    r(&b, "2023-04", 20, "05-05", "N"),
                    r(&c, "2023-04", 30, "05-05", "N"),
                ],
            ),
        ],
        vec![file(
            "2.csv",
            &[
                // a corrected; b withdrawn; c in conflict at a new time (c's
                // first version stays current).
                r(&a, "2023-04", 11, "06-01", "N"),
                r(&b, "2023-04", 0, "06-01", "Y"),
                r(&c, "2023-04", 31, "06-01", "N"),
                r(&c, "2023-04", 32, "06-01", "N"),
            ],
        )],
        vec![file(
            "3.csv",
            &[
                // b submitted again after its withdrawal; c's conflict ended by
                // a newer version; a's correction becomes a conflict (a's
                // first version is current again).
                r(&b, "2023-04", 21, "07-01", "N"),
                r(&c, "2023-04", 33, "07-01", "N"),
                r(&a, "2023-04", 12, "06-01", "N"),
                r(&a, "2023-05", 15, "06-05", "N"),
            ],
        )],
    ];
    let wh = warehouse(&dir.path().join("wh"));
    let form = &wh.catalog.forms["enterprise_rd"];
    let by_aggregate = format!(
        "select * from ({}) order by credit_code, period",
        stmon_warehouse::current_view_sql(form, "raw.enterprise_rd")
    );
    let shown = "select * from current.enterprise_rd order by credit_code, period";
    let mut last = Vec::new();
    for (i, paths) in history.iter().enumerate() {
        ingest(&wh, paths).await;
        let decided = query(&wh, shown).await;
        assert_eq!(
            decided,
            query(&wh, &by_aggregate).await,
            "after batch {}",
            i + 1
        );
        last = decided;
    }
    // The history ends as the comments say: a's first version (10), b's
    // re-submission (21), c's newest (33), a's May.
    assert_eq!(
        query(
            &wh,
            "select credit_code, period, rd_expenditure from current.enterprise_rd order by 1, 2"
        )
        .await,
        vec![
            row(&[&a, "2023-04", "10.0000"]),
            row(&[&a, "2023-05", "15.0000"]),
            row(&[&b, "2023-04", "21.0000"]),
            row(&[&c, "2023-04", "33.0000"]),
        ]
    );
    // Decisions are stored only for keys with more than one version or a
    // withdrawal: here a, b and c's April rows less the three shown.
    let stored = query(
        &wh,
        "select count(*) from delta.audit_superseded_enterprise_rd",
    )
    .await;
    assert!(stored[0][0].parse::<u32>().unwrap() >= 6, "{stored:?}");

    // A warehouse from before the decisions were stored: the view falls
    // back to the aggregate, and ensure_tables decides every committed key.
    std::fs::remove_dir_all(dir.path().join("wh/audit/superseded_enterprise_rd")).unwrap();
    assert_eq!(query(&wh, shown).await, last);
    wh.ensure_tables().await.unwrap();
    assert_eq!(
        query(
            &wh,
            "select count(*) > 0 from delta.audit_superseded_enterprise_rd"
        )
        .await,
        vec![row(&["true"])]
    );
    assert_eq!(query(&wh, shown).await, last);
    // And the next night decides on top of those decisions.
    ingest(&wh, &[file("4.csv", &[r(&a, "2023-04", 13, "08-01", "N")])]).await;
    let decided = query(&wh, shown).await;
    assert_eq!(
        decided,
        query(&wh, &by_aggregate).await,
        "after the backfill and batch 4"
    );
    assert!(
        decided.iter().any(|r| r.contains(&"13.0000".to_string())),
        "{decided:?}"
    );
}

/// A table that grows by small batches is compacted once it holds
/// `SMALL_FILES` small files: the batch that reaches the count rewrites them
/// into one, the rows stay the same (the version before the compaction reads
/// the same rows as the one after), and the current view and the decisions
/// go on as if nothing happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_batches_are_compacted_without_changing_a_row() {
    use stmon_warehouse::{TableId, SMALL_FILES};
    let dir = tempfile::tempdir().unwrap();
    let header = "period,credit_code,county_code,industry_code,above_scale,high_tech_industry,revenue,rd_expenditure,submitted_at\n";
    let a = stmon_core::credit_code::complete("91330602MA2BCD001").unwrap();
    let b = stmon_core::credit_code::complete("91330602MA2BCD002").unwrap();
    let wh = warehouse(&dir.path().join("wh"));
    let raw = TableId::new("raw", "enterprise_rd");
    let batches = TableId::new("audit", "batches");
    let rows = "select _batch_id, _row_number, credit_code, rd_expenditure from raw.enterprise_rd order by 1, 2";
    // Past the compaction, until raw's log checkpoint follows it.
    let n = SMALL_FILES + 3;
    for i in 1..=n {
        // Each batch corrects both firms' April: a to i, b to 100 + i.
        let p = dir.path().join(format!("{i}.csv"));
        let at = format!("2023-05-01 09:{i:02}");
        std::fs::write(
            &p,
            format!("{header}2023-04,{a},330602,C39,Y,N,1000,{i},{at}\n2023-04,{b},330602,C39,Y,N,1000,{},{at}\n", 100 + i),
        )
        .unwrap();
        let r = ingest(&wh, &[p]).await;
        assert_eq!(r.forms["enterprise_rd"].accepted, 2, "batch {i}");
        let files = wh.file_sizes(&raw).await.unwrap().len();
        let compacted: Vec<String> = r.compacted.iter().map(|c| c.table.to_string()).collect();
        if i < SMALL_FILES {
            assert_eq!(files, i, "batch {i}: one file per batch until the count");
            assert!(compacted.is_empty(), "batch {i}: {compacted:?}");
        } else if i == SMALL_FILES {
            // The batch that makes the count compacts raw and audit/batches.
            assert!(
                compacted.contains(&"raw/enterprise_rd".to_string()),
                "{compacted:?}"
            );
            assert!(
                compacted.contains(&"audit/batches".to_string()),
                "{compacted:?}"
            );
            let c = r.compacted.iter().find(|c| c.table == raw).unwrap();
            assert_eq!((c.files_removed, c.files_added), (SMALL_FILES as u64, 1));
            assert_eq!(files, 1);
            assert_eq!(wh.file_sizes(&batches).await.unwrap().len(), 1);
            // The version before the compaction reads the same rows.
            let now = wh.table(&raw).await.unwrap().version().unwrap();
            let before = wh.pinned([(raw.clone(), now - 1)].into_iter().collect());
            let compacted_rows = query(&wh, rows).await;
            assert_eq!(compacted_rows.len(), 2 * SMALL_FILES);
            assert_eq!(query(&before, rows).await, compacted_rows);
        } else {
            assert_eq!(
                files,
                1 + i - SMALL_FILES,
                "the compacted file and one per batch since"
            );
        }
    }
    assert_eq!(
        query(
            &wh,
            "select credit_code, rd_expenditure from current.enterprise_rd order by 1"
        )
        .await,
        vec![
            row(&[&a, &format!("{n}.0000")]),
            row(&[&b, &format!("{}.0000", 100 + n)]),
        ]
    );
    let form = &wh.catalog.forms["enterprise_rd"];
    let by_aggregate = format!(
        "select * from ({}) order by credit_code, period",
        stmon_warehouse::current_view_sql(form, "raw.enterprise_rd")
    );
    assert_eq!(
        query(
            &wh,
            "select * from current.enterprise_rd order by credit_code, period"
        )
        .await,
        query(&wh, &by_aggregate).await
    );
    // Each table the batches wrote has a log checkpoint fewer than
    // CHECKPOINT_EVERY commits behind its latest version.
    for id in [&raw, &batches] {
        let log = dir
            .path()
            .join(format!("wh/{}/{}/_delta_log", id.layer, id.name));
        let last: serde_json::Value =
            serde_json::from_slice(&std::fs::read(log.join("_last_checkpoint")).unwrap()).unwrap();
        let checkpoint = last["version"].as_i64().unwrap();
        assert!(log
            .join(format!("{checkpoint:020}.checkpoint.parquet"))
            .is_file());
        let version = wh.table(id).await.unwrap().version().unwrap() as i64;
        assert!(
            version - checkpoint < stmon_warehouse::CHECKPOINT_EVERY,
            "{id}: version {version}, checkpoint {checkpoint}"
        );
        // Written after the compaction, the checkpoint holds the files
        // active then and none of the 16 tombstones
        // (`stmon_warehouse::TOMBSTONE_RETENTION`).
        let ctx = datafusion::prelude::SessionContext::new();
        let cp = log.join(format!("{checkpoint:020}.checkpoint.parquet"));
        ctx.register_parquet("cp", cp.to_str().unwrap(), Default::default())
            .await
            .unwrap();
        let compaction_version = 17; // created at 0, 16 appends, then OPTIMIZE
        assert!(
            checkpoint > compaction_version,
            "{id}: checkpoint {checkpoint}"
        );
        let active = 1 + checkpoint - compaction_version;
        assert_eq!(
            rows_of(&ctx, "select count(add), count(remove) from cp").await,
            vec![row(&[&active.to_string(), "0"])],
            "{id}: checkpoint {checkpoint} holds the active files and no tombstone"
        );
    }
    // The version before the compaction still reads every row.
    let before = wh.pinned([(raw.clone(), SMALL_FILES as u64)].into_iter().collect());
    assert_eq!(query(&before, rows).await.len(), 2 * SMALL_FILES);
}

/// Old versions stay readable when their log entries are older than Delta's
/// log retention (30 days) and precede a checkpoint, the entries delta-rs's
/// post-commit cleanup would delete: no commit deletes log entries
/// (`stmon_warehouse::commit_properties`), so a version recorded in an
/// assessment or a run stays readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_older_than_the_log_retention_stay_readable() {
    use stmon_warehouse::{TableId, CHECKPOINT_EVERY};
    let dir = tempfile::tempdir().unwrap();
    let header = "period,credit_code,county_code,industry_code,above_scale,high_tech_industry,revenue,rd_expenditure,submitted_at\n";
    let wh = warehouse(&dir.path().join("wh"));
    let raw = TableId::new("raw", "enterprise_rd");
    let count = "select count(*), sum(rd_expenditure) from raw.enterprise_rd";
    let batch = |i: usize| {
        let p = dir.path().join(format!("{i}.csv"));
        let c = stmon_core::credit_code::complete(&format!("91330602MA{i:07}")).unwrap();
        std::fs::write(
            &p,
            format!("{header}2023-04,{c},330602,C39,Y,N,1000,{i},2023-05-01 09:00\n"),
        )
        .unwrap();
        p
    };
    // Enough one-row batches that raw has a log checkpoint.
    let n = CHECKPOINT_EVERY as usize + 2;
    for i in 1..=n {
        ingest(&wh, &[batch(i)]).await;
    }
    let log = dir.path().join("wh/raw/enterprise_rd/_delta_log");
    assert!(log.join("_last_checkpoint").is_file());
    // Version 3 holds the first three batches' rows (version 0 is the
    // empty table): 3 rows, 1 + 2 + 3.
    let at3 = wh.pinned([(raw.clone(), 3)].into_iter().collect());
    assert_eq!(query(&at3, count).await, vec![row(&["3", "6.0000"])]);
    // Every log entry 40 days old, then one more commit.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 86_400);
    for e in std::fs::read_dir(&log).unwrap() {
        let path = e.unwrap().path();
        if path.is_file() {
            let f = std::fs::File::options().append(true).open(&path).unwrap();
            f.set_modified(old).unwrap();
        }
    }
    ingest(&wh, &[batch(n + 1)]).await;
    assert!(
        log.join(format!("{:020}.json", 3)).is_file(),
        "the log entry of version 3 was deleted"
    );
    assert_eq!(query(&at3, count).await, vec![row(&["3", "6.0000"])]);
    let total = (n + 1) * (n + 2) / 2;
    assert_eq!(
        query(&wh, count).await,
        vec![row(&[&(n + 1).to_string(), &format!("{total}.0000")])]
    );
}

/// The raw files a query's plan reads of `raw.enterprise_rd`.
async fn raw_files_read(ctx: &datafusion::prelude::SessionContext, sql: &str) -> usize {
    let plan = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let text = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string();
    text.split([' ', '[', ']', ','])
        .filter(|p| p.contains("raw/enterprise_rd/") && p.ends_with(".parquet"))
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// `raw.enterprise_rd` stores each row's credit province (`prune_by` in
/// schemas/forms/enterprise_rd.yaml): a read restricted to one province opens
/// only the files that may hold it, and a night's check of a correction reads
/// only its province's files yet still finds the version it corrects. A raw
/// table created before the form named the column keeps its columns, takes
/// new rows without it, and gives the same current rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_province_read_skips_other_provinces_files_and_old_raw_tables_still_work() {
    let tmp = tempfile::tempdir().unwrap();
    let jiangsu = stmon_core::credit_code::complete("91320102MA2HND10X").unwrap();
    let js_file = tmp.path().join("enterprise_rd_jiangsu.csv");
    std::fs::write(
        &js_file,
        format!(
            "period,credit_code,name,county_code,industry_code,above_scale,high_tech_industry,revenue,rd_expenditure,basic_research,value_added,submitted_at\n\
             2023-06,{jiangsu},乙,330603,C39,Y,N,500,5,1,100,2023-07-10 09:00\n"
        ),
    )
    .unwrap();
    // Three batches, one file each: Zhejiang's firms, the Jiangsu firm, and
    // a correction of a Zhejiang firm's June.
    let batches = [
        repo().join("fixtures/indicators/base/enterprise_rd.csv"),
        js_file,
        repo().join("fixtures/indicators/later/enterprise_rd_correction.csv"),
    ];
    let province = "substr(credit_code, 3, 2)";
    let current = "select period, credit_code, name, county_code, cast(rd_expenditure as varchar) \
                   from current.enterprise_rd order by credit_code, period";

    let new_dir = tmp.path().join("new");
    let wh = warehouse(&new_dir);
    for f in &batches {
        ingest(&wh, std::slice::from_ref(f)).await;
    }
    let all = query(&wh, current).await;
    assert_eq!(
        all.len(),
        11,
        "ten Zhejiang rows and the Jiangsu one: {all:?}"
    );
    assert!(
        all.contains(&row(&[
            "2023-06",
            "91330602MA2HND10A8",
            "甲",
            "330602",
            "21.0000"
        ])),
        "the correction is current: {all:?}"
    );
    let ctx = wh.session().await.unwrap();
    assert_eq!(
        query(
            &wh,
            "select distinct _credit_province from raw.enterprise_rd order by 1"
        )
        .await,
        vec![row(&["32"]), row(&["33"])]
    );
    assert_eq!(raw_files_read(&ctx, current).await, 3);
    wh.restrict_form(&ctx, "enterprise_rd", province, &["32".into()])
        .await
        .unwrap();
    assert_eq!(raw_files_read(&ctx, current).await, 1);
    let js: Vec<_> = all.iter().filter(|r| r[1] == jiangsu).cloned().collect();
    assert_eq!(rows_of(&ctx, current).await, js);
    wh.restrict_form(&ctx, "enterprise_rd", province, &["33".into()])
        .await
        .unwrap();
    assert_eq!(raw_files_read(&ctx, current).await, 2);
    let zj: Vec<_> = all.iter().filter(|r| r[1] != jiangsu).cloned().collect();
    assert_eq!(rows_of(&ctx, current).await, zj);

    // The same batches into a raw table made without the column: the first
    // two by a catalog whose form names none, the correction by today's.
    let mut before = (*catalog()).clone();
    before.forms.get_mut("enterprise_rd").unwrap().prune_by = None;
    let old_dir = tmp.path().join("old");
    let old =
        stmon_warehouse::Warehouse::open(old_dir.to_str().unwrap(), std::sync::Arc::new(before))
            .unwrap();
    for f in &batches[..2] {
        ingest(&old, std::slice::from_ref(f)).await;
    }
    let old = warehouse(&old_dir);
    let report = ingest(&old, &batches[2..]).await;
    assert_eq!(report.rejected_rows(), 0);
    let ctx = old.session().await.unwrap();
    let schema = ctx
        .table("raw.enterprise_rd")
        .await
        .unwrap()
        .schema()
        .clone();
    assert!(!schema.has_column_with_unqualified_name("_credit_province"));
    assert_eq!(query(&old, current).await, all);
    old.restrict_form(&ctx, "enterprise_rd", province, &["32".into()])
        .await
        .unwrap();
    assert_eq!(raw_files_read(&ctx, current).await, 3, "read whole");
    assert_eq!(rows_of(&ctx, current).await, js);
}
