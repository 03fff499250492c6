-- Disclosure control, step 1: each value of the five indicators that sum
-- respondents' figures, with its base's contributing units, the largest
-- unit's share and whether it is withheld on its own (primary). It reads
-- marts.indicators, the values it judges: the one intermediate model that
-- reads a mart, since it is a step of marts.disclosure. The rules and the
-- passes that follow: marts/disclosure.sql. Written by sql/gen_disclosure.py.
with rules as (select min_units, max_share from ref.disclosure_rules),
contracts as (
    select p.year, p.as_of_month, a.division_code, t.seller_credit_code,
           cast(sum(t.amount) as double) as amount
    from staging.tech_contract t
    join intermediate.periods p on p.year = t.year and t.month <= p.as_of_month
    join ref.division_ancestors a on a.county_code = t.county_code
    group by p.year, p.as_of_month, a.division_code, t.seller_credit_code
),
-- Each cell's bases: contributing units, the largest contribution, the total.
bases as (
    select year, as_of_month, division_code, 'rd_intensity' as indicator_id,
           rd_units as units, rd_max as top,
           enterprise_rd + case when quarter_month = 12 then institute_rd else 0 end as total
    from intermediate.division_economy
    union all
    select year, as_of_month, division_code, 'industrial_rd_ratio',
           aisi_rd_units, aisi_rd_max, aisi_rd_expenditure
    from intermediate.division_enterprise
    union all
    select year, as_of_month, division_code, 'high_tech_va_share',
           aisi_high_tech_va_units, aisi_high_tech_va_max, aisi_high_tech_value_added
    from intermediate.division_enterprise
    union all
    select year, as_of_month, division_code, 'basic_research_growth',
           basic_research_units, basic_research_max, basic_research
    from intermediate.division_enterprise
    union all
    -- The previous year's base, as the next year's cell.
    select year + 1, as_of_month, division_code, 'basic_research_growth',
           basic_research_units, basic_research_max, basic_research
    from intermediate.division_enterprise
    union all
    select year, as_of_month, division_code, 'tech_transaction_volume',
           sum(case when amount > 0 then 1 else 0 end), max(amount), sum(amount)
    from contracts
    group by year, as_of_month, division_code
),
judged as (
    select b.year, b.as_of_month, b.division_code, b.indicator_id,
           min(b.units) as units,
           max(case when b.total > 0 then b.top / b.total end) as top_share,
           bool_or(b.units >= 1 and b.units < r.min_units) as few_units,
           bool_or(b.total > 0 and b.top / b.total > r.max_share) as dominance
    from bases b
    cross join rules r
    group by b.year, b.as_of_month, b.division_code, b.indicator_id
)
select i.year, i.as_of_month, i.division_code, d.parent_code, i.indicator_id,
       i.value is not null as known,
       coalesce(abs(i.numerator), 0) as size,
       j.units, j.top_share,
       i.value is not null and coalesce(j.few_units or j.dominance, false) as suppressed,
       case when i.value is null then cast(null as varchar)
            when j.few_units then 'few_units'
            when j.dominance then 'dominance' end as rule
from marts.indicators i
join ref.divisions d on d.code = i.division_code
left join judged j
  on j.year = i.year and j.as_of_month = i.as_of_month
 and j.division_code = i.division_code and j.indicator_id = i.indicator_id
where i.indicator_id in ('rd_intensity', 'industrial_rd_ratio', 'high_tech_va_share',
                         'basic_research_growth', 'tech_transaction_volume')

