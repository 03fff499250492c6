-- The quarterly county form per division and as-of month, at the period the
-- indicators built on it share with the monthly firm reports (indicators.md,
-- "Mixed frequencies" and "Same period"):
--
-- * quarter_month: the latest quarter (its last month) that the division has
--   for the year up to the as-of month. For a county, its own latest report;
--   for a parent, the latest any of its counties has. A county whose Q3 has
--   not arrived is computed at Q2, never with September's R&D over June's GDP.
-- * rd_intensity's inputs, pooled over the counties that report GDP for that
--   quarter: their GDP, their firms' R&D as of that quarter's last month
--   (the sum over the firms reporting in the county, 0 when none), their
--   institutes' R&D (used at year end only). A county with data (GDP earlier
--   in the year, firms' R&D, or institutes at year end) but no GDP for the
--   quarter is left out of numerator and denominator alike, and counted in
--   counties_left_out so that the indicator's reason can say so.
-- * high_tech_investment_growth's inputs: plain sums over every county that
--   reported the quarter, in the year and in the year before (the spec's
--   "over every reporting unit", not a matched sample), with the counts of
--   counties in each year and in both, for the reason.
with county_institutes as (
    select year, county_code, sum(rd_expenditure) as rd_expenditure,
           sum(case when rd_expenditure > 0 then 1 else 0 end) as rd_units,
           max(rd_expenditure) as rd_max
    from staging.institute_report
    group by year, county_code
),
county_quarters as (
    select p.year, p.as_of_month, c.county_code, max(c.month) as last_month
    from staging.county_economy c
    join intermediate.periods p on p.year = c.year and c.month <= p.as_of_month
    group by p.year, p.as_of_month, c.county_code
),
quarters as (
    select g.year, g.as_of_month, a.division_code, max(g.last_month) as quarter_month
    from county_quarters g
    join ref.division_ancestors a on a.county_code = g.county_code
    group by g.year, g.as_of_month, a.division_code
),
counties as (
    select q.year, q.as_of_month, q.division_code, q.quarter_month, a.county_code,
           g.last_month,
           c.gdp, c.high_tech_investment,
           cp.high_tech_investment as high_tech_investment_prev,
           coalesce(r.rd_expenditure, 0) as enterprise_rd,
           coalesce(r.firms, 0) as firms,
           i.rd_expenditure as institute_rd,
           coalesce(r.rd_units, 0)
               + case when q.quarter_month = 12 then coalesce(i.rd_units, 0) else 0 end as rd_units,
           greatest(r.rd_max, case when q.quarter_month = 12 then cast(i.rd_max as double) end) as rd_max
    from quarters q
    join ref.division_ancestors a on a.division_code = q.division_code
    left join county_quarters g
      on g.county_code = a.county_code and g.year = q.year and g.as_of_month = q.as_of_month
    left join staging.county_economy c
      on c.county_code = a.county_code and c.year = q.year and c.month = q.quarter_month
    left join staging.county_economy cp
      on cp.county_code = a.county_code and cp.year = q.year - 1 and cp.month = q.quarter_month
    left join intermediate.division_enterprise r
      on r.division_code = a.county_code and r.year = q.year and r.as_of_month = q.quarter_month
    left join county_institutes i
      on i.county_code = a.county_code and i.year = q.year
)
select
    year, as_of_month, division_code, quarter_month,
    cast(sum(gdp) as double) as gdp,
    cast(sum(case when gdp is not null then enterprise_rd end) as double) as enterprise_rd,
    cast(sum(case when gdp is not null then coalesce(institute_rd, 0) end) as double) as institute_rd,
    sum(case when gdp is not null then 1 else 0 end) as counties_gdp,
    sum(case when gdp is null
              and (last_month is not null or firms > 0
                   or (quarter_month = 12 and institute_rd is not null))
             then 1 else 0 end) as counties_left_out,
    cast(sum(high_tech_investment) as double) as high_tech_investment,
    cast(sum(high_tech_investment_prev) as double) as high_tech_investment_prev,
    count(high_tech_investment) as counties_investment,
    count(high_tech_investment_prev) as counties_investment_prev,
    sum(case when high_tech_investment is not null and high_tech_investment_prev is not null
             then 1 else 0 end) as counties_investment_both,
    -- For disclosure control: the firms and institutes whose R&D the
    -- rd_intensity numerator sums (a positive amount), and the largest.
    sum(case when gdp is not null then rd_units else 0 end) as rd_units,
    max(case when gdp is not null then rd_max end) as rd_max
from counties
group by year, as_of_month, division_code, quarter_month
