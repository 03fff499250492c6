#!/usr/bin/env bash
# Nightly-run benchmark: a night with 1 % new rows on top of a full
# warehouse, against the full run that built it (same binary, same run).
#
#   bench/nightly.sh [SCALE] [DIR]     SCALE: shaoxing | province | national
#                                      (default national; DIR default target/bench-SCALE)
#   STMON_BIN=target/debug/stmon bench/nightly.sh shaoxing   # skip the release build
#   STEPS="ingest, freshness, models, tests" bench/nightly.sh  # the data work only
#
# The targets and schemes are Shaoxing's; at province or national scale the
# progress and assessment steps have no targets for most counties, so the
# national figures in the closing notes use STEPS without them (the
# assessment's own benchmark is `cargo bench -p stmon-assess`).
#
# 1. generates the fixtures (seed 2023) once;
# 2. full run: `stmon run` of a pipeline over them into a fresh warehouse;
# 3. no-op run: the same again (nothing new);
# 4. 1 % night: copies 1 % of the enterprise_rd rows, re-dated as corrections
#    submitted later, into the inbox, and runs again.
# Prints each time, peak RSS and the ratios to the full run.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-national}
DIR=${2:-target/bench-$SCALE}
if [ -z "${STMON_BIN:-}" ]; then
  cargo build --release --quiet
  STMON_BIN=target/release/stmon
fi
BIN=$STMON_BIN
if [ ! -f "$DIR/divisions.csv" ]; then
  echo "generating $SCALE fixtures in $DIR …"
  "$BIN" fixtures generate --scale "$SCALE" --seed 2023 --out "$DIR" > "$DIR.summary.txt"
fi
WORK=$(mktemp -d)
mkdir -p "$WORK/inbox"
cp -r "$DIR/submissions/." "$WORK/inbox/"
ROOT=$(pwd)
cat > "$WORK/pipeline.yaml" <<YAML
name: bench-$SCALE
year: 2023
inbox: $WORK/inbox
steps: [${STEPS:-ingest, freshness, models, tests, progress, assessment, reports}]
targets: $ROOT/pipelines/targets-2023.yaml
schemes: [$ROOT/pipelines/assessment-counties-2023.yaml, $ROOT/pipelines/assessment-zones-2023.yaml, $ROOT/pipelines/assessment-institutes-2023.yaml]
reports: $WORK/reports
freshness:
  as_of: 2024-01-31
  rules:
    - {form: enterprise_rd, due_days: 15, severity: warn}
YAML
run() {
  local label=$1
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$WORK/rss" "$BIN" --warehouse "$WORK/wh" --divisions "$DIR/divisions.csv" \
    run "$WORK/pipeline.yaml" > "$WORK/$label.out" 2>&1 || echo "($label exited $?)"
  end=$(date +%s.%N)
  echo "$(echo "$end - $start" | bc) $(( $(cat "$WORK/rss") / 1024 ))"
}
read -r full full_rss < <(run full)
read -r noop noop_rss < <(run noop)
# The night's file: 1 % of the enterprise_rd rows, re-dated as later
# corrections (the same file bench/scale.sh's night uses).
ROWS=$("$(bench/peer/venv.sh)" bench/peer/peer.py corrections --data "$DIR/submissions" \
  --share 0.01 --out "$WORK/inbox/night-corrections.csv")
read -r night night_rss < <(run night)
printf 'full run (empty warehouse):   %8.1f s  peak RSS %6d MB\n' "$full" "$full_rss"
printf 'no-op run (nothing new):      %8.1f s  peak RSS %6d MB  %6.3f× full\n' "$noop" "$noop_rss" "$(echo "$noop / $full" | bc -l)"
printf '1%% night (%s new rows):  %8.1f s  peak RSS %6d MB  %6.3f× full\n' "$ROWS" "$night" "$night_rss" "$(echo "$night / $full" | bc -l)"
for r in full noop night; do grep -h "^✓\|^!\|^✗" "$WORK/$r.out" | sed "s/^/  $r: /"; done
# The night's model builds, with the partitions an incremental model rebuilt.
grep -h "^  built" "$WORK/night.out" | sed "s/^/  night:/"
rm -rf "$WORK"
