//! A failing object store: `stmon run` (ingest and models) on an S3 API
//! (moto) behind a proxy that injects faults (`faultproxy.py`): 5xx before
//! a request reaches the store, 5xx and connection resets after it was
//! applied, resets before, slow answers. Each warehouse is compared with
//! the one a clean run writes, table by table, by the Python `deltalake`
//! package (`whdiff.py`).

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::s3::{free_port, moto, s3_env, Server};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The fault proxy in front of `upstream`, and its endpoint.
fn proxy(upstream: &str) -> (Server, String) {
    let port = free_port();
    let server = Server(
        Command::new("python3")
            .arg(repo().join("tests/it/faultproxy.py"))
            .args([&port.to_string(), upstream])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while faults(&endpoint, None).is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "faultproxy did not come up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    (server, endpoint)
}

/// Sets the proxy's rules (when given) and returns its counts.
fn faults(endpoint: &str, rules: Option<&str>) -> Option<serde_json::Value> {
    let ask = "import sys, urllib.request as u\n\
               data = sys.argv[2].encode() if len(sys.argv) > 2 else None\n\
               print(u.urlopen(u.Request(sys.argv[1] + '/__faults__', data=data), timeout=10).read().decode())";
    let out = Command::new("python3")
        .args(["-c", ask, endpoint])
        .args(rules)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

/// `python3 whdiff.py`: the comparison's lines, and whether all were equal.
fn whdiff(endpoint: &str, a: &str, b: &str, skip: &[&str]) -> (bool, String) {
    let out = Command::new("python3")
        .arg(repo().join("tests/it/whdiff.py"))
        .args([endpoint, "stmon", a, b])
        .args(skip)
        .output()
        .unwrap();
    (out.status.success(), text(&out))
}

/// A nightly pipeline over the small indicator fixtures: ingest, models.
fn pipeline(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("p.yaml");
    std::fs::write(
        &p,
        format!(
            "name: faults\nyear: 2023\ninbox: {}\nsteps: [ingest, models]\nreports: {}\n",
            repo().join("fixtures/indicators/base").display(),
            dir.join("reports").display()
        ),
    )
    .unwrap();
    p
}

fn stmon(endpoint: &str, prefix: &str, options: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stmon"))
        .current_dir(repo())
        .envs(s3_env(endpoint))
        .args(["--warehouse", &format!("s3://stmon/{prefix}")])
        .args(["--storage-option", options])
        .args(args)
        .output()
        .unwrap()
}

/// object_store's retries (10 at most) with short waits.
const QUICK: &str = "backoff_config.init_backoff=10ms,backoff_config.max_backoff=500ms";
/// Fewer, so that a persistent fault fails in seconds.
const FEW: &str = "max_retries=2,retry_timeout=10s,backoff_config.init_backoff=10ms";

#[test]
fn a_flaky_object_store_costs_retries_not_rows() {
    let (_moto, direct) = moto();
    let (_proxy, flaky) = proxy(&direct);
    let tmp = tempfile::tempdir().unwrap();
    let p = pipeline(tmp.path());
    let run = |endpoint: &str, prefix: &str| {
        stmon(endpoint, prefix, QUICK, &["-v", "run", p.to_str().unwrap()])
    };
    let run_few =
        |endpoint: &str, prefix: &str| stmon(endpoint, prefix, FEW, &["run", p.to_str().unwrap()]);

    let clean = run(&direct, "clean");
    assert!(clean.status.success(), "{}", text(&clean));

    // Transient faults on every kind of request, 4 % each.
    let rules = r#"{"seed": 16, "rules": [
        {"kind": "before503", "p": 0.04}, {"kind": "before500", "p": 0.04},
        {"kind": "reset", "p": 0.04}, {"kind": "after500", "p": 0.04},
        {"kind": "after_reset", "p": 0.04}, {"kind": "slow", "p": 0.01, "delay": 1.0}]}"#;
    faults(&flaky, Some(rules)).unwrap();
    let out = run(&flaky, "transient");
    let counts = faults(&flaky, None).unwrap();
    eprintln!("transient faults: {counts}");
    assert!(out.status.success(), "{}\n{counts}", text(&out));
    for kind in [
        "before503",
        "before500",
        "reset",
        "after500",
        "after_reset",
        "slow",
    ] {
        assert!(
            counts["injected"][kind].as_u64().unwrap_or(0) > 0,
            "{kind}: {counts}"
        );
    }
    let (equal, diff) = whdiff(&direct, "clean", "transient", &[]);
    assert!(equal, "{diff}");

    // Every commit's first answer lost after the store applied it (a 500,
    // then object_store's retry meets the object): settled by reading the
    // commit back, never taken for another writer's.
    faults(
        &flaky,
        Some(r#"{"rules": [{"kind": "after500", "method": "PUT", "path": "_delta_log/[0-9]+\\.json", "once_per_path": true}]}"#),
    )
    .unwrap();
    let out = run(&flaky, "commits");
    let counts = faults(&flaky, None).unwrap();
    assert!(out.status.success(), "{}\n{counts}", text(&out));
    let settled = text(&out).matches("answer was lost was applied").count() as u64;
    let commits = counts["injected"]["after500"].as_u64().unwrap();
    eprintln!("commit answers lost: {counts}; settled by reading back: {settled}");
    assert!(commits >= 34, "a commit per table at least: {counts}");
    assert_eq!(settled, commits, "{counts}");
    let (equal, diff) = whdiff(&direct, "clean", "commits", &[]);
    assert!(equal, "{diff}");

    // A persistent fault on one table: exit 2 naming it, the lock released;
    // once the store is well, the next run finishes the work.
    faults(
        &flaky,
        Some(
            r#"{"rules": [{"kind": "before503", "method": "PUT", "path": "/raw/enterprise_rd/"}]}"#,
        ),
    )
    .unwrap();
    let out = run_few(&flaky, "persistent");
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("✗ ingest: failed") && said.contains("table raw/enterprise_rd:"),
        "{said}"
    );
    assert!(said.contains("503 Service Unavailable"), "{said}");
    faults(&flaky, Some("{}")).unwrap();
    let runs = stmon(&flaky, "persistent", QUICK, &["runs"]);
    let listed = text(&runs);
    assert!(
        listed.contains("failed") && !listed.contains("lock: held"),
        "{listed}"
    );
    let out = run(&flaky, "persistent");
    assert!(out.status.success(), "{}", text(&out));
    // audit/runs holds the failed run's record as well.
    let (equal, diff) = whdiff(&direct, "clean", "persistent", &["audit/runs"]);
    assert!(equal, "{diff}");
}
