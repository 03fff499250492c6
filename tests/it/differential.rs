//! A second, independent computation of every indicator of `marts.indicators`.
//!
//! [`reference`] is written from `shared/spec/indicators.md` and the choices in
//! README ("Choices where the spec is silent"), in plain Rust over the typed
//! rows of the submissions: it shares no code and no SQL with the models. The
//! test generates seeded random small data sets — firms that enter late or
//! stop, firms that move county, late and missing quarters, corrections,
//! withdrawals, same-time conflicts, retired county codes (one retired twice),
//! zero denominators — writes them as CSV files, ingests them and runs the
//! models, then compares every year × as-of month 1–12 × division (county,
//! prefecture, province, region) × indicator of `marts.indicators`, and every
//! zone and institute indicator of `marts.unit_indicators` (per unit and
//! year): value (to 1e-9, relative) and reason (text), nulls included.
//!
//! Each data set lives in its own generated province, so one ingest and one
//! model run check many at once. On a disagreement the failing data set is
//! shrunk (rows removed while the disagreement stays, within a budget of model
//! runs) and printed as the CSV files to reproduce it.
//!
//! `STMON_DIFF_ROUNDS=N` runs more rounds (each a new seed) than CI's default.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use chrono::{Datelike, Duration, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use stmon_models::run::{run, RunOptions};
use stmon_schema::{Catalog, Division, Divisions};

use crate::common::*;

const DATASETS_PER_ROUND: usize = 8;
const YEARS: [i32; 2] = [2022, 2023];

// ---------------------------------------------------------------- the data --

type Date = (i32, u32, u32);

/// One submitted row (a version of a key). `county` may be a retired code.
#[derive(Debug, Clone)]
enum Sub {
    Rd {
        credit: String,
        year: i32,
        month: u32,
        county: String,
        industry: &'static str,
        above: bool,
        high_tech: bool,
        revenue: f64,
        rd: f64,
        basic: Option<f64>,
        value_added: Option<f64>,
    },
    Econ {
        county: String,
        year: i32,
        quarter: u32,
        gdp: f64,
        investment: f64,
    },
    Inst {
        id: String,
        year: i32,
        county: String,
        rd: f64,
        horizontal: f64,
        /// researchers, patents granted, achievements, transferred, landed.
        counts: [i64; 5],
    },
    Zone {
        id: String,
        year: i32,
        county: String,
        land: f64,
        revenue: f64,
        value_added: f64,
        tax: f64,
        energy: f64,
        rd: f64,
        high_tech_enterprises: i64,
    },
    Recog {
        credit: String,
        county: String,
        kind: &'static str,
        date: Date,
        status: &'static str,
    },
    Contract {
        id: String,
        date: Date,
        county: String,
        seller: String,
        amount: f64,
    },
    Ledger {
        id: String,
        county: String,
        kind: &'static str,
        date: Date,
        quantity: Option<i64>,
        amount: Option<f64>,
    },
}

/// A version: the row, when it was submitted (minutes after a base time), and
/// whether it withdraws its key. `file` spreads versions over files.
#[derive(Debug, Clone)]
struct Version {
    sub: Sub,
    at: i64,
    withdrawn: bool,
    file: usize,
}

const RECOGNITION_KINDS: [&str; 6] = [
    "national_high_tech_enterprise",
    "provincial_tech_sme",
    "provincial_enterprise_research_institute",
    "provincial_high_tech_rd_center",
    "innovation_consortium",
    "agricultural_enterprise_research_institute",
];
const LEDGER_KINDS: [&str; 8] = [
    "corridor_key_project_investment",
    "sci_tech_finance",
    "talent_team",
    "key_tech_project",
    "import_substitution",
    "incubator",
    "tech_commissioner",
    "star_innovation_base",
];
const MONEY_KINDS: [&str; 2] = ["corridor_key_project_investment", "sci_tech_finance"];

fn form_of(s: &Sub) -> &'static str {
    match s {
        Sub::Rd { .. } => "enterprise_rd",
        Sub::Econ { .. } => "county_economy",
        Sub::Inst { .. } => "institute_report",
        Sub::Zone { .. } => "zone_report",
        Sub::Recog { .. } => "recognition",
        Sub::Contract { .. } => "tech_contract",
        Sub::Ledger { .. } => "program_ledger",
    }
}

fn header(form: &str) -> &'static str {
    match form {
        "enterprise_rd" => "period,credit_code,name,county_code,industry_code,above_scale,high_tech_industry,revenue,rd_expenditure,basic_research,value_added,submitted_at,withdrawn",
        "county_economy" => "period,county_code,gdp,high_tech_investment,submitted_at,withdrawn",
        "institute_report" => "period,institute_id,name,county_code,partner,rd_expenditure,horizontal_income,researchers,patents_granted,achievements,achievements_transferred,achievements_landed,firms_incubated,submitted_at,withdrawn",
        "zone_report" => "period,zone_id,name,level,county_code,land_mu,revenue,value_added,tax_revenue,energy_tce,rd_expenditure,high_tech_enterprises,submitted_at,withdrawn",
        "recognition" => "credit_code,name,county_code,kind,recognized_on,status,submitted_at,withdrawn",
        "tech_contract" => "contract_id,registered_on,county_code,seller_credit_code,contract_type,amount,submitted_at,withdrawn",
        "program_ledger" => "record_id,county_code,kind,occurred_on,quantity,amount,name,submitted_at,withdrawn",
        _ => unreachable!(),
    }
}

fn date(d: Date) -> String {
    format!("{}-{:02}-{:02}", d.0, d.1, d.2)
}

fn money(v: f64) -> String {
    format!("{v:.2}")
}

