//! `stmon serve` with real clients: psql (Debian `postgresql-client`) and
//! Python's psycopg, both installed by .ci/run. The warehouse is the
//! indicator fixture's, whose values are worked out by hand in
//! `fixtures/indicators/README.md`: rd_intensity of 越城 (330602) in June
//! 2023 is (20 + 4) / 5000 = 0.0048, and (21 + 4) / 5000 = 0.005 after the
//! correction file.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const PASSWORD: &str = "ana-lyst 2023";

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stmon(wh: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stmon"));
    c.current_dir(repo()).env("STMON_WAREHOUSE", wh);
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A warehouse built by `stmon run` over the indicator fixture; the pipeline file.
fn build(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    for e in std::fs::read_dir(repo().join("fixtures/indicators/base")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), inbox.join(e.file_name())).unwrap();
    }
    let pipeline = dir.join("p.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "name: serve-test\nyear: 2023\ninbox: {}\nsteps: [ingest, models]\nreports: {}\n",
            inbox.display(),
            dir.join("reports").display()
        ),
    )
    .unwrap();
    let wh = dir.join("wh");
    let out = stmon(&wh)
        .args(["run", pipeline.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    (wh, pipeline, inbox)
}

/// Puts the correction file into the inbox: the next run changes one firm's
/// June R&D (20 → 21), and with it `staging`, `intermediate` and rd_intensity
/// of 越城 (0.0048 → 0.005).
fn drop_correction(inbox: &Path) {
    std::fs::copy(
        repo().join("fixtures/indicators/later/enterprise_rd_correction.csv"),
        inbox.join("enterprise_rd_correction.csv"),
    )
    .unwrap();
}

fn last_run_id(dir: &Path) -> String {
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("reports/run_results.json")).unwrap(),
    )
    .unwrap();
    r["metadata"]["run_id"].as_str().unwrap().to_string()
}

