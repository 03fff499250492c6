#!/usr/bin/env bash
# stmon against its peer (bench/peer: a DuckDB script doing the same job on
# the same files), side by side in one invocation.
#
#   bench/scale.sh [shaoxing|province|national]      (default national)
#
#   STMON_BIN=target/debug/stmon bench/scale.sh shaoxing   skip the release build
#   DIR=/big/disk bench/scale.sh national                  where the data and warehouses go
#   KEEP=1 bench/scale.sh …                                keep the warehouse and the peer's files
#
# 1. builds release with the cluster feature (unless STMON_BIN), makes the peer's venv (DuckDB pinned in
#    bench/peer/requirements.txt) and generates the fixtures once (seed 2023);
# 2. the peer: `load` (every form typed and validated into Parquet plus a
#    quarantine) and `compute` (marts.indicators with stmon's model SQL);
# 3. stmon: `stmon ingest` into an empty warehouse, `stmon models run`,
#    `stmon review run` (every unit; its share of ingest + models);
# 4. compares the two, cell by cell, and the rejected rows: exits 1 if they differ;
# 5. stmon's nights: `stmon run` (ingest, review, models, tests) with nothing
#    new, then with 1 % of the enterprise_rd rows as later corrections (the
#    review's recall: bench/review.sh);
# 6. with a binary built with `--features cluster` (unless NO_CLUSTER=1): the
#    models step again on an Apache Ballista cluster on this machine, a
#    scheduler and 1, then 2 executors (`stmon cluster …`, the same total
#    task slots: nproc), its indicators compared with the local engine's;
# 7. prints wall time and peak RSS of each step (/usr/bin/time -v), the ratios
#    stmon/peer, and the size on disk of both.
#
#   STMON_BIN=target/release/stmon …   a cluster build: cargo build --release --features cluster
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SCALE=${1:-national}
case "$SCALE" in shaoxing|province|national) ;; *) echo "usage: bench/scale.sh [shaoxing|province|national]" >&2; exit 2 ;; esac
DIR=${DIR:-$ROOT/target/bench-$SCALE}
mkdir -p "$DIR"
# step, t, m, r, build_bin, fixtures: bench/lib.sh.
. bench/lib.sh
build_bin
PY=$(bench/peer/venv.sh)
fixtures "$SCALE"
ROWS=$(awk '/^wrote/ {gsub(",", "", $4); print $4}' "$DIR/fixtures.txt" 2>/dev/null || echo "?")
BYTES=$(du -sb "$DATA/submissions" | cut -f1)
echo "data: $SCALE, ${ROWS} rows, $((BYTES / 1048576)) MiB in $(find "$DATA/submissions" -type f | wc -l) files"
echo "machine: $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB, $(uname -r); $("$PY" -c 'import duckdb; print("duckdb", duckdb.__version__)'); stmon $("$BIN" --version | cut -d' ' -f2) ($BIN)"

WORK=$DIR/work
rm -rf "$WORK"
mkdir -p "$WORK"
WH=$WORK/wh
PEER=$WORK/peer
ST=(--warehouse "$WH" --divisions "$DATA/divisions.csv")


step peer_load "$PY" bench/peer/peer.py load --data "$DATA/submissions" --divisions "$DATA/divisions.csv" --out "$PEER"
step peer_compute "$PY" bench/peer/peer.py compute --divisions "$DATA/divisions.csv" --out "$PEER"
step stmon_ingest "$BIN" "${ST[@]}" ingest "$DATA/submissions"
step stmon_models "$BIN" "${ST[@]}" models run
step stmon_review "$BIN" "${ST[@]}" review run

"$BIN" "${ST[@]}" sql --format csv -c \
  "select year, as_of_month, division_code, indicator_id, value, numerator, denominator, reason from marts.indicators" > "$WORK/stmon-indicators.csv"
"$BIN" "${ST[@]}" sql --format csv -c \
  "select replace(file, '$DATA/submissions/', '') as file, row_number from audit.quarantine" > "$WORK/stmon-quarantine.csv"
