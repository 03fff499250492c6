-- Enterprise R&D sums per division (every county, rolled up to each parent
-- and to 000000) and as-of month. Each firm counts once per as-of month, in
-- the county of its report, so sums and firm counts add up the tree.
-- "aisi" = above-scale industrial (industry sections B, C, D).
with county as (
    select
        e.year, e.as_of_month, e.county_code,
        sum(e.rd_expenditure) as rd_expenditure,
        sum(e.basic_research) as basic_research,
        sum(case when e.above_scale and e.industrial then e.rd_expenditure end) as aisi_rd_expenditure,
        sum(case when e.above_scale and e.industrial then e.revenue end) as aisi_revenue,
        sum(case when e.above_scale and e.industrial then e.value_added end) as aisi_value_added,
        sum(case when e.above_scale and e.industrial and e.high_tech_industry then e.value_added else 0 end) as aisi_high_tech_value_added,
        sum(case when e.above_scale and e.industrial then 1 else 0 end) as aisi_firms,
        sum(case when e.above_scale and e.industrial and c.credit_code is not null then 1 else 0 end) as aisi_certified_firms,
        count(*) as firms
    from intermediate.enterprise_asof e
    left join intermediate.high_tech_certified c
      on c.year = e.year and c.as_of_month = e.as_of_month and c.credit_code = e.credit_code
    group by e.year, e.as_of_month, e.county_code
)
select
    c.year, c.as_of_month, a.division_code,
    cast(sum(c.rd_expenditure) as double) as rd_expenditure,
    cast(sum(c.basic_research) as double) as basic_research,
    cast(sum(c.aisi_rd_expenditure) as double) as aisi_rd_expenditure,
    cast(sum(c.aisi_revenue) as double) as aisi_revenue,
    cast(sum(c.aisi_value_added) as double) as aisi_value_added,
    cast(sum(c.aisi_high_tech_value_added) as double) as aisi_high_tech_value_added,
    sum(c.aisi_firms) as aisi_firms,
    sum(c.aisi_certified_firms) as aisi_certified_firms,
    sum(c.firms) as firms
from county c
join ref.division_ancestors a on a.county_code = c.county_code
group by c.year, c.as_of_month, a.division_code
