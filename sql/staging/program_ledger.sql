-- program_ledger: the bureau's work ledger; a blank quantity counts as one.
select
    record_id,
    county_code,
    kind,
    occurred_on,
    cast(date_part('year', occurred_on) as int) as year,
    cast(date_part('month', occurred_on) as int) as month,
    coalesce(quantity, 1) as quantity,
    amount,
    name,
    submitted_at,
    _source_file as source_file,
    _row_number as source_row
from current.program_ledger