fn timestamp(at: i64) -> String {
    let base = NaiveDate::from_ymd_opt(2024, 3, 1)
        .unwrap()
        .and_hms_opt(8, 0, 0)
        .unwrap();
    (base + Duration::minutes(at))
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// The CSV cells of a version (a withdrawal keeps only its key).
fn cells(v: &Version) -> Vec<String> {
    let yn = |b: bool| if b { "Y" } else { "N" }.to_string();
    let opt = |x: &Option<f64>| x.map(money).unwrap_or_default();
    let w = v.withdrawn;
    let keep = |s: String| if w { String::new() } else { s };
    let mut c = match &v.sub {
        Sub::Rd {
            credit,
            year,
            month,
            county,
            industry,
            above,
            high_tech,
            revenue,
            rd,
            basic,
            value_added,
        } => vec![
            format!("{year}-{month:02}"),
            credit.clone(),
            keep("企业".into()),
            keep(county.clone()),
            keep(industry.to_string()),
            keep(yn(*above)),
            keep(yn(*high_tech)),
            keep(money(*revenue)),
            keep(money(*rd)),
            keep(opt(basic)),
            keep(opt(value_added)),
        ],
        Sub::Econ {
            county,
            year,
            quarter,
            gdp,
            investment,
        } => vec![
            format!("{year}-Q{quarter}"),
            county.clone(),
            keep(money(*gdp)),
            keep(money(*investment)),
        ],
        Sub::Inst {
            id,
            year,
            county,
            rd,
            horizontal,
            counts,
        } => {
            let mut c = vec![
                year.to_string(),
                id.clone(),
                keep("研究院".into()),
                keep(county.clone()),
                String::new(),
                keep(money(*rd)),
                keep(money(*horizontal)),
            ];
            c.extend(counts.iter().map(|x| keep(x.to_string())));
            c.push(keep("0".into()));
            c
        }
        Sub::Zone {
            id,
            year,
            county,
            land,
            revenue,
            value_added,
            tax,
            energy,
            rd,
            high_tech_enterprises,
        } => vec![
            year.to_string(),
            id.clone(),
            keep("园区".into()),
            keep("provincial".into()),
            keep(county.clone()),
            keep(money(*land)),
            keep(money(*revenue)),
            keep(money(*value_added)),
            keep(money(*tax)),
            keep(money(*energy)),
            keep(money(*rd)),
            keep(high_tech_enterprises.to_string()),
        ],
        Sub::Recog {
            credit,
            county,
            kind,
            date: d,
            status,
        } => vec![
            credit.clone(),
            String::new(),
            keep(county.clone()),
            kind.to_string(),
            date(*d),
            keep(status.to_string()),
        ],
        Sub::Contract {
            id,
            date: d,
            county,
            seller,
            amount,
        } => vec![
            id.clone(),
            keep(date(*d)),
            keep(county.clone()),
            keep(seller.clone()),
            keep("development".into()),
            keep(money(*amount)),
        ],
        Sub::Ledger {
            id,
            county,
            kind,
            date: d,
            quantity,
            amount,
        } => vec![
            id.clone(),
            keep(county.clone()),
            keep(kind.to_string()),
            keep(date(*d)),
            keep(quantity.map(|q| q.to_string()).unwrap_or_default()),
            keep(opt(amount)),
            String::new(),
        ],
    };
    c.push(timestamp(v.at));
    c.push(yn(w));
    c
}

/// The key of a version, after mapping a retired county code.
fn key(v: &Version, divisions: &Divisions) -> String {
    match &v.sub {
        Sub::Rd {
            credit,
            year,
            month,
            ..
        } => format!("{credit} {year}-{month}"),
        Sub::Econ {
            county,
            year,
            quarter,
            ..
        } => format!("{} {year}-Q{quarter}", current(divisions, county)),
        Sub::Inst { id, year, .. } | Sub::Zone { id, year, .. } => format!("{id} {year}"),
        Sub::Recog {
            credit, kind, date, ..
        } => format!("{credit} {kind} {date:?}"),
        Sub::Contract { id, .. } | Sub::Ledger { id, .. } => id.clone(),
    }
}

fn current(divisions: &Divisions, code: &str) -> String {
    divisions.current(code).expect("no cycle")
}

/// One data set: the versions of its rows, in one province.
#[derive(Debug, Clone)]
struct DataSet {
    province: String,
    versions: Vec<Version>,
}

/// The division table of `n` generated provinces: each has two prefectures,
/// 2–4 counties, and the retired codes P0181 → P0182 → P0101.
fn division_table(n: usize, counties_of: &[usize]) -> Vec<Division> {
    let d = |code: String, parent: Option<String>, successor: Option<String>| Division {
        name: format!("区划{code}"),
        code,
        parent_code: parent,
        successor,
    };
    let mut rows = Vec::new();
    for (k, &counties) in counties_of.iter().enumerate().take(n) {
        let p = format!("{}", 11 + k);
        rows.push(d(format!("{p}0000"), None, None));
        rows.push(d(format!("{p}0100"), Some(format!("{p}0000")), None));
        rows.push(d(format!("{p}0200"), Some(format!("{p}0000")), None));
        for c in 0..counties {
            let (pref, idx) = if c < 2 { ("01", c + 1) } else { ("02", c - 1) };
            rows.push(d(
                format!("{p}{pref}{idx:02}"),
                Some(format!("{p}{pref}00")),
                None,
            ));
        }
        rows.push(d(
            format!("{p}0181"),
            Some(format!("{p}0100")),
            Some(format!("{p}0182")),
        ));
        rows.push(d(
            format!("{p}0182"),
            Some(format!("{p}0100")),
            Some(format!("{p}0101")),
        ));
    }
    rows
}

fn counties_in(divisions: &Divisions, province: &str) -> Vec<String> {
    divisions
        .counties()
        .filter(|d| d.code.starts_with(&province[..2]))
        .map(|d| d.code.clone())
        .collect()
}

const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

fn credit_code(rng: &mut ChaCha8Rng, division: &str) -> String {
    let tail: String = (0..9)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    stmon_core::credit_code::complete(&format!("91{division}{tail}")).expect("17 characters")
}

fn amount(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    (rng.random_range(lo..hi) * 100.0).round() / 100.0
}

/// A random data set in province `p` (its counties from the table).
fn generate(rng: &mut ChaCha8Rng, province: &str, counties: &[String]) -> DataSet {
    let mut at = 0i64;
    let mut tick = || {
        at += 1;
        at
    };
    let pick = |rng: &mut ChaCha8Rng, v: &[String]| v[rng.random_range(0..v.len())].clone();
    let p = &province[..2];
    // A county as written on a row: sometimes a retired code of P0101.
    let written = |rng: &mut ChaCha8Rng, c: &str| {
        if c == format!("{p}0101") && rng.random_bool(0.3) {
            if rng.random_bool(0.5) {
                format!("{p}0181")
            } else {
                format!("{p}0182")
            }
        } else {
            c.to_string()
        }
    };
    let mut subs: Vec<Sub> = Vec::new();

    // Firms: entrants, firms that stop, firms that move county.
    let firms: Vec<(String, String)> = (0..rng.random_range(2..7))
        .map(|_| {
            let home = pick(rng, counties);
            (credit_code(rng, &home), home)
        })
        .collect();
    for (credit, home) in &firms {
        for year in YEARS {
            if !rng.random_bool(0.85) {
                continue;
            }
            let start = if rng.random_bool(0.6) {
                1
            } else {
                rng.random_range(1..=12)
            };
            let end = if rng.random_bool(0.6) {
                12
            } else {
                rng.random_range(start..=12)
            };
            let moves_at = rng.random_bool(0.2).then(|| rng.random_range(1..=12));
            let other = pick(rng, counties);
            let industry = ["C39", "B06", "D44", "M73", "c26"][rng.random_range(0..5)];
            let mut above = rng.random_bool(0.7);
            let high_tech = rng.random_bool(0.5);
            let mut ytd = 0.0;
            for month in start..=end {
                if month != end && !rng.random_bool(0.6) {
                    continue;
                }
                if rng.random_bool(0.1) {
                    above = !above;
                }
                let county = match moves_at {
                    Some(m) if month >= m => other.clone(),
                    _ => home.clone(),
                };
                ytd += amount(rng, 0.0, 1000.0);
                let revenue = if rng.random_bool(0.05) { 0.0 } else { ytd };
                let rd = amount(rng, 0.0, revenue.max(1.0) * 0.1);
                subs.push(Sub::Rd {
                    credit: credit.clone(),
                    year,
                    month,
                    county: written(rng, &county),
                    industry,
                    above,
                    high_tech: high_tech ^ rng.random_bool(0.1),
                    revenue,
                    rd,
                    basic: rng
                        .random_bool(0.8)
                        .then(|| (rd * rng.random_range(0.0..0.5) * 100.0).floor() / 100.0),
                    value_added: rng
                        .random_bool(0.8)
                        .then(|| amount(rng, 0.0, revenue.max(1.0) * 0.3)),
                });
            }
        }
    }
    // County economy: late and missing quarters, a county with none.
    for county in counties {
        if rng.random_bool(0.15) {
            continue;
        }
        for year in YEARS {
            let mut ytd = (0.0, 0.0);
            for quarter in 1..=4 {
                ytd.0 += amount(rng, 1000.0, 50000.0);
                ytd.1 += amount(rng, 0.0, 500.0);
                if !rng.random_bool(0.75) {
                    continue;
                }
                subs.push(Sub::Econ {
                    county: county.clone(),
                    year,
                    quarter,
                    gdp: if rng.random_bool(0.03) { 0.0 } else { ytd.0 },
                    investment: if rng.random_bool(0.08) { 0.0 } else { ytd.1 },
                });
            }
        }
    }
    for i in 0..rng.random_range(0..3) {
        let county = pick(rng, counties);
        for year in YEARS {
            if rng.random_bool(0.7) {
                let achievements = rng.random_range(0..4);
                let transferred = rng.random_range(0..=achievements);
                subs.push(Sub::Inst {
                    id: format!("I{p}{i}"),
                    year,
                    county: written(rng, &county),
                    rd: amount(rng, 0.0, 300.0),
                    horizontal: amount(rng, 0.0, 100.0),
                    counts: [
                        rng.random_range(0..12),
                        rng.random_range(0..5),
                        achievements,
                        transferred,
                        rng.random_range(0..=transferred),
                    ],
                });
            }
        }
    }
    for i in 0..rng.random_range(0..3) {
        let county = pick(rng, counties);
        for year in YEARS {
            if rng.random_bool(0.7) {
                let zero =
                    |rng: &mut ChaCha8Rng, v: f64| if rng.random_bool(0.1) { 0.0 } else { v };
                let revenue = amount(rng, 100.0, 9000.0);
                subs.push(Sub::Zone {
                    id: format!("Z{p}{i}"),
                    year,
                    county: written(rng, &county),
                    land: amount(rng, 1.0, 5000.0),
                    revenue: zero(rng, revenue),
                    value_added: zero(rng, (revenue * 30.0).round() / 100.0),
                    tax: amount(rng, 0.0, 500.0),
                    energy: amount(rng, 0.0, 900.0),
                    rd: amount(rng, 0.0, 300.0),
                    high_tech_enterprises: if rng.random_bool(0.15) {
                        0
                    } else {
                        rng.random_range(1..60)
                    },
                });
            }
        }
    }
    for _ in 0..rng.random_range(2..10) {
        let credit = if rng.random_bool(0.8) {
            firms[rng.random_range(0..firms.len())].0.clone()
        } else {
            let c = pick(rng, counties);
            credit_code(rng, &c)
        };
        let county = pick(rng, counties);
        let kind = if rng.random_bool(0.5) {
            RECOGNITION_KINDS[0]
        } else {
            RECOGNITION_KINDS[rng.random_range(0..6)]
        };
        let year = [2019, 2020, 2021, 2022, 2023, 2023, 2023][rng.random_range(0..7)];
        subs.push(Sub::Recog {
            credit,
            county: written(rng, &county),
            kind,
            date: (year, rng.random_range(1..=12), rng.random_range(1..=28)),
            status: ["new", "new", "new", "renewed", "revoked"][rng.random_range(0..5)],
        });
    }
    for i in 0..rng.random_range(0..6) {
        let county = pick(rng, counties);
        subs.push(Sub::Contract {
            id: format!("T{p}{i}"),
            date: (
                YEARS[rng.random_range(0..2)],
                rng.random_range(1..=12),
                rng.random_range(1..=28),
            ),
            county: written(rng, &county),
            seller: firms[0].0.clone(),
            amount: amount(rng, 0.0, 200.0),
        });
    }
    for i in 0..rng.random_range(0..6) {
        let county = pick(rng, counties);
        let kind = LEDGER_KINDS[rng.random_range(0..8)];
        let money_kind = MONEY_KINDS.contains(&kind);
        subs.push(Sub::Ledger {
            id: format!("L{p}{i}"),
            county: written(rng, &county),
            kind,
            date: (
                YEARS[rng.random_range(0..2)],
                rng.random_range(1..=12),
                rng.random_range(1..=28),
            ),
            quantity: rng.random_bool(0.6).then(|| rng.random_range(0..5)),
            amount: (money_kind || rng.random_bool(0.3)).then(|| amount(rng, 0.0, 500.0)),
        });
    }

    // Versions: each row once; some corrected later, withdrawn, or in conflict.
    let mut versions = Vec::new();
    for sub in subs {
        versions.push(Version {
            sub: sub.clone(),
            at: tick(),
            withdrawn: false,
            file: 0,
        });
        let roll: f64 = rng.random();
        if roll < 0.10 {
            versions.push(Version {
                sub: perturb(rng, &sub),
                at: tick(),
                withdrawn: false,
                file: 1,
            });
        } else if roll < 0.15 {
            versions.push(Version {
                sub: sub.clone(),
                at: tick(),
                withdrawn: true,
                file: 1,
            });
        } else if roll < 0.20 {
            // Two versions with the same submitted_at that differ: a conflict.
            let t = tick();
            versions.push(Version {
                sub: perturb(rng, &sub),
                at: t,
                withdrawn: false,
                file: 1,
            });
            versions.push(Version {
                sub: perturb(rng, &sub),
                at: t,
                withdrawn: false,
                file: 2,
            });
        }
    }
    DataSet {
        province: province.to_string(),
        versions,
    }
}

/// The same key with other values (always different from the original).
fn perturb(rng: &mut ChaCha8Rng, s: &Sub) -> Sub {
    let bump = |rng: &mut ChaCha8Rng, v: f64| v + amount(rng, 1.0, 100.0);
    let mut s = s.clone();
    match &mut s {
        Sub::Rd {
            rd, revenue, above, ..
        } => {
            *revenue = bump(rng, *revenue);
            *rd = bump(rng, *rd);
            if rng.random_bool(0.3) {
                *above = !*above;
            }
        }
        Sub::Econ {
            gdp, investment, ..
        } => {
            *gdp = bump(rng, *gdp);
            *investment = bump(rng, *investment);
        }
        Sub::Inst { rd, .. } => *rd = bump(rng, *rd),
        Sub::Zone { tax, .. } => *tax = bump(rng, *tax),
        Sub::Recog { status, .. } => *status = if *status == "new" { "renewed" } else { "new" },
        Sub::Contract { amount: a, .. } => *a = bump(rng, *a),
        Sub::Ledger {
            amount: a,
            quantity,
            ..
        } => {
            *a = Some(bump(rng, a.unwrap_or(0.0)));
            *quantity = Some(quantity.unwrap_or(1) + 1);
        }
    }
    s
}

/// Writes the data sets as CSV files, one folder per data set.
fn write_inbox(dir: &Path, sets: &[&DataSet]) {
    for set in sets {
        let folder = dir.join(&set.province);
        std::fs::create_dir_all(&folder).unwrap();
        let mut files: BTreeMap<(String, usize), String> = BTreeMap::new();
        for v in &set.versions {
            let form = form_of(&v.sub);
            let text = files
                .entry((form.to_string(), v.file))
                .or_insert_with(|| format!("{}\n", header(form)));
            let line: Vec<String> = cells(v)
                .into_iter()
                .map(|c| {
                    if c.contains(',') {
                        format!("\"{c}\"")
                    } else {
                        c
                    }
                })
                .collect();
            writeln!(text, "{}", line.join(",")).unwrap();
        }
        for ((form, file), text) in files {
            std::fs::write(folder.join(format!("{form}-{file}.csv")), text).unwrap();
        }
    }
}

// ---------------------------------------------------------- the reference --

/// What the indicators read: the current view of each form, typed, with
/// county codes mapped to current ones.
#[derive(Default)]
struct Current {
    rd: Vec<Sub>,
    econ: Vec<Sub>,
    inst: Vec<Sub>,
    zones: Vec<Sub>,
    recog: Vec<Sub>,
    contracts: Vec<Sub>,
    ledger: Vec<Sub>,
}

/// The current view (submissions.md): per key, versions with the same
/// submitted_at that differ are a conflict and drop out; the latest remaining
/// version is current unless it withdraws the key.
fn current_view(versions: &[&Version], divisions: &Divisions) -> Current {
    let mut by_key: BTreeMap<(String, String), Vec<&Version>> = BTreeMap::new();
    for v in versions {
        by_key
            .entry((form_of(&v.sub).to_string(), key(v, divisions)))
            .or_default()
            .push(v);
    }
    let mut out = Current::default();
    for (_, vs) in by_key {
        let mut by_time: BTreeMap<i64, Vec<&Version>> = BTreeMap::new();
        for v in vs {
            by_time.entry(v.at).or_default().push(v);
        }
        let latest = by_time
            .into_iter()
            .rev()
            .find(|(_, same)| {
                let first = cells(same[0]);
                same.iter().all(|v| cells(v) == first)
            })
            .map(|(_, same)| same[0]);
        let Some(v) = latest else { continue };
        if v.withdrawn {
            continue;
        }
        let mut sub = v.sub.clone();
        match &mut sub {
            Sub::Rd { county, .. }
            | Sub::Econ { county, .. }
            | Sub::Inst { county, .. }
            | Sub::Zone { county, .. }
            | Sub::Recog { county, .. }
            | Sub::Contract { county, .. }
            | Sub::Ledger { county, .. } => *county = current(divisions, county),
        }
        match &sub {
            Sub::Rd { .. } => out.rd.push(sub),
            Sub::Econ { .. } => out.econ.push(sub),
            Sub::Inst { .. } => out.inst.push(sub),
            Sub::Zone { .. } => out.zones.push(sub),
            Sub::Recog { .. } => out.recog.push(sub),
            Sub::Contract { .. } => out.contracts.push(sub),
            Sub::Ledger { .. } => out.ledger.push(sub),
        }
    }
    out
}

/// A firm as of a month: its latest report of the year up to the month.
struct AsOf {
    credit: String,
    county: String,
    aisi: bool,
    high_tech: bool,
    revenue: f64,
    rd: f64,
    basic: f64,
    value_added: f64,
}

fn firms_asof(cur: &Current, year: i32, month: u32) -> Vec<AsOf> {
    let mut latest: BTreeMap<&str, &Sub> = BTreeMap::new();
    for s in &cur.rd {
        if let Sub::Rd {
            credit,
            year: y,
            month: m,
            ..
        } = s
        {
            if *y == year && *m <= month {
                let newer = match latest.get(credit.as_str()) {
                    Some(Sub::Rd { month: lm, .. }) => m > lm,
                    _ => true,
                };
                if newer {
                    latest.insert(credit, s);
                }
            }
        }
    }
    latest
        .values()
        .map(|s| match s {
            Sub::Rd {
                credit,
                county,
                industry,
                above,
                high_tech,
                revenue,
                rd,
                basic,
                value_added,
                ..
            } => AsOf {
                credit: credit.clone(),
                county: county.clone(),
                aisi: *above
                    && matches!(
                        industry.chars().next().map(|c| c.to_ascii_uppercase()),
                        Some('B' | 'C' | 'D')
                    ),
                high_tech: *high_tech,
                revenue: *revenue,
                rd: *rd,
                basic: basic.unwrap_or(0.0),
                value_added: value_added.unwrap_or(0.0),
            },
            _ => unreachable!(),
        })
        .collect()
}

/// A national high-tech enterprise certificate valid on day `d`: a `new` or
/// `renewed` row with recognized_on ≤ d < recognized_on + 3 years, and no
/// revocation of the firm dated from recognized_on to d.
fn certified(cur: &Current, credit: &str, d: Date) -> bool {
    let rows: Vec<(Date, &str)> = cur
        .recog
        .iter()
        .filter_map(|s| match s {
            Sub::Recog {
                credit: c,
                kind,
                date,
                status,
                ..
            } if c == credit && *kind == "national_high_tech_enterprise" => Some((*date, *status)),
            _ => None,
        })
        .collect();
    rows.iter().any(|&(from, status)| {
        status != "revoked"
            && from <= d
            && d < (from.0 + 3, from.1, from.2)
            && !rows
                .iter()
                .any(|&(r, s)| s == "revoked" && from <= r && r <= d)
    })
}

fn last_day(year: i32, month: u32) -> Date {
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    }
    .unwrap();
    let d = next - Duration::days(1);
    (d.year(), d.month(), d.day())
}

