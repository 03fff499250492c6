//! `stmon run PIPELINE`: arguments, and the rendering of the run's events
//! (lines, tables, progress bars). The run itself is [`stmon_pipeline::run`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::ProgressBar;
use stmon_models::run::Status;
use stmon_pipeline::{Event, Finished, Outcome};
use stmon_pipeline::{Pipeline, Step};
use stmon_warehouse::Warehouse;

use crate::render;

/// Run a pipeline: ingest → freshness → models → data tests → progress →
/// assessment → reports, doing only the new work.
///
/// Files in the inbox already ingested (same sha256) are skipped; a model is
/// rebuilt only when what it reads changed (its fingerprint: SQL, YAML and
/// inputs); the progress and assessment outputs are rewritten only when their
/// inputs changed. With nothing new, a run changes nothing.
///
/// Every run is recorded in the Delta table audit/runs (see `stmon runs`) and
/// in <reports>/run_results.json. One run at a time per warehouse: a second
/// exits with a message naming the first, or waits with --wait. A run killed
/// at any point leaves every table as before or after the step it was in;
/// the next run completes the work (or `--resume` continues the same run).
///
/// Exit status: 0 ok; 1 data-quality failure (a data test failed, a county
/// is late under a `fail` freshness rule, an unreadable file); 2 error (a
/// model failed, the warehouse is locked or unreachable, a bad pipeline).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The pipeline YAML (e.g. pipelines/shaoxing-2023.yaml).
    pub pipeline: PathBuf,
    /// Continue the last failed or interrupted run of this pipeline from the
    /// step that did not finish (same run id).
    #[arg(long)]
    pub resume: bool,
    /// If another run holds the lock, wait for it (up to SECS, default 1 hour).
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "3600")]
    pub wait: Option<u64>,
    /// Rebuild every model even if its inputs did not change.
    #[arg(long)]
    pub full_refresh: bool,
    /// Where the models and data tests run, over the pipeline's `engine:`:
    /// `local` or an Apache Ballista cluster, `ballista://HOST:PORT`.
    #[arg(long, env = "STMON_ENGINE")]
    pub engine: Option<String>,
    /// Also write the public edition of the reports to <reports>/public/
    /// (as the pipeline's `public: true`): progress and county rankings
    /// with every value disclosure control withholds shown as 保密 / `*`.
    #[arg(long)]
    pub public: bool,
}

pub async fn run(cli: &super::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let catalog = super::load_catalog(cli)?;
    let mut pipeline = Pipeline::load(&args.pipeline, &catalog)?;
    pipeline.public |= args.public;
    let project = super::load_project(cli)?;
    let wh = super::open_warehouse(cli, catalog)?;
    let engine = super::engine(args.engine.as_deref().or(pipeline.engine.as_deref())).await?;
    if let stmon_warehouse::Engine::Remote(r) = &engine {
        println!("models and data tests run on {}", r.address());
    }
    let opts = stmon_pipeline::Options {
        resume: args.resume,
        wait: args.wait.map(Duration::from_secs),
        full_refresh: args.full_refresh,
        engine,
    };
    let view = View {
        pipeline: &pipeline,
        wh: &wh,
        terminal: super::console_is_terminal(),
        json_logs: cli.log_format == super::LogFormat::Json,
        run_id: Mutex::new(String::new()),
        bar: Mutex::new(None),
    };
    match stmon_pipeline::run(&wh, &project, &pipeline, &opts, &|e| view.on(e)).await {
        Ok(done) => Ok(match done.outcome {
            Outcome::Ok => ExitCode::SUCCESS,
            Outcome::DqFailed => ExitCode::from(1),
            Outcome::Failed => ExitCode::from(2),
        }),
        Err(stmon_pipeline::Error::Locked(l)) => {
            eprintln!("error: {l}");
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e.into()),
    }
}

/// What the terminal shows of a run.
struct View<'a> {
    pipeline: &'a Pipeline,
    wh: &'a Warehouse,
    terminal: bool,
    json_logs: bool,
    run_id: Mutex<String>,
    /// The progress bar of the step running (ingest, models).
    bar: Mutex<Option<ProgressBar>>,
}

