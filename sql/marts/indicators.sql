-- Every indicator of the catalogue (indicators.md) per year × as-of month ×
-- division, long format. Parents are pooled (sums over sums). A missing or
-- zero denominator gives a null value and a reason. Units: ratios, growth and
-- share changes as fractions; money in 万元; counts as numbers.
-- numerator / denominator: the two sums of a ratio; for growth the year's and
-- the previous year's sums; for a share change the year's and the previous
-- year's shares; for cumulative indicators the value and null.
with grid as (
    -- quarter_month: the last quarter that has ended by the as-of month (0 before March).
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
        ('new_high_tech_enterprises', 'recognition'), ('new_tech_smes', 'recognition'),
        ('tech_transaction_volume', 'tech_contract'),
        ('corridor_key_project_investment', 'program_ledger'), ('sci_tech_finance', 'program_ledger'),
        ('new_provincial_enterprise_research_institutes', 'recognition'),
        ('new_provincial_high_tech_rd_centers', 'recognition'),
        ('innovation_consortia', 'recognition'), ('talent_teams', 'program_ledger'),
        ('key_tech_projects', 'program_ledger'), ('import_substitutions', 'program_ledger'),
        ('incubators', 'program_ledger'), ('tech_commissioners', 'program_ledger'),
        ('agricultural_enterprise_research_institutes', 'recognition'),
        ('star_innovation_bases', 'program_ledger')
    ) as t(indicator_id, form)
),

