-- Firms holding a valid national high-tech enterprise certificate on the last
-- day of each as-of month. A certificate (a `new` or `renewed` row) is valid on
-- day d when recognized_on <= d < recognized_on + 3 years and no revocation of
-- that firm (same kind) falls on a day from recognized_on to d.
with certificates as (
    select credit_code, recognized_on from staging.recognition
    where kind = 'national_high_tech_enterprise' and status in ('new', 'renewed')
),
revocations as (
    select credit_code, recognized_on as revoked_on from staging.recognition
    where kind = 'national_high_tech_enterprise' and status = 'revoked'
),
days as (
    select year, as_of_month,
           cast(make_date(year, as_of_month, 1) + interval '1 month' - interval '1 day' as date) as day
    from intermediate.periods
),
live as (
    select d.year, d.as_of_month, d.day, c.credit_code, c.recognized_on
    from certificates c
    join days d on c.recognized_on <= d.day and d.day < c.recognized_on + interval '3 years'
),
revoked as (
    select l.year, l.as_of_month, l.credit_code, l.recognized_on
    from live l
    join revocations r
      on r.credit_code = l.credit_code and r.revoked_on >= l.recognized_on and r.revoked_on <= l.day
    group by l.year, l.as_of_month, l.credit_code, l.recognized_on
)
select l.year, l.as_of_month, l.credit_code
from live l
left join revoked v
  on v.year = l.year and v.as_of_month = l.as_of_month
 and v.credit_code = l.credit_code and v.recognized_on = l.recognized_on
where v.credit_code is null
group by l.year, l.as_of_month, l.credit_code
