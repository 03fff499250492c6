//! 4-unit examples computed by hand (the numbers in the comments).

use crate::method::{assess, competition_ranks, normalise, round_to, Cell, UnitInput};
use crate::montecarlo::robustness;
use crate::scheme::{Method, Scheme};

fn scheme(yaml: &str) -> Scheme {
    let s: Scheme = serde_yaml_ng::from_str(yaml).expect("scheme parses");
    s.validate().expect("scheme is valid");
    s
}

fn units(values: &[&[Option<f64>]]) -> Vec<UnitInput> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| UnitInput {
            id: format!("u{}", i + 1),
            name: format!("unit {}", i + 1),
            group: None,
            values: v.to_vec(),
        })
        .collect()
}

fn close(a: &[Option<f64>], b: &[f64]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        let x = x.expect("a score");
        assert!((x - y).abs() < 1e-3, "{a:?} vs {b:?}");
    }
}

fn one(method: &str, extra: &str, direction: &str) -> Vec<Option<f64>> {
    let s = scheme(&format!(
        "{{name: t, unit: zone, year: 2023, indicators: [{{id: value_added_per_mu, weight: 1, direction: {direction}, normalisation: {method}{extra}}}]}}"
    ));
    let vals = [Some(10.0), Some(20.0), Some(20.0), Some(40.0)];
    let targets = [s.target(&s.indicators[0], "x"); 4];
    normalise(
        s.indicators[0].normalisation,
        &s.indicators[0],
        &vals,
        &targets,
    )
}

#[test]
fn each_normalisation_on_four_units() {
    // values 10, 20, 20, 40
    // min_max: (x − 10) / 30 × 100
    close(
        &one("min_max", "", "higher"),
        &[0.0, 33.3333, 33.3333, 100.0],
    );
    close(
        &one("min_max", "", "lower"),
        &[100.0, 66.6667, 66.6667, 0.0],
    );
    // rank: competition rank 4, 2, 2, 1 → (4 − r) / 3 × 100
    close(&one("rank", "", "higher"), &[0.0, 66.6667, 66.6667, 100.0]);
    // z_score: mean 22.5, sample sd √(475/3) = 12.5831; 50 + 10 z
    close(
        &one("z_score", "", "higher"),
        &[40.0660, 48.0132, 48.0132, 63.9075],
    );
    close(
        &one("z_score", ", center: 60, spread: 20", "higher"),
        &[40.1320, 56.0265, 56.0265, 87.8151],
    );
    // target_ratio, target 25, cap 1.2: 0.4, 0.8, 0.8, min(1.6, 1.2)
    close(
        &one("target_ratio", ", target: 25, cap: 1.2", "higher"),
        &[40.0, 80.0, 80.0, 120.0],
    );
    // lower is better: target / x = 2.5 → 1.2 (cap), 1.25 → 1.2, 1.2, 0.625
    close(
        &one("target_ratio", ", target: 25, cap: 1.2", "lower"),
        &[120.0, 120.0, 120.0, 62.5],
    );
    // goalposts 0..50: x / 50
    close(
        &one("goalposts", ", lower: 0, upper: 50", "higher"),
        &[20.0, 40.0, 40.0, 80.0],
    );
    // all equal: min_max gives every unit 100
    let s = scheme("{name: t, unit: zone, year: 2023, indicators: [{id: tax_per_mu, weight: 1, normalisation: min_max}]}");
    let v = normalise(
        Method::MinMax,
        &s.indicators[0],
        &[Some(3.0); 4],
        &[None; 4],
    );
    close(&v, &[100.0; 4]);
}

