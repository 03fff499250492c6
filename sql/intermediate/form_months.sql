-- Which divisions have any row of the forms behind the cumulative
-- indicators (recognition, tech_contract, program_ledger) in a year up to
-- each as-of month: one row per year, as-of month, division and form.
-- marts.indicators gives a count of 0 over no rows the reason "no …
-- submissions". A table of its own, not a part of marts.indicators, so
-- that a night that brings only enterprise reports, which it does not read,
-- does not compute it again (nationally 1.1 M joined rows, about a second).
select p.year, p.as_of_month, a.division_code, f.form
-- distinct months per county first: a few rows per county, not one per submission
from (
    select distinct 'recognition' as form, year, month, county_code from staging.recognition
    union select distinct 'tech_contract', year, month, county_code from staging.tech_contract
    union select distinct 'program_ledger', year, month, county_code from staging.program_ledger
) f
join intermediate.periods p on p.year = f.year and f.month <= p.as_of_month
join ref.division_ancestors a on a.county_code = f.county_code
group by p.year, p.as_of_month, a.division_code, f.form
