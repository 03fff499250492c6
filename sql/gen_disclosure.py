#!/usr/bin/env python3
"""Writes the disclosure-control models (README "Disclosure control"):
intermediate/disclosure_cells.sql (each value's units, largest share and
primary flag), intermediate/disclosure_pass1..N-1.sql and marts/disclosure.sql
(the passes of secondary suppression, one model each: a model is one
SELECT, SQL has no loop, and one query of every pass is too deep a plan).
Edit here, run `python3 sql/gen_disclosure.py`, commit what it writes."""
import os

PASSES = 4
HERE = os.path.dirname(os.path.abspath(__file__))

COMMENT = r"""-- Disclosure control of the published values: which division-level values
-- of marts.indicators would let a reader infer what one respondent reported
-- (Statistics Law art. 25), and so are withheld from the public edition
-- (`--public` on progress, assess and the nightly reports) and from server
-- users without microdata. One row per year × as-of month × division of the
-- five indicators that sum respondents' confidential figures:
--
--   rd_intensity             firms' and institutes' R&D (over GDP, published)
--   industrial_rd_ratio      above-scale industrial firms' R&D
--   high_tech_va_share       their high-tech value added
--   basic_research_growth    firms' basic research, this year and last
--   tech_transaction_volume  each seller's registered contract amounts
--
-- The others rest on public lists (recognitions), the government's own
-- ledger or the county offices' official statistics (GDP, investment), and
-- are published as they are.
--
-- Primary suppression (ref.disclosure_rules, from sql/disclosure.yaml): a
-- value whose base has at least one and fewer than min_units contributing
-- units (a positive amount), or of which the largest unit holds more than
-- max_share (the (1, k) dominance rule: n = 1, k = 85 %). A growth rests on
-- two bases and is suppressed when either fails. A null value or a base of
-- no units discloses nothing and is published.
--
-- Secondary suppression: a parent's numerator is the sum of its children's
-- (the pooling of indicators.md), so in each group — a division and its
-- children — exactly one suppressed value among the known ones could be
-- recovered as the parent less the others. While a group has exactly one
-- (and its parent is known), the group's published child with the smallest
-- numerator above zero (least information lost; a zero protects nothing,
-- since the suppressed value is then the parent less the rest exactly) is
-- suppressed too ('complement'), the parent itself only when no child is
-- left. The size of the protection interval is not checked beyond that. A pick can expose the groups
-- above or below it, so this is repeated: PASSES_N passes, unrolled below
-- (generated; the division tree is at most four levels deep), and the data
-- test no_group_with_one_suppressed_value checks that they sufficed.
"""

CELLS = r"""-- Disclosure control, step 1: each value of the five indicators that sum
-- respondents' figures, with its base's contributing units, the largest
-- unit's share and whether it is withheld on its own (primary). It reads
-- marts.indicators, the values it judges: the one intermediate model that
-- reads a mart, since it is a step of marts.disclosure. The rules and the
-- passes that follow: marts/disclosure.sql. Written by sql/gen_disclosure.py.
with rules as (select min_units, max_share from ref.disclosure_rules),
contracts as (
    select p.year, p.as_of_month, a.division_code, t.seller_credit_code,
           cast(sum(t.amount) as double) as amount
    from staging.tech_contract t
    join intermediate.periods p on p.year = t.year and t.month <= p.as_of_month
    join ref.division_ancestors a on a.county_code = t.county_code
    group by p.year, p.as_of_month, a.division_code, t.seller_credit_code
),
-- Each cell's bases: contributing units, the largest contribution, the total.
bases as (
    select year, as_of_month, division_code, 'rd_intensity' as indicator_id,
           rd_units as units, rd_max as top,
           enterprise_rd + case when quarter_month = 12 then institute_rd else 0 end as total
    from intermediate.division_economy
    union all
    select year, as_of_month, division_code, 'industrial_rd_ratio',
           aisi_rd_units, aisi_rd_max, aisi_rd_expenditure
    from intermediate.division_enterprise
    union all
    select year, as_of_month, division_code, 'high_tech_va_share',
           aisi_high_tech_va_units, aisi_high_tech_va_max, aisi_high_tech_value_added
    from intermediate.division_enterprise
    union all
    select year, as_of_month, division_code, 'basic_research_growth',
           basic_research_units, basic_research_max, basic_research
    from intermediate.division_enterprise
    union all
    -- The previous year's base, as the next year's cell.
    select year + 1, as_of_month, division_code, 'basic_research_growth',
           basic_research_units, basic_research_max, basic_research
    from intermediate.division_enterprise
    union all
    select year, as_of_month, division_code, 'tech_transaction_volume',
           sum(case when amount > 0 then 1 else 0 end), max(amount), sum(amount)
    from contracts
    group by year, as_of_month, division_code
),
judged as (
    select b.year, b.as_of_month, b.division_code, b.indicator_id,
           min(b.units) as units,
           max(case when b.total > 0 then b.top / b.total end) as top_share,
           bool_or(b.units >= 1 and b.units < r.min_units) as few_units,
           bool_or(b.total > 0 and b.top / b.total > r.max_share) as dominance
    from bases b
    cross join rules r
    group by b.year, b.as_of_month, b.division_code, b.indicator_id
)
select i.year, i.as_of_month, i.division_code, d.parent_code, i.indicator_id,
       i.value is not null as known,
       coalesce(abs(i.numerator), 0) as size,
       j.units, j.top_share,
       i.value is not null and coalesce(j.few_units or j.dominance, false) as suppressed,
       case when i.value is null then cast(null as varchar)
            when j.few_units then 'few_units'
            when j.dominance then 'dominance' end as rule
from marts.indicators i
join ref.divisions d on d.code = i.division_code
left join judged j
  on j.year = i.year and j.as_of_month = i.as_of_month
 and j.division_code = i.division_code and j.indicator_id = i.indicator_id
where i.indicator_id in ('rd_intensity', 'industrial_rd_ratio', 'high_tech_va_share',
                         'basic_research_growth', 'tech_transaction_volume')

"""