/// Every indicator of every division: (year, month, division, id) → (value, reason).
type Values = BTreeMap<(i32, u32, String, String), (Option<f64>, Option<String>)>;

fn reference(cur: &Current, divisions: &Divisions) -> Values {
    // The divisions computed, and the current counties under each.
    let counties: Vec<String> = divisions.counties().map(|d| d.code.clone()).collect();
    let mut under: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in &counties {
        let mut code = Some(c.clone());
        while let Some(x) = code {
            under.entry(x.clone()).or_default().insert(c.clone());
            code = divisions.get(&x).and_then(|d| d.parent_code.clone());
        }
        under.entry("000000".into()).or_default().insert(c.clone());
    }
    for d in &divisions.rows {
        if d.successor.is_none() {
            under.entry(d.code.clone()).or_default();
        }
    }
    // Periods: the years with statistical reports.
    let mut years = BTreeSet::new();
    for s in cur
        .rd
        .iter()
        .chain(&cur.econ)
        .chain(&cur.inst)
        .chain(&cur.zones)
        .chain(&cur.contracts)
        .chain(&cur.ledger)
    {
        years.insert(match s {
            Sub::Rd { year, .. }
            | Sub::Econ { year, .. }
            | Sub::Inst { year, .. }
            | Sub::Zone { year, .. } => *year,
            Sub::Contract { date, .. } | Sub::Ledger { date, .. } => date.0,
            Sub::Recog { .. } => unreachable!(),
        });
    }
    let econ = |county: &str, year: i32, quarter: u32| {
        cur.econ.iter().find_map(|s| match s {
            Sub::Econ {
                county: c,
                year: y,
                quarter: q,
                gdp,
                investment,
            } if c == county && *y == year && *q == quarter => Some((*gdp, *investment)),
            _ => None,
        })
    };
    let mut out = Values::new();
    for &year in &years {
        for month in 1..=12u32 {
            let firms = firms_asof(cur, year, month);
            let firms_prev = firms_asof(cur, year - 1, month);
            for (division, cs) in &under {
                let mut put = |id: &str, v: Option<f64>, r: Option<String>| {
                    out.insert((year, month, division.clone(), id.to_string()), (v, r));
                };
                let in_d = |f: &&AsOf| cs.contains(&f.county);
                let ye = year.to_string();
                // Each county's latest quarter of the year up to the month; the
                // division's is the latest of its counties'.
                let county_last = |c: &str| {
                    (1..=4)
                        .rev()
                        .find(|&q| q * 3 <= month && econ(c, year, q).is_some())
                        .map(|q| q * 3)
                };
                let division_last = cs.iter().filter_map(|c| county_last(c)).max();

                // rd_intensity
                let (v, r) = if month < 3 {
                    (
                        None,
                        Some("no quarter has ended yet: GDP is quarterly".into()),
                    )
                } else if let Some(l) = division_last {
                    let q = l / 3;
                    let pool: BTreeSet<&String> =
                        cs.iter().filter(|c| econ(c, year, q).is_some()).collect();
                    let gdp: f64 = pool.iter().map(|c| econ(c, year, q).unwrap().0).sum();
                    let asof_l = firms_asof(cur, year, l);
                    let ent: f64 = asof_l
                        .iter()
                        .filter(|f| pool.contains(&f.county))
                        .map(|f| f.rd)
                        .sum();
                    let inst_in = |c: &str| {
                        cur.inst.iter().any(|s| {
                            matches!(s, Sub::Inst { county, year: y, .. } if county == c && *y == year)
                        })
                    };
                    let inst: f64 = cur
                        .inst
                        .iter()
                        .filter_map(|s| match s {
                            Sub::Inst {
                                county,
                                year: y,
                                rd,
                                ..
                            } if *y == year && pool.contains(county) => Some(*rd),
                            _ => None,
                        })
                        .sum();
                    let left_out = cs
                        .iter()
                        .filter(|c| !pool.contains(c))
                        .filter(|c| {
                            county_last(c).is_some()
                                || asof_l.iter().any(|f| &f.county == *c)
                                || (l == 12 && inst_in(c))
                        })
                        .count();
                    if gdp == 0.0 {
                        (None, Some(format!("GDP for {ye}-Q{q} is zero")))
                    } else {
                        let mut notes = vec![];
                        if l < 12 {
                            notes.push(format!("computed at {ye}-Q{q}: enterprise R&D as of {ye}-{l:02} over {ye}-Q{q} GDP; institute R&D (annual) enters at year end"));
                        }
                        if left_out > 0 {
                            notes.push(format!(
                                "{left_out} of {} counties with data left out: no GDP for {ye}-Q{q}",
                                left_out + pool.len()
                            ));
                        }
                        let num = ent + if l == 12 { inst } else { 0.0 };
                        (
                            Some(num / gdp),
                            (!notes.is_empty()).then(|| notes.join("; ")),
                        )
                    }
                } else {
                    (
                        None,
                        Some(format!("no GDP reported for {ye} up to month {month}")),
                    )
                };
                put("rd_intensity", v, r);

                // high_tech_investment_growth
                let (v, r) = if month < 3 {
                    (
                        None,
                        Some("no quarter has ended yet: investment is quarterly".into()),
                    )
                } else if let Some(l) = division_last {
                    let q = l / 3;
                    let py = (year - 1).to_string();
                    let now: Vec<f64> = cs
                        .iter()
                        .filter_map(|c| econ(c, year, q))
                        .map(|e| e.1)
                        .collect();
                    let base: Vec<f64> = cs
                        .iter()
                        .filter_map(|c| econ(c, year - 1, q))
                        .map(|e| e.1)
                        .collect();
                    let both = cs
                        .iter()
                        .filter(|c| econ(c, year, q).is_some() && econ(c, year - 1, q).is_some())
                        .count();
                    let den: f64 = base.iter().sum();
                    if base.is_empty() {
                        (None, Some(format!("no previous-year base for {py}-Q{q}")))
                    } else if den == 0.0 {
                        (
                            None,
                            Some(format!("previous-year base for {py}-Q{q} is zero")),
                        )
                    } else {
                        let mut notes = vec![];
                        if l < month / 3 * 3 {
                            notes.push(format!(
                                "computed at {ye}-Q{q} against {py}-Q{q} (latest quarter reported)"
                            ));
                        }
                        if both < now.len().max(base.len()) {
                            notes.push(format!("plain sums over every reporting county: {} reported {ye}-Q{q}, {} reported {py}-Q{q}, {both} both", now.len(), base.len()));
                        }
                        (
                            Some(now.iter().sum::<f64>() / den - 1.0),
                            (!notes.is_empty()).then(|| notes.join("; ")),
                        )
                    }
                } else {
                    (
                        None,
                        Some(format!(
                            "no high-tech investment reported for {ye} up to month {month}"
                        )),
                    )
                };
                put("high_tech_investment_growth", v, r);

                // Above-scale industrial ratios: sums over the firms as of the month.
                let aisi: Vec<&AsOf> = firms.iter().filter(in_d).filter(|f| f.aisi).collect();
                let aisi_ratio = |num: fn(&AsOf) -> f64, den: fn(&AsOf) -> f64, what: &str| {
                    let d: f64 = aisi.iter().map(|f| den(f)).sum();
                    if aisi.is_empty() {
                        (
                            None,
                            Some("no above-scale industrial enterprise reported".to_string()),
                        )
                    } else if d == 0.0 {
                        (
                            None,
                            Some(format!(
                                "{what} of above-scale industrial enterprises is zero"
                            )),
                        )
                    } else {
                        (Some(aisi.iter().map(|f| num(f)).sum::<f64>() / d), None)
                    }
                };
                let (v, r) = aisi_ratio(|f| f.rd, |f| f.revenue, "revenue");
                put("industrial_rd_ratio", v, r);
                let (v, r) = aisi_ratio(
                    |f| if f.high_tech { f.value_added } else { 0.0 },
                    |f| f.value_added,
                    "value added",
                );
                put("high_tech_va_share", v, r);

                // basic_research_growth: every reporting firm, same month a year earlier.
                let now: Vec<&AsOf> = firms.iter().filter(in_d).collect();
                let before: Vec<&AsOf> = firms_prev.iter().filter(in_d).collect();
                let den: f64 = before.iter().map(|f| f.basic).sum();
                let (v, r) = if now.is_empty() {
                    (
                        None,
                        Some("no enterprise R&D reported this year".to_string()),
                    )
                } else if before.is_empty() {
                    (None, Some("no previous-year base".to_string()))
                } else if den == 0.0 {
                    (None, Some("previous-year base is zero".to_string()))
                } else {
                    (
                        Some(now.iter().map(|f| f.basic).sum::<f64>() / den - 1.0),
                        None,
                    )
                };
                put("basic_research_growth", v, r);

                // high_tech_enterprise_share_change: certificates on the last day of the month.
                let share = |fs: &[&AsOf], y: i32| {
                    let aisi: Vec<&&AsOf> = fs.iter().filter(|f| f.aisi).collect();
                    (!aisi.is_empty()).then(|| {
                        let d = last_day(y, month);
                        aisi.iter().filter(|f| certified(cur, &f.credit, d)).count() as f64
                            / aisi.len() as f64
                    })
                };
                let (v, r) = match (share(&now, year), share(&before, year - 1)) {
                    (None, _) => (
                        None,
                        Some("no above-scale industrial enterprise reported this year".to_string()),
                    ),
                    (_, None) => (
                        None,
                        Some(
                            "no above-scale industrial enterprise reported the previous year"
                                .to_string(),
                        ),
                    ),
                    (Some(a), Some(b)) => (Some(a - b), None),
                };
                put("high_tech_enterprise_share_change", v, r);

                // Cumulative: counts and sums of the year up to the month, 0 over
                // no rows, and a reason when the form has no row at all.
                let in_window = |d: &Date| d.0 == year && d.1 <= month;
                let no_rows = |form: &str, any: bool| {
                    (!any).then(|| {
                        format!(
                            "no {form} submissions for {ye} up to month {month}: 0 over no rows"
                        )
                    })
                };
                let recog_any = cur.recog.iter().any(|s| {
                    matches!(s, Sub::Recog { county, date, .. } if cs.contains(county) && in_window(date))
                });
                for (kind, id) in RECOGNITION_KINDS.iter().zip([
                    "new_high_tech_enterprises",
                    "new_tech_smes",
                    "new_provincial_enterprise_research_institutes",
                    "new_provincial_high_tech_rd_centers",
                    "innovation_consortia",
                    "agricultural_enterprise_research_institutes",
                ]) {
                    let firms: BTreeSet<&String> = cur
                        .recog
                        .iter()
                        .filter_map(|s| match s {
                            Sub::Recog {
                                credit,
                                county,
                                kind: k,
                                date,
                                status,
                            } if k == kind
                                && *status == "new"
                                && cs.contains(county)
                                && in_window(date) =>
                            {
                                Some(credit)
                            }
                            _ => None,
                        })
                        .collect();
                    put(
                        id,
                        Some(firms.len() as f64),
                        no_rows("recognition", recog_any),
                    );
                }
                let contracts: Vec<f64> = cur
                    .contracts
                    .iter()
                    .filter_map(|s| match s {
                        Sub::Contract {
                            county,
                            date,
                            amount,
                            ..
                        } if cs.contains(county) && in_window(date) => Some(*amount),
                        _ => None,
                    })
                    .collect();
                put(
                    "tech_transaction_volume",
                    Some(contracts.iter().sum()),
                    no_rows("tech_contract", !contracts.is_empty()),
                );
                let ledger_any = cur.ledger.iter().any(|s| {
                    matches!(s, Sub::Ledger { county, date, .. } if cs.contains(county) && in_window(date))
                });
                for (kind, id) in LEDGER_KINDS.iter().zip([
                    "corridor_key_project_investment",
                    "sci_tech_finance",
                    "talent_teams",
                    "key_tech_projects",
                    "import_substitutions",
                    "incubators",
                    "tech_commissioners",
                    "star_innovation_bases",
                ]) {
                    let total: f64 = cur
                        .ledger
                        .iter()
                        .filter_map(|s| match s {
                            Sub::Ledger {
                                county,
                                kind: k,
                                date,
                                quantity,
                                amount,
                                ..
                            } if k == kind && cs.contains(county) && in_window(date) => {
                                Some(if MONEY_KINDS.contains(kind) {
                                    amount.unwrap_or(0.0)
                                } else {
                                    quantity.unwrap_or(1) as f64
                                })
                            }
                            _ => None,
                        })
                        .sum();
                    put(id, Some(total), no_rows("program_ledger", ledger_any));
                }
            }
        }
    }
    out
}