-- 全社会R&D经费占GDP比重, at the latest period enterprise R&D and GDP share,
-- per division (intermediate.division_economy): the latest quarter with GDP
-- up to the as-of month, with the firms' R&D as of that quarter's last month
-- (a county whose Q3 GDP is late is computed at Q2, June over June).
-- Institute R&D (annual) enters only when that quarter is Q4. A parent pools
-- the counties with GDP for its quarter; counties with data but no GDP for
-- it are left out of both sums, and the reason counts them.
rd_intensity as (
    select g.*, 'rd_intensity' as indicator_id,
           c.enterprise_rd + case when c.quarter_month = 12 then c.institute_rd else 0 end as numerator,
           c.gdp as denominator,
           case
               when g.as_of_month < 3 then 'no quarter has ended yet: GDP is quarterly'
               when c.gdp is null then concat('no GDP reported for ', cast(g.year as varchar), ' up to month ', cast(g.as_of_month as varchar))
               when c.gdp = 0 then concat('GDP for ', cast(g.year as varchar), '-Q', cast(c.quarter_month / 3 as varchar), ' is zero')
           end as null_reason,
           concat_ws('; ',
               case when c.quarter_month < 12 then concat(
                   'computed at ', cast(g.year as varchar), '-Q', cast(c.quarter_month / 3 as varchar),
                   ': enterprise R&D as of ', cast(g.year as varchar), '-', lpad(cast(c.quarter_month as varchar), 2, '0'),
                   ' over ', cast(g.year as varchar), '-Q', cast(c.quarter_month / 3 as varchar),
                   ' GDP; institute R&D (annual) enters at year end') end,
               case when c.counties_left_out > 0 then concat(
                   cast(c.counties_left_out as varchar), ' of ', cast(c.counties_left_out + c.counties_gdp as varchar),
                   ' counties with data left out: no GDP for ', cast(g.year as varchar), '-Q', cast(c.quarter_month / 3 as varchar)) end
           ) as note
    from grid g
    left join c on c.year = g.year and c.as_of_month = g.as_of_month and c.division_code = g.division_code
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

-- 高新技术产业投资增长: the latest quarter the year has (for a county, its
-- own; for a parent, the latest any of its counties has) against the same
-- quarter of the year before, never a later quarter over an earlier one.
-- Plain sums over every county reporting that quarter in each year; the
-- reason says when the counties differ between the two years.
high_tech_investment_growth as (
    select g.*, 'high_tech_investment_growth' as indicator_id,
           c.high_tech_investment as numerator, c.high_tech_investment_prev as denominator,
           case
               when g.as_of_month < 3 then 'no quarter has ended yet: investment is quarterly'
               when c.high_tech_investment is null then concat('no high-tech investment reported for ', cast(g.year as varchar), ' up to month ', cast(g.as_of_month as varchar))
               when c.high_tech_investment_prev is null then concat('no previous-year base for ', cast(g.year - 1 as varchar), '-Q', cast(c.quarter_month / 3 as varchar))
               when c.high_tech_investment_prev = 0 then concat('previous-year base for ', cast(g.year - 1 as varchar), '-Q', cast(c.quarter_month / 3 as varchar), ' is zero')
           end as null_reason,
           concat_ws('; ',
               case when c.quarter_month < g.quarter_month then concat(
                   'computed at ', cast(g.year as varchar), '-Q', cast(c.quarter_month / 3 as varchar),
                   ' against ', cast(g.year - 1 as varchar), '-Q', cast(c.quarter_month / 3 as varchar),
                   ' (latest quarter reported)') end,
               case when c.counties_investment_both < greatest(c.counties_investment, c.counties_investment_prev) then concat(
                   'plain sums over every reporting county: ', cast(c.counties_investment as varchar),
                   ' reported ', cast(g.year as varchar), '-Q', cast(c.quarter_month / 3 as varchar), ', ',
                   cast(c.counties_investment_prev as varchar), ' reported ', cast(g.year - 1 as varchar), '-Q', cast(c.quarter_month / 3 as varchar),
                   ', ', cast(c.counties_investment_both as varchar), ' both') end
           ) as note
    from grid g
    left join c on c.year = g.year and c.as_of_month = g.as_of_month and c.division_code = g.division_code
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

-- Indicators whose CTE says why a value is null (null_reason) and adds what
-- it covers (note).
noted as (
    select year, as_of_month, division_code, division_name, level, indicator_id,
           case when null_reason is null then
               case when indicator_id = 'rd_intensity' then numerator / denominator
                    else numerator / denominator - 1 end
           end as value,
           numerator, denominator,
           coalesce(null_reason, nullif(note, '')) as reason
    from (select * from rd_intensity union all select * from high_tech_investment_growth)
),
ratios as (
    select year, as_of_month, division_code, division_name, level, indicator_id,
           case when reason is null then numerator / denominator end as value,
           numerator, denominator, reason
    from (select * from industrial_rd_ratio
          union all select * from high_tech_va_share)
),
growths as (
    select year, as_of_month, division_code, division_name, level, indicator_id,
           case when reason is null then numerator / denominator - 1 end as value,
           numerator, denominator, reason
    from basic_research_growth
),
changes as (
    select year, as_of_month, division_code, division_name, level, indicator_id,
           case when reason is null then numerator - denominator end as value,
           numerator, denominator, reason
    from high_tech_enterprise_share_change
),
-- Counts and sums over no rows are 0; when the division has no row of the
-- form at all for the year up to the month (intermediate.form_months), the
-- reason says so (a 0 that means "nothing sent yet", not a counted zero).
cumulative as (
    select g.year, g.as_of_month, g.division_code, g.division_name, g.level, k.indicator_id,
           coalesce(v.value, 0) as value,
           coalesce(v.value, 0) as numerator,
           cast(null as double) as denominator,
           case when f.form is null then concat(
               'no ', k.form, ' submissions for ', cast(g.year as varchar), ' up to month ',
               cast(g.as_of_month as varchar), ': 0 over no rows') end as reason
    from grid g
    cross join cumulative_ids k
    left join intermediate.division_counts v
      on v.year = g.year and v.as_of_month = g.as_of_month
     and v.division_code = g.division_code and v.indicator_id = k.indicator_id
    left join intermediate.form_months f
      on f.year = g.year and f.as_of_month = g.as_of_month
     and f.division_code = g.division_code and f.form = k.form
)
-- What rests on open review queries (intermediate.division_queried): their
-- count, their share of the numerator, and the value with every queried
-- input held at its expected value (the same formula over the moved sums).
select i.year, i.as_of_month, i.division_code, i.division_name, i.level, i.indicator_id,
       cast(i.value as double) as value, cast(i.numerator as double) as numerator,
       cast(i.denominator as double) as denominator, i.reason,
       coalesce(q.queried, 0) as queried,
       case when q.queried > 0 and i.numerator <> 0
            then abs(q.queried_amount / cast(i.numerator as double)) end as queried_share,
       case
           when q.queried is null or i.value is null then cast(i.value as double)
           when i.indicator_id in ('rd_intensity', 'industrial_rd_ratio', 'high_tech_va_share') then
               (i.numerator + q.held_numerator_delta) / nullif(i.denominator + q.held_denominator_delta, 0)
           when i.indicator_id in ('high_tech_investment_growth', 'basic_research_growth') then
               (i.numerator + q.held_numerator_delta) / nullif(i.denominator + q.held_denominator_delta, 0) - 1
           else cast(i.value as double)
       end as held_value
from (
    select * from noted
    union all select * from ratios
    union all select * from growths
    union all select * from changes
    union all select * from cumulative
) i
left join intermediate.division_queried q
  on q.year = i.year and q.as_of_month = i.as_of_month
 and q.division_code = i.division_code and q.indicator_id = i.indicator_id