#[test]
fn arithmetic_mean_with_ties_ranks_one_two_two_four() {
    let s = scheme(
        "{name: t, unit: zone, year: 2023, indicators: [
          {id: value_added_per_mu, weight: 3, normalisation: min_max},
          {id: tax_per_mu, weight: 1, normalisation: goalposts, lower: 0, upper: 100}]}",
    );
    let u = units(&[
        &[Some(10.0), Some(100.0)],
        &[Some(20.0), Some(50.0)],
        &[Some(20.0), Some(50.0)],
        &[Some(40.0), Some(0.0)],
    ]);
    let r = assess(&s, &u);
    // 0.75 × (0, 33.33, 33.33, 100) + 0.25 × (100, 50, 50, 0) = 25, 37.5, 37.5, 75
    let totals: Vec<f64> = r.iter().map(|x| x.total_rounded).collect();
    assert_eq!(totals, [25.0, 37.5, 37.5, 75.0]);
    let ranks: Vec<usize> = r.iter().map(|x| x.rank).collect();
    assert_eq!(ranks, [4, 2, 2, 1]);
    // Contributions add up to the total.
    for x in &r {
        assert!((x.contributions.iter().sum::<f64>() - x.total).abs() < 1e-9);
    }
    // Unit 1 gains on tax (100 vs mean 50) and loses on value added.
    assert_eq!(r[0].strongest.as_deref(), Some("tax_per_mu"));
    assert_eq!(r[0].weakest.as_deref(), Some("value_added_per_mu"));
    assert_eq!(r[3].strongest.as_deref(), Some("value_added_per_mu"));
}

#[test]
fn geometric_mean_of_target_ratios() {
    let s = scheme(
        "{name: t, unit: county, year: 2023, aggregation: geometric, indicators: [
          {id: rd_intensity, weight: 1, normalisation: target_ratio, target: 0.031, cap: 1.2},
          {id: industrial_rd_ratio, weight: 1, normalisation: target_ratio, target: 0.033, cap: 1.0}]}",
    );
    let u = units(&[
        &[Some(0.031), Some(0.033)],
        &[Some(0.0155), Some(0.033)],
        &[Some(0.062), Some(0.0165)],
        &[Some(0.031), Some(0.0264)],
    ]);
    let r = assess(&s, &u);
    // √(100·100), √(50·100), √(120·50), √(100·80)
    let totals: Vec<f64> = r.iter().map(|x| x.total_rounded).collect();
    assert_eq!(totals, [100.0, 70.71, 77.46, 89.44]);
    let ranks: Vec<usize> = r.iter().map(|x| x.rank).collect();
    assert_eq!(ranks, [1, 4, 3, 2]);
}

#[test]
fn missing_values_score_zero_or_pass_their_weight_on() {
    let yaml = |policy: &str| {
        format!(
            "{{name: t, unit: zone, year: 2023, missing: {policy}, indicators: [
              {{id: value_added_per_mu, weight: 1, normalisation: goalposts, lower: 0, upper: 100}},
              {{id: tax_per_mu, weight: 1, normalisation: goalposts, lower: 0, upper: 100}}]}}"
        )
    };
    let u = units(&[
        &[Some(50.0), Some(40.0)],
        &[Some(60.0), None],
        &[Some(70.0), Some(60.0)],
        &[Some(80.0), Some(20.0)],
    ]);
    let r = assess(&scheme(&yaml("zero")), &u);
    let t: Vec<(f64, usize)> = r.iter().map(|x| (x.total_rounded, x.rank)).collect();
    assert_eq!(t, [(45.0, 3), (30.0, 4), (65.0, 1), (50.0, 2)]);
    assert_eq!(r[1].cells[1], Cell::MissingZero);
    assert_eq!(r[1].cells[1].note(), "missing: scored 0");
    let r = assess(&scheme(&yaml("redistribute")), &u);
    let t: Vec<(f64, usize)> = r.iter().map(|x| (x.total_rounded, x.rank)).collect();
    assert_eq!(t, [(45.0, 4), (60.0, 2), (65.0, 1), (50.0, 3)]);
    assert_eq!(r[1].cells[1], Cell::MissingRedistributed);
    assert_eq!(r[1].weights, [1.0, 0.0]);
}

#[test]
fn float_noise_never_splits_a_tie() {
    assert_ne!(0.1 + 0.2, 0.3);
    let t = [round_to(0.1 + 0.2, 2), round_to(0.3, 2), 0.2];
    assert_eq!(competition_ranks(&t), [1, 1, 3]);
}

