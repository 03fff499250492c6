-- Each firm's latest enterprise_rd report of the year up to each as-of month.
-- Reports are year-to-date, so this report carries the firm's figures as of
-- that month (a firm that stopped in September counts with September's at
-- year end), and its attributes (county, above-scale, industry, high-tech
-- industry) are the firm's for that as-of month.
--
-- A report of month m is the latest from as-of month m up to the month
-- before the firm's next report of the year (or December): the months a
-- firm reported in a year are one 12-bit mask (bit m-1 for month m), and the
-- next report after m is the lowest bit of mask >> m. One aggregate per firm
-- and year and one join, not an aggregate per firm, year and as-of month
-- over twelve copies of the table and a join back (national: 28 s and
-- 2.7 GB before).
-- Partitioned by credit_province like staging.enterprise_rd, and built
-- incrementally with it (enterprise_asof.yml). The as-of months are 1..12 of
-- each year the firm reports in (the same as intermediate.periods for those
-- years, which this model does not read, so that a new year of another form
-- does not make it rebuild whole).
with reported as (
    select credit_code, year, bit_or(cast(1 as bigint) << (month - 1)) as months
    from staging.enterprise_rd
    group by credit_code, year
),
reports as (
    select e.*, r.months >> e.month as later
    from reported r
    join staging.enterprise_rd e on e.credit_code = r.credit_code and e.year = r.year
),
spans as (
    select *,
           case when later = 0 then 13
                else month + 1 + cast(log2(cast(later & (-later) as double)) as int)
           end as next_month
    from reports
)
select
    e.year,
    p.as_of_month,
    e.month as report_month,
    e.credit_code,
    e.credit_division,
    e.credit_province,
    e.county_code,
    e.industrial,
    e.above_scale,
    e.high_tech_industry,
    e.revenue,
    e.rd_expenditure,
    e.basic_research,
    e.value_added
from (select cast(unnest(range(1, 13)) as int) as as_of_month) p
join spans e on e.month <= p.as_of_month and p.as_of_month < e.next_month
