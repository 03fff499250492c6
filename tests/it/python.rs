//! The warehouse is plain Delta Lake: the `deltalake` Python package (an
//! independent reader, installed by .ci/run) reads what stmon wrote.

use std::process::Command;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_deltalake_reads_the_tables() {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path());
    ingest(
        &wh,
        &[
            case("enterprise_rd/gb18030_chinese_headers.csv"),
            case("enterprise_rd/bad_values.csv"),
        ],
    )
    .await;
    let script = r#"
import sys, json
from deltalake import DeltaTable
root = sys.argv[1]
raw = DeltaTable(root + "/raw/enterprise_rd").to_pyarrow_table().to_pylist()
q = DeltaTable(root + "/audit/quarantine").to_pyarrow_table().to_pylist()
b = DeltaTable(root + "/audit/batches").to_pyarrow_table().to_pylist()
raw.sort(key=lambda r: r["name"] or "")
print(json.dumps({
    "raw": [[r["name"], str(r["revenue"]), str(r["submitted_at"])] for r in raw],
    "quarantine": len(q),
    "files": sorted([r["rows_accepted"], r["rows_rejected"]] for r in b),
}, ensure_ascii=False))
# Leave without interpreter teardown: the reader's native threads have been
# seen to abort there ("terminate called without an active exception") after
# the work was done and printed.
sys.stdout.flush()
import os
os._exit(0)
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dir.path())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python deltalake failed (is it installed? .ci/run installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "raw": [
                [null, "100.0000", "2023-02-05 09:30:00"],
                ["嵊州市领带织造股份有限公司", "200.0000", "2023-02-05 09:31:00"],
                ["绍兴越城精密机械有限公司", "1000.0000", "2023-02-05 09:30:00"],
            ],
            "quarantine": 7,
            "files": [[1, 5], [2, 0]],
        })
    );
}
