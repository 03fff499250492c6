-- Every (year, as-of month) the indicators are computed for: the years with
-- statistical reports (enterprise R&D, county economy, contracts, ledger,
-- institutes, zones) × months 1..12. Recognition years alone do not make a
-- period: older certificates matter only for validity.
with years as (
    select year from staging.enterprise_rd_months
    union select year from staging.county_economy
    union select year from staging.tech_contract
    union select year from staging.program_ledger
    union select year from staging.institute_report
    union select year from staging.zone_report
)
select cast(y.year as int) as year, cast(m.as_of_month as int) as as_of_month
from (select distinct year from years) y
cross join (select unnest(range(1, 13)) as as_of_month) m