def one_pass(k, source):
    return f"""with m as (
    select s.*, r.is_parent,
           case when r.is_parent then s.division_code else s.parent_code end as grp
    from {source} s
    cross join (values (false), (true)) as r(is_parent)
    where r.is_parent or s.parent_code is not null
),
w as (
    select m.*,
           sum(case when known and suppressed then 1 else 0 end)
               over (partition by year, as_of_month, indicator_id, grp) as n_suppressed,
           max(case when is_parent and known then 1 else 0 end)
               over (partition by year, as_of_month, indicator_id, grp) as parent_known,
           max(case when is_parent then 0 else 1 end)
               over (partition by year, as_of_month, indicator_id, grp) as has_children,
           row_number() over (
               partition by year, as_of_month, indicator_id, grp
               order by case when known and not suppressed and size > 0 then 0
                             when known and not suppressed then 1 else 2 end,
                        is_parent, size, division_code) as pick_order
    from m
),
passed as (
    select year, as_of_month, division_code, indicator_id,
           max(parent_code) as parent_code, bool_or(known) as known, max(size) as size,
           max(units) as units, max(top_share) as top_share,
           bool_or(suppressed) or bool_or(picked) as suppressed,
           case when bool_or(suppressed) then max(rule)
                when bool_or(picked) then 'complement' end as rule
    from (
        select *, n_suppressed = 1 and parent_known = 1 and has_children = 1
                  and pick_order = 1 and known and not suppressed as picked
        from w
    ) x
    group by year, as_of_month, division_code, indicator_id
)"""


PASS_COMMENT = """-- Disclosure control, pass {k} of {n} of secondary suppression (see
-- marts/disclosure.sql): every value as a member of two groups (a child in
-- its parent's, the parent of its own); per group, how many known values
-- are withheld, whether its parent is known and it has children, and its
-- members in the order of the pick; then back to one row per value.
-- Written by sql/gen_disclosure.py.
"""


def write(rel, text):
    with open(os.path.join(HERE, rel), "w") as f:
        f.write(text)


write("intermediate/disclosure_cells.sql", CELLS)
write("intermediate/disclosure_cells.yml", """description: >
  Disclosure control, step 1 (marts.disclosure): each value of the five
  indicators that sum respondents' figures, with its base's contributing
  units, the largest unit's share and whether it is withheld on its own;
  size is its numerator, by which complements are chosen (unit-level to the
  server: it is the value).
grain: [year, as_of_month, division_code, indicator_id]
""")
source = "intermediate.disclosure_cells"
for k in range(1, PASSES):
    write(f"intermediate/disclosure_pass{k}.sql",
          PASS_COMMENT.format(k=k, n=PASSES) + one_pass(k, source) + "\nselect * from passed\n")
    write(f"intermediate/disclosure_pass{k}.yml", f"""description: >
  Disclosure control, pass {k} of {PASSES} of secondary suppression (marts.disclosure):
  the values of intermediate.disclosure_cells with the complements chosen so far.
grain: [year, as_of_month, division_code, indicator_id]
""")
    source = f"intermediate.disclosure_pass{k}"
final = COMMENT.replace("PASSES_N", str(PASSES)).replace("PASSES_M", str(PASSES - 1)) + one_pass(PASSES, source) + """
select year, as_of_month, division_code, parent_code, indicator_id, known,
       case when not suppressed then 'published'
            when rule = 'complement' then 'secondary'
            else 'primary' end as status,
       rule,
       cast(units as bigint) as units,
       top_share
from passed
"""
write("marts/disclosure.sql", final)
