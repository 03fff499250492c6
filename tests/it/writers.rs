//! Two writers at once: one works, the other waits or exits 2, and the
//! warehouse is as after one of them. On a local folder and on S3 (moto).

use std::process::{Command, Output};

use crate::common::*;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A lock left by a process of this host that is gone.
fn stale_lock(run_id: &str) -> String {
    let now = chrono::Utc::now();
    serde_json::json!({
        "run_id": run_id, "pipeline": "x", "host": stmon_warehouse::lock::this_host(),
        "pid": 999_999_999u32, "started_at": now, "heartbeat_at": now,
    })
    .to_string()
}

/// Many runs find the same stale lock at once: exactly one takes it over.
/// (Each deleted the stale lock before: a slow one could delete the lock the
/// fast one had just created, and both ran.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_lock_is_taken_over_by_exactly_one_of_many() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("_stmon/run.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    for round in 0..20 {
        std::fs::write(&lock, stale_lock(&format!("dead-{round}"))).unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let wh = warehouse(dir.path());
                tokio::spawn(async move {
                    wh.lock_run(&format!("r{round}-{i}"), "p", None, &|_| {})
                        .await
                })
            })
            .collect();
        let mut held = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(l) => held.push(l),
                Err(stmon_warehouse::Error::Locked(_)) => {}
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        assert_eq!(
            held.len(),
            1,
            "round {round}: {} runs hold the lock",
            held.len()
        );
        let holder = warehouse(dir.path()).lock_holder().await.unwrap().unwrap();
        for l in held {
            assert!(holder.run_id.starts_with(&format!("r{round}-")));
            l.release().await.unwrap();
        }
        assert!(!lock.exists());
    }
}

/// Two `stmon ingest` of the same inbox started together (a stale lock
/// waiting for them): one batch is committed, no row is stored twice.
fn two_ingests_at_once(env: &[(&'static str, String)], wh: &str, check: impl Fn()) {
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_stmon"))
            .current_dir(repo())
            .envs(env.iter().cloned())
            .env_remove("STMON_SCHEMAS")
            .args(["--warehouse", wh, "ingest", "fixtures/shaoxing/submissions"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start(), start());
    let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let worked: Vec<&Output> = outs
        .iter()
        .filter(|o| o.status.success() && text(o).contains("committed"))
        .collect();
    assert_eq!(
        worked.len(),
        1,
        "{}\n---\n{}",
        text(&outs[0]),
        text(&outs[1])
    );
    for o in &outs {
        let t = text(o);
        let ok = t.contains("committed")
            || (o.status.code() == Some(2) && t.contains("another run holds the warehouse lock"))
            || (o.status.success() && t.contains("nothing new to ingest"));
        assert!(ok, "{t}");
    }
    check();
}

fn one_batch(rows: Vec<Vec<String>>) {
    assert_eq!(
        rows,
        vec![row(&["1", "0"])],
        "batches, and rows stored twice"
    );
}

const ONE_BATCH: &str = "select (select count(distinct batch_id) from audit.batches), \
     (select count(*) from (select _source_sha256, _row_number from raw.enterprise_rd \
      group by 1, 2 having count(*) > 1))";

#[test]
fn two_ingests_at_once_on_a_local_warehouse_commit_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    std::fs::create_dir_all(wh.join("_stmon")).unwrap();
    std::fs::write(wh.join("_stmon/run.lock"), stale_lock("dead")).unwrap();
    two_ingests_at_once(&[], wh.to_str().unwrap(), || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        one_batch(rt.block_on(query(&warehouse(&wh), ONE_BATCH)));
    });
}

#[test]
fn two_ingests_at_once_on_s3_commit_one_batch() {
    let (_server, endpoint) = crate::s3::moto();
    let env = crate::s3::s3_env(&endpoint);
    let put = format!(
        "import boto3; boto3.client('s3', endpoint_url='{endpoint}', aws_access_key_id='test', \
         aws_secret_access_key='test', region_name='us-east-1').put_object(Bucket='stmon', \
         Key='wh/_stmon/run.lock', Body={:?})",
        stale_lock("dead")
    );
    let o = Command::new("python3")
        .arg("-c")
        .arg(&put)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    two_ingests_at_once(&env, "s3://stmon/wh", || {
        let o = Command::new(env!("CARGO_BIN_EXE_stmon"))
            .current_dir(repo())
            .envs(env.iter().cloned())
            .args([
                "--warehouse",
                "s3://stmon/wh",
                "sql",
                "--format",
                "csv",
                "-c",
                ONE_BATCH,
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let last = String::from_utf8_lossy(&o.stdout)
            .lines()
            .last()
            .unwrap()
            .to_string();
        assert_eq!(last, "1,0");
    });
}