compare=0
"$PY" bench/peer/peer.py compare --out "$PEER" --stmon "$WORK/stmon-indicators.csv" \
  --stmon-quarantine "$WORK/stmon-quarantine.csv" > "$WORK/compare.out" || compare=1

# The nights: the pipeline's data steps over an inbox holding the same files.
mkdir -p "$WORK/inbox"
cp -r "$DATA/submissions/." "$WORK/inbox/"
cat > "$WORK/pipeline.yaml" <<YAML
name: bench-$SCALE
year: 2023
inbox: $WORK/inbox
steps: [${STEPS:-ingest, review, models, tests}]
YAML
step night_nothing_new "$BIN" "${ST[@]}" run "$WORK/pipeline.yaml"
NEW=$("$PY" bench/peer/peer.py corrections --data "$DATA/submissions" --share 0.01 --out "$WORK/inbox/night-corrections.csv")
step night_1pct "$BIN" "${ST[@]}" run "$WORK/pipeline.yaml"

# On disk as the nights left it: the cluster's rebuilds below add files.
peer_bytes=$(du -sb "$PEER/raw" | cut -f1)
peer_files=$(find "$PEER/raw" -type f | wc -l)
wh_bytes=$(du -sb "$WH" | cut -f1)
wh_files=$(find "$WH" -type f -name '*.parquet' | wc -l)

# The cluster: the models step on a Ballista scheduler and N executors, each
# a process under /usr/bin/time (stopped by a signal to the process, so that
# time still reports its peak RSS).
CLUSTER_NS=()
if [ -z "${NO_CLUSTER:-}" ] && "$BIN" --version | grep -q '(cluster)'; then
  free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
  alive() { python3 -c "import json, urllib.request; print(len(json.load(urllib.request.urlopen('http://127.0.0.1:$1/api/executors', timeout=5))))" 2>/dev/null || echo 0; }
  stop() { for p in "$@"; do pkill -TERM -P "$p" 2>/dev/null || true; done; for p in "$@"; do wait "$p" 2>/dev/null || true; done; }
  SP=$(free_port)
  /usr/bin/time -v -o "$WORK/scheduler.time" "$BIN" cluster scheduler --bind "127.0.0.1:$SP" --external-host 127.0.0.1 > "$WORK/scheduler.out" 2>&1 &
  SCHED=$!
  # What the local engine gives on the warehouse as the nights left it.
  "$BIN" "${ST[@]}" sql --format csv -c \
    "select year, as_of_month, division_code, indicator_id, value, numerator, denominator, reason from marts.indicators" > "$WORK/local-indicators.csv"
  for n in 1 2; do
    slots=$(( $(nproc) / n )); [ "$slots" -ge 1 ] || slots=1
    pids=()
    for i in $(seq 1 "$n"); do
      /usr/bin/time -v -o "$WORK/executor$n-$i.time" "$BIN" cluster executor --scheduler "127.0.0.1:$SP" \
        --port "$(free_port)" --grpc-port "$(free_port)" --concurrent-tasks "$slots" \
        --work-dir "$WORK/executor$n-$i" > "$WORK/executor$n-$i.out" 2>&1 &
      pids+=($!)
    done
    for _ in $(seq 1 120); do [ "$(alive "$SP")" -ge "$n" ] && break; sleep 0.5; done
    step "cluster${n}_models" "$BIN" "${ST[@]}" models run --engine "ballista://127.0.0.1:$SP"
    "$BIN" "${ST[@]}" sql --format csv -c \
      "select year, as_of_month, division_code, indicator_id, value, numerator, denominator, reason from marts.indicators" > "$WORK/cluster$n-indicators.csv"
    # The same rows; a double may differ in its last bits (the cluster adds
    # partial sums in another order), as in tests/it/cluster.rs.
    if ! python3 - "$WORK/local-indicators.csv" "$WORK/cluster$n-indicators.csv" > "$WORK/cluster$n-compare.out" <<'PY'
