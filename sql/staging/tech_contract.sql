-- tech_contract: registered technology contracts, counted on the seller side (输出).
select
    contract_id,
    registered_on,
    cast(date_part('year', registered_on) as int) as year,
    cast(date_part('month', registered_on) as int) as month,
    county_code,
    seller_credit_code,
    contract_type,
    amount,
    submitted_at,
    _source_file as source_file,
    _row_number as source_row
from current.tech_contract
