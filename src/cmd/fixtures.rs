//! `stmon fixtures generate`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use stmon_fixtures::Scale;

#[derive(clap::Subcommand, Debug)]
pub enum FixturesCommand {
    /// Write deterministic submissions for 2022–2023 (CSV and XLSX, some
    /// GB18030, some corrections and some invalid rows). The same scale and
    /// seed always give the same bytes. Files go to OUT/submissions/<form>/;
    /// the division table they use to OUT/divisions.csv (give it to
    /// `--divisions` when ingesting province or national data).
    Generate {
        /// shaoxing (6 counties, ~6,000 above-scale firms), province (90
        /// counties) or national (~2,800 counties, ~480,000 firms).
        #[arg(long, value_enum, default_value = "shaoxing")]
        scale: Scale,
        #[arg(long, default_value_t = 2023)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(cli: &super::Cli, c: &FixturesCommand) -> anyhow::Result<ExitCode> {
    match c {
        FixturesCommand::Generate { scale, seed, out } => {
            let catalog = super::load_catalog(cli)?;
            let summary = stmon_fixtures::generate(*scale, *seed, out, &catalog)
                .with_context(|| format!("writing fixtures to {}", out.display()))?;
            print!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
