//! Monte Carlo at national scale: 1,000 runs over 2,800 units and 12
//! indicators (issue: "must finish in seconds").
//!
//!   cargo bench -p stmon-assess
//!
//! Baseline in the same run: sorting 1,000 × 2,800 random totals, the floor
//! of any ranking; the figure reported is the ratio to it.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use stmon_assess::method::UnitInput;
use stmon_assess::montecarlo::robustness;
use stmon_assess::scheme::Scheme;

fn main() {
    let mut yaml = String::from(
        "{name: bench, unit: county, year: 2023, missing: redistribute,
          monte_carlo: {runs: 1000, seed: 1, weight_jitter: 0.25, normalisations: [min_max, z_score, rank]},
          indicators: [",
    );
    let ids = [
        "rd_intensity",
        "industrial_rd_ratio",
        "high_tech_va_share",
        "high_tech_investment_growth",
        "new_high_tech_enterprises",
        "new_tech_smes",
        "tech_transaction_volume",
        "basic_research_growth",
        "high_tech_enterprise_share_change",
        "corridor_key_project_investment",
        "sci_tech_finance",
        "talent_teams",
    ];
    for (i, id) in ids.iter().enumerate() {
        let norm = [
            "min_max",
            "z_score",
            "rank",
            "goalposts, lower: 0, upper: 1",
        ][i % 4];
        yaml.push_str(&format!(
            "{{id: {id}, weight: {}, normalisation: {norm}}},",
            1 + i % 3
        ));
    }
    yaml.push_str("]}");
    let scheme: Scheme = serde_yaml_ng::from_str(&yaml).unwrap();
    scheme.validate().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let units: Vec<UnitInput> = (0..2800)
        .map(|u| UnitInput {
            id: format!("{u:06}"),
            name: String::new(),
            group: None,
            values: (0..ids.len())
                .map(|_| (rng.random_range(0.0..1.0) > 0.02).then(|| rng.random_range(0.0..1.0)))
                .collect(),
        })
        .collect();

    let t = Instant::now();
    let mut sink = 0.0;
    for _ in 0..1000 {
        let mut v: Vec<f64> = (0..2800).map(|_| rng.random_range(0.0..100.0)).collect();
        v.sort_by(f64::total_cmp);
        sink += v[0];
    }
    let base = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let iv = robustness(&scheme, &units).unwrap();
    let took = t.elapsed().as_secs_f64();
    println!("baseline  sort 1,000 × 2,800 totals:      {base:8.3} s   ({sink:.0})");
    println!(
        "monte carlo 1,000 runs × 2,800 units × 12: {took:8.3} s   ratio {:.1}×",
        took / base
    );
    println!(
        "unit 0: median rank {}, P5–P95 {}–{}",
        iv[0].median, iv[0].p05, iv[0].p95
    );
}
