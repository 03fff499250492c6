-- Each firm's latest enterprise_rd report of the year up to each as-of month.
-- Reports are year-to-date, so this report carries the firm's figures as of
-- that month (a firm that stopped in September counts with September's at
-- year end), and its attributes (county, above-scale, industry, high-tech
-- industry) are the firm's for that as-of month.
-- Partitioned by credit_division like staging.enterprise_rd, and built
-- incrementally with it (enterprise_asof.yml). The as-of months are 1..12 of
-- each year the firm reports in (the same as intermediate.periods for those
-- years, which this model does not read, so that a new year of another form
-- does not make it rebuild whole).
with latest as (
    select e.credit_code, e.year, p.as_of_month, max(e.month) as month
    from staging.enterprise_rd e
    join (select cast(unnest(range(1, 13)) as int) as as_of_month) p on e.month <= p.as_of_month
    group by e.credit_code, e.year, p.as_of_month
)
select
    l.year,
    l.as_of_month,
    e.month as report_month,
    e.credit_code,
    e.credit_division,
    e.county_code,
    e.industrial,
    e.above_scale,
    e.high_tech_industry,
    e.revenue,
    e.rd_expenditure,
    e.basic_research,
    e.value_added
from latest l
join staging.enterprise_rd e
  on e.credit_code = l.credit_code and e.year = l.year and e.month = l.month
