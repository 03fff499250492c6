-- Disclosure control, pass 1 of 4 of secondary suppression (see
-- marts/disclosure.sql): every value as a member of two groups (a child in
-- its parent's, the parent of its own); per group, how many known values
-- are withheld, whether its parent is known and it has children, and its
-- members in the order of the pick; then back to one row per value.
-- Written by sql/gen_disclosure.py.
with m as (
    select s.*, r.is_parent,
           case when r.is_parent then s.division_code else s.parent_code end as grp
    from intermediate.disclosure_cells s
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
select * from passed
