#!/usr/bin/env bash
# Ingest benchmark at national scale: rows/s, MB/s, peak RSS.
#
#   bench/ingest.sh [DIR]        (default DIR: target/bench-national)
#
# Generates the national fixtures once (seed 2023, ~2,800 counties, ~480,000
# above-scale firms × 12 months × 2 years), ingests them into a fresh local
# warehouse with the release binary, and prints the figures next to a baseline
# measured in the same run: `wc -l` over the same files (reading the bytes and
# counting lines, the floor for any parser), so the machine's noise cancels out
# in the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-target/bench-national}
cargo build --release --quiet
BIN=target/release/stmon
if [ ! -f "$DIR/divisions.csv" ]; then
  echo "generating national fixtures in $DIR …"
  /usr/bin/time -f "generate: %e s, peak RSS %M KB" "$BIN" fixtures generate --scale national --seed 2023 --out "$DIR" > "$DIR.summary.txt"
fi
BYTES=$(du -sb "$DIR/submissions" | cut -f1)
ROWS=$(awk '/^wrote/ {print $4}' "$DIR.summary.txt" | tr -d ,)
echo "data: $ROWS rows, $((BYTES / 1000000)) MB in $(find "$DIR/submissions" -type f | wc -l) files"

start=$(date +%s.%N)
find "$DIR/submissions" -type f -exec cat {} + | wc -l > /dev/null
base=$(echo "$(date +%s.%N) - $start" | bc)

WH=$(mktemp -d)
start=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$WH.rss" "$BIN" --warehouse "$WH/wh" --divisions "$DIR/divisions.csv" ingest "$DIR/submissions" > "$WH.out"
took=$(echo "$(date +%s.%N) - $start" | bc)
rss=$(cat "$WH.rss")
start=$(date +%s.%N)
"$BIN" --warehouse "$WH/wh" --divisions "$DIR/divisions.csv" ingest "$DIR/submissions" > /dev/null
again=$(echo "$(date +%s.%N) - $start" | bc)

printf 'baseline  wc -l:            %8.1f s  %8.1f MB/s\n' "$base" "$(echo "$BYTES / 1000000 / $base" | bc -l)"
printf 'ingest    stmon ingest:     %8.1f s  %8.1f MB/s  %10.0f rows/s  peak RSS %d MB\n' "$took" "$(echo "$BYTES / 1000000 / $took" | bc -l)" "$(echo "$ROWS / $took" | bc -l)" "$((rss / 1024))"
printf 'ratio     ingest / baseline: %7.1f×\n' "$(echo "$took / $base" | bc -l)"
printf 're-run    (nothing new):    %8.1f s\n' "$again"
cat "$WH.out" | sed -n '1,12p'
rm -rf "$WH" "$WH.rss" "$WH.out"
