-- enterprise_rd reports behind a division's rd_intensity: each firm's latest
-- report of the year up to the division's quarter ($2), in the counties of
-- the division that have GDP for that quarter (the pool; firms of a county
-- left out are not in the value).
select 'enterprise_rd' as form, s.source_file, s.source_row, cast(s.submitted_at as varchar) as submitted_at,
       concat(s.credit_code, ' ', s.period) as key,
       concat('county ', s.county_code, ', R&D ', cast(s.rd_expenditure as varchar)) as detail
from intermediate.enterprise_asof e
join staging.enterprise_rd s on s.credit_code = e.credit_code and s.year = e.year and s.month = e.report_month
join ref.division_ancestors a on a.county_code = e.county_code
where e.year = $1 and e.as_of_month = $2 and a.division_code = $3
  and e.county_code in (select county_code from staging.county_economy where year = $1 and month = $2)
order by s.source_file, s.source_row
