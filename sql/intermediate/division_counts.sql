-- Cumulative indicators (counts and amounts that build up through the year)
-- per division and as-of month, long format. "New" recognitions are distinct
-- firms with a `new` row of the kind dated in the year up to the month, pooled
-- at each level (a firm counts once in a parent). Contracts count on the
-- seller's county; ledger rows on their own county_code.
with recognition_ids as (
    select * from (values
        ('national_high_tech_enterprise', 'new_high_tech_enterprises'),
        ('provincial_tech_sme', 'new_tech_smes'),
        ('provincial_enterprise_research_institute', 'new_provincial_enterprise_research_institutes'),
        ('provincial_high_tech_rd_center', 'new_provincial_high_tech_rd_centers'),
        ('innovation_consortium', 'innovation_consortia'),
        ('agricultural_enterprise_research_institute', 'agricultural_enterprise_research_institutes')
    ) as t(kind, indicator_id)
),
ledger_ids as (
    select * from (values
        ('corridor_key_project_investment', 'corridor_key_project_investment', true),
        ('sci_tech_finance', 'sci_tech_finance', true),
        ('talent_team', 'talent_teams', false),
        ('key_tech_project', 'key_tech_projects', false),
        ('import_substitution', 'import_substitutions', false),
        ('incubator', 'incubators', false),
        ('tech_commissioner', 'tech_commissioners', false),
        ('star_innovation_base', 'star_innovation_bases', false)
    ) as t(kind, indicator_id, is_amount)
),
new_firms as (
    select p.year, p.as_of_month, a.division_code, k.indicator_id, r.credit_code
    from staging.recognition r
    join recognition_ids k on k.kind = r.kind
    join intermediate.periods p on p.year = r.year and r.month <= p.as_of_month
    join ref.division_ancestors a on a.county_code = r.county_code
    where r.status = 'new'
    group by p.year, p.as_of_month, a.division_code, k.indicator_id, r.credit_code
),
contracts as (
    select t.year, t.month, t.county_code, sum(t.amount) as amount
    from staging.tech_contract t
    group by t.year, t.month, t.county_code
),
ledger as (
    select l.year, l.month, l.county_code, k.indicator_id,
           sum(case when k.is_amount then l.amount else cast(l.quantity as decimal(38, 4)) end) as amount
    from staging.program_ledger l
    join ledger_ids k on k.kind = l.kind
    group by l.year, l.month, l.county_code, k.indicator_id
)
select year, as_of_month, division_code, indicator_id, cast(count(*) as double) as value
from new_firms
group by year, as_of_month, division_code, indicator_id
union all
select p.year, p.as_of_month, a.division_code, 'tech_transaction_volume' as indicator_id,
       cast(sum(c.amount) as double) as value
from contracts c
join intermediate.periods p on p.year = c.year and c.month <= p.as_of_month
join ref.division_ancestors a on a.county_code = c.county_code
group by p.year, p.as_of_month, a.division_code
union all
select p.year, p.as_of_month, a.division_code, l.indicator_id, cast(sum(l.amount) as double) as value
from ledger l
join intermediate.periods p on p.year = l.year and l.month <= p.as_of_month
join ref.division_ancestors a on a.county_code = l.county_code
group by p.year, p.as_of_month, a.division_code, l.indicator_id
