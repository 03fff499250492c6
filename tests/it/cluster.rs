//! The models on an Apache Ballista cluster (`--features cluster`): a
//! scheduler and two executors as `stmon cluster` processes on loopback, the
//! warehouse on an S3 API on loopback (moto). The Shaoxing pipeline built on
//! the cluster gives the same indicators and assessment tables as on the
//! local engine; an executor killed during the models step either lets the
//! run finish or fails it with nothing half-written, and the next run
//! completes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::s3::{free_port, moto, s3_env, Server};

/// The tables compared between engines: every indicator, and the
/// assessment's four tables.
const COMPARED: [&str; 5] = [
    "marts.indicators",
    "marts.assessment_counties",
    "marts.assessment_counties_change",
    "marts.assessment_zones",
    "marts.assessment_institutes",
];

struct Cluster {
    scheduler: Server,
    executors: Vec<Server>,
    port: u16,
}

impl Cluster {
    fn address(&self) -> String {
        format!("ballista://127.0.0.1:{}", self.port)
    }
}

fn stmon(env: &[(&'static str, String)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stmon"));
    c.current_dir(repo())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    c
}

fn spawn_executor(
    env: &[(&'static str, String)],
    scheduler: u16,
    work: &std::path::Path,
) -> Server {
    let (port, grpc) = (free_port(), free_port());
    Server(
        stmon(env)
            .args([
                "cluster",
                "executor",
                "--scheduler",
                &format!("127.0.0.1:{scheduler}"),
                "--port",
                &port.to_string(),
                "--grpc-port",
                &grpc.to_string(),
                "--concurrent-tasks",
                "2",
                "--heartbeat",
                "1",
                "--work-dir",
                work.join(format!("executor-{port}")).to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// The scheduler's REST API: how many executors it knows alive.
fn executors_alive(port: u16) -> usize {
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import json, urllib.request\n\
             s = json.load(urllib.request.urlopen('http://127.0.0.1:{port}/api/executors', timeout=5))\n\
             print(len(s))"
        ))
        .stderr(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn start_cluster(env: &[(&'static str, String)], work: &std::path::Path) -> Cluster {
    let port = free_port();
    let scheduler = Server(
        stmon(env)
            .args([
                "cluster",
                "scheduler",
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--external-host",
                "127.0.0.1",
                "--executor-timeout",
                "6",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let executors = (0..2).map(|_| spawn_executor(env, port, work)).collect();
    let start = Instant::now();
    while executors_alive(port) < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "two executors did not register with the scheduler"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    Cluster {
        scheduler,
        executors,
        port,
    }
}

/// The Shaoxing pipeline with its reports in `reports`.
fn pipeline(dir: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo().join("pipelines/shaoxing-2023.yaml")).unwrap();
    let p = repo().join("pipelines");
    let text = text
        .replace(
            "inbox: ../fixtures",
            &format!("inbox: {}/../fixtures", p.display()),
        )
        .replace(
            "reports: ../reports",
            &format!("reports: {}", dir.join("reports").display()),
        )
        .replace(
            "targets: targets",
            &format!("targets: {}/targets", p.display()),
        )
        .replace(
            "  - assessment-",
            &format!("  - {}/assessment-", p.display()),
        );
    let path = dir.join("shaoxing.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every row of `table` in warehouse `wh`, sorted, as cells by column name.
fn rows(env: &[(&'static str, String)], wh: &str, table: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let out = stmon(env)
        .args([
            "--warehouse",
            wh,
            "sql",
            "--format",
            "csv",
            "-c",
            &format!("select * from {table}"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{table}: {}", text(&out));
    let mut r = csv::Reader::from_reader(out.stdout.as_slice());
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    let mut rows: Vec<Vec<String>> = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
        .collect();
    assert!(!rows.is_empty(), "{table} is empty in {wh}");
    rows.sort();
    (header, rows)
}

/// Whether two cells hold the same value: equal text, or two floating-point
/// numbers that differ only in the last bits. A sum of doubles depends on the
/// order of its terms, and a cluster adds partial sums per executor (seen: 12
/// of the 4,032 Shaoxing indicator rows differ in the 16th or 17th digit).
fn same(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) if a.contains('.') || b.contains('.') => {
            (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
        }
        _ => false,
    }
}

/// Asserts that `other`'s compared tables hold the local warehouse's rows;
/// returns how many cells differed in the last bits of a double.
fn assert_same_as_local(env: &[(&'static str, String)], local: &str, other: &str) -> usize {
    let mut rounding = 0;
    for t in COMPARED {
        let ((ha, a), (hb, b)) = (rows(env, local, t), rows(env, other, t));
        assert_eq!(ha, hb, "{t}: columns");
        assert_eq!(
            a.len(),
            b.len(),
            "{t}: rows on the local engine and in {other}"
        );
        for (x, y) in a.iter().zip(&b) {
            for ((name, p), q) in ha.iter().zip(x).zip(y) {
                // When the assessment ran: the runs' own clocks.
                if name == "ran_at" {
                    continue;
                }
                assert!(
                    same(p, q),
                    "{t}.{name}: {p} on the local engine, {q} in {other}\n{x:?}\n{y:?}"
                );
                rounding += usize::from(p != q);
            }
        }
    }
    rounding
}

#[test]
fn the_pipeline_on_a_ballista_cluster_equals_the_local_engine_and_survives_a_lost_executor() {
    let (_moto, endpoint) = moto();
    let env = s3_env(&endpoint);
    let tmp = tempfile::tempdir().unwrap();
    let mut cluster = start_cluster(&env, tmp.path());
    let engine = cluster.address();

    // The local engine, into its own warehouse on S3.
    let local_dir = tmp.path().join("local");
    std::fs::create_dir_all(&local_dir).unwrap();
    let out = stmon(&env)
        .args(["--warehouse", "s3://stmon/local", "run"])
        .arg(pipeline(&local_dir))
        .output()
        .unwrap();
    assert!(out.status.success(), "local run: {}", text(&out));

    // The same pipeline with its models and data tests on the cluster.
    let remote_dir = tmp.path().join("remote");
    std::fs::create_dir_all(&remote_dir).unwrap();
    let out = stmon(&env)
        .args([
            "--warehouse",
            "s3://stmon/remote",
            "run",
            "--engine",
            &engine,
        ])
        .arg(pipeline(&remote_dir))
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "cluster run: {t}");
    assert!(t.contains(&engine), "the run names its engine: {t}");
    let rounding = assert_same_as_local(&env, "s3://stmon/local", "s3://stmon/remote");
    eprintln!("cluster vs local: {rounding} cell(s) differ in the last bits of a double");
    // Not every value may be off: a sum over one partition is exact as locally.
    assert!(rounding < 100, "{rounding} cells differ in their last bits");

    // Analysts' SQL on the cluster reads the same rows as on the local engine.
    let q = "select county_code, count(*) as n from current.enterprise_rd group by county_code order by county_code";
    let on = |engine: &str| {
        let out = stmon(&env)
            .args([
                "--warehouse",
                "s3://stmon/remote",
                "sql",
                "--format",
                "csv",
                "--engine",
                engine,
                "-c",
                q,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "sql on {engine}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let local = on("local");
    assert!(local.lines().count() > 6, "{local}");
    assert_eq!(on(&engine), local);

    // An executor killed while the models run.
    let kill_dir = tmp.path().join("kill");
    std::fs::create_dir_all(&kill_dir).unwrap();
    let mut run: Child = stmon(&env)
        .args(["--warehouse", "s3://stmon/kill", "run", "--engine", &engine])
        .arg(pipeline(&kill_dir))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(kill_dir.join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let stdout = run.stdout.take().unwrap();
    let mut seen = String::new();
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        // The third model built: the models step is well under way, and
        // the enterprise models (the longest) are still to come.
        if !killed && seen.matches("  built ").count() >= 3 {
            let victim = &mut cluster.executors[0].0;
            victim.kill().unwrap();
            victim.wait().unwrap();
            killed = true;
        }
    }
    let status = run.wait().unwrap();
    let err = std::fs::read_to_string(kill_dir.join("stderr")).unwrap();
    assert!(killed, "the models step never started:\n{seen}{err}");
    if status.success() {
        // Ballista ran the lost executor's tasks again elsewhere.
        eprintln!("executor killed: the run finished");
        assert_same_as_local(&env, "s3://stmon/local", "s3://stmon/kill");
    } else {
        // A clean failure: exit 2, a model named, and the warehouse as
        // before or after each model; the next run (on the executor left)
        // completes it.
        assert_eq!(status.code(), Some(2), "{seen}{err}");
        eprintln!("executor killed: the run failed cleanly; the next one completes");
        let again = stmon(&env)
            .args(["--warehouse", "s3://stmon/kill", "run", "--engine", &engine])
            .arg(pipeline(&kill_dir))
            .output()
            .unwrap();
        assert!(
            again.status.success(),
            "the run after the kill: {}",
            text(&again)
        );
        assert_same_as_local(&env, "s3://stmon/local", "s3://stmon/kill");
    }
    drop(cluster.scheduler);
}

#[test]
fn an_engine_that_does_not_answer_is_named() {
    let port = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_stmon"))
        .current_dir(repo())
        .args([
            "--warehouse",
            tempfile::tempdir().unwrap().path().to_str().unwrap(),
            "models",
            "run",
            "--engine",
            &format!("ballista://127.0.0.1:{port}"),
        ])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains(&format!(
            "no Ballista scheduler answers at 127.0.0.1:{port}"
        )),
        "{t}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_stmon"))
        .current_dir(repo())
        .args(["models", "run", "--engine", "spark://x"])
        .output()
        .unwrap();
    assert!(
        text(&out).contains("expected local or ballista://HOST:PORT"),
        "{}",
        text(&out)
    );
}
