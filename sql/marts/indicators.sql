-- Every indicator of the catalogue (indicators.md) per year × as-of month ×
-- division, long format. Parents are pooled (sums over sums). A missing or
-- zero denominator gives a null value and a reason. Units: ratios, growth and
-- share changes as fractions; money in 万元; counts as numbers.
-- numerator / denominator: the two sums of a ratio; for growth the year's and
-- the previous year's sums; for a share change the year's and the previous
-- year's shares; for cumulative indicators the value and null.
with grid as (
    select p.year, p.as_of_month, cast(p.as_of_month / 3 as int) * 3 as quarter_month,
           d.code as division_code, d.name as division_name, d.level
    from intermediate.periods p
    cross join ref.divisions d
    where d.successor is null
),
e as (select * from intermediate.division_enterprise),
c as (select * from intermediate.division_economy),
cumulative_ids as (
    select * from (values
        ('new_high_tech_enterprises'), ('new_tech_smes'), ('tech_transaction_volume'),
        ('corridor_key_project_investment'), ('sci_tech_finance'),
        ('new_provincial_enterprise_research_institutes'), ('new_provincial_high_tech_rd_centers'),
        ('innovation_consortia'), ('talent_teams'), ('key_tech_projects'), ('import_substitutions'),
        ('incubators'), ('tech_commissioners'), ('agricultural_enterprise_research_institutes'),
        ('star_innovation_bases')
    ) as t(indicator_id)
),

-- 全社会R&D经费占GDP比重: enterprise R&D (every reporting firm) + institute R&D
-- (annual: year end only) over GDP, both at the latest quarter end.
rd_intensity as (
    select g.*, 'rd_intensity' as indicator_id,
           coalesce(e.rd_expenditure, 0) + case when g.as_of_month = 12 then coalesce(i.rd_expenditure, 0) else 0 end as numerator,
           c.gdp as denominator,
           case
               when g.quarter_month = 0 then 'no quarter has ended yet: GDP is quarterly'
               when c.gdp is null then 'no GDP reported'
               when c.gdp = 0 then 'GDP is zero'
               when g.as_of_month < 12 then concat('enterprise R&D and GDP to month ', cast(g.quarter_month as varchar), ' (latest quarter end); institute R&D (annual) enters at year end')
           end as reason
    from grid g
    left join e on e.year = g.year and e.as_of_month = g.quarter_month and e.division_code = g.division_code
    left join c on c.year = g.year and c.as_of_month = g.quarter_month and c.division_code = g.division_code
    left join intermediate.division_institutes i on i.year = g.year and i.division_code = g.division_code
),

-- 规上工业企业研发经费占营业收入比重
industrial_rd_ratio as (
    select g.*, 'industrial_rd_ratio' as indicator_id,
           e.aisi_rd_expenditure as numerator, e.aisi_revenue as denominator,
           case
               when e.aisi_revenue is null then 'no above-scale industrial enterprise reported'
               when e.aisi_revenue = 0 then 'revenue of above-scale industrial enterprises is zero'
           end as reason
    from grid g
    left join e on e.year = g.year and e.as_of_month = g.as_of_month and e.division_code = g.division_code
),

-- 高新技术产业增加值占规上工业增加值比重
high_tech_va_share as (
    select g.*, 'high_tech_va_share' as indicator_id,
           e.aisi_high_tech_value_added as numerator, e.aisi_value_added as denominator,
           case
               when e.aisi_value_added is null then 'no above-scale industrial enterprise reported'
               when e.aisi_value_added = 0 then 'value added of above-scale industrial enterprises is zero'
           end as reason
    from grid g
    left join e on e.year = g.year and e.as_of_month = g.as_of_month and e.division_code = g.division_code
),

