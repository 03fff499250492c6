-- recognition: certificates and platforms, one row per (firm, kind, date).
select
    credit_code,
    name,
    county_code,
    kind,
    status,
    recognized_on,
    cast(date_part('year', recognized_on) as int) as year,
    cast(date_part('month', recognized_on) as int) as month,
    submitted_at,
    _source_file as source_file,
    _row_number as source_row
from current.recognition
