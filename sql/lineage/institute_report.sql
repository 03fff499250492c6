-- institute_report rows of the division (annual: they count at year end).
select 'institute_report' as form, i.source_file, i.source_row, cast(i.submitted_at as varchar) as submitted_at,
       concat(i.institute_id, ' ', cast(i.year as varchar)) as key,
       concat('R&D ', cast(i.rd_expenditure as varchar), case when $2 < 12 then ' (enters at year end)' else '' end) as detail
from staging.institute_report i
join ref.division_ancestors a on a.county_code = i.county_code
where i.year = $1 and a.division_code = $3
order by i.source_file, i.source_row
