//! `stmon run PIPELINE`: incremental, recorded, locked, resumable, and
//! crash-safe — checked on the indicator fixture, whose values are worked out
//! by hand in `fixtures/indicators/README.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;

/// Columns that differ between two runs doing the same work (ids and clocks).
const VOLATILE: [&str; 8] = [
    "_batch_id",
    "batch_id",
    "_ingested_at",
    "started_at",
    "committed_at",
    "recorded_at",
    "ran_at",
    "source_version",
];

struct Setup {
    dir: PathBuf,
    inbox: PathBuf,
    reports: PathBuf,
    pipeline: PathBuf,
}

/// A pipeline over `fixtures/indicators/base` in a fresh inbox, with the
/// repository's targets and schemes.
fn setup(tmp: &Path, steps: &str, extra: &str) -> Setup {
    let inbox = tmp.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    for e in std::fs::read_dir(repo().join("fixtures/indicators/base")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), inbox.join(e.file_name())).unwrap();
    }
    let reports = tmp.join("reports");
    let p = repo().join("pipelines");
    let pipeline = tmp.join("nightly.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "name: test-nightly\nyear: 2023\ninbox: {}\nsteps: [{steps}]\ntargets: {}\n\
             schemes: [{}, {}, {}]\nreports: {}\n{extra}",
            inbox.display(),
            p.join("targets-2023.yaml").display(),
            p.join("assessment-counties-2023.yaml").display(),
            p.join("assessment-zones-2023.yaml").display(),
            p.join("assessment-institutes-2023.yaml").display(),
            reports.display()
        ),
    )
    .unwrap();
    Setup {
        dir: tmp.to_path_buf(),
        inbox,
        reports,
        pipeline,
    }
}

const ALL_STEPS: &str = "ingest, freshness, models, tests, progress, assessment, reports";

fn add_correction(s: &Setup) {
    std::fs::copy(
        repo().join("fixtures/indicators/later/enterprise_rd_correction.csv"),
        s.inbox.join("enterprise_rd_correction.csv"),
    )
    .unwrap();
}

fn stmon(wh: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stmon"));
    c.current_dir(repo()).env("STMON_WAREHOUSE", wh).args(args);
    c
}

fn run(s: &Setup, wh: &Path, more: &[&str]) -> Output {
    let mut args = vec!["run", s.pipeline.to_str().unwrap()];
    args.extend_from_slice(more);
    stmon(wh, &args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn results(s: &Setup) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(s.reports.join("run_results.json")).unwrap())
        .unwrap()
}

/// `item → status` of a step in run_results.json.
fn step_items(r: &serde_json::Value, step: &str) -> BTreeMap<String, String> {
    step_field(r, step, "status")
}

/// `item → message` of a step in run_results.json ("" when none).
fn step_messages(r: &serde_json::Value, step: &str) -> BTreeMap<String, String> {
    step_field(r, step, "message")
}

