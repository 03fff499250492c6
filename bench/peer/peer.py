#!/usr/bin/env python3
"""The peer baseline: stmon's job as a short Python script around DuckDB.

What a bureau's analyst would write instead of adopting stmon, doing *the
same work* on the same generated files, so that `bench/scale.sh` can time
both side by side:

  peer.py load    --data DIR --out PEER     every form typed and validated with
                                            the contract's checks, into Parquet
                                            plus a quarantine and warnings
  peer.py compute --out PEER                marts.indicators for every year ×
                                            as-of month × division, with
                                            stmon's own model SQL (sql/)
  peer.py compare --out PEER --stmon CSV    the peer's indicators against
                                            stmon's, cell by cell; exit 1 on
                                            any difference

The rules follow ../shared/spec/submissions.md and the project's form YAML
(schemas/forms), read at run time: no column is named here except the
contract's shared ones (submitted_at, withdrawn, period). What the peer does
not do (it is a baseline, not a product): no row numbers through quoted line
breaks or blank lines (a record's number is its position + 1, exact on the
generated files), no crash safety, no re-run detection.
"""

import argparse
import codecs
import glob
import os
import sys
import tempfile
import time
import unicodedata

import duckdb
import yaml

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
BLANKS = ("", "—", "--", "-", "－", "——", "－－")
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def log(msg):
    print(f"peer: {msg}", file=sys.stderr, flush=True)


def q(s):
    return "'" + str(s).replace("'", "''") + "'"


def normalize(label):
    return unicodedata.normalize("NFKC", label).strip()


def load_forms(schemas):
    forms = {}
    for path in sorted(glob.glob(os.path.join(schemas, "forms", "*.yaml"))):
        with open(path, encoding="utf-8") as fh:
            f = yaml.safe_load(fh)
        forms[f["name"]] = f
    return forms


def header_map(form, headers):
    """Form column per file column (None for an extra), and the missing required."""
    by_label = {}
    for c in form["columns"]:
        by_label[c["name"].lower()] = c["name"]
        by_label[normalize(c["label"])] = c["name"]
    mapping = []
    for h in headers:
        n = normalize(h)
        mapping.append(by_label.get(n.lower(), by_label.get(n)))
    present = set(m for m in mapping if m)
    missing = [c["name"] for c in form["columns"] if not c.get("optional") and c["name"] not in present]
    return mapping, missing


def detect_utf8(path):
    dec = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as fh:
        try:
            while True:
                chunk = fh.read(1 << 22)
                if not chunk:
                    dec.decode(b"", final=True)
                    return True
                dec.decode(chunk)
        except UnicodeDecodeError:
            return False


