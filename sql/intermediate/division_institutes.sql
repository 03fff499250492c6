-- Research institutes' R&D per division and year (an annual form: it enters
-- the indicators at year end only).
select
    i.year, a.division_code,
    cast(sum(i.rd_expenditure) as double) as rd_expenditure,
    count(*) as institutes
from staging.institute_report i
join ref.division_ancestors a on a.county_code = i.county_code
group by i.year, a.division_code