import csv, sys
def rows(p):
    return sorted(csv.reader(open(p, newline="")))
a, b = rows(sys.argv[1]), rows(sys.argv[2])
def same(x, y):
    if x == y:
        return True
    try:
        fx, fy = float(x), float(y)
    except ValueError:
        return False
    return abs(fx - fy) <= 1e-12 * max(abs(fx), abs(fy))
bad = len(a) != len(b) or any(not same(x, y) for r, s in zip(a, b) for x, y in zip(r, s))
last = sum(x != y for r, s in zip(a, b) for x, y in zip(r, s))
print(f"{len(b)} indicator rows, {last} cell(s) differing in the last bits of a double" if not bad else "DIFFERENT")
sys.exit(1 if bad else 0)
PY
    then
      echo "the indicators on $n executor(s) differ from the local engine's" >&2
      compare=1
    fi
    stop "${pids[@]}"
    CLUSTER_NS+=("$n")
  done
  stop "$SCHED"
fi

# Report.
full=$(echo "$(t stmon_ingest) $(t stmon_models)" | awk '{print $1 + $2}')
echo
printf '%-34s %10s %10s   %s\n' "step" "wall s" "peak MiB" "stmon/peer"
printf '%-34s %10.1f %10d\n' "peer load (validated, to Parquet)" "$(t peer_load)" "$(m peer_load)"
printf '%-34s %10.1f %10d   %s\n' "stmon ingest (empty warehouse)" "$(t stmon_ingest)" "$(m stmon_ingest)" "$(r "$(t stmon_ingest)" "$(t peer_load)")"
printf '%-34s %10.1f %10d\n' "peer compute (marts.indicators)" "$(t peer_compute)" "$(m peer_compute)"
printf '%-34s %10.1f %10d   %s\n' "stmon models run" "$(t stmon_models)" "$(m stmon_models)" "$(r "$(t stmon_models)" "$(t peer_compute)")"
printf '%-34s %10.1f %10d   %s of ingest + models (issue 38: ≤ 0.15×)\n' "stmon review run (every unit)" "$(t stmon_review)" "$(m stmon_review)" "$(r "$(t stmon_review)" "$full")"
printf '%-34s %10.1f %10d   %s of the full run\n' "stmon run, nothing new" "$(t night_nothing_new)" "$(m night_nothing_new)" "$(r "$(t night_nothing_new)" "$full")"
printf '%-34s %10.1f %10d   %s of the full run\n' "stmon run, 1 % new ($NEW rows)" "$(t night_1pct)" "$(m night_1pct)" "$(r "$(t night_1pct)" "$full")"
peak() { awk -F': ' '/Maximum resident set size/ {printf "%d", $2 / 1024}' "$1"; }
for n in "${CLUSTER_NS[@]}"; do
  ex=""
  for i in $(seq 1 "$n"); do ex="$ex $(peak "$WORK/executor$n-$i.time")"; done
  printf '%-34s %10.1f %10d   %s of local models; peak MiB of each executor:%s, of the scheduler: %s\n' \
    "stmon models on Ballista, ${n} exec." "$(t "cluster${n}_models")" "$(m "cluster${n}_models")" \
    "$(r "$(t "cluster${n}_models")" "$(t stmon_models)")" "$ex" "$(peak "$WORK/scheduler.time")"
  echo "  against the local engine: $(cat "$WORK/cluster$n-compare.out")"
done
printf '%-34s %10d MiB in %d Parquet files\n' "on disk: peer" "$((peer_bytes / 1048576))" "$peer_files"
printf '%-34s %10d MiB in %d Parquet files   %s (after the nights)\n' "on disk: stmon warehouse" "$((wh_bytes / 1048576))" "$wh_files" "$(r "$wh_bytes" "$peer_bytes")"
cat "$WORK/compare.out"
if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; fi
exit $compare