def to_utf8_csv(path, tmp):
    """A CSV the DuckDB reader takes: GB18030 transcoded, XLSX written out."""
    if path.lower().endswith(".xlsx"):
        import openpyxl

        out = os.path.join(tmp, f"{len(os.listdir(tmp))}.csv")
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        ws = wb.worksheets[0]
        import csv

        with open(out, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            for row in ws.iter_rows(values_only=True):
                cells = []
                for v in row:
                    if v is None:
                        cells.append("")
                    elif isinstance(v, bool):
                        cells.append("Y" if v else "N")
                    elif isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
                        cells.append(str(int(v)))
                    elif hasattr(v, "strftime"):
                        cells.append(v.strftime("%Y-%m-%d %H:%M:%S") if (v.hour or v.minute or v.second) else v.strftime("%Y-%m-%d"))
                    else:
                        cells.append(str(v))
                if any(c.strip() for c in cells):
                    w.writerow(cells)
        wb.close()
        return out
    if detect_utf8(path):
        return path
    out = os.path.join(tmp, f"{len(os.listdir(tmp))}.csv")
    with open(path, "rb") as src, open(out, "w", encoding="utf-8", newline="") as dst:
        dec = codecs.getincrementaldecoder("gb18030")()
        while True:
            chunk = src.read(1 << 22)
            if not chunk:
                dst.write(dec.decode(b"", final=True))
                break
            dst.write(dec.decode(chunk))
    return out


def read_header(csv_path):
    import csv

    with open(csv_path, encoding="utf-8-sig", newline="") as fh:
        return next(csv.reader(fh), [])


# ---------------------------------------------------------------- typing


def trimmed(col):
    # spaces, tabs, line breaks and the ideographic space
    return f"trim(\"{col}\", ' ' || chr(9) || chr(10) || chr(13) || chr(12288))"


def typed_expr(c, x):
    """SQL of the value of cell x (trimmed text, not blank), null when it does not parse."""
    t = c["type"]
    if t == "text":
        n = c.get("max_length")
        return x if n is None else f"case when length({x}) <= {n} then {x} end"
    if t == "credit_code":
        u = f"upper({x})"
        checksum = " + ".join(
            f"(instr('{ALPHABET}', substr({u}, {i + 1}, 1)) - 1) * {w}" for i, w in enumerate(WEIGHTS)
        )
        return (
            f"case when regexp_full_match({u}, '[{ALPHABET}]{{18}}') "
            f"and substr('{ALPHABET}', ((31 - ({checksum}) % 31) % 31) + 1, 1) = substr({u}, 18, 1) then {u} end"
        )
    if t == "county_code":
        # the division lookup is joined beside the cell: "_status_<col>", "_current_<col>"
        n = c["name"]
        return f"case when \"_status_{n}\" in ('county', 'retired') then \"_current_{n}\" end"
    if t in ("amount", "decimal", "count"):
        # decimal(18, 4) first: DuckDB parses it ~50× faster than decimal(38, 4)
        digits = f"replace(replace({x}, ',', ''), '，', '')"
        return f"coalesce(try_cast({digits} as decimal(18, 4)), try_cast({digits} as decimal(38, 4)))"
    if t == "bool":
        v = f"lower({x})"
        return f"case when {v} in ('y', '是', 'true', '1') then true when {v} in ('n', '否', 'false', '0') then false end"
    if t == "date":
        ok = f"regexp_full_match({x}, '(\\d{{4}}-\\d{{1,2}}-\\d{{1,2}}|\\d{{4}}/\\d{{1,2}}/\\d{{1,2}})( 00:00:00)?')"
        return f"case when {ok} then try_cast(try_strptime({x}, ['%Y-%m-%d', '%Y/%m/%d', '%Y-%m-%d %H:%M:%S']) as date) end"
    if t == "timestamp":
        fmts = [f"%Y{s}%m{s}%d{t_}%H:%M{sec}" for s in "-/" for t_ in (" ", "T") for sec in (":%S", "")]
        ok = f"regexp_full_match({x}, '\\d{{4}}[-/]\\d{{1,2}}[-/]\\d{{1,2}}[ T]\\d{{1,2}}:\\d{{2}}(:\\d{{2}})?')"
        return f"case when {ok} then try_strptime({x}, [{', '.join(q(f) for f in fmts)}]) end"
    if t == "period_month":
        m = f"regexp_extract({x}, '^(\\d{{4}})[-/](\\d{{1,2}})$', ['y', 'm'])"
        return f"case when {m}.y <> '' and cast({m}.m as int) between 1 and 12 then {m}.y || '-' || lpad({m}.m, 2, '0') end"
    if t == "period_quarter":
        u = f"upper({x})"
        return f"case when regexp_full_match({u}, '\\d{{4}}-?Q[1-4]') then substr({u}, 1, 4) || '-Q' || right({u}, 1) end"
    if t == "period_year":
        v = f"regexp_replace({x}, '\\.0$', '')"
        return f"case when regexp_full_match({v}, '\\d{{4}}') then {v} end"
    if t == "enum":
        whens = " ".join(f"when {x} in ({q(v['id'])}, {q(v['label'])}) then {q(v['id'])}" for v in c["values"])
        return f"case {whens} end"
    raise SystemExit(f"peer: unknown column type {t}")


def reason_expr(c, x, v):
    """SQL of why cell x (not blank) with value v is rejected, or null."""
    t = c["type"]
    if t == "text":
        n = c.get("max_length")
        return "null" if n is None else f"case when length({x}) > {n} then 'longer than {n} characters' end"
    if t == "county_code":
        n = c["name"]
        return (
            f"case coalesce(\"_status_{n}\", 'unknown') when 'not_county' then {x} || ' is not a county-level division' "
            f"when 'unknown' then 'unknown county code ' || {x} end"
        )
    if t == "amount":
        return f"case when {v} is null then 'not a number' when {v} < 0 then 'amount must be >= 0' end"
    if t == "count":
        return (
            f"case when {v} is null then 'not a count' when {v} <> floor({v}) then 'a count must be a whole number' "
            f"when {v} < 0 then 'a count must be >= 0' end"
        )
    if t == "decimal":
        conds = [f"when {v} is null then 'not a number'"]
        if c.get("min") is not None:
            conds.append(f"when {v} < {c['min']} then 'below minimum'")
        if c.get("min_exclusive") is not None:
            conds.append(f"when {v} <= {c['min_exclusive']} then 'must be above minimum'")
        return f"case {' '.join(conds)} end"
    return f"case when {v} is null then 'not a valid {t}' end"


def duck_type(c):
    return {
        "amount": "decimal(38, 4)",
        "decimal": "decimal(38, 4)",
        "count": "bigint",
        "bool": "boolean",
        "date": "date",
        "timestamp": "timestamp",
    }.get(c["type"], "varchar")


# Types whose cells repeat a lot (a firm's code in each of its 24 monthly
# rows, a few thousand submission times): typed once per distinct value in a
# lookup table (lookup_sql), joined to the rows.
LOOKED_UP = ("credit_code", "timestamp", "date", "period_month", "period_quarter", "period_year")


def lookup_sql(c, source):
    n = c["name"]
    x = "x"
    return (
        f"create or replace temp table lk_{n} as select x, {typed_expr(c, x)} as v from "
        f"(select distinct case when {trimmed(n)} in ({', '.join(q(b) for b in BLANKS)}) then null else {trimmed(n)} end as x "
        f"from {source}) where x is not null"
    )


def validate_sql(form, source):
    """SQL of the typed rows of `source` (all text), each with its list of problems."""
    cols = form["columns"]
    key = set(form["key"])
    names = [c["name"] for c in cols]
    # each cell trimmed once, a blank (empty or a dash) as null
    cells = ", ".join(
        f"case when {trimmed(n)} in ({', '.join(q(b) for b in BLANKS)}) then null else {trimmed(n)} end as \"{n}\""
        for n in names
    )
    joins, looked = [], []
    for i, c in enumerate(cols):
        if c["type"] in LOOKED_UP:
            n = c["name"]
            joins.append(f"left join lk_{n} l{i} on l{i}.x = c.\"{n}\"")
            looked.append(f"l{i}.v as \"_lk_{n}\"")
        if c["type"] == "county_code":
            n = c["name"]
            joins.append(f"left join divisions_lookup d{i} on d{i}.code = regexp_replace(c.\"{n}\", '\\.0$', '')")
            looked.append(f"d{i}.status as \"_status_{n}\", d{i}.current as \"_current_{n}\"")
    wd = "(lower(\"withdrawn\") in ('y', '是', 'true', '1'))" if "withdrawn" in names else "false"
    values, selects, problems = [], [], []
    for c in cols:
        n = c["name"]
        x, v = f"\"{n}\"", f"\"_v_{n}\""
        default = c.get("default")
        blank_value = typed_expr(c, q(default)) if default is not None else "null"
        typed = f"\"_lk_{n}\"" if c["type"] in LOOKED_UP else typed_expr(c, x)
        values.append(f"case when {x} is null then {blank_value} else {typed} end as {v}")
        reason = reason_expr(c, x, v)
        lenient = "_wd" if n not in key and n != "submitted_at" else "false"
        # a withdrawal keeps the other cells that parse and leaves the rest null
        selects.append(
            f"cast(case when {x} is not null and {lenient} and ({reason}) is not null then null else {v} end as {duck_type(c)}) as {x}"
        )
        required = "false" if c.get("optional") else f"not {lenient}"
        problems.append(
            f"case when {x} is null then case when {required} then {q(n + ': required value is blank')} end "
            f"when not {lenient} then {q(n + ': ')} || ({reason}) end"
        )
    return (
        f"with c as (select _file, _row, {cells} from {source}),\n"
        f"j as (select c.*, coalesce({wd}, false) as _wd{''.join(', ' + l for l in looked)} from c {' '.join(joins)}),\n"
        f"v as (select *, {', '.join(values)} from j)\n"
        f"select _file, _row, {', '.join(selects)}, list_filter([{', '.join(problems)}], p -> p is not null) as _problems from v"
    )


def rules_sql(form):
    out = []
    for r in form.get("rules", []):
        if "le" in r:
            a, b = r["column"], r["le"]
            out.append(f"case when \"{a}\" > \"{b}\" then {q(a + ' exceeds ' + b)} end")
        elif "required_when" in r:
            a, w = r["column"], r["required_when"]
            vals = ", ".join(q(v) for v in w["in"])
            out.append(f"case when \"{a}\" is null and \"{w['column']}\" in ({vals}) then {q(a + ' is required')} end")
    return out


class Timed:
    """A connection that logs each statement slower than half a second."""

    def __init__(self, con, verbose):
        self.con, self.verbose = con, verbose

    def execute(self, sql, *a):
        t = time.time()
        r = self.con.execute(sql, *a)
        if self.verbose and time.time() - t > 0.5:
            log(f"{time.time() - t:6.1f} s  {' '.join(sql.split())[:100]}")
        return r


def cmd_load(args):
    forms = load_forms(args.schemas)
    con = duckdb.connect(os.path.join(args.out, "load.duckdb") if args.disk else ":memory:")
    con.execute(f"set threads = {os.cpu_count()}")
    con.execute(f"set temp_directory = {q(os.path.join(args.out, 'tmp'))}")
    if args.memory_limit:
        con.execute(f"set memory_limit = {q(args.memory_limit)}")
    os.makedirs(os.path.join(args.out, "raw"), exist_ok=True)

    # The division table: each code's status and current code (retired chains followed).
    import csv

    with open(args.divisions, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by = {r["code"]: r for r in rows}
    has_children = {r["parent_code"] for r in rows if r["parent_code"] and not r["successor"]}

    def current(code):
        seen = set()
        while by.get(code, {}).get("successor"):
            if code in seen:
                raise SystemExit(f"peer: successor cycle at {code}")
            seen.add(code)
            code = by[code]["successor"]
        return code

    lookup = []
    for r in rows:
        if r["successor"]:
            lookup.append((r["code"], "retired", current(r["code"])))
        elif r["code"] in has_children:
            lookup.append((r["code"], "not_county", None))
        else:
            lookup.append((r["code"], "county", r["code"]))
    con.execute("create table divisions_lookup (code varchar, status varchar, current varchar)")
    con.executemany("insert into divisions_lookup values (?, ?, ?)", lookup)

    con.execute(
        "create table quarantine (file varchar, form varchar, row bigint, column_name varchar, reason varchar)"
    )
    con.execute("create table warnings (file varchar, form varchar, row bigint, column_name varchar, reason varchar)")
    files = sorted(
        p
        for p in glob.glob(os.path.join(args.data, "**", "*"), recursive=True)
        if p.lower().endswith((".csv", ".xlsx"))
    )
    loaded = {name: [] for name in forms}
    tmp = tempfile.mkdtemp(prefix="peer-", dir=args.out)
    t0 = time.time()
    for path in files:
        rel = os.path.relpath(path, args.data)
        src = to_utf8_csv(path, tmp)
        header = read_header(src)
        fits = []
        for name, form in forms.items():
            mapping, missing = header_map(form, header)
            if not missing:
                fits.append((name, mapping))
        if len(fits) != 1:
            con.execute(
                "insert into quarantine values (?, null, null, null, ?)",
                [rel, "the header fits no form" if not fits else "the header fits more than one form"],
            )
            continue
        name, mapping = fits[0]
        names = [m if m else f"_extra_{i}" for i, m in enumerate(mapping)]
        columns = "{" + ", ".join(f"{q(n)}: 'VARCHAR'" for n in names) + "}"
        table = f"s_{name}"
        form = forms[name]
        want = [c["name"] for c in form["columns"]]
        proj = ", ".join(f"\"{c}\"" if c in names else f"null::varchar as \"{c}\"" for c in want)
        reader = (
            f"read_csv({q(src)}, header = true, auto_detect = false, delim = ',', quote = '\"', escape = '\"', "
            f"columns = {columns}, null_padding = true)"
        )
        # a table keeps the file's order (preserve_insertion_order): rowid + 2 is the row number
        con.execute(f"create or replace temp table one_file as select {proj} from {reader}")
        if not loaded[name]:
            con.execute(f"create table {table} as select {q(rel)} as _file, rowid + 2 as _row, * from one_file")
        else:
            con.execute(f"insert into {table} select {q(rel)}, rowid + 2, * from one_file")
        loaded[name].append(rel)
    log(f"read {len(files)} files in {time.time() - t0:.1f} s")

    totals = {}
    con = Timed(con, args.verbose)
    for name, form in forms.items():
        if not loaded[name]:
            continue
        table = f"s_{name}"
        cols = [c["name"] for c in form["columns"]]
        # typed + problems of each cell, then the cross-field rules on the typed values
        rules = rules_sql(form)
        withdrawn = "coalesce(\"withdrawn\", false)" if "withdrawn" in cols else "false"
        for c in form["columns"]:
            if c["type"] in LOOKED_UP:
                con.execute(lookup_sql(c, table))
        typed = validate_sql(form, table)
        if rules:
            # the cross-field rules, on the typed values of rows whose cells all passed
            typed = (
                f"select * exclude (_problems), case when len(_problems) = 0 and not {withdrawn} "
                f"then list_filter([{', '.join(rules)}], p -> p is not null) else _problems end as _problems from ({typed})"
            )
        con.execute(f"create table t_{name} as {typed}")
        con.execute(
            f"insert into quarantine select _file, {q(name)}, _row, split_part(p, ':', 1), p "
            f"from (select _file, _row, unnest(_problems) as p from t_{name} where len(_problems) > 0)"
        )
        # retired county codes: accepted, with a warning
        for c in form["columns"]:
            if c["type"] == "county_code":
                n = c["name"]
                con.execute(
                    f"insert into warnings select s._file, {q(name)}, s._row, {q(n)}, 'retired county code mapped to its successor' "
                    f"from {table} s join divisions_lookup d on d.code = regexp_replace({trimmed(n)}, '\\.0$', '') "
                    f"join t_{name} t on t._file = s._file and t._row = s._row "
                    f"where d.status = 'retired' and len(t._problems) = 0"
                )
        hash_cols = ", ".join(f"\"{c}\"" for c in cols)
        con.execute(
            f"create table a_{name} as select {', '.join(chr(34) + c + chr(34) for c in cols)}, "
            f"cast(hash({hash_cols}) as varchar) as _row_hash, '0' as _batch_id, _file as _source_file, "
            f"md5(_file) as _source_sha256, _row as _row_number from t_{name} where len(_problems) = 0"
        )
        # conflicts: same key and submitted_at, different values: both rejected
        key = ", ".join(f"\"{k}\"" for k in form["key"])
        on = " and ".join(f"a.\"{k}\" = g.\"{k}\"" for k in form["key"])
        con.execute(
            f"insert into quarantine select a._source_file, {q(name)}, a._row_number, null, 'conflict' "
            f"from a_{name} a join (select {key}, submitted_at from a_{name} group by {key}, submitted_at "
            f"having min(_row_hash) <> max(_row_hash)) g on {on} and a.submitted_at = g.submitted_at"
        )
        # year-to-date forms: a cumulative value lower than the unit's previous period
        if form.get("frequency") in ("monthly", "quarterly") and "period" in form["key"]:
            unit = [k for k in form["key"] if k != "period"]
            measures = [c["name"] for c in form["columns"] if c["type"] in ("amount", "count", "decimal")]
            if form["frequency"] == "monthly":
                prev = "case when cast(substr(t.period, 6, 2) as int) > 1 then substr(t.period, 1, 5) || lpad(cast(cast(substr(t.period, 6, 2) as int) - 1 as varchar), 2, '0') end"
            else:
                prev = "case when cast(substr(t.period, 7, 1) as int) > 1 then substr(t.period, 1, 6) || cast(cast(substr(t.period, 7, 1) as int) - 1 as varchar) end"
            latest = ", ".join(f"arg_max(\"{m}\", submitted_at) as \"{m}\"" for m in measures)
            units = ", ".join(f"\"{u}\"" for u in unit)
            uon = " and ".join(f"t.\"{u}\" = p.\"{u}\"" for u in unit)
            lower = ", ".join(f"case when t.\"{m}\" < p.\"{m}\" then {q(m)} end" for m in measures)
            con.execute(
                f"insert into warnings select _source_file, {q(name)}, _row_number, m, 'year-to-date ' || m || ' lower than the previous period' "
                f"from (select t._source_file, t._row_number, unnest(list_filter([{lower}], x -> x is not null)) as m "
                f"from a_{name} t join (select {units}, period, {latest} from a_{name} where not {withdrawn} group by {units}, period) p "
                f"on {uon} and p.period = {prev} where not coalesce(t.withdrawn, false))"
            )
        out = os.path.join(args.out, "raw", f"{name}.parquet")
        con.execute(f"copy a_{name} to {q(out)} (format parquet, compression zstd)")
        totals[name] = con.execute(f"select count(*) from a_{name}").fetchone()[0]
        for t in (table, f"t_{name}", f"a_{name}"):
            con.execute(f"drop table {t}")
    con.execute(f"copy quarantine to {q(os.path.join(args.out, 'quarantine.parquet'))} (format parquet)")
    con.execute(f"copy warnings to {q(os.path.join(args.out, 'warnings.parquet'))} (format parquet)")
    rejected = con.execute("select count(distinct (file, row)) from quarantine where row is not null").fetchone()[0]
    files_rejected = con.execute("select count(*) from quarantine where row is null").fetchone()[0]
    warned = con.execute("select count(*) from warnings").fetchone()[0]
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    for name, n in sorted(totals.items()):
        print(f"loaded {name}: {n} rows")
    print(f"rejected rows: {rejected}; rejected files: {files_rejected}; warnings: {warned}")


# ---------------------------------------------------------------- compute


def current_view_sql(form, raw):
    """stmon's current view (crates/warehouse/src/session.rs), the same SQL but
    for DataFusion's `first_value(x order by y desc)`, DuckDB's `arg_max(x, y)`."""
    # Quoted: stmon's own form review_response has a column named `column`.
    key = ", ".join(f'"{k}"' for k in form["key"])
    on = " and ".join(f'a."{k}" = p."{k}"' for k in form["key"])
    cols = ", ".join(f'a."{c["name"]}"' for c in form["columns"])
    return (
        f"with v as (select *, concat(_batch_id, '|', lpad(cast(_row_number as varchar), 12, '0'), '|', _source_sha256) as _pick from {raw}),\n"
        f"g as (select {key}, submitted_at, min(_row_hash) = max(_row_hash) as _agree, min(_pick) as _pick from v group by {key}, submitted_at),\n"
        f"p as (select {key}, arg_max(_pick, submitted_at) filter (where _agree and submitted_at is not null) as _pick from g group by {key})\n"
        f"select {cols}, a._row_hash, a._batch_id, a._source_file, a._source_sha256, a._row_number\n"
        f"from p join v a on {on} and a._pick = p._pick\n"
        f"where not coalesce(a.withdrawn, false)"
    )


def models(sql_dir):
    """(layer, name, sql) of every model, in an order where each follows what it reads."""
    found = {}
    for layer in ("staging", "intermediate", "marts"):
        for path in sorted(glob.glob(os.path.join(sql_dir, layer, "*.sql"))):
            name = os.path.splitext(os.path.basename(path))[0]
            with open(path, encoding="utf-8") as fh:
                found[f"{layer}.{name}"] = fh.read()
    import re

    deps = {
        m: {f"{a}.{b}" for a, b in re.findall(r"\b(staging|intermediate|marts)\.(\w+)", re.sub(r"--[^\n]*", "", s))} & (found.keys() - {m})
        for m, s in found.items()
    }
    order, done = [], set()
    while len(order) < len(found):
        ready = [m for m in found if m not in done and deps[m] <= done]
        if not ready:
            raise SystemExit("peer: the models' references form a cycle")
        for m in ready:
            order.append(m)
            done.add(m)
    return [(m.split(".")[0], m.split(".")[1], found[m]) for m in order]


def cmd_compute(args):
    forms = load_forms(args.schemas)
    con = duckdb.connect()
    con.execute(f"set threads = {os.cpu_count()}")
    con.execute(f"set temp_directory = {q(os.path.join(args.out, 'tmp'))}")
    if args.memory_limit:
        con.execute(f"set memory_limit = {q(args.memory_limit)}")
    # the one dialect difference the models meet: DataFusion divides integers as integers
    con.execute("set integer_division = true")
    for s in ("raw", "current", "ref", "review", "staging", "intermediate", "marts"):
        con.execute(f"create schema {s}")
    # No review has run here: review.queries as stmon has it before the first
    # (crates/warehouse/src/session.rs, NO_QUERIES).
    con.execute(
        "create view review.queries as select cast(null as varchar) as form, cast(null as varchar) as unit, "
        "cast(null as varchar) as period, cast(null as varchar) as \"column\", cast(null as double) as reported, "
        "cast(null as double) as expected, cast(null as varchar) as status where false"
    )
    for name, form in forms.items():
        path = os.path.join(args.out, "raw", f"{name}.parquet")
        if os.path.exists(path):
            con.execute(f"create view raw.{name} as select * from read_parquet({q(path)})")
        else:
            cols = ", ".join(f'cast(null as {duck_type(c)}) as "{c["name"]}"' for c in form["columns"])
            con.execute(
                f"create view raw.{name} as select {cols}, '' as _row_hash, '' as _batch_id, '' as _source_file, "
                f"'' as _source_sha256, 0::bigint as _row_number where false"
            )
        con.execute(f"create view current.{name} as {current_view_sql(form, 'raw.' + name)}")
    # ref.divisions and ref.division_ancestors as crates/models/src/reference.rs builds them
    import csv

    with open(args.divisions, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))

    def level(code):
        if code == "000000":
            return "region"
        if code.endswith("0000"):
            return "province"
        if code.endswith("00"):
            return "prefecture"
        return "county"

    divs = [("000000", "全域", None, None, "region")] + [
        (r["code"], r["name"], r["parent_code"] or "000000", r["successor"] or None, level(r["code"]))
        for r in sorted(rows, key=lambda r: r["code"])
    ]
    con.execute("create table ref.divisions (code varchar, name varchar, parent_code varchar, successor varchar, level varchar)")
    con.executemany("insert into ref.divisions values (?, ?, ?, ?, ?)", divs)
    by = {r["code"]: r for r in rows}
    has_children = {r["parent_code"] for r in rows if r["parent_code"] and not r["successor"]}
    anc = []
    for r in rows:
        if r["successor"] or r["code"] in has_children:
            continue
        code, guard = r["code"], 0
        while code:
            anc.append((r["code"], code, level(code)))
            code = by.get(code, {}).get("parent_code") or None
            guard += 1
            if guard > 16:
                break
        anc.append((r["code"], "000000", "region"))
    con.execute("create table ref.division_ancestors (county_code varchar, division_code varchar, level varchar)")
    con.executemany("insert into ref.division_ancestors values (?, ?, ?)", anc)
    # ref.disclosure_rules as crates/models/src/reference.rs registers it from
    # sql/disclosure.yaml (two `key: value` lines; the defaults without it)
    rules = {"min_units": "3", "max_share": "0.85"}
    path = os.path.join(args.sql_dir, "disclosure.yaml")
    if os.path.exists(path):
        for line in open(path, encoding="utf-8"):
            key, _, value = line.split("#")[0].partition(":")
            if key.strip() in rules and value.strip():
                rules[key.strip()] = value.strip()
    con.execute("create table ref.disclosure_rules (min_units bigint, max_share double)")
    con.execute("insert into ref.disclosure_rules values (?, ?)", [int(rules["min_units"]), float(rules["max_share"])])

    for layer, name, sql in models(args.sql_dir):
        t = time.time()
        con.execute(f"create table {layer}.{name} as {sql}")
        log(f"{layer}.{name}: {time.time() - t:.1f} s")
    out = os.path.join(args.out, "indicators.parquet")
    con.execute(f"copy marts.indicators to {q(out)} (format parquet)")
    n = con.execute("select count(*) from marts.indicators").fetchone()[0]
    print(f"marts.indicators: {n} rows → {out}")


def cmd_compare(args):
    con = duckdb.connect()
    con.execute(
        f"create view peer as select * from read_parquet({q(os.path.join(args.out, 'indicators.parquet'))})"
    )
    con.execute(
        f"create view stmon as select * from read_csv({q(args.stmon)}, header = true, "
        "columns = {'year': 'INT', 'as_of_month': 'INT', 'division_code': 'VARCHAR', 'indicator_id': 'VARCHAR', "
        "'value': 'DOUBLE', 'numerator': 'DOUBLE', 'denominator': 'DOUBLE', 'reason': 'VARCHAR'})"
    )
    same = "(a is not distinct from b or (a is not null and b is not null and abs(a - b) <= 1e-9 * greatest(abs(a), abs(b))))"
    con.execute(f"create macro close(a, b) as {same}")
    diff = con.execute(
        "select coalesce(p.year, s.year), coalesce(p.as_of_month, s.as_of_month), coalesce(p.division_code, s.division_code), "
        "coalesce(p.indicator_id, s.indicator_id), p.value, s.value, p.numerator, s.numerator, p.denominator, s.denominator, "
        "p.reason, s.reason "
        "from peer p full join stmon s using (year, as_of_month, division_code, indicator_id) "
        "where p.year is null or s.year is null or not close(p.value, s.value) or not close(p.numerator, s.numerator) "
        "or not close(p.denominator, s.denominator) or p.reason is distinct from s.reason "
        "order by 1, 2, 3, 4"
    ).fetchall()
    n = con.execute("select count(*) from peer").fetchone()[0]
    cells = n * 4
    if diff:
        print(f"compare: {len(diff)} of {n} indicator rows differ; the first ones (peer | stmon):")
        for d in diff[:20]:
            print("  ", d)
        sys.exit(1)
    print(f"compare: {n} indicator rows ({cells} cells: value, numerator, denominator, reason) identical")
    if args.stmon_quarantine:
        con.execute(
            f"create view pq as select distinct file, row from read_parquet({q(os.path.join(args.out, 'quarantine.parquet'))}) where row is not null"
        )
        con.execute(
            f"create view sq as select distinct file, row_number as row from read_csv({q(args.stmon_quarantine)}, header = true, "
            "columns = {'file': 'VARCHAR', 'row_number': 'BIGINT'}) where row_number is not null"
        )
        only_peer = con.execute("select * from pq except select * from sq order by 1, 2").fetchall()
        only_stmon = con.execute("select * from sq except select * from pq order by 1, 2").fetchall()
        total = con.execute("select count(*) from pq").fetchone()[0]
        if only_peer or only_stmon:
            print(f"compare: rejected rows differ: {len(only_peer)} only in the peer, {len(only_stmon)} only in stmon")
            for r in (only_peer[:10] + only_stmon[:10]):
                print("  ", r)
            sys.exit(1)
        print(f"compare: the same {total} rows rejected")


def cmd_corrections(args):
    """A night's file: a share of the enterprise_rd rows as later corrections: re-dated, and
    their R&D spending raised by 1 % (so that the corrections change what the marts report)."""
    import csv
    import io

    forms = load_forms(args.schemas)
    form = forms["enterprise_rd"]
    files = sorted(glob.glob(os.path.join(args.data, "**", "*.csv"), recursive=True))
    total, picked, header = 0, [], None
    for path in files:
        raw = open(path, "rb").read()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = raw.decode("gb18030")
        rows = list(csv.reader(io.StringIO(text)))
        mapping, missing = header_map(form, rows[0])
        if missing or "submitted_at" not in mapping:
            continue
        total += len(rows) - 1
        if header is None:
            header, at = rows[0], mapping.index("submitted_at")
            rd = mapping.index("rd_expenditure")
        if rows[0] == header:
            picked += rows[1:]
    want = max(1, int(total * args.share))
    with open(args.out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for n, row in enumerate((picked * (want // max(1, len(picked)) + 1))[:want]):
            row = list(row)
            row[at] = "2024-02-01 %02d:%02d:%02d" % (n // 3600 % 24, n // 60 % 60, n % 60)
            try:
                row[rd] = "%.2f" % (float(row[rd].strip().replace(",", "")) * 1.01)
            except ValueError:
                pass  # a value the contract rejects stays as it was
            w.writerow(row)
    print(want)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("corrections", help="write a night's file of enterprise_rd corrections")
    c.add_argument("--data", required=True)
    c.add_argument("--share", type=float, default=0.01, help="share of the enterprise_rd rows (default 0.01)")
    c.add_argument("--out", required=True, help="the CSV to write")
    c.add_argument("--schemas", default=os.path.join(ROOT, "schemas"))
    for name in ("load", "compute", "compare"):
        p = sub.add_parser(name)
        p.add_argument("--out", required=True, help="the peer's folder (Parquet, quarantine)")
        p.add_argument("--schemas", default=os.path.join(ROOT, "schemas"))
        p.add_argument("--sql-dir", default=os.path.join(ROOT, "sql"))
        p.add_argument("--divisions", default=os.path.join(ROOT, "schemas", "divisions.csv"))
        p.add_argument("--memory-limit", help="DuckDB's memory_limit (default: 80 %% of RAM)")
        if name == "load":
            p.add_argument("--data", required=True, help="the submissions folder")
            p.add_argument("--disk", action="store_true", help="stage in a DuckDB file, not in memory")
            p.add_argument("-v", "--verbose", action="store_true", help="time each slow statement")
        if name == "compare":
            p.add_argument("--stmon", required=True, help="stmon's marts.indicators as CSV")
            p.add_argument("--stmon-quarantine", help="stmon's rejected rows as CSV (file relative to the data folder, row_number)")
    args = ap.parse_args()
    if args.cmd != "corrections":
        os.makedirs(args.out, exist_ok=True)
    {"load": cmd_load, "compute": cmd_compute, "compare": cmd_compare, "corrections": cmd_corrections}[args.cmd](args)


if __name__ == "__main__":
    main()
