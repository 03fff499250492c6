//! The command line of the model layer: `stmon models`, `stmon progress` and
//! `stmon sql`, as a person runs them.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::*;

fn stmon(wh: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stmon"));
    c.current_dir(repo())
        .env("STMON_WAREHOUSE", wh)
        .env("HOME", wh.parent().unwrap())
        .env_remove("STMON_SCHEMAS")
        .env_remove("STMON_SQL");
    c
}

fn ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// One warehouse with the indicator fixture and every model, shared by the tests below.
fn built() -> &'static std::path::Path {
    static WH: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    WH.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let wh = dir.path().join("wh");
        ok(stmon(&wh).args(["ingest", "fixtures/indicators/base"]));
        ok(stmon(&wh).args(["ingest", "fixtures/indicators/later"]));
        let text = ok(stmon(&wh).args(["models", "run"]));
        assert!(text.contains("19 model(s): 0 failed, 0 skipped"), "{text}");
        dir
    })
    .path()
}

#[test]
fn sql_one_shot_in_three_formats_and_errors_without_a_trace() {
    let wh = built().join("wh");
    let q = "select division_code, value from marts.indicators where year = 2023 and as_of_month = 12 \
             and indicator_id = 'tech_transaction_volume' and division_code in ('330602', '330603') order by 1";
    let csv = ok(stmon(&wh).args(["sql", "--format", "csv", "-c", q]));
    assert_eq!(csv, "division_code,value\n330602,100.0\n330603,50.5\n");
    let json = ok(stmon(&wh).args(["sql", "--format", "json", "-c", q]));
    assert_eq!(
        json,
        "{\"division_code\":\"330602\",\"value\":100.0}\n{\"division_code\":\"330603\",\"value\":50.5}\n"
    );
    let table = ok(stmon(&wh).args(["sql", "-c", q]));
    assert!(table.contains("| 330603        | 50.5  |"), "{table}");

    let out = stmon(&wh)
        .args(["sql", "-c", "select nope from marts.indicators"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.starts_with("error: ") && err.contains("nope"), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

/// `stmon sql` plans under the read-only options: what would write or
/// change the session is refused with exit 2, and nothing is written.
#[test]
fn sql_refuses_what_writes_at_the_plan() {
    let wh = built().join("wh");
    let count = "select count(*) as n from marts.indicators";
    let before = ok(stmon(&wh).args(["sql", "--format", "csv", "-c", count]));
    let dir = tempfile::tempdir().unwrap();
    let stolen = dir.path().join("stolen.csv");
    for sql in [
        "insert into marts.indicators select * from marts.indicators".to_string(),
        "explain analyze insert into marts.indicators select * from marts.indicators".to_string(),
        format!(
            "copy (select * from marts.indicators) to '{}'",
            stolen.display()
        ),
        "create view v as select 1".to_string(),
        "set datafusion.execution.target_partitions = 64".to_string(),
    ] {
        let out = stmon(&wh).args(["sql", "-c", &sql]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{sql}: {err}");
        assert!(err.contains("stmon sql is read-only"), "{sql}: {err}");
    }
    assert!(!stolen.exists());
    let after = ok(stmon(&wh).args(["sql", "--format", "csv", "-c", count]));
    assert_eq!(before, after);
}

#[test]
fn the_interactive_shell_takes_multi_line_statements_and_lists_tables() {
    let wh = built().join("wh");
    let mut child = stmon(&wh)
        .arg("sql")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"select value\nfrom marts.indicators\nwhere year = 2023 and as_of_month = 12\n  and division_code = '330600' and indicator_id = 'talent_teams';\n\\d\n\\d marts.indicators\n\\q\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("| 4.0   |"), "{text}");
    assert!(text.contains("marts.indicators"), "{text}");
    assert!(text.contains("current.enterprise_rd"), "{text}");
    assert!(
        text.contains("as_of_month") && text.contains("12 = year end"),
        "{text}"
    );
}

#[test]
fn models_list_and_graph() {
    let wh = built().join("wh");
    let list = ok(stmon(&wh).args(["models", "list"]));
    let names: Vec<&str> = list
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(names.len(), 19);
    assert!(
        names.iter().position(|n| *n == "staging.enterprise_rd")
            < names.iter().position(|n| *n == "marts.indicators")
    );
    let dot = ok(stmon(&wh).args(["models", "graph", "--dot"]));
    assert!(dot.starts_with("digraph models {"));
    assert!(dot.contains("\"intermediate.division_enterprise\" -> \"marts.indicators\";"));
    assert!(dot.contains("\"intermediate.form_months\" -> \"marts.indicators\";"));
}

#[test]
fn progress_compares_actuals_with_targets_and_writes_csv_and_xlsx() {
    let base = built();
    let wh = base.join("wh");
    let targets = base.join("targets.yaml");
    std::fs::write(
        &targets,
        "year: 2023\nindicators:\n\
         \x20 rd_intensity: {label: 全社会R&D经费占GDP比重, kind: rate, unit: percent, targets: {\"330602\": 0.01}}\n\
         \x20 tech_transaction_volume: {label: 技术交易额, kind: cumulative, unit: wan_yuan, targets: {\"330602\": 150, \"330600\": 400}}\n\
         \x20 talent_teams: {label: 人才团队, kind: cumulative, targets: {\"330603\": 10}}\n",
    )
    .unwrap();
    let out = base.join("reports");
    let text = ok(stmon(&wh).args([
        "progress",
        "--year",
        "2023",
        "--as-of",
        "2023-06",
        "--targets",
        targets.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(text.contains("2023 progress as of 2023-06"), "{text}");
    let csv = std::fs::read_to_string(out.join("progress-2023-06.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "\u{feff}区划代码,区划名称,层级,指标代码,指标名称,实际值,目标值,完成率,时间进度,状态,说明"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let find = |code: &str, id: &str| {
        rows.iter()
            .find(|r| r[0] == code && r[3] == id)
            .unwrap_or_else(|| panic!("{code} {id} in {csv}"))
            .clone()
    };
    // As of June, rd_intensity uses Q2: 25 / 5000 = 0.005, half the target: red.
    let r = find("330602", "rd_intensity");
    assert_eq!((r[5], r[7], r[9]), ("0.005", "0.5", "红"));
    // 100 of 150 by June: 0.667 ≥ time progress 0.5: green.
    let r = find("330602", "tech_transaction_volume");
    assert_eq!((r[5], r[8], r[9]), ("100", "0.5", "绿"));
    assert!(r[7].starts_with("0.666"));
    // The city: 100 of 400 = 0.25 < 0.8 × 0.5: red.
    let r = find("330600", "tech_transaction_volume");
    assert_eq!((r[7], r[9]), ("0.25", "红"));
    // 柯桥's teams arrive in December: 0 of 10 by June: red.
    let r = find("330603", "talent_teams");
    assert_eq!((r[5], r[7], r[9]), ("0", "0", "红"));
    assert!(out.join("progress-2023-06.xlsx").metadata().unwrap().len() > 1000);
}
