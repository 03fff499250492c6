//! The names of every file and table a report writes, in one place: the
//! commands, the nightly run and the writers all ask here.

use std::path::{Path, PathBuf};

use stmon_warehouse::TableId;

/// The progress table as of `month`: `(progress-<year>-<MM>.csv, .xlsx)`.
pub fn progress(dir: &Path, year: i32, month: u32) -> (PathBuf, PathBuf) {
    let stem = format!("progress-{year}-{month:02}");
    (
        dir.join(format!("{stem}.csv")),
        dir.join(format!("{stem}.xlsx")),
    )
}

/// The progress page as of `month`: `progress-<year>-<MM>.html`.
pub fn progress_html(dir: &Path, year: i32, month: u32) -> PathBuf {
    dir.join(format!("progress-{year}-{month:02}.html"))
}

/// The public edition of the progress table: `progress-<year>-<MM>-public.csv`, `.xlsx`.
pub fn progress_public(dir: &Path, year: i32, month: u32) -> (PathBuf, PathBuf) {
    let stem = format!("progress-{year}-{month:02}-public");
    (
        dir.join(format!("{stem}.csv")),
        dir.join(format!("{stem}.xlsx")),
    )
}

/// The public edition of the progress page: `progress-<year>-<MM>-public.html`.
pub fn progress_html_public(dir: &Path, year: i32, month: u32) -> PathBuf {
    dir.join(format!("progress-{year}-{month:02}-public.html"))
}

/// Where the nightly run writes the public editions: `<reports>/public/`.
pub fn public_dir(reports: &Path) -> PathBuf {
    reports.join("public")
}

/// The folder of the review's query lists under a reports folder.
pub fn review_lists_dir(reports: &Path) -> PathBuf {
    reports.join("review")
}

/// A county office's review query list: `review-<county>.xlsx` and `.html`.
pub fn review_list(dir: &Path, county: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("review-{county}.xlsx")),
        dir.join(format!("review-{county}.html")),
    )
}

/// One ranking table as CSV: `assessment_<table>.csv`.
pub fn assessment_csv(dir: &Path, table: &str) -> PathBuf {
    dir.join(format!("assessment_{table}.csv"))
}

/// Every assessment of the year in one workbook: `assessment-<year>.xlsx`.
pub fn assessment_xlsx(dir: &Path, year: i32) -> PathBuf {
    dir.join(format!("assessment-{year}.xlsx"))
}

/// Every assessment of the year in one offline page: `assessment-<year>.html`.
pub fn assessment_html(dir: &Path, year: i32) -> PathBuf {
    dir.join(format!("assessment-{year}.html"))
}

/// The Delta table of one ranking table: `marts.assessment_<table>`.
pub fn assessment_table(table: &str) -> TableId {
    TableId::new("marts", &format!("assessment_{table}"))
}

/// The freshness table of a nightly run: `freshness.csv`.
pub fn freshness_csv(dir: &Path) -> PathBuf {
    dir.join("freshness.csv")
}

/// What a nightly run did, for machines: `run_results.json`.
pub fn run_results_json(dir: &Path) -> PathBuf {
    dir.join("run_results.json")
}

/// The schemes of `year` in a folder: `assessment-*-<year>.yaml`, sorted.
pub fn schemes(dir: &Path, year: i32) -> std::io::Result<Vec<PathBuf>> {
    let suffix = format!("-{year}.yaml");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("assessment-") && n.ends_with(&suffix))
        })
        .collect();
    v.sort();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let d = Path::new("reports");
        let (csv, xlsx) = progress(d, 2023, 6);
        assert_eq!(csv, Path::new("reports/progress-2023-06.csv"));
        assert_eq!(xlsx, Path::new("reports/progress-2023-06.xlsx"));
        assert_eq!(
            assessment_csv(d, "counties"),
            Path::new("reports/assessment_counties.csv")
        );
        assert_eq!(
            assessment_table("zones").to_string(),
            "marts/assessment_zones"
        );
    }

    #[test]
    fn schemes_of_the_year_only() {
        let d = tempfile::tempdir().unwrap();
        for n in [
            "assessment-zones-2023.yaml",
            "assessment-counties-2023.yaml",
            "assessment-counties-2022.yaml",
            "targets-2023.yaml",
        ] {
            std::fs::write(d.path().join(n), "").unwrap();
        }
        let found: Vec<String> = schemes(d.path(), 2023)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            found,
            [
                "assessment-counties-2023.yaml",
                "assessment-zones-2023.yaml"
            ]
        );
    }
}
