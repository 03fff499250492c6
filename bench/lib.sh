# Shared by the benchmarks (sourced): timing a step and reading the times back.
#
# step LABEL CMD…  runs CMD under /usr/bin/time -v, its output to $WORK/LABEL.out,
#                  and records "LABEL wall_s peak_kb rc" in $WORK/times. Exit 0
#                  or 1 (a data-quality failure) go on; anything else stops.
# t LABEL          wall seconds of a step
# m LABEL          peak RSS of a step, MiB
# r A B            A / B as "1.23×"
# build_bin        sets BIN: $STMON_BIN, else a release build with the cluster feature
# fixtures SCALE   sets DATA=$DIR/data, generating the fixtures there (seed 2023) once
step() {
  local label=$1
  shift
  echo "… $label" >&2
  local rc=0
  /usr/bin/time -v -o "$WORK/$label.time" "$@" > "$WORK/$label.out" 2>&1 || rc=$?
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s}' "$WORK/$label.time")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/$label.time")
  echo "$label $wall $rss $rc" >> "$WORK/times"
  if [ "$rc" -gt 1 ]; then
    echo "$label exited $rc:" >&2
    tail -20 "$WORK/$label.out" >&2
    exit 1
  fi
}
t() { awk -v l="$1" '$1 == l {print $2}' "$WORK/times"; }
m() { awk -v l="$1" '$1 == l {printf "%d", $3 / 1024}' "$WORK/times"; }
r() { echo "$1 $2" | awk '{ if ($2 > 0) printf "%.2f×", $1 / $2; else print "–" }'; }
build_bin() {
  if [ -z "${STMON_BIN:-}" ]; then
    cargo build --release --quiet --bin stmon --features cluster
    STMON_BIN=$ROOT/target/release/stmon
  fi
  BIN=$STMON_BIN
}
fixtures() {
  DATA=$DIR/data
  if [ ! -f "$DATA/divisions.csv" ]; then
    echo "generating $1 fixtures in $DATA …"
    "$BIN" fixtures generate --scale "$1" --seed 2023 --out "$DATA" > "$DIR/fixtures.txt"
  fi
}