#[test]
fn grades_follow_the_cut_offs_on_the_rounded_total() {
    let s = scheme(
        "{name: t, unit: institute, year: 2023, precision: 2,
          grades: [{grade: A, min: 85}, {grade: B, min: 70}, {grade: C, min: 60}, {grade: D, min: 0}],
          indicators: [{id: horizontal_income, weight: 1, normalisation: goalposts, lower: 0, upper: 100}]}",
    );
    let u = units(&[
        &[Some(85.0)],
        &[Some(84.996)],
        &[Some(70.0)],
        &[Some(59.99)],
    ]);
    let g: Vec<String> = assess(&s, &u)
        .into_iter()
        .map(|x| x.grade.unwrap())
        .collect();
    assert_eq!(g, ["A", "A", "B", "D"]);
}

#[test]
fn monte_carlo_is_deterministic_per_seed() {
    let yaml = |seed: u64, jitter: f64, alternatives: &str| {
        format!(
            "{{name: t, unit: zone, year: 2023,
              monte_carlo: {{runs: 1000, seed: {seed}, weight_jitter: {jitter}, normalisations: [{alternatives}]}},
              indicators: [
              {{id: value_added_per_mu, weight: 1, normalisation: min_max}},
              {{id: tax_per_mu, weight: 1, normalisation: goalposts, lower: 0, upper: 100}}]}}"
        )
    };
    // Scores: value added min_max (0, 33.3, 36.7, 100), tax (10, 50, 45, 80).
    // Totals 5, 41.67, 40.83, 90: ranks 4, 2, 3, 1.
    let u = units(&[
        &[Some(10.0), Some(10.0)],
        &[Some(20.0), Some(50.0)],
        &[Some(21.0), Some(45.0)],
        &[Some(40.0), Some(80.0)],
    ]);
    let s = scheme(&yaml(7, 0.5, ""));
    let nominal: Vec<usize> = assess(&s, &u).iter().map(|x| x.rank).collect();
    assert_eq!(nominal, [4, 2, 3, 1]);
    let a = robustness(&s, &u).unwrap();
    assert_eq!(a, robustness(&scheme(&yaml(7, 0.5, "")), &u).unwrap());
    // Unit 3 passes unit 2 when w_tax / w_va < 2/3: with both weights × U(0.5, 1.5)
    // that happens with probability 0.1875, so its 5th percentile is 2nd place
    // and its median 3rd; units 4 and 1 never move.
    let iv = |i: usize| (a[i].p05, a[i].median, a[i].p95);
    assert_eq!(iv(2), (2, 3, 3));
    assert_eq!(iv(1), (2, 2, 3));
    assert_eq!(iv(3), (1, 1, 1));
    assert_eq!(iv(0), (4, 4, 4));
    // With a swapped normalisation too, the same seed gives the same table.
    let b = robustness(&scheme(&yaml(11, 0.25, "rank, z_score")), &u).unwrap();
    assert_eq!(
        b,
        robustness(&scheme(&yaml(11, 0.25, "rank, z_score")), &u).unwrap()
    );
    // Without jitter or alternatives every run is the nominal ranking.
    let c = robustness(&scheme(&yaml(7, 0.0, "")), &u).unwrap();
    for (i, iv) in c.iter().enumerate() {
        assert_eq!(
            (iv.p05, iv.median, iv.p95),
            (nominal[i], nominal[i], nominal[i])
        );
    }
}

#[test]
fn scheme_mistakes_are_explained() {
    let bad: Scheme = serde_yaml_ng::from_str(
        "{name: t, unit: county, year: 2023, aggregation: geometric, indicators: [
          {id: rd_intensitty, weight: 1, normalisation: min_max},
          {id: rd_intensity, weight: 0, normalisation: target_ratio},
          {id: tech_transaction_volume, weight: 1, normalisation: goalposts},
          {id: new_tech_smes, weight: 2, normalisation: target_ratio, target: 800, cap: 1.2}]}",
    )
    .unwrap();
    let e = bad.validate().unwrap_err();
    for want in [
        "indicators[0] (rd_intensitty): unknown indicator for county units",
        "indicators[1] (rd_intensity): weight 0 must be positive",
        "indicators[1] (rd_intensity): target_ratio needs a cap",
        "indicators[1] (rd_intensity): target_ratio needs a target",
        "indicators[2] (tech_transaction_volume): goalposts need lower and upper bounds",
        "indicators[3] (new_tech_smes): a geometric mean over new_tech_smes is refused",
    ] {
        assert!(e.contains(want), "{want:?} not in:\n{e}");
    }
}
