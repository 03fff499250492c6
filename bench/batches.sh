#!/usr/bin/env bash
# A night's fixed cost against the warehouse's history: ingests N small
# batches (one 4-row enterprise_rd file each) one after another, and prints
# how long one small batch takes after 10 earlier batches and after N, with
# the raw table's file and log counts.
#
# The warehouse starts with one enterprise_rd file of the Shaoxing fixture
# (435 rows, 423 firms); batch i re-submits four of its rows, the next four
# each time, round the file: every batch is new and a correction, and after
# 1,000 batches a key has about ten versions. SAME_FIRMS=1 re-submits the
# same four rows every time instead (the first version of this script): a
# batch then corrects keys with N versions each, and its checks, which read
# every version of the keys a batch touches, grow with N by design: that is
# the keys' history, not the night's fixed cost.
#
# "How long one batch takes" is the mean over W = 30 batches (11-40, and
# N+1 to N+30, run in turn at the end on a copy of the warehouse after 10
# and the warehouse after N): a batch's share of the upkeep comes in cycles (a log
# checkpoint every 10 commits of a table, a compaction every 15 or 16
# batches), and the log a batch replays grows from one commit after a
# checkpoint to ten before the next. Thirty batches hold three checkpoint
# cycles and two compactions of each table at both ends; three batches
# (the first version of this script) could catch one end early in its
# cycles and the other late.
#
#   bench/batches.sh [N]                 (default 1000)
#   STMON_BIN=target/debug/stmon bench/batches.sh 100
#   KEEP=1 bench/batches.sh 200         keeps its work folder (mktemp) for a look
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
N=${1:-1000}
W=30
if [ -z "${STMON_BIN:-}" ]; then
  cargo build --release --quiet --bin stmon
  STMON_BIN=$ROOT/target/release/stmon
fi
BIN=$STMON_BIN
WORK=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
"$BIN" fixtures generate --scale shaoxing --seed 2023 --out "$WORK/data" > /dev/null
# Every batch's file up front: batch 0 the whole file, batch i four of its
# rows re-dated (submitted i seconds after 2024-03-01).
python3 - "$WORK/data/submissions/enterprise_rd" "$WORK/in" "$((N + W))" "${SAME_FIRMS:-}" <<'PY'
import csv, datetime, io, os, sys
src, out, n, same = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"

os.makedirs(out)
for root, _, names in sorted(os.walk(src)):
    for name in sorted(names):
        if name.endswith(".csv"):
            raw = open(os.path.join(root, name), "rb").read()
            try:
                rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
            except UnicodeDecodeError:
                continue
            if "submitted_at" in rows[0]:
                break
    else:
        continue
    break
header, body, at = rows[0], rows[1:], rows[0].index("submitted_at")
start = datetime.datetime(2024, 3, 1)
with open(os.path.join(out, "batch-0.csv"), "w", newline="") as fh:
    csv.writer(fh).writerows([header] + body)
for i in range(1, n + 1):
    first = 0 if same else 4 * (i - 1)
    with open(os.path.join(out, f"batch-{i}.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for r in (body[(first + j) % len(body)] for j in range(4)):
            r = list(r)
            r[at] = (start + datetime.timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S")
            w.writerow(r)
PY
ST=(--warehouse "$WORK/wh" --divisions "$WORK/data/divisions.csv")
one() {
  local f="$WORK/in/batch-$1.csv"
  local s e
  s=$(date +%s.%N)
  "$BIN" "${ST[@]}" ingest "$f" > "$WORK/last.out" 2>&1
  e=$(date +%s.%N)
  echo "$e - $s" | bc
}
# The table's active Parquet files (the Delta log replayed: compaction
# leaves the files it replaced on disk for time travel), its commits and
# its log checkpoints.
files() {
  python3 - "${1:-$WORK/wh}/raw/enterprise_rd/_delta_log" <<'PY'
import json, os, sys
log, live = sys.argv[1], set()
for name in sorted(n for n in os.listdir(log) if n.endswith(".json")):
    for line in open(os.path.join(log, name)):
        a = json.loads(line)
        if "add" in a: live.add(a["add"]["path"])
        if "remove" in a: live.discard(a["remove"]["path"])
print(len(live))
PY
}
logs() { find "$WORK/wh/raw/enterprise_rd/_delta_log" -name '*.json' | wc -l; }
checkpoints() { find "$WORK/wh/raw/enterprise_rd/_delta_log" -name '*.checkpoint.parquet' | wc -l; }
one 0 > /dev/null
for i in $(seq 1 10); do one "$i" > /dev/null; done
# The warehouse after 10 batches is kept aside and measured at the end,
# batch for batch in turn with the one after N: the two ends then run at
# the same time, on the same machine state (this machine's speed drifts by
# 10-15 % within an hour, as much as the difference being measured).
cp -a "$WORK/wh" "$WORK/wh-early"
for i in $(seq 11 "$N"); do
  one "$i" > /dev/null
  if (( i % 100 == 0 )); then echo "… $i batches, raw/enterprise_rd: $(files) active Parquet files, $(logs) commits" >&2; fi
done
: > "$WORK/early.t"
: > "$WORK/late.t"
for k in $(seq 1 "$W"); do
  ST=(--warehouse "$WORK/wh-early" --divisions "$WORK/data/divisions.csv")
  one "$((10 + k))" >> "$WORK/early.t"
  ST=(--warehouse "$WORK/wh" --divisions "$WORK/data/divisions.csv")
  one "$((N + k))" >> "$WORK/late.t"
done
early=$(awk '{ s += $1 } END { printf "%.3f", s / NR }' "$WORK/early.t")
late=$(awk '{ s += $1 } END { printf "%.3f", s / NR }' "$WORK/late.t")
early_files=$(files "$WORK/wh-early")
late_files=$(files) late_logs=$(logs) late_checkpoints=$(checkpoints)
printf 'one 4-row batch after %4d batches (mean of %d): %6.3f s  (raw/enterprise_rd: %d active Parquet files)\n' 10 "$W" "$early" "$early_files"
printf 'one 4-row batch after %4d batches (mean of %d): %6.3f s  (raw/enterprise_rd: %d active Parquet files, %d commits, %d log checkpoints)\n' "$N" "$W" "$late" "$late_files" "$late_logs" "$late_checkpoints"
echo "$late $early" | awk '{ printf "ratio: %.2f×\n", $1 / $2 }'