/// The zone and institute indicators of indicators.md, per unit and year:
/// (year, "unit_type unit_id", indicator) folded into the same map as the
/// divisions' (month 0).
fn unit_reference(cur: &Current) -> Values {
    let mut out = Values::new();
    let ratio = |n: f64, d: f64| {
        if d == 0.0 {
            (None, Some("denominator is zero".to_string()))
        } else {
            (Some(n / d), None)
        }
    };
    for z in &cur.zones {
        let Sub::Zone {
            id,
            year,
            land,
            revenue,
            value_added,
            tax,
            energy,
            rd,
            high_tech_enterprises,
            ..
        } = z
        else {
            unreachable!()
        };
        let mut put = |ind: &str, v: (Option<f64>, Option<String>)| {
            out.insert((*year, 0, format!("zone {id}"), ind.to_string()), v);
        };
        put("value_added_per_mu", ratio(*value_added, *land));
        put("tax_per_mu", ratio(*tax, *land));
        put("energy_per_value_added", ratio(*energy, *value_added));
        put("rd_intensity", ratio(*rd, *revenue));
        let before = cur.zones.iter().find_map(|p| match p {
            Sub::Zone {
                id: i,
                year: y,
                high_tech_enterprises: h,
                ..
            } if i == id && *y == year - 1 => Some(*h as f64),
            _ => None,
        });
        put(
            "high_tech_enterprise_growth",
            match before {
                None => (None, Some("no previous-year report of the zone".into())),
                Some(0.0) => (None, Some("previous-year base is zero".into())),
                Some(b) => (Some(*high_tech_enterprises as f64 / b - 1.0), None),
            },
        );
    }
    for i in &cur.inst {
        let Sub::Inst {
            id,
            year,
            horizontal,
            counts: [researchers, patents, achievements, transferred, landed],
            ..
        } = i
        else {
            unreachable!()
        };
        let f = |x: &i64| *x as f64;
        let mut put = |ind: &str, v: (Option<f64>, Option<String>)| {
            out.insert((*year, 0, format!("institute {id}"), ind.to_string()), v);
        };
        put(
            "rd_output_rate",
            ratio(f(patents) + f(achievements), f(researchers)),
        );
        put("transfer_rate", ratio(f(transferred), f(achievements)));
        put("landing_rate", ratio(f(landed), f(transferred)));
        put("horizontal_income", (Some(*horizontal), None));
    }
    out
}

