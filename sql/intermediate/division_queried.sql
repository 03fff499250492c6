-- What of each indicator rests on open review queries (review.queries, the
-- review step's table: stmon-review), per year × as-of month × division ×
-- indicator: how many queried values enter it, how much of its numerator
-- they are (the reported values), and how far numerator and denominator
-- move when each queried value is held at its expected value (for
-- marts.indicators' held_value and `stmon assess --hold-queried`).
--
-- A query counts only while the current row still carries the value it
-- doubts (a correction not yet reviewed does not count). Which indicators a
-- value enters follows marts.indicators:
--
-- * enterprise_rd, the months a firm's report is its latest (the spans of
--   intermediate.enterprise_asof): rd_expenditure in rd_intensity (at the
--   as-of months whose GDP quarter falls in the span) and, for above-scale
--   industrial firms, industrial_rd_ratio's numerator; revenue in its
--   denominator; value_added in high_tech_va_share's denominator, and its
--   numerator for high-tech industries; basic_research in
--   basic_research_growth's numerator, and in the next year's denominator.
-- * county_economy, the as-of months computed at the queried quarter: gdp in
--   rd_intensity's denominator; high_tech_investment in
--   high_tech_investment_growth's numerator, and in the next year's
--   denominator.
-- * institute_report: rd_expenditure in rd_intensity at year end.
--
-- Parents count their counties' queries (for rd_intensity, a county left out
-- for want of GDP still counts: a known overstatement, README "Review").
-- The firms' queried values and their spans: intermediate.queried_firm_months.
-- The as-of months come from equality joins with a range filter
-- (intermediate.periods, intermediate.division_economy), not from unnest:
-- Ballista 55 plans an unnest under a union as a nested loop that never ends.
with q as (
    select form, unit, period, "column" as col, reported, expected
    from review.queries
    where status = 'open'
),
offsets as (
    select * from (values (0), (1)) as t(k)
),
spans as (
    select * from intermediate.queried_firm_months
),
firm_asof as (
    select s.*, p.as_of_month
    from spans s
    join intermediate.periods p
      on p.year = s.year and p.as_of_month >= s.month and p.as_of_month < s.next_month
),
-- Per county of report; rolled up to every ancestor below.
firm_parts as (
    select year, as_of_month, county_code, 'industrial_rd_ratio' as indicator_id,
           case when col = 'rd_expenditure' then reported else 0 end as num_reported,
           case when col = 'rd_expenditure' then expected - reported else 0 end as num_delta,
           case when col = 'revenue' then expected - reported else 0 end as den_delta
    from firm_asof
    where aisi and col in ('rd_expenditure', 'revenue')
    union all
    select year, as_of_month, county_code, 'high_tech_va_share',
           case when high_tech_industry then reported else 0 end,
           case when high_tech_industry then expected - reported else 0 end,
           expected - reported
    from firm_asof
    where aisi and col = 'value_added'
    union all
    select f.year + o.k, f.as_of_month, f.county_code, 'basic_research_growth',
           case when o.k = 0 then f.reported else 0 end,
           case when o.k = 0 then f.expected - f.reported else 0 end,
           case when o.k = 1 then f.expected - f.reported else 0 end
    from firm_asof f cross join offsets o
    where f.col = 'basic_research'
),
parts as (
    select f.year, f.as_of_month, a.division_code, f.indicator_id,
           f.num_reported, f.num_delta, f.den_delta
    from firm_parts f
    join ref.division_ancestors a on a.county_code = f.county_code
    union all
    -- rd_intensity takes the firms' R&D as of the GDP quarter's last month.
    select s.year, d.as_of_month, d.division_code, 'rd_intensity',
           s.reported, s.expected - s.reported, 0
    from spans s
    join ref.division_ancestors a on a.county_code = s.county_code
    join intermediate.division_economy d
      on d.division_code = a.division_code and d.year = s.year
     and d.quarter_month >= s.month and d.quarter_month < s.next_month
    where s.col = 'rd_expenditure'
    union all
    select d.year, d.as_of_month, d.division_code,
           case when c.col = 'gdp' then 'rd_intensity' else 'high_tech_investment_growth' end,
           case when c.col = 'high_tech_investment' and o.k = 0 then c.reported else 0 end,
           case when c.col = 'high_tech_investment' and o.k = 0 then c.expected - c.reported else 0 end,
           case when c.col = 'gdp' or o.k = 1 then c.expected - c.reported else 0 end
    from (
        select q.col, q.reported, q.expected, e.county_code, e.year, e.month
        from q
        join staging.county_economy e on e.county_code = q.unit and e.period = q.period
        where q.form = 'county_economy'
          and cast(case q.col
                       when 'gdp' then e.gdp
                       when 'high_tech_investment' then e.high_tech_investment
                   end as double) = q.reported
    ) c
    cross join offsets o
    join ref.division_ancestors a on a.county_code = c.county_code
    join intermediate.division_economy d
      on d.division_code = a.division_code and d.year = c.year + o.k and d.quarter_month = c.month
    where o.k = 0 or c.col = 'high_tech_investment'
    union all
    select d.year, d.as_of_month, d.division_code, 'rd_intensity',
           i.reported, i.expected - i.reported, 0
    from (
        select q.reported, q.expected, e.county_code, e.year
        from q
        join staging.institute_report e
          on e.institute_id = q.unit and cast(e.year as varchar) = q.period
        where q.form = 'institute_report' and q.col = 'rd_expenditure'
          and cast(e.rd_expenditure as double) = q.reported
    ) i
    join ref.division_ancestors a on a.county_code = i.county_code
    join intermediate.division_economy d
      on d.division_code = a.division_code and d.year = i.year and d.quarter_month = 12
)
select
    cast(year as int) as year, cast(as_of_month as int) as as_of_month, division_code, indicator_id,
    count(*) as queried,
    cast(sum(num_reported) as double) as queried_amount,
    cast(sum(num_delta) as double) as held_numerator_delta,
    cast(sum(den_delta) as double) as held_denominator_delta
from parts
group by year, as_of_month, division_code, indicator_id
