//! `s3://…` works like a local path: the same ingest against an S3 API served
//! on loopback by moto (a real S3 implementation from PyPI, installed by
//! .ci/run), read back by the Python `deltalake` package.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

pub(crate) struct Server(pub(crate) Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An S3 API on loopback (moto) with the bucket `stmon`: the server (stopped
/// when dropped) and its endpoint.
pub(crate) fn moto() -> (Server, String) {
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let server = Server(
        Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m moto.server (pip install 'moto[server]'; .ci/run does)"),
    );
    let make_bucket = format!(
        "import boto3; boto3.client('s3', endpoint_url='{endpoint}', aws_access_key_id='test', \
         aws_secret_access_key='test', region_name='us-east-1').create_bucket(Bucket='stmon')"
    );
    let start = Instant::now();
    while !Command::new("python3")
        .arg("-c")
        .arg(&make_bucket)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "moto server did not come up"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    (server, endpoint)
}

/// The environment that points stmon (and a cluster's executors) at `endpoint`.
pub(crate) fn s3_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ALLOW_HTTP", "true".into()),
        // A single writer at a time; no DynamoDB lock table on loopback.
        ("AWS_S3_ALLOW_UNSAFE_RENAME", "true".into()),
    ]
}

#[test]
fn an_s3_warehouse_behaves_like_a_local_one() {
    let (server, endpoint) = moto();
    let env = s3_env(&endpoint);
    let stmon = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_stmon"));
        c.current_dir(repo()).envs(env.clone()).args([
            "--warehouse",
            "s3://stmon/wh",
            "ingest",
            "fixtures/cases/enterprise_rd/bad_county.csv",
        ]);
        c
    };
    let out = stmon().output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("committed to s3://stmon/wh/"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("enterprise_rd"))
        .unwrap();
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        ["enterprise_rd", "1", "4", "1", "0", "3", "1"]
    );
    let again = stmon().output().unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing new to ingest"));

    let read = format!(
        "from deltalake import DeltaTable\n\
         o = dict(AWS_ENDPOINT_URL='{endpoint}', AWS_ACCESS_KEY_ID='test', AWS_SECRET_ACCESS_KEY='test', AWS_REGION='us-east-1', AWS_ALLOW_HTTP='true')\n\
         raw = DeltaTable('s3://stmon/wh/raw/enterprise_rd', storage_options=o).to_pyarrow_table().to_pylist()\n\
         q = DeltaTable('s3://stmon/wh/audit/quarantine', storage_options=o).to_pyarrow_table()\n\
         print(raw[0]['credit_code'], raw[0]['county_code'], q.num_rows, flush=True)\n\
         import os; os._exit(0)"
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&read)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "91330624MA2BCD004Y 330603 3"
    );

    // `stmon run` with an inbox on the object store, into the S3 warehouse:
    // the lock (create-if-absent on S3), the inbox copy, the run record.
    let upload = format!(
        "import boto3; boto3.client('s3', endpoint_url='{endpoint}', aws_access_key_id='test', \
         aws_secret_access_key='test', region_name='us-east-1').upload_file('{}', 'stmon', 'inbox/2023/contracts.csv')",
        repo().join("fixtures/indicators/base/tech_contract.csv").display()
    );
    assert!(Command::new("python3")
        .arg("-c")
        .arg(&upload)
        .status()
        .unwrap()
        .success());
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = tmp.path().join("p.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "name: s3-nightly\nyear: 2023\ninbox: s3://stmon/inbox/\nsteps: [ingest, freshness]\nreports: {}\n\
             freshness:\n  as_of: 2024-01-31\n  rules:\n    - {{form: tech_contract, max_age_days: 400}}\n",
            tmp.path().join("reports").display()
        ),
    )
    .unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_stmon"))
            .current_dir(repo())
            .envs(env.clone())
            .args([
                "--warehouse",
                "s3://stmon/wh",
                "run",
                pipeline.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let out = run();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 file(s) loaded"), "{text}");
    assert!(text.contains("tech_contract"), "{text}");
    let out = run();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && text.contains("nothing new"),
        "{text}"
    );
    let runs = Command::new(env!("CARGO_BIN_EXE_stmon"))
        .current_dir(repo())
        .envs(env.clone())
        .args(["--warehouse", "s3://stmon/wh", "runs"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&runs.stdout).to_string();
    assert_eq!(text.matches("s3-nightly").count(), 2, "{text}");
    assert!(!text.contains("lock: held"), "released: {text}");
    drop(server);
}
