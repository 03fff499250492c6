-- `new` recognitions of a kind in the year up to the month, in the division.
select 'recognition' as form, r.source_file, r.source_row, cast(r.submitted_at as varchar) as submitted_at,
       concat(r.credit_code, ' ', r.kind, ' ', cast(r.recognized_on as varchar)) as key,
       concat('status ', r.status, ', county ', r.county_code) as detail
from staging.recognition r
join ref.division_ancestors a on a.county_code = r.county_code
where r.year = $1 and r.month <= $2 and a.division_code = $3 and r.kind = $4 and r.status = 'new'
order by r.source_file, r.source_row