/// `stmon serve --hash-password`, fed on standard input.
fn hash(password: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stmon"))
        .args(["serve", "--hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Starts `stmon serve --port 0` with a config and waits for its address.
fn serve(dir: &Path, wh: &Path, limits: &str) -> Server {
    serve_with(dir, wh, limits, "")
}

fn serve_with(dir: &Path, wh: &Path, limits: &str, more: &str) -> Server {
    serve_logging(dir, wh, limits, more, Stdio::inherit())
}

/// As [`serve_with`], its log (stderr) going to `log`.
fn serve_logging(dir: &Path, wh: &Path, limits: &str, more: &str, log: Stdio) -> Server {
    let config = dir.join("serve.yaml");
    std::fs::write(
        &config,
        format!(
            "refresh_secs: 1\nusers:\n  - name: analyst\n    password_hash: \"{}\"\nlimits: {limits}\n{more}",
            hash(PASSWORD)
        ),
    )
    .unwrap();
    start(wh, &config, log)
}

/// Starts `stmon serve --port 0` with the config file `config`.
fn start(wh: &Path, config: &Path, log: Stdio) -> Server {
    let mut child = stmon(wh)
        .args(["serve", "--config", config.to_str().unwrap(), "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a line").unwrap();
    let port: u16 = first
        .split("listening on 127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no address in {first:?}"));
    // Keep draining its output.
    std::thread::spawn(move || for _ in lines {});
    Server { child, port }
}

fn psql(port: u16, password: &str, args: &[&str]) -> Output {
    psql_as(port, "analyst", password, args)
}

fn psql_as(port: u16, user: &str, password: &str, args: &[&str]) -> Output {
    Command::new("psql")
        .args([
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            &format!("host=127.0.0.1 port={port} user={user} dbname=stmon"),
        ])
        .args(args)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap()
}

const JUNE: &str = "select cast(round(value, 6) as varchar) from marts.indicators \
    where year = 2023 and as_of_month = 6 and division_code = '330602' and indicator_id = 'rd_intensity'";

#[test]
fn psql_lists_describes_queries_and_is_refused_writes_and_wrong_passwords() {
    let tmp = tempfile::tempdir().unwrap();
    let (wh, _, _) = build(tmp.path());
    let server = serve(tmp.path(), &wh, "{max_sessions: 4}");
    let p = server.port;

    let dt = psql(p, PASSWORD, &["-c", r"\dt marts.*"]);
    let out = text(&dt);
    assert!(dt.status.success(), "{out}");
    assert!(
        out.contains("indicators") && out.contains("unit_indicators"),
        "{out}"
    );
    assert!(!out.contains("enterprise_rd"), "only marts: {out}");

    let d = psql(p, PASSWORD, &["-c", r"\d marts.indicators"]);
    let out = text(&d);
    assert!(d.status.success(), "{out}");
    for col in ["division_code", "indicator_id", "as_of_month", "value"] {
        assert!(out.contains(col), "{col} in {out}");
    }

    let v = psql(p, PASSWORD, &["-At", "-c", JUNE]);
    assert!(v.status.success(), "{}", text(&v));
    assert_eq!(String::from_utf8_lossy(&v.stdout).trim(), "0.0048");

    for (sql, kind) in [
        ("insert into marts.indicators (year) values (1)", "INSERT"),
        ("delete from marts.indicators", "DELETE"),
        ("drop table marts.indicators", "DROP TABLE"),
        ("create table x as select 1", "CREATE TABLE"),
        ("copy marts.indicators to '/tmp/stolen.csv'", "COPY"),
    ] {
        let w = psql(p, PASSWORD, &["-c", sql]);
        let out = text(&w);
        assert!(!w.status.success(), "{sql} was accepted: {out}");
        assert!(
            out.contains("read-only") && out.contains(kind),
            "{sql}: {out}"
        );
    }
    assert!(!Path::new("/tmp/stolen.csv").exists());
    // A query by its kind whose plan writes: refused at the plan, and the
    // mart holds what it held.
    let explained = psql(
        p,
        PASSWORD,
        &[
            "-c",
            "explain analyze insert into marts.indicators select * from marts.indicators",
        ],
    );
    assert!(!explained.status.success(), "{}", text(&explained));
    assert!(
        text(&explained).contains("cannot execute this statement in a read-only server"),
        "{}",
        text(&explained)
    );
    // DataFusion's own CREATE EXTERNAL TABLE, which the PostgreSQL parser
    // cannot read, gets the same answer.
    let ext = psql(
        p,
        PASSWORD,
        &[
            "-c",
            "create external table x stored as csv location '/etc/passwd'",
        ],
    );
    assert!(!ext.status.success(), "{}", text(&ext));
    assert!(
        text(&ext).contains("cannot execute CREATE EXTERNAL in a read-only server"),
        "{}",
        text(&ext)
    );
    let set = psql(
        p,
        PASSWORD,
        &["-c", "set datafusion.execution.target_partitions = 64"],
    );
    assert!(!set.status.success());
    assert!(text(&set).contains("permission denied to set parameter"));
    // A client setting is fine, and the data are as before.
    let ok = psql(
        p,
        PASSWORD,
        &["-At", "-c", "set extra_float_digits = 3", "-c", JUNE],
    );
    assert!(ok.status.success(), "{}", text(&ok));

    let bad = psql(p, "wrong", &["-c", "select 1"]);
    let out = text(&bad);
    assert!(!bad.status.success());
    assert!(
        out.to_lowercase()
            .contains("password authentication failed"),
        "{out}"
    );
    let nobody = Command::new("psql")
        .args([
            "-X",
            &format!("host=127.0.0.1 port={p} user=nobody dbname=stmon"),
            "-c",
            "select 1",
        ])
        .env("PGPASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(text(&nobody)
        .to_lowercase()
        .contains("password authentication failed"));
}

/// The psycopg half: parameterised queries (extended protocol), errors by
/// SQLSTATE, concurrent sessions, the session limit, a runaway query.
const PSYCOPG: &str = r#"
import json, sys, threading, time
import psycopg

port, password = int(sys.argv[1]), sys.argv[2]
dsn = f"host=127.0.0.1 port={port} user=analyst dbname=stmon password='{password}'"
out = {}

with psycopg.connect(dsn, autocommit=True) as c:
    rows = c.execute("select table_name from information_schema.tables where table_schema = 'marts' order by 1").fetchall()
    out["marts"] = [r[0] for r in rows]
    out["june"] = c.execute(
        "select value from marts.indicators where year = %s and as_of_month = %s and division_code = %s and indicator_id = %s",
        (2023, 6, "330602", "rd_intensity")).fetchone()[0]
    try:
        c.execute("insert into marts.indicators (year) values (%s)", (1,))
        out["insert"] = "accepted"
    except psycopg.Error as e:
        out["insert"] = [e.sqlstate, str(e)]

try:
    psycopg.connect(dsn.replace(password, "wrong"))
    out["wrong_password"] = "accepted"
except psycopg.OperationalError as e:
    out["wrong_password"] = str(e)

# Three sessions at once, each with its own query.
results, errors = {}, []
def one(i):
    try:
        with psycopg.connect(dsn) as c:
            time.sleep(0.5)
            results[i] = c.execute("select count(*) from marts.indicators where as_of_month = %s", (i,)).fetchone()[0]
    except Exception as e:
        errors.append(str(e))
ts = [threading.Thread(target=one, args=(i,)) for i in (1, 2, 3)]
[t.start() for t in ts]
[t.join() for t in ts]
out["concurrent"] = {str(k): v for k, v in sorted(results.items())}
out["concurrent_errors"] = errors

# The limit is 3 sessions: a fourth is refused while three are open.
held = [psycopg.connect(dsn) for _ in range(3)]
try:
    psycopg.connect(dsn)
    out["fourth"] = "accepted"
except psycopg.OperationalError as e:
    out["fourth"] = str(e)
for h in held:
    h.close()
time.sleep(0.3)

# A runaway query (a triple cross join) ends at the timeout with 57014; a
# small query on another session is answered meanwhile.
runaway = {}
def run_away():
    t0 = time.time()
    try:
        with psycopg.connect(dsn) as c:
            c.execute("set statement_timeout = 3000")
            c.execute("select sum(a.as_of_month * b.as_of_month * c.as_of_month) from marts.indicators a, marts.indicators b, marts.indicators c")
            runaway["result"] = "finished"
    except psycopg.Error as e:
        runaway["result"] = [e.sqlstate, str(e)]
    runaway["ended"] = time.time() - t0
t = threading.Thread(target=run_away)
start = time.time()
t.start()
time.sleep(0.5)
with psycopg.connect(dsn) as c:
    c.execute("select count(*) from marts.indicators").fetchone()
    out["small_answered_after"] = time.time() - start
t.join()
out["runaway"] = runaway["result"]
out["runaway_ended_after"] = runaway["ended"]

# A result larger than the per-query memory limit.
with psycopg.connect(dsn) as c:
    try:
        c.execute("select a.*, b.value as v2 from marts.indicators a, marts.indicators b").fetchall()
        out["big"] = "returned"
    except psycopg.Error as e:
        out["big"] = [e.sqlstate, str(e)]
    out["after_big"] = c.execute("select 1 + 1").fetchone()[0]
print(json.dumps(out))
"#;

fn python(script: &str, args: &[String]) -> serde_json::Value {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

#[test]
fn psycopg_queries_with_parameters_in_concurrent_sessions_within_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let (wh, _, _) = build(tmp.path());
    let server = serve(
        tmp.path(),
        &wh,
        "{max_sessions: 3, query_timeout_secs: 60, query_memory_mb: 64}",
    );
    let r = python(PSYCOPG, &[server.port.to_string(), PASSWORD.to_string()]);

    assert_eq!(
        r["marts"],
        serde_json::json!(["disclosure", "indicators", "unit_indicators"])
    );
    assert!((r["june"].as_f64().unwrap() - 0.0048).abs() < 1e-12, "{r}");
    assert_eq!(r["insert"][0], "25006", "{r}");
    assert!(r["insert"][1].as_str().unwrap().contains("read-only"));
    assert!(
        r["wrong_password"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("password authentication failed"),
        "{r}"
    );
    // Every as-of month has the same rows: 4032 / 12 = 336.
    assert_eq!(
        r["concurrent"],
        serde_json::json!({"1": 336, "2": 336, "3": 336}),
        "{r}"
    );
    assert_eq!(r["concurrent_errors"], serde_json::json!([]));
    assert!(
        r["fourth"].as_str().unwrap().contains("too many clients"),
        "{r}"
    );
    assert_eq!(r["runaway"][0], "57014", "{r}");
    assert!(r["runaway"][1]
        .as_str()
        .unwrap()
        .contains("statement timeout"));
    let small = r["small_answered_after"].as_f64().unwrap();
    let ended = r["runaway_ended_after"].as_f64().unwrap();
    assert!(ended >= 2.9, "the runaway ran its 3 s: {r}");
    assert!(
        small < ended,
        "the small query did not wait for the runaway: {r}"
    );
    assert_eq!(r["big"][0], "53200", "{r}");
    assert!(r["big"][1].as_str().unwrap().contains("memory limit"));
    assert_eq!(r["after_big"], 2);
}

/// Polls a pair of values from two tables that one run changes together,
/// while the run commits; prints every distinct pair seen, and then the
/// pair a session pinned to the first run sees.
const WATCH: &str = r#"
import json, sys, time
import psycopg

port, password, stop_file, first_run = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
dsn = f"host=127.0.0.1 port={port} user=analyst dbname=stmon password='{password}'"
q = """select
  (select rd_expenditure from staging.enterprise_rd where credit_code = '91330602MA2HND10A8' and period = '2023-06'),
  (select round(value, 6) from marts.indicators where year = 2023 and as_of_month = 6
     and division_code = '330602' and indicator_id = 'rd_intensity')"""
seen, n = [], 0
with psycopg.connect(dsn, autocommit=True) as c:
    deadline = time.time() + 120
    while time.time() < deadline:
        pair = [float(x) for x in c.execute(q).fetchone()]
        n += 1
        if pair not in seen:
            seen.append(pair)
        import os
        if os.path.exists(stop_file) and pair[0] == 21.0:
            break
        time.sleep(0.05)
    c.execute(f"set stmon.run = '{first_run}'")
    pinned = [float(x) for x in c.execute(q).fetchone()]
    label = c.execute("show stmon.run").fetchone()[0]
    c.execute("set stmon.run = default")
    back = [float(x) for x in c.execute(q).fetchone()]
print(json.dumps({"seen": seen, "queries": n, "pinned": pinned, "label": label, "back": back}))
"#;

#[test]
fn each_query_reads_one_version_while_a_run_commits_and_a_session_can_pin_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (wh, pipeline, inbox) = build(tmp.path());
    let first = last_run_id(tmp.path());
    let server = serve(tmp.path(), &wh, "{max_sessions: 4}");
    let stop = tmp.path().join("run-finished");
    let watcher = Command::new("python3")
        .arg("-c")
        .arg(WATCH)
        .args([
            server.port.to_string(),
            PASSWORD.to_string(),
            stop.display().to_string(),
            first.clone(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    drop_correction(&inbox);
    let t = Instant::now();
    let run = stmon(&wh)
        .args(["run", pipeline.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    std::fs::write(&stop, "").unwrap();
    let out = watcher.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Only the two consistent pairs, old then new: never a new staging
    // value with an old indicator or the reverse.
    assert_eq!(
        r["seen"],
        serde_json::json!([[20.0, 0.0048], [21.0, 0.005]]),
        "{r}"
    );
    assert!(
        r["queries"].as_u64().unwrap() > 10,
        "queries ran during the {:?} run: {r}",
        t.elapsed()
    );
    assert_eq!(r["pinned"], serde_json::json!([20.0, 0.0048]), "{r}");
    assert!(r["label"].as_str().unwrap().contains(&first), "{r}");
    assert_eq!(r["back"], serde_json::json!([21.0, 0.005]), "{r}");
    drop(server);
}

#[test]
fn tls_from_cert_paths_and_no_passwords_only_on_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    let (wh, _, _) = build(tmp.path());
    let (cert, key) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    let gen = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(gen.status.success(), "{}", text(&gen));
    let server = serve_with(
        tmp.path(),
        &wh,
        "{max_sessions: 4}",
        &format!(
            "tls: {{cert: {}, key: {}}}\n",
            cert.display(),
            key.display()
        ),
    );
    // verify-full: the session is encrypted and the server is the one whose
    // certificate the client trusts.
    let conninfo = format!(
        "host=127.0.0.1 port={} user=analyst dbname=stmon sslmode=verify-full sslrootcert={}",
        server.port,
        cert.display()
    );
    let v = Command::new("psql")
        .args(["-X", "-At", &conninfo, "-c", JUNE])
        .env("PGPASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", text(&v));
    assert_eq!(String::from_utf8_lossy(&v.stdout).trim(), "0.0048");
    drop(server);

    // Without users the server trusts every client, so it binds loopback only.
    let open = stmon(&wh)
        .args(["serve", "--host", "0.0.0.0", "--port", "0"])
        .output()
        .unwrap();
    assert_eq!(open.status.code(), Some(2), "{}", text(&open));
    assert!(text(&open).contains("without passwords"), "{}", text(&open));
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(&bad, "users:\n  - name: a\n    password_hash: plain\n").unwrap();
    let o = stmon(&wh)
        .args(["serve", "--config", bad.to_str().unwrap(), "--port", "0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("user a") && text(&o).contains("--hash-password"),
        "{}",
        text(&o)
    );
}

/// A process's memory from /proc: (VmRSS, VmHWM) in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The server's memory for all queries in the load test, MiB.
const SERVER_MEMORY_MB: u64 = 384;
/// The heavy queries' deadline in the load test: a small query answered
/// within it never waited for a heavy one to end. (The latencies themselves
/// are measured by `bench/serve.sh`, not asserted here: README "The server
/// under load".)
const HEAVY_TIMEOUT_SECS: f64 = 10.0;

#[test]
fn fifty_sessions_of_small_and_heavy_queries_within_the_limits_while_a_run_publishes() {
    let tmp = tempfile::tempdir().unwrap();
    let (wh, pipeline, inbox) = build(tmp.path());
    let server = serve(
        tmp.path(),
        &wh,
        &format!(
            "{{max_sessions: 60, query_memory_mb: 128, server_memory_mb: {SERVER_MEMORY_MB}, query_timeout_secs: {HEAVY_TIMEOUT_SECS}}}"
        ),
    );
    let pid = server.child.id();
    let (idle, _) = rss_kib(pid);
    let stop = tmp.path().join("stop");
    let load = Command::new("python3")
        .arg(repo().join("tests/it/serveload.py"))
        .args([
            server.port.to_string(),
            PASSWORD.to_string(),
            "50".into(),
            "10".into(),
            stop.display().to_string(),
            "400".into(),
            "2.0".into(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Under load, a run publishes a correction (staging and marts change together).
    std::thread::sleep(Duration::from_secs(5));
    drop_correction(&inbox);
    let run = stmon(&wh)
        .args(["run", pipeline.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    std::fs::write(&stop, "").unwrap();
    let out = load.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let r: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let (_, peak) = rss_kib(pid);
    eprintln!("load: {r}; server RSS idle {idle} KiB, peak {peak} KiB");

    assert_eq!(r["connected"], 50, "{r}");
    assert_eq!(r["small_errors"], serde_json::json!([]), "{r}");
    // Each answer is the state before the run or after it, never a mix.
    let mut pairs: Vec<String> = r["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.to_string())
        .collect();
    pairs.sort();
    assert_eq!(pairs, ["[24.0,0.0048]", "[25.0,0.005]"], "{r}");
    let small = &r["small"];
    assert!(small["count"].as_u64().unwrap() > 100, "{r}");
    assert!(
        small["max"].as_f64().unwrap() < HEAVY_TIMEOUT_SECS,
        "a small query waited behind the heavy ones: {r}"
    );
    // Heavy queries end answered, out of memory (53200) or out of time (57014).
    let heavy = r["heavy"].as_object().unwrap();
    assert!(
        heavy.values().map(|n| n.as_u64().unwrap()).sum::<u64>() >= 10,
        "{r}"
    );
    for outcome in heavy.keys() {
        assert!(["ok", "53200", "57014"].contains(&outcome.as_str()), "{r}");
    }
    // The pool bounds what operators and results hold; batches in flight
    // and the allocator's own slack are outside it: half as much again.
    assert!(
        peak <= idle + SERVER_MEMORY_MB * 1024 * 3 / 2,
        "peak RSS {peak} KiB passed idle {idle} KiB + 1.5 × limits.server_memory_mb: {r}"
    );
    drop(server);
}

#[test]
fn wrong_passwords_are_logged_with_the_address_and_then_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (wh, _, _) = build(tmp.path());
    let log_path = tmp.path().join("serve.log");
    let server = serve_logging(
        tmp.path(),
        &wh,
        "{login_attempts: 3, login_lockout_secs: 3}",
        "",
        Stdio::from(std::fs::File::create(&log_path).unwrap()),
    );
    let one = |password: &str| text(&psql(server.port, password, &["-At", "-c", "select 1"]));
    for _ in 0..3 {
        let said = one("wrong");
        assert!(said.contains("assword authentication failed"), "{said}");
    }
    // The right password too is refused now, without a password exchange.
    let said = one(PASSWORD);
    assert!(
        said.contains("too many failed logins from 127.0.0.1: try again in"),
        "{said}"
    );
    std::thread::sleep(Duration::from_millis(3200));
    assert_eq!(one(PASSWORD).trim(), "1");
    // A login that succeeds forgets the failures.
    let said = one("wrong");
    assert!(said.contains("assword authentication failed"), "{said}");
    let log = std::fs::read_to_string(&log_path).unwrap();
    for n in 1..=3 {
        assert!(
            log.contains("password authentication failed for user \"analyst\" from 127.0.0.1:")
                && log.contains(&format!(
                    "({n} of 3 failed logins from 127.0.0.1 within 3 s)"
                )),
            "{log}"
        );
    }
    assert_eq!(log.matches("(1 of 3 failed logins").count(), 2, "{log}");
    assert!(
        log.contains("login refused for user \"analyst\" from 127.0.0.1:")
            && log.contains("3 failed logins from 127.0.0.1; refused for"),
        "{log}"
    );
    drop(server);
}

/// Statements that would read or write outside the warehouse, or change the
/// engine: every one refused or unknown, and no file appears.
const OUTSIDE: &str = r#"
import json, sys
import psycopg
port, password, tmp = int(sys.argv[1]), sys.argv[2], sys.argv[3]
tries = [
    "copy marts.indicators to '{tmp}/a.csv'",
    "copy (select 1) to '{tmp}/b.csv'",
    "copy marts.indicators from '/etc/passwd'",
    "create external table x stored as csv location '/etc/passwd'",
    "create external table y stored as parquet location '{tmp}/'",
    "select * from '/etc/passwd'",
    "select * from read_csv('/etc/passwd')",
    "select * from read_parquet('/etc/passwd')",
    "select * from parquet_metadata('/etc/passwd')",
    "select pg_read_file('/etc/passwd')",
    "select pg_ls_dir('/')",
    "select lo_import('/etc/passwd')",
    "set datafusion.catalog.information_schema = true",
    "set datafusion.execution.target_partitions = 64",
    "reset datafusion.execution.batch_size",
    "create view v as select 1",
    "create table t as select 1",
    "create function f() returns int as 'select 1'",
    "attach database '{tmp}/x' as y",
    "load '{tmp}/x.so'",
    "prepare p as insert into marts.indicators (year) values (1)",
    "insert into marts.indicators select * from marts.indicators",
    "delete from marts.indicators",
    "update marts.indicators set value = 0",
    "truncate marts.indicators",
    "alter table marts.indicators add column x int",
    "drop table marts.indicators",
    "explain analyze insert into marts.indicators select * from marts.indicators",
    "select * from delta.raw_enterprise_rd",
]
out = []
with psycopg.connect(f"host=127.0.0.1 port={port} user=analyst dbname=stmon password='{password}'", autocommit=True) as c:
    for t in tries:
        t = t.replace("{tmp}", tmp)
        try:
            c.execute(t)
            out.append([t, "accepted", ""])
        except psycopg.Error as e:
            out.append([t, e.sqlstate, str(e).splitlines()[0][:160]])
    out.append(["after", "ok", str(c.execute("select count(*) from marts.indicators").fetchone()[0])])
print(json.dumps(out))
"#;

#[test]
fn statements_that_reach_outside_the_warehouse_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (wh, _, _) = build(tmp.path());
    let server = serve(tmp.path(), &wh, "{}");
    let files = tmp.path().join("outside");
    std::fs::create_dir_all(&files).unwrap();
    let r = python(
        OUTSIDE,
        &[
            server.port.to_string(),
            PASSWORD.to_string(),
            files.display().to_string(),
        ],
    );
    let tries = r.as_array().unwrap();
    assert_eq!(tries.len(), 30, "{r}");
    for t in &tries[..29] {
        let (stmt, state, msg) = (
            t[0].as_str().unwrap(),
            t[1].as_str().unwrap(),
            t[2].as_str().unwrap(),
        );
        let refused = (state == "25006" && msg.contains("read-only server"))
            || (state == "42501" && msg.contains("permission denied"));
        let unknown = msg.contains("not found") || msg.contains("Invalid function");
        assert!(refused || unknown, "{stmt}: {state} {msg}");
    }
    assert_eq!(tries[29][2], "4032", "{r}");
    assert_eq!(
        std::fs::read_dir(&files).unwrap().count(),
        0,
        "nothing written"
    );
    drop(server);
}

/// A server config with three users: 柯桥's county office (its division,
/// its firms' rows), an analyst without microdata, and the data team
/// (no scope); and an access log.
fn scoped_config(dir: &Path) -> (PathBuf, PathBuf) {
    let config = dir.join("scoped.yaml");
    let log = dir.join("logs/access.jsonl");
    let h = hash(PASSWORD);
    std::fs::write(
        &config,
        format!(
            "refresh_secs: 1\naccess_log:\n  path: {}\nusers:\n  - name: keqiao\n    password_hash: \"{h}\"\n    divisions: [\"330603\"]\n  - name: analyst\n    password_hash: \"{h}\"\n    microdata: false\n  - name: team\n    password_hash: \"{h}\"\nlimits: {{max_sessions: 8}}\n",
            log.display()
        ),
    )
    .unwrap();
    (config, log)
}

/// Every form of query, for one user, through psycopg: a prepared
/// statement with a parameter, and a session pinned to the first run.
const SCOPED: &str = r#"
import json, sys
import psycopg

port, user, password, first_run = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
dsn = f"host=127.0.0.1 port={port} user={user} dbname=stmon password='{password}'"
out = {}
def one(c, name, sql, params=None):
    try:
        out[name] = c.execute(sql, params, prepare=True).fetchone()[0]
    except psycopg.Error as e:
        out[name] = [e.sqlstate, str(e)]
with psycopg.connect(dsn, autocommit=True) as c:
    one(c, "param", "select count(*) from current.enterprise_rd where period like %s", ("2023%",))
    one(c, "param_marts", "select count(distinct division_code) from marts.indicators where year = %s", (2023,))
    c.execute(f"set stmon.run = '{first_run}'")
    one(c, "pinned", "select count(*) from current.enterprise_rd")
    one(c, "pinned_marts", "select count(distinct division_code) from marts.indicators")
print(json.dumps(out))
"#;

#[test]
fn each_user_sees_its_scope_in_every_form_of_query() {
    let tmp = tempfile::tempdir().unwrap();
    let (wh, pipeline, inbox) = build(tmp.path());
    let first = last_run_id(tmp.path());
    // A second run, so that a session can pin the first.
    drop_correction(&inbox);
    let run = stmon(&wh)
        .args(["run", pipeline.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    let (config, log) = scoped_config(tmp.path());
    let server = start(&wh, &config, Stdio::inherit());
    let p = server.port;
    let one = |user: &str, sql: &str| -> Result<String, String> {
        let o = psql_as(p, user, PASSWORD, &["-At", "-c", sql]);
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
        } else {
            Err(text(&o))
        }
    };

    // Base fixture (fixtures/indicators/base/enterprise_rd.csv): 10 rows of
    // 4 firms, 7 of them in 2023; 柯桥 (330603) has 丙 (2 rows) and 丁 (1),
    // 2 rows in 2023. The correction changes a row of 越城 (330602).
    let forms = [
        ("plain", "select count(*) from current.enterprise_rd", "3", "10"),
        (
            "firms",
            "select count(distinct credit_code) from current.enterprise_rd",
            "2",
            "4",
        ),
        (
            "subquery",
            "select count(*) from (select * from current.enterprise_rd where period like '2023%') t",
            "2",
            "7",
        ),
        (
            "in_subquery",
            "select count(*) from staging.enterprise_rd where credit_code in (select credit_code from current.enterprise_rd)",
            "3",
            "10",
        ),
        (
            "cte",
            "with t as (select credit_code, period from current.enterprise_rd) select count(*) from t join raw.enterprise_rd r using (credit_code, period)",
            // raw holds both versions of the corrected row (越城's).
            "3",
            "11",
        ),
        (
            "union",
            "select count(*) from (select credit_code from current.enterprise_rd union all select credit_code from raw.enterprise_rd) u",
            "6",
            "21",
        ),
        (
            "name_of_another_county",
            "select count(*) from current.enterprise_rd where county_code = '330602'",
            "0",
            "7",
        ),
        (
            "marts",
            "select count(distinct division_code) from marts.indicators",
            "1",
            "",
        ),
    ];
    let team_marts = one(
        "team",
        "select count(distinct division_code) from marts.indicators",
    )
    .unwrap();
    let team_marts_n: u32 = team_marts.parse().unwrap();
    assert!(
        team_marts_n >= 7,
        "the city and its six counties: {team_marts}"
    );
    for (name, sql, keqiao, team) in forms {
        assert_eq!(
            one("keqiao", sql).as_deref(),
            Ok(keqiao),
            "keqiao {name}: {sql}"
        );
        let team = if team.is_empty() {
            team_marts.as_str()
        } else {
            team
        };
        assert_eq!(one("team", sql).as_deref(), Ok(team), "team {name}: {sql}");
    }
    // The filter is in the plan EXPLAIN shows.
    let explain = one("keqiao", "explain select * from current.enterprise_rd").unwrap();
    assert!(explain.contains("330603"), "{explain}");
    // The catalogs list the tables (names are not confidential) and psql's
    // \d works; pg_catalog and information_schema hold no rows of them.
    let listed = one(
        "keqiao",
        "select count(*) from information_schema.columns where table_schema = 'current' and table_name = 'enterprise_rd' and column_name = 'county_code'",
    );
    assert_eq!(listed.as_deref(), Ok("1"));
    let d = psql_as(p, "keqiao", PASSWORD, &["-c", r"\d current.enterprise_rd"]);
    assert!(
        d.status.success() && text(&d).contains("rd_expenditure"),
        "{}",
        text(&d)
    );

    // The analyst reads every division's aggregates and no unit's rows.
    assert_eq!(
        one(
            "analyst",
            "select count(distinct division_code) from marts.indicators"
        )
        .as_deref(),
        Ok(team_marts.as_str())
    );
    // 越城's June R&D comes from two firms (甲 21, 乙 4; its institute's
    // annual report enters at year end): withheld by disclosure control
    // from the analyst, who has no microdata; the data team reads it.
    let june = "select concat(coalesce(cast(round(value, 6) as varchar), 'null'), ' ', reason) \
        from marts.indicators where year = 2023 and as_of_month = 6 \
        and division_code = '330602' and indicator_id = 'rd_intensity'";
    let withheld = one("analyst", june).unwrap();
    assert!(
        withheld.starts_with("null 保密") && withheld.contains("primary, few_units"),
        "{withheld}"
    );
    assert!(one("team", june).unwrap().starts_with("0.005 "));
    assert_eq!(
        one(
            "analyst",
            "select count(*) from marts.disclosure where status <> 'published' and division_code = '330602' and year = 2023 and as_of_month = 6 and indicator_id = 'rd_intensity'"
        )
        .as_deref(),
        Ok("1")
    );
    for (sql, table) in [
        ("select count(*) from current.enterprise_rd", "current.enterprise_rd"),
        ("select count(*) from raw.enterprise_rd", "raw.enterprise_rd"),
        ("select count(*) from staging.enterprise_rd", "staging.enterprise_rd"),
        ("select count(*) from marts.unit_indicators", "marts.unit_indicators"),
        ("select count(*) from intermediate.enterprise_asof", "intermediate.enterprise_asof"),
        (
            "select count(*) from marts.indicators where division_code in (select county_code from current.enterprise_rd)",
            "current.enterprise_rd",
        ),
        (
            "with f as (select * from staging.enterprise_rd) select count(*) from f",
            "staging.enterprise_rd",
        ),
        ("explain select * from raw.enterprise_rd", "raw.enterprise_rd"),
    ] {
        let e = one("analyst", sql).unwrap_err();
        assert!(
            e.contains("42501") || e.contains("permission denied"),
            "{sql}: {e}"
        );
        assert!(e.contains(&format!("permission denied for table {table}")), "{sql}: {e}");
    }
    let verbose = psql_as(
        p,
        "analyst",
        PASSWORD,
        &[
            "-v",
            "VERBOSITY=verbose",
            "-c",
            "select * from current.enterprise_rd",
        ],
    );
    assert!(text(&verbose).contains("42501"), "{}", text(&verbose));

    // psycopg: prepared statements with a parameter, and a pinned run.
    let py = |user: &str| {
        python(
            SCOPED,
            &[p.to_string(), user.into(), PASSWORD.into(), first.clone()],
        )
    };
    let k = py("keqiao");
    assert_eq!(k["param"], 2, "{k}");
    assert_eq!(k["param_marts"], 1, "{k}");
    assert_eq!(k["pinned"], 3, "{k}");
    assert_eq!(k["pinned_marts"], 1, "{k}");
    let t = py("team");
    assert_eq!(t["param"], 7, "{t}");
    assert_eq!(t["pinned"], 10, "{t}");
    assert_eq!(t["pinned_marts"], team_marts_n, "{t}");
    let a = py("analyst");
    assert_eq!(a["param"][0], "42501", "{a}");
    assert_eq!(a["pinned"][0], "42501", "{a}");
    assert_eq!(a["param_marts"], team_marts_n, "{a}");

    // stmon sql --as: what each user would see, without a login.
    let as_user = |user: &str, sql: &str| {
        stmon(&wh)
            .args(["sql", "--as", user, "--config", config.to_str().unwrap()])
            .args(["--format", "csv", "-c", sql])
            .output()
            .unwrap()
    };
    let o = as_user("keqiao", "select count(*) as n from current.enterprise_rd");
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "n\n3");
    let o = as_user("analyst", "select count(*) from current.enterprise_rd");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("permission denied for table current.enterprise_rd"),
        "{}",
        text(&o)
    );
    let o = as_user("nobody", "select 1");
    assert!(!o.status.success());
    assert!(text(&o).contains("no user nobody"), "{}", text(&o));

    // The access log: every login and query, with user, client and rows.
    drop(server);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |user: &str, event: &str| {
        lines
            .iter()
            .filter(|l| l["user"] == user && l["event"] == event)
            .collect::<Vec<_>>()
    };
    // psql: 8 forms + explain + information_schema + \d; psycopg: 1.
    assert!(
        of("keqiao", "login").len() >= 12,
        "{}",
        of("keqiao", "login").len()
    );
    assert!(lines.iter().all(|l| l["client"]
        .as_str()
        .is_some_and(|c| c.starts_with("127.0.0.1:"))));
    let q = of("team", "query");
    let param = q
        .iter()
        .find(|l| l["statement"].as_str().unwrap().contains("period LIKE"))
        .unwrap_or_else(|| panic!("{q:?}"));
    assert_eq!(param["outcome"], "ok");
    assert_eq!(param["rows"], 1);
    assert!(param["millis"].is_u64());
    let refused = of("analyst", "query")
        .into_iter()
        .filter(|l| l["outcome"] == "42501")
        .count();
    assert!(refused >= 10, "{refused}");
}
