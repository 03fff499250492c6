-- Contracts registered in the year up to the month, seller in the division.
select 'tech_contract' as form, t.source_file, t.source_row, cast(t.submitted_at as varchar) as submitted_at,
       t.contract_id as key,
       concat('registered ', cast(t.registered_on as varchar), ', amount ', cast(t.amount as varchar)) as detail
from staging.tech_contract t
join ref.division_ancestors a on a.county_code = t.county_code
where t.year = $1 and t.month <= $2 and a.division_code = $3
order by t.source_file, t.source_row
