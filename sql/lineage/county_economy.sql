-- county_economy reports behind a division's value as of a month: the
-- reports for the quarter the division is computed at ($2, its latest quarter
-- from intermediate.division_economy), in the year and the year before (the
-- growth's base).
select 'county_economy' as form, c.source_file, c.source_row, cast(c.submitted_at as varchar) as submitted_at,
       concat(c.county_code, ' ', c.period) as key,
       concat('GDP ', cast(c.gdp as varchar), ', high-tech investment ', cast(c.high_tech_investment as varchar)) as detail
from staging.county_economy c
join ref.division_ancestors a on a.county_code = c.county_code
where c.year in ($1, $1 - 1) and c.month = $2 and a.division_code = $3
order by c.source_file, c.source_row