// ------------------------------------------------------------ the check --

fn catalog_with(divisions: Divisions) -> std::sync::Arc<Catalog> {
    let mut c = Catalog::load(repo().join("schemas")).expect("schemas");
    c.divisions = divisions;
    std::sync::Arc::new(c)
}

/// Ingests the data sets and runs the models; the rows of marts.indicators.
async fn models_values(dir: &Path, sets: &[&DataSet], divisions: &Divisions) -> Values {
    let inbox = dir.join("inbox");
    let _ = std::fs::remove_dir_all(dir);
    write_inbox(&inbox, sets);
    let wh = stmon_warehouse::Warehouse::open(
        dir.join("wh").to_str().unwrap(),
        catalog_with(divisions.clone()),
    )
    .expect("warehouse");
    ingest(&wh, &[inbox]).await;
    let project = stmon_models::Project::load(&repo().join("sql")).expect("project");
    let opts = RunOptions {
        no_tests: true,
        ..RunOptions::default()
    };
    let report = run(&wh, &project, &opts, &|_| {})
        .await
        .expect("models run");
    assert!(report.ok(), "{:?}", report.models);
    let ctx = stmon_models::run::session(&wh, &project).await.unwrap();
    let mut out = Values::new();
    for r in rows_of(
        &ctx,
        "select cast(year as varchar), cast(as_of_month as varchar), division_code, indicator_id, \
         cast(value as varchar), reason from marts.indicators",
    )
    .await
    {
        out.insert(
            (
                r[0].parse().unwrap(),
                r[1].parse().unwrap(),
                r[2].clone(),
                r[3].clone(),
            ),
            (
                (r[4] != "NULL").then(|| r[4].parse().unwrap()),
                (r[5] != "NULL").then(|| r[5].clone()),
            ),
        );
    }
    for r in rows_of(
        &ctx,
        "select cast(year as varchar), concat(unit_type, ' ', unit_id), indicator_id, \
         cast(value as varchar), reason from marts.unit_indicators",
    )
    .await
    {
        out.insert(
            (r[0].parse().unwrap(), 0, r[1].clone(), r[2].clone()),
            (
                (r[3] != "NULL").then(|| r[3].parse().unwrap()),
                (r[4] != "NULL").then(|| r[4].clone()),
            ),
        );
    }
    out
}