-- 高新技术产业投资增长: year-to-date over the previous year's same period.
high_tech_investment_growth as (
    select g.*, 'high_tech_investment_growth' as indicator_id,
           c.high_tech_investment as numerator, cp.high_tech_investment as denominator,
           case
               when g.quarter_month = 0 then 'no quarter has ended yet: investment is quarterly'
               when c.high_tech_investment is null then 'no investment reported this year'
               when cp.high_tech_investment is null then 'no previous-year base'
               when cp.high_tech_investment = 0 then 'previous-year base is zero'
           end as reason
    from grid g
    left join c on c.year = g.year and c.as_of_month = g.as_of_month and c.division_code = g.division_code
    left join c cp on cp.year = g.year - 1 and cp.as_of_month = g.as_of_month and cp.division_code = g.division_code
),

-- 基础研究经费增长: every firm reporting enterprise_rd, same as-of month a year earlier.
basic_research_growth as (
    select g.*, 'basic_research_growth' as indicator_id,
           e.basic_research as numerator, ep.basic_research as denominator,
           case
               when e.basic_research is null then 'no enterprise R&D reported this year'
               when ep.basic_research is null then 'no previous-year base'
               when ep.basic_research = 0 then 'previous-year base is zero'
           end as reason
    from grid g
    left join e on e.year = g.year and e.as_of_month = g.as_of_month and e.division_code = g.division_code
    left join e ep on ep.year = g.year - 1 and ep.as_of_month = g.as_of_month and ep.division_code = g.division_code
),

-- 高新技术企业占规上工业企业比重提升: share(year) − share(year−1), certificates
-- valid on the last day of the as-of month.
high_tech_enterprise_share_change as (
    select g.*, 'high_tech_enterprise_share_change' as indicator_id,
           case when e.aisi_firms > 0 then cast(e.aisi_certified_firms as double) / e.aisi_firms end as numerator,
           case when ep.aisi_firms > 0 then cast(ep.aisi_certified_firms as double) / ep.aisi_firms end as denominator,
           case
               when coalesce(e.aisi_firms, 0) = 0 then 'no above-scale industrial enterprise reported this year'
               when coalesce(ep.aisi_firms, 0) = 0 then 'no above-scale industrial enterprise reported the previous year'
           end as reason
    from grid g
    left join e on e.year = g.year and e.as_of_month = g.as_of_month and e.division_code = g.division_code
    left join e ep on ep.year = g.year - 1 and ep.as_of_month = g.as_of_month and ep.division_code = g.division_code
),

ratios as (
    select year, as_of_month, division_code, division_name, level, indicator_id,
           case when reason is null or (indicator_id = 'rd_intensity' and denominator <> 0 and quarter_month > 0)
                then numerator / denominator end as value,
           numerator, denominator, reason
    from (select * from rd_intensity
          union all select * from industrial_rd_ratio
          union all select * from high_tech_va_share)
),
growths as (
    select year, as_of_month, division_code, division_name, level, indicator_id,
           case when reason is null then numerator / denominator - 1 end as value,
           numerator, denominator, reason
    from (select * from high_tech_investment_growth
          union all select * from basic_research_growth)
),
changes as (
    select year, as_of_month, division_code, division_name, level, indicator_id,
           case when reason is null then numerator - denominator end as value,
           numerator, denominator, reason
    from high_tech_enterprise_share_change
),
cumulative as (
    select g.year, g.as_of_month, g.division_code, g.division_name, g.level, k.indicator_id,
           coalesce(v.value, 0) as value,
           coalesce(v.value, 0) as numerator,
           cast(null as double) as denominator,
           cast(null as varchar) as reason
    from grid g
    cross join cumulative_ids k
    left join intermediate.division_counts v
      on v.year = g.year and v.as_of_month = g.as_of_month
     and v.division_code = g.division_code and v.indicator_id = k.indicator_id
)
select year, as_of_month, division_code, division_name, level, indicator_id,
       cast(value as double) as value, cast(numerator as double) as numerator,
       cast(denominator as double) as denominator, reason
from (
    select * from ratios
    union all select * from growths
    union all select * from changes
    union all select * from cumulative
)
