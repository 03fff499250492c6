-- Disclosure control of the published values: which division-level values
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
-- above or below it, so this is repeated: 4 passes, unrolled below
-- (generated; the division tree is at most four levels deep), and the data
-- test no_group_with_one_suppressed_value checks that they sufficed.
with m as (
    select s.*, r.is_parent,
           case when r.is_parent then s.division_code else s.parent_code end as grp
    from intermediate.disclosure_pass3 s
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
)
select year, as_of_month, division_code, parent_code, indicator_id, known,
       case when not suppressed then 'published'
            when rule = 'complement' then 'secondary'
            else 'primary' end as status,
       rule,
       cast(units as bigint) as units,
       top_share
from passed