/// Both references: the divisions' indicators and the units'.
fn expected_values(versions: &[&Version], divisions: &Divisions) -> Values {
    let cur = current_view(versions, divisions);
    let mut out = reference(&cur, divisions);
    out.extend(unit_reference(&cur));
    out
}

/// Differences between the models and the reference, limited to divisions
/// whose code starts with `prefix` (all when empty).
fn differences(models: &Values, reference: &Values, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let keys: BTreeSet<_> = models.keys().chain(reference.keys()).collect();
    for k in keys {
        if !k.2.starts_with(prefix) {
            continue;
        }
        let (m, r) = (models.get(k), reference.get(k));
        let same = match (m, r) {
            (Some((mv, mr)), Some((rv, rr))) => {
                mr == rr
                    && match (mv, rv) {
                        (None, None) => true,
                        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                        _ => false,
                    }
            }
            _ => false,
        };
        if !same {
            out.push(format!(
                "{}-{:02} {} {}: models {:?}, reference {:?}",
                k.0, k.1, k.2, k.3, m, r
            ));
        }
    }
    out
}

fn dump(set: &DataSet) -> String {
    let dir = tempfile::tempdir().unwrap();
    write_inbox(dir.path(), &[set]);
    let mut out = String::new();
    let folder = dir.path().join(&set.province);
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        writeln!(
            out,
            "--- {}\n{}",
            f.file_name().unwrap().to_string_lossy(),
            std::fs::read_to_string(&f).unwrap()
        )
        .unwrap();
    }
    out
}

