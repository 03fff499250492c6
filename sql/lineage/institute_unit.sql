-- The institute's report of the year.
select 'institute_report' as form, i.source_file, i.source_row, cast(i.submitted_at as varchar) as submitted_at,
       concat(i.institute_id, ' ', cast(i.year as varchar)) as key,
       concat('researchers ', cast(i.researchers as varchar), ', patents ', cast(i.patents_granted as varchar),
              ', achievements ', cast(i.achievements as varchar), ', transferred ', cast(i.achievements_transferred as varchar),
              ', landed ', cast(i.achievements_landed as varchar), ', horizontal income ', cast(i.horizontal_income as varchar)) as detail
from staging.institute_report i
where i.institute_id = $3 and i.year = $1 and $2 > 0
order by i.source_file, i.source_row
