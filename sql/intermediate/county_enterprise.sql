-- Enterprise R&D sums per county of report and as-of month, one row per
-- credit division, partitioned by credit province like enterprise_asof: a
-- night that changes a few provinces rebuilds only their rows
-- (county_enterprise.yml), and intermediate.division_enterprise adds the
-- divisions up.
-- "aisi" = above-scale industrial (industry sections B, C, D).
-- The certificates are the join's left side on purpose: DataFusion builds
-- its hash table from the left input and streams the right, and the as-of
-- rows (a view: no row count for the planner to swap the sides by) are 12
-- million nationally, the certified firms 1.7 million.
select
    e.year, e.as_of_month, e.credit_province, e.credit_division, e.county_code,
    sum(e.rd_expenditure) as rd_expenditure,
    sum(e.basic_research) as basic_research,
    sum(case when e.above_scale and e.industrial then e.rd_expenditure end) as aisi_rd_expenditure,
    sum(case when e.above_scale and e.industrial then e.revenue end) as aisi_revenue,
    sum(case when e.above_scale and e.industrial then e.value_added end) as aisi_value_added,
    sum(case when e.above_scale and e.industrial and e.high_tech_industry then e.value_added else 0 end) as aisi_high_tech_value_added,
    sum(case when e.above_scale and e.industrial then 1 else 0 end) as aisi_firms,
    sum(case when e.above_scale and e.industrial and c.credit_code is not null then 1 else 0 end) as aisi_certified_firms,
    count(*) as firms,
    -- For disclosure control (marts.disclosure): how many firms contribute
    -- to each confidential sum, and the largest contribution.
    sum(case when e.rd_expenditure > 0 then 1 else 0 end) as rd_units,
    max(e.rd_expenditure) as rd_max,
    sum(case when e.basic_research > 0 then 1 else 0 end) as basic_research_units,
    max(e.basic_research) as basic_research_max,
    sum(case when e.above_scale and e.industrial and e.rd_expenditure > 0 then 1 else 0 end) as aisi_rd_units,
    max(case when e.above_scale and e.industrial then e.rd_expenditure end) as aisi_rd_max,
    sum(case when e.above_scale and e.industrial and e.high_tech_industry and e.value_added > 0 then 1 else 0 end) as aisi_high_tech_va_units,
    max(case when e.above_scale and e.industrial and e.high_tech_industry then e.value_added end) as aisi_high_tech_va_max
from intermediate.high_tech_certified c
right join intermediate.enterprise_asof e
  on c.year = e.year and c.as_of_month = e.as_of_month and c.credit_code = e.credit_code
group by e.year, e.as_of_month, e.credit_province, e.credit_division, e.county_code
