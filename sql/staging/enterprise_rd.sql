-- enterprise_rd: one row per firm and month, the current version (latest
-- correction, withdrawals and conflicting versions removed). Values are
-- year-to-date cumulative from January. The table is partitioned by
-- credit_province and built incrementally (see enterprise_rd.yml).
select
    credit_code,
    substr(credit_code, 3, 6) as credit_division,
    substr(credit_code, 3, 2) as credit_province,
    cast(substr(period, 1, 4) as int) as year,
    cast(substr(period, 6, 2) as int) as month,
    period,
    name,
    county_code,
    industry_code,
    upper(substr(industry_code, 1, 1)) in ('B', 'C', 'D') as industrial,
    above_scale,
    high_tech_industry,
    revenue,
    rd_expenditure,
    coalesce(basic_research, 0) as basic_research,
    coalesce(value_added, 0) as value_added,
    submitted_at,
    _source_file as source_file,
    _row_number as source_row
from current.enterprise_rd