impl View<'_> {
    /// A line of the run's story: on stdout, and as a JSON log event with
    /// `--log-format json`.
    fn say(&self, line: &str) {
        println!("{line}");
        if self.json_logs {
            let run_id = self.run_id.lock().expect("run id").clone();
            tracing::info!(run_id = %run_id, "{line}");
        }
    }

    fn bar(&self) -> Option<ProgressBar> {
        self.bar.lock().expect("bar").clone()
    }

    fn clear_bar(&self) {
        if let Some(b) = self.bar.lock().expect("bar").take() {
            b.finish_and_clear();
        }
    }

    fn on(&self, e: Event<'_>) {
        let name = &self.pipeline.name;
        match e {
            Event::NothingToResume {
                last_ok: Some(last),
            } => println!(
                "nothing to resume: the last run of {name} ({last}) finished ok; starting a new run"
            ),
            Event::NothingToResume { last_ok: None } => {
                println!("nothing to resume: no earlier run of {name}; starting a new run")
            }
            Event::Waiting { holder } => {
                eprintln!("waiting for the warehouse lock, held by {holder} …")
            }
            Event::Started { run_id, resumed } => {
                *self.run_id.lock().expect("run id") = run_id.to_string();
                self.say(&format!(
                    "run {run_id}{} of {name} ({}) on {}",
                    if resumed { " (resumed)" } else { "" },
                    self.pipeline.file.display(),
                    self.wh.root
                ));
            }
            Event::AlreadyDone(step) => {
                self.say(&format!("· {step}: done in the interrupted run, skipped"))
            }
            Event::Skipped { step, why } => self.say(&format!("· {step}: skipped ({why})")),
            Event::StepStarted(step) => {
                if self.terminal {
                    println!();
                }
                self.say(&format!("▶ {step}"));
                let template = match step {
                    Step::Ingest => render::BYTES_BAR,
                    Step::Models => {
                        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} models {msg}"
                    }
                    _ => return,
                };
                *self.bar.lock().expect("bar") = Some(render::bar(self.terminal, template));
            }
            Event::Ingesting(p) => {
                if let Some(bar) = self.bar() {
                    render::ingest_progress(&bar, p);
                }
            }
            Event::Ingested(report) => {
                self.clear_bar();
                render::print_report(self.wh, report, false);
            }
            Event::Freshness { day, rows, path } => render::print_freshness(day, rows, path),
            Event::Reviewed(s) => {
                println!("  {}", render::review_summary(s));
                if s.open > 0 {
                    println!("  (`stmon review list` shows the open queries, highest score first)");
                }
            }
            Event::Model(e) => {
                let Some(bar) = self.bar() else { return };
                match e {
                    stmon_models::run::Event::Start { total } => bar.set_length(total as u64),
                    stmon_models::run::Event::Model(o) => {
                        super::release_memory();
                        bar.inc(1);
                        bar.set_message(o.id.to_string());
                        if matches!(o.status, Status::Ok) {
                            bar.suspend(|| {
                                println!(
                                    "  built   {:<36} {:>10} rows {:>7.1}s{}",
                                    o.id.to_string(),
                                    o.rows,
                                    o.elapsed.as_secs_f64(),
                                    render::partitions_note(o.partitions)
                                )
                            });
                        } else if let Status::Failed(m) | Status::Skipped(m) = &o.status {
                            bar.suspend(|| println!("  FAILED  {}\n          {m}", o.id));
                        }
                    }
                }
            }
            Event::Tested {
                model,
                tests,
                failures,
            } => {
                if failures.is_empty() {
                    println!("  pass    {model:<36} {tests} test(s)");
                } else {
                    println!("  FAILED tests of {model}:\n{failures}");
                }
            }
            Event::Progress { rows, year, month } => render::print_matrix(rows, year, month),
            Event::Assessed(a) => render::print_assessment(a),
            Event::StepEnded {
                step,
                outcome,
                summary,
                elapsed,
            } => {
                self.clear_bar();
                super::release_memory();
                self.say(&format!(
                    "{} {step}: {} in {:.1}s — {summary}",
                    match outcome {
                        Outcome::Ok => "✓",
                        Outcome::DqFailed => "!",
                        Outcome::Failed => "✗",
                    },
                    outcome.status(),
                    elapsed.as_secs_f64()
                ));
            }
            Event::Finished(done) => self.finished(done),
        }
    }

    fn finished(&self, done: &Finished) {
        let changed = &done.changed;
        println!();
        self.say(&format!(
            "run {} {} in {:.1}s; {} table(s) changed{}; record: audit/runs and {}",
            done.run_id,
            done.outcome.status(),
            done.elapsed.as_secs_f64(),
            changed.len(),
            if changed.is_empty() {
                " (nothing new)".to_string()
            } else if changed.len() <= 6 {
                format!(" ({})", changed.join(", "))
            } else {
                String::new()
            },
            done.results.display()
        ));
    }
}
