//! Robustness of the ranking (JRC/OECD practice): a seeded Monte Carlo over
//! the weights, optionally swapping the normalisation.
//!
//! Each run multiplies every weight by `1 + U(−j, j)` (then the weights are
//! renormalised by the aggregation) and picks, uniformly, the scheme's own
//! normalisations or one of the configured alternatives for every indicator.
//! Ranks are taken within groups on totals rounded to the scheme's precision.
//! Percentiles are nearest-rank: the ⌈p·R⌉-th smallest of the R ranks.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::method::{ranks_in_groups, round_to, scores_with, targets_of, totals, UnitInput};
use crate::scheme::Scheme;

#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    pub median: usize,
    pub p05: usize,
    pub p95: usize,
}

fn nearest_rank(sorted: &[usize], p: f64) -> usize {
    let k = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[k - 1]
}

/// Rank intervals per unit (input order); None when the scheme has no `monte_carlo`.
pub fn robustness(scheme: &Scheme, units: &[UnitInput]) -> Option<Vec<Interval>> {
    let mc = scheme.monte_carlo.as_ref()?;
    let targets = targets_of(scheme, units);
    let mut variants = vec![scores_with(scheme, units, &targets, None)];
    for m in &mc.normalisations {
        variants.push(scores_with(scheme, units, &targets, Some(*m)));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(mc.seed);
    let base: Vec<f64> = scheme.indicators.iter().map(|i| i.weight).collect();
    let mut ranks: Vec<Vec<usize>> = vec![Vec::with_capacity(mc.runs); units.len()];
    for _ in 0..mc.runs {
        let w: Vec<f64> = base
            .iter()
            .map(|w| {
                let j = mc.weight_jitter;
                let f = if j > 0.0 {
                    rng.random_range(-j..j)
                } else {
                    0.0
                };
                w * (1.0 + f)
            })
            .collect();
        let v = if variants.len() > 1 {
            rng.random_range(0..variants.len())
        } else {
            0
        };
        let t = totals(scheme, &w, &variants[v], units.len());
        let rounded: Vec<f64> = t.iter().map(|x| round_to(x.0, scheme.precision)).collect();
        for (u, r) in ranks_in_groups(units, &rounded).into_iter().enumerate() {
            ranks[u].push(r);
        }
    }
    Some(
        ranks
            .into_iter()
            .map(|mut r| {
                r.sort_unstable();
                Interval {
                    median: nearest_rank(&r, 0.5),
                    p05: nearest_rank(&r, 0.05),
                    p95: nearest_rank(&r, 0.95),
                }
            })
            .collect(),
    )
}
