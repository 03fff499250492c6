#!/usr/bin/env bash
# The review (审核) at scale: how much of the injected mistakes it finds, how
# many clean values it queries, and what it costs beside ingest and models.
#
#   COUNT=2000 bench/review.sh [shaoxing|province|national]   (default national, 2000 incidents)
#
#   STMON_BIN=target/debug/stmon bench/review.sh shaoxing   skip the release build
#   DIR=/big/disk bench/review.sh …                         where the data and warehouse go
#   KEEP=1 bench/review.sh …                                keep the warehouse
#
# 1. generates the fixtures (seed 2023) once, in the folder bench/scale.sh uses;
# 2. `stmon ingest` into an empty warehouse, `stmon models run`, then the
#    first `stmon review run` (every unit: the clean data's false queries);
# 3. `stmon fixtures mistakes --count COUNT`: the kinds of issue 38 (元 for
#    万元 in one month and from a month to December, an extra digit, a dropped
#    digit, R&D above revenue, value added above revenue), each on its own
#    firm, with each incident's effect on its county's year-end indicators;
# 4. the night: `stmon ingest` of the resubmission and `stmon review run`
#    (the touched firms only);
# 5. prints recall (incidents and typed values queried on their column),
#    the high-impact incidents (≥ 1 % of a county's year-end indicator)
#    found and among the top 20 firms of their county's list (a firm
#    placed by its highest-scored open query: an office calls firms), the share of clean firm-months queried, and the times, peak RSS
#    and the review's share of ingest + models. Exits 1 when a target of
#    issue 38 is missed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SCALE=${1:-national}
COUNT=${COUNT:-2000}
case "$SCALE" in shaoxing|province|national) ;; *) echo "usage: bench/review.sh [shaoxing|province|national]" >&2; exit 2 ;; esac
DIR=${DIR:-$ROOT/target/bench-$SCALE}
mkdir -p "$DIR"
# step, t, m, r, build_bin, fixtures: bench/lib.sh.
. bench/lib.sh
build_bin
fixtures "$SCALE"
WORK=$DIR/review
rm -rf "$WORK"
mkdir -p "$WORK"
ST=(--warehouse "$WORK/wh" --divisions "$DATA/divisions.csv")
echo "machine: $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB; stmon $("$BIN" --version | cut -d' ' -f2) ($BIN); $COUNT incidents"

step ingest "$BIN" "${ST[@]}" ingest "$DATA/submissions"
step models "$BIN" "${ST[@]}" models run
step review_first "$BIN" "${ST[@]}" review run -v
sql() { "$BIN" "${ST[@]}" sql --format csv -c "$1"; }
sql "select unit, period from review.queries where form = 'enterprise_rd' and status = 'open'" > "$WORK/clean-queries.csv"
sql "select count(*) from current.enterprise_rd" > "$WORK/firm-months.csv"
"$BIN" "${ST[@]}" fixtures mistakes --count "$COUNT" --seed 2023 \
  --out "$WORK/mistakes.csv" --manifest "$WORK/manifest.csv" | tee "$WORK/mistakes.out"
step night_ingest "$BIN" "${ST[@]}" ingest "$WORK/mistakes.csv"
step night_review "$BIN" "${ST[@]}" review run -v
sql "select unit, period, \"column\", division, score, status from review.queries where form = 'enterprise_rd'" > "$WORK/queries.csv"

python3 - "$WORK" <<'PY'
import csv, sys
from collections import defaultdict
w = sys.argv[1]
rows = lambda p: list(csv.DictReader(open(f"{w}/{p}", newline="", encoding="utf-8-sig")))
man = rows("manifest.csv")
queries = [q for q in rows("queries.csv") if q["status"] == "open"]
firm_months = int(list(csv.reader(open(f"{w}/firm-months.csv")))[1][0])
clean_first = len({(q["unit"], q["period"]) for q in rows("clean-queries.csv")})
cell = {(q["unit"], q["period"], q["column"]) for q in queries}
typed = {(m["credit_code"], f"2023-{int(m['period_month']):02}") for m in man}
incidents = defaultdict(list)
for m in man:
    incidents[m["incident"]].append(m)
found = {i for i, ms in incidents.items()
         if any((m["credit_code"], f"2023-{int(m['period_month']):02}", m["column"]) in cell for m in ms)}
values = sum((m["credit_code"], f"2023-{int(m['period_month']):02}", m["column"]) in cell for m in man)
high = {i for i, ms in incidents.items() if float(ms[0]["impact"]) >= 0.01}
by_county = defaultdict(list)
for q in queries:
    by_county[q["division"]].append(q)
# A county office calls firms: a firm's place in its county's list is that
# of its highest-scored open query, and the top 20 are 20 firms.
top = set()
for c, qs in by_county.items():
    best = {}
    for q in qs:
        best[q["unit"]] = max(best.get(q["unit"], 0.0), float(q["score"]))
    top |= set(sorted(best, key=lambda u: -best[u])[:20])
high_top = {i for i in high if incidents[i][0]["credit_code"] in top and i in found}
clean = firm_months - len(typed)
false_night = len({(q["unit"], q["period"]) for q in queries} - typed)
n = len(incidents)
print()
print(f"incidents found:        {len(found)} of {n} ({100 * len(found) / n:.1f} %; target ≥ 95 %)")
print(f"typed values queried:   {values} of {len(man)} ({100 * values / len(man):.1f} %)")
print(f"high-impact (≥ 1 %):    {len(high)}; found {len(high & found)}, among their county's top 20 firms {len(high_top)} (target: all)")
print(f"clean firm-months queried, first review: {clean_first} of {firm_months} ({100 * clean_first / firm_months:.3f} %; target ≤ 0.5 %)")
print(f"clean firm-months queried, after the night: {false_night} of {clean} ({100 * false_night / clean:.3f} %)")
ok = len(found) >= 0.95 * n and high_top == high and clean_first <= 0.005 * firm_months and false_night <= 0.005 * clean
open(f"{w}/targets", "w").write("met" if ok else "missed")
PY

first_base=$(echo "$(t ingest) $(t models)" | awk '{print $1 + $2}')
echo
printf '%-34s %10s %10s   %s\n' "step" "wall s" "peak MiB" "share"
printf '%-34s %10.1f %10d\n' "stmon ingest (empty warehouse)" "$(t ingest)" "$(m ingest)"
printf '%-34s %10.1f %10d\n' "stmon models run" "$(t models)" "$(m models)"
printf '%-34s %10.1f %10d   %s of ingest + models (target ≤ 0.15×)\n' "stmon review run, first (every unit)" "$(t review_first)" "$(m review_first)" "$(r "$(t review_first)" "$first_base")"
printf '%-34s %10.1f %10d\n' "stmon ingest, the night ($COUNT firms)" "$(t night_ingest)" "$(m night_ingest)"
printf '%-34s %10.1f %10d   %s of the first review\n' "stmon review run, the night" "$(t night_review)" "$(m night_review)" "$(r "$(t night_review)" "$(t review_first)")"
grep -h "review:" "$WORK/review_first.out" "$WORK/night_review.out" | sed 's/^/  /'
share_ok=$(echo "$(t review_first) $first_base $(m review_first) $(m night_review)" | awk '{print ($1 <= 0.15 * $2 && $3 <= 2048 && $4 <= 2048) ? "met" : "missed"}')
status=0
if [ "$(cat "$WORK/targets")" != met ] || [ "$share_ok" != met ]; then
  echo "a target of issue 38 is missed" >&2
  status=1
fi
if [ -z "${KEEP:-}" ]; then rm -rf "$WORK/wh"; fi
exit $status
