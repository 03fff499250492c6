//! Killing `stmon ingest` with SIGKILL at many points of a batch leaves every
//! table, as readers see it, equal to its state before the batch or after it;
//! the next run completes the work and removes what the killed run left.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use stmon_core::credit_code;

use crate::common::*;

/// Writes `files` CSV files of `rows` enterprise_rd rows each; every 500th row is invalid.
fn medium_data(dir: &Path, files: usize, rows: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let counties = ["330602", "330603", "330604", "330624", "330681", "330683"];
    for f in 0..files {
        let mut s = String::from("period,credit_code,county_code,industry_code,above_scale,high_tech_industry,revenue,rd_expenditure,submitted_at\n");
        for i in 0..rows {
            let county = counties[i % 6];
            let code = credit_code::complete(&format!("91{county}MA{f:02}{i:05}")).unwrap();
            let rd = if i % 500 == 499 {
                "-1".to_string()
            } else {
                format!("{}.5", i % 97)
            };
            s.push_str(&format!(
                "2023-{:02},{code},{county},C39,Y,N,{},{rd},2023-06-01 10:00\n",
                1 + i % 12,
                1000 + i
            ));
        }
        std::fs::write(dir.join(format!("part-{f}.csv")), s).unwrap();
    }
}

async fn fingerprint(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let wh = warehouse(dir);
    let mut out = BTreeMap::new();
    for (name, sql) in [
        ("raw", "select _source_sha256, cast(_row_number as varchar), _row_hash from raw.enterprise_rd"),
        ("current", "select _source_sha256, cast(_row_number as varchar), _row_hash from current.enterprise_rd"),
        ("quarantine", "select sha256, coalesce(cast(row_number as varchar), '-'), coalesce(\"column\", '-'), reason from audit.quarantine"),
        ("warnings", "select sha256, coalesce(cast(row_number as varchar), '-'), reason from audit.warnings"),
        ("batches", "select sha256, status, cast(rows_accepted as varchar), cast(rows_rejected as varchar), cast(rows_corrected as varchar) from audit.batches"),
    ] {
        let mut rows: Vec<String> = query(&wh, sql).await.into_iter().map(|r| r.join("|")).collect();
        rows.sort();
        out.insert(name.to_string(), rows);
    }
    out
}

async fn physical_raw_rows(dir: &Path) -> usize {
    let wh = warehouse(dir);
    query(&wh, "select count(*) from delta.raw_enterprise_rd").await[0][0]
        .parse()
        .unwrap()
}

fn ingest_cmd(wh: &Path, data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stmon"));
    c.current_dir(repo())
        .env("STMON_WAREHOUSE", wh)
        .args(["ingest", "--commit-rows", "2500"])
        .arg(data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_ingest_leaves_before_or_after_state() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let data = tmp.path().join("data");
    medium_data(&data, 4, 6000);
    // The warehouse before the batch already holds data of its own.
    let status = ingest_cmd(&base, &case("enterprise_rd/correction_1_original.csv"))
        .status()
        .unwrap();
    assert!(status.success());
    let before = fingerprint(&base).await;

    let reference = tmp.path().join("reference");
    copy_dir(&base, &reference);
    let t0 = Instant::now();
    assert!(ingest_cmd(&reference, &data).status().unwrap().success());
    let full = t0.elapsed();
    let after = fingerprint(&reference).await;
    assert_ne!(before, after);
    assert_eq!(
        after["raw"].len(),
        2 + 4 * 6000 - 4 * 12,
        "24,000 rows less the 48 invalid ones, plus the 2 before"
    );

    let mut mid_batch = 0;
    let mut outcomes = Vec::new();
    for k in 1..=8u32 {
        let wh = tmp.path().join(format!("w{k}"));
        copy_dir(&base, &wh);
        let mut child = ingest_cmd(&wh, &data).spawn().unwrap();
        std::thread::sleep(full.mul_f64(k as f64 / 9.0));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let state = fingerprint(&wh).await;
        let which = if state == before {
            "before"
        } else if state == after {
            "after"
        } else {
            panic!(
                "kill {k} left a state that is neither before nor after: {:?}",
                state.iter().map(|(t, r)| (t, r.len())).collect::<Vec<_>>()
            );
        };
        let open = std::fs::read_dir(wh.join("_stmon/open")).map_or(0, |d| d.count());
        if which == "before" && physical_raw_rows(&wh).await > before["raw"].len() {
            mid_batch += 1; // rows were written, but the batch never committed
                            // What tells the next batch to look for them (only then does it).
            assert_eq!(
                open, 1,
                "kill {k}: uncommitted rows, and their batch marked in flight"
            );
        }
        outcomes.push(which);
        // The next run completes the work.
        assert!(ingest_cmd(&wh, &data).status().unwrap().success());
        assert_eq!(
            fingerprint(&wh).await,
            after,
            "kill {k}: the re-run reaches the after-state"
        );
        assert_eq!(
            physical_raw_rows(&wh).await,
            after["raw"].len(),
            "kill {k}: orphan rows were removed"
        );
        let open = std::fs::read_dir(wh.join("_stmon/open")).map_or(0, |d| d.count());
        assert_eq!(open, 0, "kill {k}: no batch is left marked in flight");
    }
    assert!(
        mid_batch >= 1,
        "at least one kill hit the middle of a batch: {outcomes:?}"
    );
}
