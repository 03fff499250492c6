-- Ledger records of a kind in the year up to the month, in the division.
select 'program_ledger' as form, l.source_file, l.source_row, cast(l.submitted_at as varchar) as submitted_at,
       l.record_id as key,
       concat('occurred ', cast(l.occurred_on as varchar), ', quantity ', cast(l.quantity as varchar),
              ', amount ', coalesce(cast(l.amount as varchar), '-')) as detail
from staging.program_ledger l
join ref.division_ancestors a on a.county_code = l.county_code
where l.year = $1 and l.month <= $2 and a.division_code = $3 and l.kind = $4
order by l.source_file, l.source_row