/// `item → field` of a step's results in run_results.json.
fn step_field(r: &serde_json::Value, step: &str, field: &str) -> BTreeMap<String, String> {
    r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] == step)
        .flat_map(|s| s["results"].as_array().unwrap().iter())
        .map(|i| {
            (
                i["item"].as_str().unwrap().to_string(),
                i[field].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Every table as a reader sees it (views over committed batches, models,
/// assessment tables), without the columns that hold ids and clocks, rows sorted.
async fn state_of(wh: &stmon_warehouse::Warehouse) -> BTreeMap<String, Vec<String>> {
    let project = stmon_models::Project::load(&repo().join("sql")).unwrap();
    let ctx = match stmon_models::run::session(wh, &project).await {
        Ok(c) => c,
        Err(_) => return BTreeMap::new(), // nothing ingested yet
    };
    let catalog = ctx.catalog("datafusion").unwrap();
    let mut out = BTreeMap::new();
    for schema in [
        "raw",
        "current",
        "audit",
        "staging",
        "intermediate",
        "marts",
    ] {
        let Some(sp) = catalog.schema(schema) else {
            continue;
        };
        for t in sp.table_names() {
            if schema == "audit" && t == "runs" {
                continue; // the record of runs differs by design
            }
            let name = format!("{schema}.{t}");
            let df = ctx.table(name.as_str()).await.unwrap();
            let cols: Vec<String> = df
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .filter(|n| !VOLATILE.contains(&n.as_str()))
                .map(|n| format!("\"{n}\""))
                .collect();
            let mut rows: Vec<String> =
                rows_of(&ctx, &format!("select {} from {name}", cols.join(", ")))
                    .await
                    .into_iter()
                    .map(|r| r.join("|"))
                    .collect();
            rows.sort();
            out.insert(name, rows);
        }
    }
    out
}

async fn state(dir: &Path) -> BTreeMap<String, Vec<String>> {
    state_of(&warehouse(dir)).await
}

async fn value(dir: &Path, sql: &str) -> String {
    let wh = warehouse(dir);
    let project = stmon_models::Project::load(&repo().join("sql")).unwrap();
    let ctx = stmon_models::run::session(&wh, &project).await.unwrap();
    rows_of(&ctx, sql).await[0][0].clone()
}

const RD_JUNE_YUECHENG: &str = "select cast(round(value, 6) as varchar) from marts.indicators \
     where year = 2023 and as_of_month = 6 and division_code = '330602' and indicator_id = 'rd_intensity'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_changes_nothing_and_a_correction_rebuilds_only_what_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let s = setup(tmp.path(), ALL_STEPS, "");
    let wh = s.dir.join("wh");

    let first = run(&s, &wh, &[]);
    assert!(first.status.success(), "{}", text(&first));
    // (20 + 4) / 5000, by hand in the fixture's README.
    assert_eq!(value(&wh, RD_JUNE_YUECHENG).await, "0.0048");
    let r1 = results(&s);
    assert_eq!(r1["status"], "ok");
    assert!(step_items(&r1, "models").values().all(|s| s == "built"));
    assert_eq!(step_items(&r1, "ingest")["enterprise_rd"], "ok");
    for f in [
        "progress-2023-12.csv",
        "progress-2023-12.html",
        "assessment-2023.xlsx",
        "assessment-2023.html",
        "assessment_counties.csv",
    ] {
        assert!(s.reports.join(f).is_file(), "{f} written");
    }
    let html_before = std::fs::read(s.reports.join("assessment-2023.html")).unwrap();
    let progress_before = std::fs::read(s.reports.join("progress-2023-12.html")).unwrap();
    // The docs site names this run as the writer of the models' tables and
    // shows the data tests it passed.
    let site = s.dir.join("site");
    let o = stmon(&wh, &["docs", "--out", site.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let page = std::fs::read_to_string(site.join("models/marts.indicators.html")).unwrap();
    let run_id = r1["metadata"]["run_id"].as_str().unwrap();
    let v0 = page.split("<tr data-version=\"0\">").nth(1).unwrap();
    let v0 = &v0[..v0.find("</tr>").unwrap()];
    assert!(
        v0.contains(&format!(
            "<td class=\"t\">WRITE</td><td class=\"t\">{run_id}</td>"
        )),
        "{v0}"
    );
    assert!(page.contains(&format!(
        "<p class=\"last-test\" data-status=\"pass\">最近一次结果：<span class=\"light green\">通过</span> 15 项测试，0 项失败（运行 <code>{run_id}</code>"
    )));

    // Nothing new: no table gets a new version, no report is rewritten.
    let second = run(&s, &wh, &[]);
    assert!(second.status.success(), "{}", text(&second));
    let r2 = results(&s);
    assert_ne!(r2["metadata"]["run_id"], r1["metadata"]["run_id"]);
    assert_eq!(
        r2["warehouse_versions"]["before"],
        r2["warehouse_versions"]["after"]
    );
    assert!(step_items(&r2, "models")
        .values()
        .all(|s| s == "up_to_date"));
    assert!(step_items(&r2, "assessment")
        .values()
        .all(|s| s == "up_to_date"));
    assert_eq!(
        std::fs::read(s.reports.join("assessment-2023.html")).unwrap(),
        html_before
    );
    assert_eq!(
        std::fs::read(s.reports.join("progress-2023-12.html")).unwrap(),
        progress_before
    );
    assert!(step_items(&r2, "reports")
        .values()
        .all(|s| s == "up_to_date"));
    assert!(text(&second).contains("nothing new"), "{}", text(&second));

    // A correction of one enterprise_rd row: only the models that read
    // enterprise_rd, directly or not, are rebuilt.
    add_correction(&s);
    let third = run(&s, &wh, &[]);
    assert!(third.status.success(), "{}", text(&third));
    assert_eq!(value(&wh, RD_JUNE_YUECHENG).await, "0.005"); // (21 + 4) / 5000
    let r3 = results(&s);
    let models = step_items(&r3, "models");
    let project = stmon_models::Project::load(&repo().join("sql")).unwrap();
    let reads_rd = |id: &str| -> bool {
        // Everything downstream of current.enterprise_rd in the graph, except
        // through intermediate.periods: a correction adds no year, so the
        // periods are rebuilt with the same rows and their readers are up to
        // date ("early cutoff", models::state).
        fn up(p: &stmon_models::Project, id: &str) -> bool {
            let m = p.models.iter().find(|m| m.id.to_string() == id).unwrap();
            m.sources.iter().any(|s| s == "current.enterprise_rd")
                || m.deps
                    .iter()
                    .any(|d| d.to_string() != "intermediate.periods" && up(p, &d.to_string()))
        }
        id == "intermediate.periods" || up(&project, id)
    };
    let mut rebuilt = 0;
    for (model, status) in &models {
        let expect = if reads_rd(model) {
            "built"
        } else {
            "up_to_date"
        };
        assert_eq!(status, expect, "{model}");
        rebuilt += (status == "built") as usize;
    }
    assert!(rebuilt >= 3 && rebuilt < models.len(), "{models:?}");
    assert_eq!(models["staging.county_economy"], "up_to_date");
    assert_eq!(models["marts.indicators"], "built");
    assert_eq!(models["intermediate.periods"], "built");
    assert_eq!(models["intermediate.division_counts"], "up_to_date");
    let versions = |r: &serde_json::Value, w: &str, t: &str| r["warehouse_versions"][w][t].clone();
    assert_eq!(
        versions(&r3, "before", "staging/recognition"),
        versions(&r3, "after", "staging/recognition")
    );
    assert_ne!(
        versions(&r3, "before", "marts/indicators"),
        versions(&r3, "after", "marts/indicators")
    );

    // `stmon runs` shows the three runs, newest first.
    let runs = stmon(&wh, &["runs", "--last", "5"]).output().unwrap();
    let out = text(&runs);
    assert!(runs.status.success(), "{out}");
    let ids: Vec<String> = [&r3, &r2, &r1]
        .iter()
        .map(|r| r["metadata"]["run_id"].as_str().unwrap().to_string())
        .collect();
    let pos: Vec<usize> = ids
        .iter()
        .map(|id| out.find(id.as_str()).unwrap())
        .collect();
    assert!(pos[0] < pos[1] && pos[1] < pos[2], "{out}");
    assert!(
        out.contains("1 built")
            || out.contains("built, 0 up to date")
            || out.contains("up to date"),
        "{out}"
    );

    // A report of a year not seen before changes the periods' rows: every
    // model that reads them is rebuilt, division_counts too.
    std::fs::write(
        s.inbox.join("enterprise_rd_2019.csv"),
        "period,credit_code,county_code,industry_code,above_scale,high_tech_industry,revenue,rd_expenditure,submitted_at\n\
         2019-12,91330683MA2BCD006K,330683,C39,Y,Y,700,15,2020-01-05 09:00\n",
    )
    .unwrap();
    let fourth = run(&s, &wh, &[]);
    assert!(fourth.status.success(), "{}", text(&fourth));
    let models = step_items(&results(&s), "models");
    for m in [
        "intermediate.periods",
        "intermediate.division_counts",
        "intermediate.high_tech_certified",
        "marts.indicators",
    ] {
        assert_eq!(models[m], "built", "{m}: {models:?}");
    }
    assert_eq!(models["staging.recognition"], "up_to_date");
    assert_eq!(
        value(
            &wh,
            "select cast(count(*) as varchar) from intermediate.periods where year = 2019"
        )
        .await,
        "12"
    );
}

/// The data files a Delta table reads now, per partition directory.
async fn files_by_partition(dir: &Path, layer: &str, name: &str) -> BTreeMap<String, Vec<String>> {
    let table = warehouse(dir)
        .table(&stmon_warehouse::TableId::new(layer, name))
        .await
        .unwrap();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for uri in table.get_file_uris().unwrap() {
        let part = uri
            .split('/')
            .find(|p| p.starts_with("credit_province="))
            .unwrap_or("")
            .to_string();
        out.entry(part).or_default().push(uri);
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// The tables built by credit province (staging.enterprise_rd and
/// intermediate.enterprise_asof are too, but are views: nothing to rebuild).
const PARTITIONED: [(&str, &str); 2] = [
    ("staging", "enterprise_rd_months"),
    ("intermediate", "county_enterprise"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_night_rebuilds_only_the_partitions_its_new_rows_fall_in() {
    let tmp = tempfile::tempdir().unwrap();
    let s = setup(tmp.path(), "ingest, models", "");
    let wh = s.dir.join("wh");
    // The fixture's firms are all registered in Zhejiang (credit codes
    // 9133…); one registered in Jiangsu (9132…) that reports in Keqiao makes
    // a second province: two partitions per table.
    let code = stmon_core::credit_code::complete("91320102MA2HND10X").unwrap();
    std::fs::write(
        s.inbox.join("enterprise_rd_jiangsu.csv"),
        format!(
            "period,credit_code,name,county_code,industry_code,above_scale,high_tech_industry,revenue,rd_expenditure,basic_research,value_added,submitted_at\n\
             2023-06,{code},乙,330603,C39,Y,N,500,5,1,100,2023-07-10 09:00\n"
        ),
    )
    .unwrap();
    let first = run(&s, &wh, &[]);
    assert!(first.status.success(), "{}", text(&first));
    for view in ["staging/enterprise_rd", "intermediate/enterprise_asof"] {
        assert!(!wh.join(view).exists(), "{view} is a view: nothing written");
    }
    let before: Vec<_> = {
        let mut v = Vec::new();
        for (l, n) in PARTITIONED {
            let f = files_by_partition(&wh, l, n).await;
            assert_eq!(
                f.keys().cloned().collect::<Vec<_>>(),
                ["credit_province=32", "credit_province=33"],
                "{l}.{n}"
            );
            v.push(f);
        }
        v
    };

    // The correction is of a firm registered in Zhejiang: that partition is
    // rebuilt in each of the two tables, Jiangsu's files are not touched.
    add_correction(&s);
    let night = run(&s, &wh, &[]);
    assert!(night.status.success(), "{}", text(&night));
    assert_eq!(value(&wh, RD_JUNE_YUECHENG).await, "0.005"); // (21 + 4) / 5000
    let r = results(&s);
    let messages = step_messages(&r, "models");
    for ((l, n), was) in PARTITIONED.iter().zip(&before) {
        let id = format!("{l}.{n}");
        assert_eq!(step_items(&r, "models")[&id], "built", "{id}");
        assert_eq!(messages[&id], "(incremental: 1 partition rebuilt)", "{id}");
        let now = files_by_partition(&wh, l, n).await;
        assert_eq!(now["credit_province=32"], was["credit_province=32"], "{id}");
        assert_ne!(now["credit_province=33"], was["credit_province=33"], "{id}");
    }
    assert!(text(&night).contains("(incremental: 1 partition rebuilt)"));

    // The partial builds equal whole ones: a copy rebuilt with
    // --full-refresh holds the same rows in every table.
    let full = s.dir.join("wh-full");
    copy_dir(&wh, &full);
    let refresh = run(&s, &full, &["--full-refresh"]);
    assert!(refresh.status.success(), "{}", text(&refresh));
    assert!(step_messages(&results(&s), "models")
        .values()
        .all(|m| m.is_empty()));
    assert_eq!(state(&wh).await, state(&full).await);

    // A new contract file rebuilds intermediate.periods with the same rows:
    // its readers that read nothing else new (high_tech_certified, and so
    // county_enterprise, which reads that whole) are up to date ("early
    // cutoff", models::state), as are the enterprise tables.
    std::fs::write(
        s.inbox.join("tech_contract_more.csv"),
        "contract_id,registered_on,county_code,seller_credit_code,contract_type,amount,submitted_at\n\
         T4,2023-12-01,330603,91330603MA2HND10CW,development,10,2023-12-05 09:00\n",
    )
    .unwrap();
    let contracts = run(&s, &wh, &[]);
    assert!(contracts.status.success(), "{}", text(&contracts));
    let r = results(&s);
    let items = step_items(&r, "models");
    assert_eq!(items["staging.enterprise_rd_months"], "up_to_date");
    assert!(
        !items.contains_key("staging.enterprise_rd"),
        "a view: {items:?}"
    );
    assert_eq!(items["intermediate.periods"], "built");
    assert_eq!(items["intermediate.high_tech_certified"], "up_to_date");
    assert_eq!(items["intermediate.county_enterprise"], "up_to_date");
    assert_eq!(items["intermediate.division_counts"], "built");

    // A new certificate changes high_tech_certified's rows, which
    // county_enterprise reads whole: it is rebuilt whole.
    std::fs::write(
        s.inbox.join("recognition_more.csv"),
        "credit_code,name,county_code,kind,recognized_on,status,submitted_at\n\
         91330603MA2HND10E3,戊,330603,national_high_tech_enterprise,2023-10-01,new,2023-10-05 09:00\n",
    )
    .unwrap();
    let certs = run(&s, &wh, &[]);
    assert!(certs.status.success(), "{}", text(&certs));
    let r = results(&s);
    assert_eq!(
        step_items(&r, "models")["staging.enterprise_rd_months"],
        "up_to_date"
    );
    assert_eq!(
        step_items(&r, "models")["intermediate.county_enterprise"],
        "built"
    );
    assert_eq!(
        step_messages(&r, "models")["intermediate.county_enterprise"],
        ""
    );
    let full2 = s.dir.join("wh-full2");
    copy_dir(&wh, &full2);
    let refresh = run(&s, &full2, &["--full-refresh"]);
    assert!(refresh.status.success(), "{}", text(&refresh));
    assert_eq!(state(&wh).await, state(&full2).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_waits_for_the_lock_or_says_who_holds_it() {
    let tmp = tempfile::tempdir().unwrap();
    let s = setup(tmp.path(), "ingest", "");
    let wh = s.dir.join("wh");
    std::fs::create_dir_all(wh.join("_stmon")).unwrap();
    let lock = wh.join("_stmon/run.lock");
    let now = chrono::Utc::now().to_rfc3339();
    let held = serde_json::json!({
        "run_id": "r-other", "pipeline": "other-pipeline", "host": "another-machine",
        "pid": 4242, "started_at": now, "heartbeat_at": now,
    });
    std::fs::write(&lock, held.to_string()).unwrap();

    let o = run(&s, &wh, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("another run holds the warehouse lock"), "{t}");
    assert!(
        t.contains("r-other") && t.contains("another-machine"),
        "{t}"
    );
    assert!(!wh.join("raw").exists(), "nothing was ingested");

    let o = run(&s, &wh, &["--wait", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("still locked after waiting 1s"),
        "{}",
        text(&o)
    );

    // --wait: the run starts once the holder releases the lock.
    let child = stmon(&wh, &["run", s.pipeline.to_str().unwrap(), "--wait", "60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    std::fs::remove_file(&lock).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("waiting for the warehouse lock"),
        "{}",
        text(&o)
    );
    assert!(!lock.exists(), "released at the end");

    // A lock left by a process of this host that is gone is taken over.
    let stale = serde_json::json!({
        "run_id": "r-dead", "pipeline": "x", "host": stmon_warehouse::lock::this_host(),
        "pid": 999_999_999u32, "started_at": now, "heartbeat_at": now,
    });
    std::fs::write(&lock, stale.to_string()).unwrap();
    let o = run(&s, &wh, &[]);
    assert!(o.status.success(), "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_continues_a_failed_run_from_the_failed_step() {
    let tmp = tempfile::tempdir().unwrap();
    let s = setup(tmp.path(), ALL_STEPS, "");
    let wh = s.dir.join("wh");
    // A project whose marts.unit_indicators is broken.
    let sql = s.dir.join("sql");
    copy_dir(&repo().join("sql"), &sql);
    let good = std::fs::read_to_string(sql.join("marts/unit_indicators.sql")).unwrap();
    std::fs::write(
        sql.join("marts/unit_indicators.sql"),
        good.replacen("select", "select no_such_column,", 1),
    )
    .unwrap();
    let sql_arg = sql.to_str().unwrap();

    let o = run(&s, &wh, &["--sql-dir", sql_arg]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let r = results(&s);
    let run_id = r["metadata"]["run_id"].as_str().unwrap().to_string();
    assert_eq!(r["status"], "failed");
    let step = |r: &serde_json::Value, name: &str| -> String {
        r["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["step"] == name)
            .map(|x| x["status"].as_str().unwrap().to_string())
            .unwrap_or_else(|| "-".into())
    };
    assert_eq!(step(&r, "ingest"), "ok");
    assert_eq!(step(&r, "models"), "failed");
    assert_eq!(step(&r, "assessment"), "skipped");
    assert!(text(&o).contains("unit_indicators.sql"), "{}", text(&o));

    // Fixed, the run resumes: same id, ingest and freshness not run again.
    std::fs::write(sql.join("marts/unit_indicators.sql"), good).unwrap();
    let o = run(&s, &wh, &["--sql-dir", sql_arg, "--resume"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains(&run_id), "{t}");
    assert!(
        t.contains("ingest: done in the interrupted run, skipped"),
        "{t}"
    );
    let r = results(&s);
    assert_eq!(r["metadata"]["run_id"], run_id.as_str());
    assert_eq!(r["status"], "ok");
    assert_eq!(step(&r, "models"), "ok");
    assert_eq!(step(&r, "reports"), "ok");
    // Only the broken model was left to build; the others were built before.
    let models = step_items(&r, "models");
    assert_eq!(models["marts.unit_indicators"], "built");
    assert_eq!(models["marts.indicators"], "up_to_date");
    assert_eq!(value(&wh, RD_JUNE_YUECHENG).await, "0.0048");

    // Nothing left to resume: a new run, which finds nothing new.
    let o = run(&s, &wh, &["--sql-dir", sql_arg, "--resume"]);
    assert!(o.status.success());
    assert!(text(&o).contains("nothing to resume"), "{}", text(&o));
    assert_ne!(results(&s)["metadata"]["run_id"], run_id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freshness_reports_late_and_missing_counties_by_rule() {
    let tmp = tempfile::tempdir().unwrap();
    // As of 1 May 2024: enterprise_rd (monthly, due 15 days after) should
    // be in up to 2024-03; county_economy (quarterly, due 20 days after) up to
    // 2024-Q1. 越城 and 柯桥 reported up to 2023-12 / 2023-Q4; the four other
    // Shaoxing counties never reported.
    let s = setup(
        tmp.path(),
        "ingest, freshness",
        "freshness:\n  as_of: 2024-05-01\n  rules:\n\
         \x20   - {form: enterprise_rd, due_days: 15, severity: warn}\n\
         \x20   - {form: county_economy, due_days: 20, severity: fail}\n",
    );
    let wh = s.dir.join("wh");
    let o = run(&s, &wh, &[]);
    assert_eq!(o.status.code(), Some(1), "a fail rule broken: {}", text(&o));
    let csv = std::fs::read_to_string(s.reports.join("freshness.csv")).unwrap();
    let rows: BTreeMap<(String, String), Vec<String>> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<String> = l.split(',').map(str::to_string).collect();
            ((f[0].clone(), f[1].clone()), f)
        })
        .collect();
    assert_eq!(rows.len(), 2 * 6, "two forms × six counties");
    let get = |form: &str, county: &str| rows[&(form.to_string(), county.to_string())].clone();
    // form, county, name, latest period, latest submitted, arrived, due, status, days, severity
    let yc = get("enterprise_rd", "330602");
    assert_eq!(
        (yc[3].as_str(), yc[6].as_str(), yc[7].as_str()),
        ("2023-12", "2024-03", "late")
    );
    // 2024-01 ended 31 Jan and fell due 15 Feb: 76 days before 1 May 2024.
    assert_eq!(yc[8], "76");
    assert_eq!(yc[9], "warn");
    let ce = get("county_economy", "330602");
    assert_eq!(
        (ce[3].as_str(), ce[6].as_str(), ce[7].as_str()),
        ("2023-Q4", "2024-Q1", "late")
    );
    // 2024-Q1 ended 31 Mar and fell due 20 Apr: 11 days before 1 May.
    assert_eq!(ce[8], "11");
    assert_eq!(get("county_economy", "330624")[7], "missing");
    assert_eq!(get("enterprise_rd", "330683")[7], "missing");
    assert!(text(&o).contains("12 late or missing"), "{}", text(&o));

    // On 10 January 2024 everything reported is on time; the four counties
    // without reports are still missing, under warn rules only: exit 0.
    let s2 = setup(
        &tmp.path().join("b"),
        "ingest, freshness",
        "freshness:\n  as_of: 2024-01-10\n  rules:\n\
         \x20   - {form: enterprise_rd, due_days: 15, severity: warn}\n",
    );
    let o = run(&s2, &s2.dir.join("wh"), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let csv = std::fs::read_to_string(s2.reports.join("freshness.csv")).unwrap();
    let ok = csv.lines().filter(|l| l.contains(",ok,")).count();
    let missing = csv.lines().filter(|l| l.contains(",missing,")).count();
    assert_eq!((ok, missing), (2, 4), "{csv}");
}

/// Kills `stmon run` with SIGKILL at many points (every commit of every step
/// is a checkpoint; `STMON_KILL_AT=k` kills at the k-th). After each kill:
/// every table is as before the run or as after it, a new reader sees the
/// whole warehouse as before the run (the lock is held, so it reads the last
/// finished run's versions), and the next run — `--resume` or a plain run —
/// ends with exactly the tables of an uninterrupted run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_at_any_point_is_completed_by_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let s = setup(tmp.path(), ALL_STEPS, "");
    let base = s.dir.join("base");
    let o = run(&s, &base, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let before = state(&base).await;
    add_correction(&s);

    // The uninterrupted run, counting its checkpoints.
    let reference = s.dir.join("reference");
    copy_dir(&base, &reference);
    let log = s.dir.join("checkpoints.log");
    let o = stmon(&reference, &["run", s.pipeline.to_str().unwrap()])
        .env("STMON_CHECKPOINT_LOG", &log)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let after = state(&reference).await;
    assert_ne!(before, after);
    let points: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let n = points.len();
    assert!(n >= 20, "checkpoints: {points:?}");
    for p in [
        "raw/enterprise_rd",
        "audit/batches",
        "model marts.indicators",
        "assessment_counties",
        "audit/runs",
    ] {
        assert!(
            points.iter().any(|x| x.contains(p)),
            "a checkpoint at {p}: {points:?}"
        );
    }

    let picks: Vec<usize> = (0..10).map(|i| 1 + i * (n - 1) / 9).collect();
    let mut mixed = 0;
    for (i, &k) in picks.iter().enumerate() {
        let wh = s.dir.join(format!("k{k}"));
        copy_dir(&base, &wh);
        let o = stmon(&wh, &["run", s.pipeline.to_str().unwrap()])
            .env("STMON_KILL_AT", k.to_string())
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            o.status.signal(),
            Some(9),
            "killed at {k} ({})",
            points[k - 1]
        );

        let killed = state(&wh).await;
        let mut newer = 0;
        for (table, rows) in &killed {
            let is_before = before.get(table) == Some(rows);
            let is_after = after.get(table) == Some(rows);
            assert!(
                is_before || is_after,
                "kill at {k} ({}): {table} is neither before nor after",
                points[k - 1]
            );
            newer += (!is_before) as usize;
        }
        if newer > 0 && killed != after {
            mixed += 1;
        }
        // A reader now sees the warehouse as the last finished run left it:
        // the base run's, unless the kill came after the killed run's own
        // final record (the last checkpoint), which published the after-state.
        let (reader, pinned) = stmon_models::runs::reader(&warehouse(&wh)).await.unwrap();
        assert!(
            pinned.is_some(),
            "kill at {k}: the lock is left, readers pin"
        );
        let expected = if k == n { &after } else { &before };
        assert_eq!(
            &state_of(&reader).await,
            expected,
            "kill at {k}: what a reader sees"
        );

        // The next run completes the work: resume every other time.
        let more: &[&str] = if i % 2 == 0 { &["--resume"] } else { &[] };
        let o = run(&s, &wh, more);
        assert!(o.status.success(), "after kill at {k}: {}", text(&o));
        assert_eq!(
            state(&wh).await,
            after,
            "kill at {k} ({}), then run {more:?}",
            points[k - 1]
        );
    }
    assert!(mixed >= 2, "some kills fell between the commits of one run");
}
