"""Compares two stmon warehouses on one S3 API, table by table.

    python3 whdiff.py ENDPOINT BUCKET PREFIX_A PREFIX_B [SKIP_TABLE ...]

Every Delta table under each prefix is read with the `deltalake` package (an
implementation other than stmon's). Two warehouses are equal when they hold
the same tables, each at the same version, with the same rows (as a multiset)
once the columns that name a run or a moment are left out: batch and run
ids, times of ingest, commit and run (`*_at` but `submitted_at`, which is
data), durations, and a run step's free-text detail and input fingerprint.
A table is also checked for a data file added twice in its log (a commit
applied twice would add the same files again; readers would not show it).

Prints one line per table ("=" or "≠" with what differs) and exits 1 when
any differs.
"""

import collections
import json
import sys

import boto3
from deltalake import DeltaTable

VOLATILE = {"batch_id", "_batch_id", "run_id", "elapsed_ms", "detail", "fingerprint"}


def volatile(name):
    return name in VOLATILE or (name.endswith("_at") and name != "submitted_at")


def tables(s3, bucket, prefix):
    found = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if "/_delta_log/" in key:
                found.add(key.split("/_delta_log/")[0][len(prefix) + 1:])
    return found


def twice_added(s3, bucket, table):
    """Paths of data files that more than one commit of the log adds."""
    adds = collections.Counter()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=table + "/_delta_log/"):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".json"):
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode()
                for line in body.splitlines():
                    action = json.loads(line)
                    if "add" in action:
                        adds[action["add"]["path"]] += 1
    return sorted(p for p, n in adds.items() if n > 1)


def content(dt):
    t = dt.to_pyarrow_table()
    keep = [n for n in t.column_names if not volatile(n)]
    rows = t.select(keep).to_pylist()
    return keep, collections.Counter(json.dumps(r, sort_keys=True, default=str) for r in rows)


def main():
    endpoint, bucket, a, b = sys.argv[1:5]
    skip = set(sys.argv[5:])
    opts = dict(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                AWS_REGION="us-east-1", AWS_ALLOW_HTTP="true")
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test",
                      aws_secret_access_key="test", region_name="us-east-1")
    ta, tb = tables(s3, bucket, a), tables(s3, bucket, b)
    differ = 0
    for name in sorted(ta | tb):
        if name in skip:
            print(f"· {name}: not compared")
            continue
        if name not in ta or name not in tb:
            print(f"≠ {name}: only in {a if name in ta else b}")
            differ += 1
            continue
        da = DeltaTable(f"s3://{bucket}/{a}/{name}", storage_options=opts)
        db = DeltaTable(f"s3://{bucket}/{b}/{name}", storage_options=opts)
        notes = []
        if da.version() != db.version():
            notes.append(f"version {da.version()} vs {db.version()}")
        for side, prefix in ((a, a), (b, b)):
            twice = twice_added(s3, bucket, f"{prefix}/{name}")
            if twice:
                notes.append(f"{side}: {len(twice)} file(s) added twice")
        (ka, ca), (kb, cb) = content(da), content(db)
        if ka != kb:
            notes.append(f"columns {ka} vs {kb}")
        elif ca != cb:
            only_a, only_b = ca - cb, cb - ca
            notes.append(f"{sum(ca.values())} vs {sum(cb.values())} rows; "
                         f"{sum(only_a.values())} only in {a}, {sum(only_b.values())} only in {b}; "
                         f"e.g. {next(iter(only_a or only_b))[:300]}")
        if notes:
            differ += 1
            print(f"≠ {name}: " + "; ".join(notes))
        else:
            print(f"= {name}: version {da.version()}, {sum(ca.values())} rows")
    print(f"{len(ta | tb)} tables, {differ} differ", flush=True)
    import os
    os._exit(1 if differ else 0)


if __name__ == "__main__":
    main()