/// Removes versions while the models and the reference still disagree on the
/// data set alone, within `budget` model runs; the smallest found.
async fn shrink(dir: &Path, set: &DataSet, divisions: &Divisions, budget: usize) -> DataSet {
    let mut best = set.clone();
    let mut runs = 0;
    let mut chunk = best.versions.len().div_ceil(2).max(1);
    loop {
        let mut i = 0;
        while i < best.versions.len() && runs < budget {
            let mut candidate = best.clone();
            let end = (i + chunk).min(candidate.versions.len());
            candidate.versions.drain(i..end);
            runs += 1;
            let m = models_values(dir, &[&candidate], divisions).await;
            let refs: Vec<&Version> = candidate.versions.iter().collect();
            let r = expected_values(&refs, divisions);
            if !differences(&m, &r, "").is_empty() {
                best = candidate;
            } else {
                i += chunk;
            }
        }
        if chunk == 1 || runs >= budget {
            return best;
        }
        chunk = chunk.div_ceil(2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_models_agree_with_an_independent_implementation() {
    let rounds: u64 = std::env::var("STMON_DIFF_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0usize;
    // How often the rarer rules were exercised (reasons that name them).
    const PATHS: [&str; 7] = [
        "counties with data left out",
        "plain sums over every reporting county",
        "(latest quarter reported)",
        "0 over no rows",
        "no previous-year base for",
        "is zero",
        "no GDP reported",
    ];
    let mut paths = [0usize; PATHS.len()];
    for round in 0..rounds {
        let seed = 0x5eed_0000 + round;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let counties_of: Vec<usize> = (0..DATASETS_PER_ROUND)
            .map(|_| rng.random_range(2..=4))
            .collect();
        let divisions =
            Divisions::from_rows(division_table(DATASETS_PER_ROUND, &counties_of)).unwrap();
        let sets: Vec<DataSet> = (0..DATASETS_PER_ROUND)
            .map(|k| {
                let province = format!("{}0000", 11 + k);
                let counties = counties_in(&divisions, &province);
                generate(&mut rng, &province, &counties)
            })
            .collect();
        let refs: Vec<&DataSet> = sets.iter().collect();
        let models = models_values(&tmp.path().join("all"), &refs, &divisions).await;
        let versions: Vec<&Version> = sets.iter().flat_map(|s| &s.versions).collect();
        let expected = expected_values(&versions, &divisions);
        assert!(
            expected.len() > 1000,
            "round {round}: only {} reference values",
            expected.len()
        );
        let diffs = differences(&models, &expected, "");
        if diffs.is_empty() {
            checked += expected.len();
            for (_, reason) in expected.values() {
                for (i, p) in PATHS.iter().enumerate() {
                    if reason.as_deref().is_some_and(|r| r.contains(p)) {
                        paths[i] += 1;
                    }
                }
            }
            continue;
        }
        // Find a data set that disagrees on its own, and shrink it.
        let mut report = format!(
            "round {round} (seed {seed:#x}): {} differences, first:\n  {}\n",
            diffs.len(),
            diffs[..diffs.len().min(10)].join("\n  ")
        );
        for set in &sets {
            let alone = tmp.path().join("alone");
            let m = models_values(&alone, &[set], &divisions).await;
            let v: Vec<&Version> = set.versions.iter().collect();
            let r = expected_values(&v, &divisions);
            if differences(&m, &r, "").is_empty() {
                continue;
            }
            let small = shrink(&alone, set, &divisions, 60).await;
            let m = models_values(&alone, &[&small], &divisions).await;
            let v: Vec<&Version> = small.versions.iter().collect();
            let r = expected_values(&v, &divisions);
            let d = differences(&m, &r, "");
            write!(
                report,
                "\nsmallest data set found ({} rows, province {}), {} differences:\n  {}\n\n{}",
                small.versions.len(),
                small.province,
                d.len(),
                d[..d.len().min(10)].join("\n  "),
                dump(&small)
            )
            .unwrap();
            break;
        }
        panic!("{report}");
    }
    eprintln!("differential: {checked} indicator values agree over {rounds} rounds");
    for (p, n) in PATHS.iter().zip(paths) {
        eprintln!("  {n:>6} values with a reason containing {p:?}");
        assert!(n > 0, "no generated data set exercised {p:?}");
    }
}
