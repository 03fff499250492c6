#!/usr/bin/env bash
# Hostile files against stmon's limits (crates/ingest/src/limits.rs): each is
# generated here, ingested into a fresh warehouse by the release binary under
# /usr/bin/time -v, and must be rejected whole, with the limit it broke, in
# bounded time and memory.
#
#   bench/hostile.sh            (STMON_BIN=… to use another binary)
#
# Prints per file: its size on disk and what it inflates to, wall time, peak
# RSS, exit status and the reason stmon gave.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
if [ -z "${STMON_BIN:-}" ]; then
  cargo build --release --quiet --bin stmon
  STMON_BIN=$ROOT/target/release/stmon
fi
DIR=${DIR:-$ROOT/target/bench-hostile}
rm -rf "$DIR"
mkdir -p "$DIR/files"
python3 - "$DIR/files" <<'PY'
import os, sys, zipfile
out = sys.argv[1]
HEADER = "报告期,园区编号,园区名称,级别,所在区县代码,用地面积(亩),营业收入,工业增加值,税收,综合能耗(吨标准煤),R&D经费支出,高新技术企业数,填报时间"
ROW = "2023,Z{},{},省级,330602,12000,1000,600,50,30,20,3,2024-01-10 09:00\n"
WB = b'<workbook xmlns:r="r"><sheets><sheet name="s" sheetId="1" r:id="rId1"/></sheets></workbook>'
MiB = 1 << 20

def workbook(name, sheet_chunks, strings_chunks=None):
    with zipfile.ZipFile(os.path.join(out, name), "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("xl/workbook.xml", WB)
        if strings_chunks is not None:
            with z.open("xl/sharedStrings.xml", "w", force_zip64=True) as f:
                for c in strings_chunks:
                    f.write(c)
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as f:
            for c in sheet_chunks:
                f.write(c)

def bomb():  # one row of long inline strings, 1.5 GB of XML
    yield b'<worksheet><sheetData><row r="1"><c t="inlineStr"><is><t>'
    for _ in range(1536):
        yield b"x" * MiB
    yield b"</t></is></c></row></sheetData></worksheet>"
workbook("bomb_1_5GB_row.xlsx", bomb())

def strings():  # 100 million empty shared strings, 500 MB of XML
    yield b"<sst>"
    for _ in range(100):
        yield b"<si/>" * 1_000_000
    yield b"</sst>"
header = "".join(f'<c t="inlineStr"><is><t>{h.replace("&", "&amp;")}</t></is></c>' for h in HEADER.split(",")).encode()
workbook("strings_100M.xlsx", [b'<worksheet><sheetData><row r="1">' + header + b"</row></sheetData></worksheet>"], strings())

def wide():  # a row with a cell a million columns out
    yield b'<worksheet><sheetData><row r="1">' + header + b"</row>"
    yield b'<row r="2"><c r="BDWGN2" t="inlineStr"><is><t>x</t></is></c></row></sheetData></worksheet>'
workbook("wide_1M_columns.xlsx", wide())

with open(os.path.join(out, "name_200MB.csv"), "w", encoding="utf-8") as f:
    f.write(HEADER + "\n")
    f.write(ROW.format(1, "某某科技有限公司"))
    f.write(ROW.format(2, "x" * (200 * 1000 * 1000)))
with open(os.path.join(out, "wide_1M_columns.csv"), "w", encoding="utf-8") as f:
    f.write(HEADER + "\n")
    f.write(ROW.format(1, "甲").rstrip("\n") + "," * 1_000_000 + "\n")
with open(os.path.join(out, "name_201_chars.csv"), "w", encoding="utf-8") as f:
    f.write(HEADER + "\n")
    f.write(ROW.format(1, "园" * 201))
    f.write(ROW.format(2, "园" * 200))
PY

printf '%-24s %9s %11s %8s %10s %4s  %s\n' file "on disk" inflated wall "peak RSS" exit "stmon's reason"
for f in "$DIR"/files/*; do
  name=$(basename "$f")
  case $name in
    *.xlsx) inflated=$(python3 -c "import sys, zipfile; print(sum(i.file_size for i in zipfile.ZipFile(sys.argv[1]).infolist()))" "$f") ;;
    *) inflated=$(stat -c %s "$f") ;;
  esac
  wh=$DIR/wh-$name
  set +e
  /usr/bin/time -v "$STMON_BIN" --warehouse "$wh" ingest "$f" > "$DIR/$name.out" 2> "$DIR/$name.time"
  rc=$?
  set -e
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$DIR/$name.time")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f MiB", $2 / 1024}' "$DIR/$name.time")
  reason=$("$STMON_BIN" --warehouse "$wh" sql --format csv -c \
    "select coalesce('row ' || cast(row_number as varchar), 'file') || ': ' || reason as r from audit.quarantine order by row_number nulls first limit 2" 2>/dev/null \
    | tail -n +2 | tr '\n' ' ' | cut -c1-200)
  printf '%-24s %9s %11s %8s %10s %4s  %s\n' "$name" "$(numfmt --to=iec "$(stat -c %s "$f")")" "$(numfmt --to=iec "$inflated")" "$wall" "$rss" "$rc" "$reason"
done
