-- enterprise_rd reports counted for a division as of a month: each firm's
-- latest report of the year up to the month, in the division or below.
select 'enterprise_rd' as form, s.source_file, s.source_row, cast(s.submitted_at as varchar) as submitted_at,
       concat(s.credit_code, ' ', s.period) as key,
       concat('county ', s.county_code, ', industry ', s.industry_code,
              ', above-scale ', cast(s.above_scale as varchar), ', high-tech ', cast(s.high_tech_industry as varchar),
              ', revenue ', cast(s.revenue as varchar), ', R&D ', cast(s.rd_expenditure as varchar),
              ', basic ', cast(s.basic_research as varchar), ', value added ', cast(s.value_added as varchar)) as detail
from intermediate.enterprise_asof e
join staging.enterprise_rd s on s.credit_code = e.credit_code and s.year = e.year and s.month = e.report_month
join ref.division_ancestors a on a.county_code = e.county_code
where e.year = $1 and e.as_of_month = $2 and a.division_code = $3
order by s.source_file, s.source_row
