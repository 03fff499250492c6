-- county_economy reports used as of a month: each county's latest quarter up to it.
with latest as (
    select county_code, max(month) as month from staging.county_economy
    where year = $1 and month <= $2 group by county_code
)
select 'county_economy' as form, c.source_file, c.source_row, cast(c.submitted_at as varchar) as submitted_at,
       concat(c.county_code, ' ', c.period) as key,
       concat('GDP ', cast(c.gdp as varchar), ', high-tech investment ', cast(c.high_tech_investment as varchar)) as detail
from staging.county_economy c
join latest l on l.county_code = c.county_code and l.month = c.month
join ref.division_ancestors a on a.county_code = c.county_code
where c.year = $1 and a.division_code = $3
order by c.source_file, c.source_row
