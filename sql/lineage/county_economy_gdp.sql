-- county_economy reports behind a division's rd_intensity: the GDP reports
-- for the quarter the division is computed at ($2), in the year only.
select 'county_economy' as form, c.source_file, c.source_row, cast(c.submitted_at as varchar) as submitted_at,
       concat(c.county_code, ' ', c.period) as key,
       concat('GDP ', cast(c.gdp as varchar)) as detail
from staging.county_economy c
join ref.division_ancestors a on a.county_code = c.county_code
where c.year = $1 and c.month = $2 and a.division_code = $3
order by c.source_file, c.source_row
