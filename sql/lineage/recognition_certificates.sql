-- Certificates and revocations of the firms counted in the division as of the month.
select 'recognition' as form, r.source_file, r.source_row, cast(r.submitted_at as varchar) as submitted_at,
       concat(r.credit_code, ' ', r.kind, ' ', cast(r.recognized_on as varchar)) as key,
       concat('status ', r.status) as detail
from staging.recognition r
join (select distinct e.credit_code from intermediate.enterprise_asof e
      join ref.division_ancestors a on a.county_code = e.county_code
      where e.year = $1 and e.as_of_month = $2 and a.division_code = $3) f on f.credit_code = r.credit_code
where r.kind = $4
order by r.source_file, r.source_row
