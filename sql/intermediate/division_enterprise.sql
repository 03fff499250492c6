-- Enterprise R&D sums per division (every county, rolled up to each parent
-- and to 000000) and as-of month. Each firm counts once per as-of month, in
-- the county of its report, so sums and firm counts add up the tree.
-- "aisi" = above-scale industrial (industry sections B, C, D).
with county as (
    select
        year, as_of_month, county_code,
        sum(rd_expenditure) as rd_expenditure,
        sum(basic_research) as basic_research,
        sum(aisi_rd_expenditure) as aisi_rd_expenditure,
        sum(aisi_revenue) as aisi_revenue,
        sum(aisi_value_added) as aisi_value_added,
        sum(aisi_high_tech_value_added) as aisi_high_tech_value_added,
        sum(aisi_firms) as aisi_firms,
        sum(aisi_certified_firms) as aisi_certified_firms,
        sum(firms) as firms,
        sum(rd_units) as rd_units, max(rd_max) as rd_max,
        sum(basic_research_units) as basic_research_units, max(basic_research_max) as basic_research_max,
        sum(aisi_rd_units) as aisi_rd_units, max(aisi_rd_max) as aisi_rd_max,
        sum(aisi_high_tech_va_units) as aisi_high_tech_va_units,
        max(aisi_high_tech_va_max) as aisi_high_tech_va_max
    from intermediate.county_enterprise
    group by year, as_of_month, county_code
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
    sum(c.firms) as firms,
    -- Contributing firms (a positive amount) and the largest contribution,
    -- for disclosure control: a firm counts in one county, so counts add up
    -- and the largest of a parent is the largest of its counties'.
    sum(c.rd_units) as rd_units,
    cast(max(c.rd_max) as double) as rd_max,
    sum(c.basic_research_units) as basic_research_units,
    cast(max(c.basic_research_max) as double) as basic_research_max,
    sum(c.aisi_rd_units) as aisi_rd_units,
    cast(max(c.aisi_rd_max) as double) as aisi_rd_max,
    sum(c.aisi_high_tech_va_units) as aisi_high_tech_va_units,
    cast(max(c.aisi_high_tech_va_max) as double) as aisi_high_tech_va_max
from county c
join ref.division_ancestors a on a.county_code = c.county_code
group by c.year, c.as_of_month, a.division_code
