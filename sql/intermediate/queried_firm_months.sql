-- The open review queries on firms' enterprise_rd values (review.queries,
-- the review step's table) whose current row still carries the doubted
-- value, with the span of as-of months the report counts in: from its month
-- to the month before the firm's next report of the year, or December (the
-- spans of intermediate.enterprise_asof, for the queried firms only).
-- Read by intermediate.division_queried; a model of its own so that the
-- plans stay shallow (Ballista 55 ships a plan as protobuf and refuses one
-- nested past its decoder's recursion limit).
with q as (
    select unit, period, "column" as col, reported, expected
    from review.queries
    where status = 'open' and form = 'enterprise_rd'
),
eq as (
    select q.col, q.reported, q.expected, e.credit_code, e.year, e.month, e.county_code,
           e.above_scale and e.industrial as aisi, e.high_tech_industry
    from q
    join staging.enterprise_rd e on e.credit_code = q.unit and e.period = q.period
    where cast(case q.col
                   when 'rd_expenditure' then e.rd_expenditure
                   when 'revenue' then e.revenue
                   when 'value_added' then e.value_added
                   when 'basic_research' then e.basic_research
               end as double) = q.reported
),
reported as (
    select e.credit_code, e.year, bit_or(cast(1 as bigint) << (e.month - 1)) as months
    from staging.enterprise_rd e
    join (select distinct credit_code from eq) f on f.credit_code = e.credit_code
    group by e.credit_code, e.year
),
spans as (
    select x.*,
           case when x.later = 0 then 13
                else x.month + 1 + cast(log2(cast(x.later & (-x.later) as double)) as int)
           end as next_month
    from (
        select eq.*, r.months >> eq.month as later
        from eq join reported r on r.credit_code = eq.credit_code and r.year = eq.year
    ) x
)
select col, reported, expected, credit_code, year, month, next_month, county_code,
       aisi, high_tech_industry
from spans
