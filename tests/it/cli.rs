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
