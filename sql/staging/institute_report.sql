-- institute_report: one row per co-built research institute and year.
select
    institute_id,
    cast(period as int) as year,
    name,
    county_code,
    partner,
    rd_expenditure,
    horizontal_income,
    researchers,
    patents_granted,
    achievements,
    achievements_transferred,
    achievements_landed,
    firms_incubated,
    submitted_at,
    _source_file as source_file,
    _row_number as source_row
from current.institute_report
