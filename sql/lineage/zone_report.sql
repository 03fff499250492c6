-- The zone's reports of the year and the year before.
select 'zone_report' as form, z.source_file, z.source_row, cast(z.submitted_at as varchar) as submitted_at,
       concat(z.zone_id, ' ', cast(z.year as varchar)) as key,
       concat('land ', cast(z.land_mu as varchar), ' mu, revenue ', cast(z.revenue as varchar),
              ', value added ', cast(z.value_added as varchar), ', tax ', cast(z.tax_revenue as varchar),
              ', energy ', cast(z.energy_tce as varchar), ' tce, R&D ', cast(z.rd_expenditure as varchar),
              ', high-tech firms ', cast(z.high_tech_enterprises as varchar)) as detail
from staging.zone_report z
where z.zone_id = $3 and z.year in ($1, $1 - 1) and $2 > 0
order by z.year desc
