-- GDP and high-tech investment per division and as-of month: each county's
-- latest quarterly report of the year up to that month (year-to-date), summed
-- up the tree.
with latest as (
    select c.county_code, c.year, p.as_of_month, max(c.month) as month
    from staging.county_economy c
    join intermediate.periods p on p.year = c.year and c.month <= p.as_of_month
    group by c.county_code, c.year, p.as_of_month
),
county as (
    select l.year, l.as_of_month, l.county_code, c.gdp, c.high_tech_investment
    from latest l
    join staging.county_economy c
      on c.county_code = l.county_code and c.year = l.year and c.month = l.month
)
select
    c.year, c.as_of_month, a.division_code,
    cast(sum(c.gdp) as double) as gdp,
    cast(sum(c.high_tech_investment) as double) as high_tech_investment,
    count(*) as counties_reporting
from county c
join ref.division_ancestors a on a.county_code = c.county_code
group by c.year, c.as_of_month, a.division_code
