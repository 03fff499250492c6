-- enterprise_rd_months: how many firms' current enterprise_rd reports each
-- credit province has per month. A few hundred rows that say which years and
-- months have enterprise reports (intermediate.periods, the progress
-- report's latest month) without computing the current version of every
-- firm: staging.enterprise_rd is a view, and this table is rebuilt only for
-- the provinces a night's new rows name (enterprise_rd_months.yml).
select
    substr(credit_code, 3, 2) as credit_province,
    cast(substr(period, 1, 4) as int) as year,
    cast(substr(period, 6, 2) as int) as month,
    count(*) as firms
from current.enterprise_rd
group by substr(credit_code, 3, 2), substr(period, 1, 4), substr(period, 6, 2)
