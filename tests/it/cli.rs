//! The `stmon` binary as the data team runs it.

use std::process::Command;

use crate::common::*;

fn stmon(wh: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stmon"));
    c.current_dir(repo())
        .env("STMON_WAREHOUSE", wh)
        .env_remove("STMON_SCHEMAS");
    c
}

#[test]
fn ingest_prints_per_form_counts_and_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let out = stmon(dir.path())
        .args(["ingest", "fixtures/cases/enterprise_rd/bad_county.csv"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("enterprise_rd"))
        .expect("a line for the form");
    let cols: Vec<&str> = line.split_whitespace().collect();
    // form, files, rows, accepted, corrected, rejected, warnings
    assert_eq!(cols, ["enterprise_rd", "1", "4", "1", "0", "3", "1"]);
    assert!(
        text.contains("      1  [county_code] unknown county code 339999 (…)"),
        "{text}"
    );

    let again = stmon(dir.path())
        .args(["ingest", "fixtures/cases/enterprise_rd/bad_county.csv"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(text.contains("nothing new to ingest"), "{text}");
}

#[test]
fn strict_turns_rejections_into_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = stmon(dir.path())
        .args([
            "ingest",
            "--strict",
            "fixtures/cases/enterprise_rd/bad_values.csv",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let ok = stmon(dir.path())
        .args([
            "ingest",
            "--strict",
            "fixtures/cases/enterprise_rd/valid_english.csv",
        ])
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0));
}

#[test]
fn an_unreadable_file_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = stmon(dir.path())
        .args([
            "ingest",
            "fixtures/broken/not_a_workbook.xlsx",
            "fixtures/cases/enterprise_rd/valid_english.csv",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("unreadable file fixtures/broken/not_a_workbook.xlsx: cannot read fixtures/broken/not_a_workbook.xlsx: not an XLSX workbook"), "{text}");
    // The readable file of the same batch still loaded. (Its one warning: row
    // 3's year-to-date R&D, 80.25, is below January's 1,200.)
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["enterprise_rd", "1", "3", "3", "0", "0", "1"]),
        "{text}"
    );
}

#[test]
fn form_override_and_unrecognised_headers() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("odd.csv");
    std::fs::write(&f, "foo,bar\n1,2\n").unwrap();
    let out = stmon(dir.path()).arg("ingest").arg(&f).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("the header fits no form (columns: foo, bar); name the form with --form"),
        "{text}"
    );
    let out = stmon(dir.path())
        .args(["ingest", "--form", "tech_contract"])
        .arg(&f)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("missing required columns of form tech_contract: contract_id (合同登记号)"),
        "{text}"
    );
}

#[test]
fn help_explains_itself() {
    let out = Command::new(env!("CARGO_BIN_EXE_stmon"))
        .args(["ingest", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("audit.quarantine")
            && text.contains("--strict")
            && text.contains("Exit status"),
        "{text}"
    );
}

/// The committed Shaoxing fixtures are exactly what the generator writes for
/// seed 2023: same files, same bytes (so they are reproducible and cannot drift).
#[test]
fn bundled_fixtures_are_the_generator_output() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = catalog();
    stmon_fixtures::generate(stmon_fixtures::Scale::Shaoxing, 2023, dir.path(), &catalog).unwrap();
    let list = |root: &std::path::Path| {
        let (files, _) = stmon_ingest::discover(&[root.to_path_buf()]).unwrap();
        files
            .into_iter()
            .map(|f| f.strip_prefix(root).unwrap().to_path_buf())
            .collect::<Vec<_>>()
    };
    let committed = repo().join("fixtures/shaoxing");
    let files = list(dir.path());
    assert_eq!(files, list(&committed));
    assert!(files.len() > 20);
    for f in files {
        let a = stmon_ingest::probe(&dir.path().join(&f)).unwrap().sha256;
        let b = stmon_ingest::probe(&committed.join(&f)).unwrap().sha256;
        assert_eq!(a, b, "{} differs from a fresh generation", f.display());
    }
}

/// A workbook that breaks off half-way is unreadable; the valid row it had
/// already yielded must not load, and the next run tries the file again.
#[test]
fn a_file_that_fails_half_way_loads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = stmon(dir.path())
        .args(["ingest", "fixtures/broken/sheet_breaks_off.xlsx"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("unreadable file fixtures/broken/sheet_breaks_off.xlsx"),
        "{text}"
    );
    let again = stmon(dir.path())
        .args(["ingest", "fixtures/broken/sheet_breaks_off.xlsx"])
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(2),
        "an unreadable file is retried, not skipped"
    );

    // With one-row chunks the valid row does reach the table before the file
    // fails; readers still do not see it.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let wh = warehouse(dir.path());
    let mut req = stmon_warehouse::IngestRequest::new(vec![
        repo().join("fixtures/broken/sheet_breaks_off.xlsx")
    ]);
    req.chunk_rows = 1;
    req.commit_rows = 1;
    let r = rt.block_on(wh.ingest(&req, &|_| {})).unwrap();
    assert_eq!(r.files[0].status, stmon_warehouse::FileStatus::Unreadable);
    assert_eq!(
        rt.block_on(query(&wh, "select count(*) from delta.raw_enterprise_rd")),
        vec![row(&["1"])]
    );
    assert_eq!(
        rt.block_on(query(&wh, "select count(*) from raw.enterprise_rd")),
        vec![row(&["0"])]
    );
    assert_eq!(
        rt.block_on(query(&wh, "select count(*) from current.enterprise_rd")),
        vec![row(&["0"])]
    );
}

