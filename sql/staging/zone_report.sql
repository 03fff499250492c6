-- zone_report: one row per high-tech zone and year.
select
    zone_id,
    cast(period as int) as year,
    name,
    level,
    county_code,
    land_mu,
    revenue,
    value_added,
    tax_revenue,
    energy_tce,
    rd_expenditure,
    high_tech_enterprises,
    submitted_at,
    _source_file as source_file,
    _row_number as source_row
from current.zone_report
