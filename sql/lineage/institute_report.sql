-- institute_report rows behind a division's rd_intensity: institutes of the
-- counties with GDP for the division's quarter ($2); they enter the value
-- only when that quarter is Q4.
select 'institute_report' as form, i.source_file, i.source_row, cast(i.submitted_at as varchar) as submitted_at,
       concat(i.institute_id, ' ', cast(i.year as varchar)) as key,
       concat('R&D ', cast(i.rd_expenditure as varchar), case when $2 < 12 then ' (not in the value: enters with Q4 GDP)' else '' end) as detail
from staging.institute_report i
join ref.division_ancestors a on a.county_code = i.county_code
where i.year = $1 and a.division_code = $3
  and i.county_code in (select county_code from staging.county_economy where year = $1 and month = $2)
order by i.source_file, i.source_row
