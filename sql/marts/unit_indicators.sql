-- Unit-level indicators for the assessments of seed items 2 (high-tech
-- zones) and 3 (co-built research institutes), per unit and year (annual
-- forms). A zero or missing denominator gives a null value and a reason.
with z as (select * from staging.zone_report),
zone_rows as (
    select z.year, z.zone_id as unit_id, z.name as unit_name, z.county_code, z.level as zone_level,
           'value_added_per_mu' as indicator_id,
           cast(z.value_added as double) as numerator, cast(z.land_mu as double) as denominator
    from z
    union all
    select z.year, z.zone_id, z.name, z.county_code, z.level, 'tax_per_mu',
           cast(z.tax_revenue as double), cast(z.land_mu as double)
    from z
    union all
    select z.year, z.zone_id, z.name, z.county_code, z.level, 'energy_per_value_added',
           cast(z.energy_tce as double), cast(z.value_added as double)
    from z
    union all
    select z.year, z.zone_id, z.name, z.county_code, z.level, 'rd_intensity',
           cast(z.rd_expenditure as double), cast(z.revenue as double)
    from z
),
zone_growth as (
    select z.year, z.zone_id as unit_id, z.name as unit_name, z.county_code, z.level as zone_level,
           'high_tech_enterprise_growth' as indicator_id,
           cast(z.high_tech_enterprises as double) as numerator,
           cast(p.high_tech_enterprises as double) as denominator
    from z
    left join z p on p.zone_id = z.zone_id and p.year = z.year - 1
),
i as (select * from staging.institute_report),
institute_rows as (
    select i.year, i.institute_id as unit_id, i.name as unit_name, i.county_code,
           cast(null as varchar) as zone_level, 'rd_output_rate' as indicator_id,
           cast(i.patents_granted + i.achievements as double) as numerator,
           cast(i.researchers as double) as denominator
    from i
    union all
    select i.year, i.institute_id, i.name, i.county_code, cast(null as varchar), 'transfer_rate',
           cast(i.achievements_transferred as double), cast(i.achievements as double)
    from i
    union all
    select i.year, i.institute_id, i.name, i.county_code, cast(null as varchar), 'landing_rate',
           cast(i.achievements_landed as double), cast(i.achievements_transferred as double)
    from i
)
select year, 'zone' as unit_type, unit_id, unit_name, county_code, zone_level, indicator_id,
       case when denominator <> 0 then numerator / denominator end as value,
       numerator, denominator,
       case when denominator is null then 'denominator missing'
            when denominator = 0 then 'denominator is zero' end as reason
from zone_rows
union all
select year, 'zone', unit_id, unit_name, county_code, zone_level, indicator_id,
       case when denominator <> 0 then numerator / denominator - 1 end,
       numerator, denominator,
       case when denominator is null then 'no previous-year report of the zone'
            when denominator = 0 then 'previous-year base is zero' end
from zone_growth
union all
select year, 'institute', unit_id, unit_name, county_code, zone_level, indicator_id,
       case when denominator <> 0 then numerator / denominator end,
       numerator, denominator,
       case when denominator = 0 then 'denominator is zero' end
from institute_rows
union all
select i.year, 'institute', i.institute_id, i.name, i.county_code, cast(null as varchar),
       'horizontal_income', cast(i.horizontal_income as double),
       cast(i.horizontal_income as double), cast(null as double), cast(null as varchar)
from i