/// A file past a limit of one file (here a CSV record longer than
/// `record_bytes`, after two good rows) is rejected whole: the rows it had
/// yielded stay out of every view even when they reached the raw table, the
/// reason names the limit, and the next run does not read it again.
#[test]
fn a_file_past_a_limit_is_rejected_whole_and_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let file = inbox.join("zones.csv");
    let zone = |id: &str, name: &str| {
        format!("2023,{id},{name},省级,330602,12000,1000,600,50,30,20,3,2024-01-10 09:00\n")
    };
    // 400 good rows (more than the reader's buffers hold, so that some reach
    // the table before the limit is met), then a record of 3,000 bytes.
    let good: String = (1..=400).map(|i| zone(&format!("Z{i}"), "甲")).collect();
    std::fs::write(
        &file,
        format!(
            "报告期,园区编号,园区名称,级别,所在区县代码,用地面积(亩),营业收入,工业增加值,税收,综合能耗(吨标准煤),R&D经费支出,高新技术企业数,填报时间\n{good}{}",
            zone("Z401", &"x".repeat(3_000))
        ),
    )
    .unwrap();
    let wh_dir = dir.path().join("wh");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let wh = warehouse(&wh_dir);
    let mut req = stmon_warehouse::IngestRequest::new(vec![file.clone()]);
    req.chunk_rows = 10;
    req.commit_rows = 100;
    req.limits.record_bytes = 2_000;
    let r = rt.block_on(wh.ingest(&req, &|_| {})).unwrap();
    assert_eq!(r.files[0].status, stmon_warehouse::FileStatus::Rejected);
    assert_eq!(
        r.files[0].message.as_deref(),
        Some("line 402: a CSV record longer than 2,000 bytes (limit record_bytes)")
    );
    let stored = rt.block_on(query(&wh, "select count(*) from delta.raw_zone_report"));
    let stored: u64 = stored[0][0].parse().unwrap();
    assert!(
        stored > 0 && stored < 400,
        "{stored} good rows reached the table"
    );
    for view in ["raw.zone_report", "current.zone_report"] {
        assert_eq!(
            rt.block_on(query(&wh, &format!("select count(*) from {view}"))),
            vec![row(&["0"])],
            "{view}"
        );
    }
    assert_eq!(
        rt.block_on(query(
            &wh,
            "select row_number, reason from audit.quarantine"
        )),
        vec![row(&[
            "NULL",
            "line 402: a CSV record longer than 2,000 bytes (limit record_bytes)"
        ])]
    );
    // The CLI with its default limits: the file is known, not read again.
    let out = stmon(&wh_dir)
        .args(["ingest", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("nothing new to ingest"), "{text}");
    // A limit set too low on the command line names what it takes.
    let out = stmon(&wh_dir)
        .args(["ingest", "--limit", "rows=5", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "--limit `rows=5`: unknown limit `rows` (known: columns, cell_chars, record_bytes,"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A pipeline's `ingest: {limits: [...]}` reaches its ingest step, and a
/// limit it cannot read stops the run before anything is done.
#[test]
fn a_pipelines_ingest_limits_are_checked_and_applied() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    std::fs::write(
        inbox.join("zones.csv"),
        format!(
            "报告期,园区编号,园区名称,级别,所在区县代码,用地面积(亩),营业收入,工业增加值,税收,综合能耗(吨标准煤),R&D经费支出,高新技术企业数,填报时间\n\
             2023,Z1,{},省级,330602,12000,1000,600,50,30,20,3,2024-01-10 09:00\n",
            "园".repeat(150)
        ),
    )
    .unwrap();
    let pipeline = |limits: &str| {
        let p = dir.path().join("p.yaml");
        std::fs::write(
            &p,
            format!(
                "name: limits\nyear: 2023\ninbox: {}\nsteps: [ingest]\ningest: {{limits: [{limits}]}}\n",
                inbox.display()
            ),
        )
        .unwrap();
        p
    };
    let wh = dir.path().join("wh");
    let out = stmon(&wh)
        .args(["run", pipeline("rows=5").to_str().unwrap()])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("ingest.limits: `rows=5`: unknown limit `rows`"),
        "{text}"
    );
    assert!(!wh.join("audit").exists(), "nothing written");
    // The record is 500 bytes: past a limit of 400.
    let out = stmon(&wh)
        .args(["run", pipeline("record_bytes=400").to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("line 2: a CSV record longer than 400 bytes (limit record_bytes)"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn storage_options_are_checked_before_anything_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    for (option, said) in [
        ("foo=bar", "storage option foo: not an object-store option"),
        ("max_retries=abc", "failed to parse \\\"abc\\\" as usize"),
        (
            "max_retries",
            "storage option max_retries: expected KEY=VALUE",
        ),
    ] {
        let out = stmon(&wh)
            .args(["--storage-option", option, "runs"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{option}: {err}");
        assert!(err.contains(said), "{option}: {err}");
    }
    // Good ones, from the environment too.
    let out = stmon(&wh)
        .env("STMON_STORAGE_OPTIONS", "max_retries=3,timeout=5s")
        .args(["--storage-option", "retry_timeout=30s", "runs"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
