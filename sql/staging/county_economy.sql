-- county_economy: one row per county and quarter, year-to-date cumulative.
-- month is the quarter's last month (Q1 → 3).
select
    county_code,
    cast(substr(period, 1, 4) as int) as year,
    cast(substr(period, 7, 1) as int) as quarter,
    cast(substr(period, 7, 1) as int) * 3 as month,
    period,
    gdp,
    high_tech_investment,
    submitted_at,
    _source_file as source_file,
    _row_number as source_row
from current.county_economy
