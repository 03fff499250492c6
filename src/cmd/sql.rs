//! `stmon sql`: the analysts' shell.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use stmon_warehouse::Warehouse;

/// SQL over every warehouse layer: raw.*, current.*, audit.*, staging.*,
/// intermediate.*, marts.*, ref.* (DataFusion SQL).
///
/// Without -c: an interactive shell. Statements end with `;` and may span
/// lines; history is kept in ~/.stmon_history. Commands: `\d` lists tables
/// with their descriptions, `\d TABLE` shows its columns, `\q` quits.
/// With -c: runs the statements and prints the result (exit 2 on an error).
/// Read-only: a statement that writes (INSERT, COPY … TO, CREATE, DROP) or
/// changes the session (SET) is refused.
///
/// Versions: a session reads every table at one moment. While a nightly run
/// is writing (it holds the warehouse lock) a new session reads the versions
/// the last finished run published, never a mix of half a run; `--run ID`
/// reads the versions a given run published (`stmon runs`), `--head` the
/// newest commit of every table.
///
/// Scopes: `--as USER` plans every statement as that user of the server's
/// config (`--config FILE`) would through `stmon serve`: its `divisions`
/// filter every table, and without `microdata` a unit-level table is
/// refused. A data team checks with it what a county office will see
/// before giving it a login.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Read the warehouse as run RUN_ID left it.
    #[arg(long, value_name = "RUN_ID", conflicts_with = "head")]
    pub run: Option<String>,
    /// Read the newest version of every table, even while a run is writing.
    #[arg(long)]
    pub head: bool,
    /// Statements to run instead of the interactive shell (separated by `;`).
    #[arg(short = 'c', long = "command")]
    pub command: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// See the warehouse as USER of the server's config does (its
    /// divisions and microdata); needs --config.
    #[arg(long = "as", value_name = "USER", requires = "config")]
    pub as_user: Option<String>,
    /// The server's config (`stmon serve --config`), for --as.
    #[arg(long, value_name = "FILE", env = "STMON_SERVE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where queries run: `local` (this process) or an Apache Ballista
    /// cluster, `ballista://HOST:PORT` (see `stmon cluster`).
    #[arg(long, env = "STMON_ENGINE", default_value = "local")]
    pub engine: String,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned table.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON object per line.
    Json,
}

pub async fn run(cli: &super::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let project = super::load_project(cli)?;
    let catalog = super::load_catalog(cli)?;
    let wh = super::open_warehouse(cli, catalog)?;
    let wh = if let Some(run) = &args.run {
        stmon_models::runs::at_run(&wh, run).await?
    } else if args.head {
        wh
    } else {
        let (wh, pinned) = stmon_models::runs::reader(&wh).await?;
        if let Some(run) = pinned {
            eprintln!(
                "note: a run is writing; reading the warehouse as run {run} left it (--head for the newest)"
            );
        }
        wh
    };
    let wh = wh.with_engine(super::engine(Some(&args.engine)).await?);
    let ctx = stmon_models::run::session(&wh, &project)
        .await
        .context("opening the warehouse (has `stmon ingest` run?)")?;
    let ctx = match &args.as_user {
        None => ctx,
        Some(user) => {
            let config = stmon_serve::Config::load(args.config.as_deref())?;
            let scoped =
                stmon_serve::session_as(&ctx, &config, user, &wh.catalog.divisions).await?;
            let u = config.users.iter().find(|u| &u.name == user);
            eprintln!(
                "note: as {user}: divisions {}, {}",
                u.and_then(|u| u.divisions.as_ref())
                    .map_or("all".to_string(), |d| d.join(", ")),
                if u.is_some_and(|u| u.microdata) {
                    "unit-level rows readable"
                } else {
                    "division-level aggregates only"
                }
            );
            scoped
        }
    };
    let shell = Shell {
        ctx,
        project,
        wh,
        format: args.format,
    };
    match &args.command {
        Some(sql) => {
            let mut ok = true;
            for stmt in stmon_warehouse::split_statements(sql) {
                if let Err(e) = shell.execute(&stmt).await {
                    eprintln!("error: {e}");
                    ok = false;
                    break;
                }
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        None => shell.interactive().await,
    }
}

struct Shell {
    ctx: SessionContext,
    project: stmon_models::Project,
    wh: Warehouse,
    format: Format,
}

impl Shell {
    async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        let t = std::time::Instant::now();
        let plan = stmon_warehouse::plan_read_only(&self.ctx, sql)
            .await
            .map_err(|e| match e {
                stmon_warehouse::ReadOnlyError::Writes(_) => anyhow::anyhow!("stmon sql is {e}"),
                stmon_warehouse::ReadOnlyError::Plan(e) => e.into(),
            })?;
        if let Some(denied) = stmon_serve::scope::denied_table(&plan) {
            anyhow::bail!("{denied}");
        }
        let batches = self.ctx.execute_logical_plan(plan).await?.collect().await?;
        self.print(&batches)?;
        if self.format == Format::Table {
            use std::io::Write;
            let _ = std::io::stdout().flush();
            let n: usize = batches.iter().map(|b| b.num_rows()).sum();
            eprintln!("{n} row(s) in {:.3}s", t.elapsed().as_secs_f64());
        }
        Ok(())
    }

    fn print(&self, batches: &[RecordBatch]) -> anyhow::Result<()> {
        let out = std::io::stdout();
        match self.format {
            Format::Table => {
                if batches.iter().any(|b| b.num_columns() > 0) {
                    println!("{}", arrow::util::pretty::pretty_format_batches(batches)?);
                }
            }
            Format::Csv => {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(out.lock());
                for b in batches {
                    w.write(b)?;
                }
            }
            Format::Json => {
                let mut w = arrow::json::LineDelimitedWriter::new(out.lock());
                for b in batches {
                    w.write(b)?;
                }
                w.finish()?;
            }
        }
        Ok(())
    }

    /// `\d`: every table with a description; `\d NAME`: its columns.
    async fn describe(&self, name: Option<&str>) -> anyhow::Result<()> {
        match name {
            None => {
                let names = stmon_models::describe::tables(&self.ctx);
                let w = names.iter().map(|n| n.len()).max().unwrap_or(10);
                for n in names {
                    let (layer, table) = n.split_once('.').unwrap_or(("", &n));
                    println!("{n:<w$}  {}", self.description(layer, table));
                }
            }
            Some(n) => {
                let df = self.ctx.table(n).await?;
                let (layer, table) = n.split_once('.').unwrap_or(("", n));
                println!("{n}: {}", self.description(layer, table));
                for f in df.schema().fields() {
                    let desc = stmon_models::describe::column(
                        &self.project,
                        &self.wh.catalog,
                        n,
                        f.name(),
                    );
                    println!(
                        "  {:<32} {:<28} {}",
                        f.name(),
                        format!(
                            "{}{}",
                            f.data_type(),
                            if f.is_nullable() { "" } else { " not null" }
                        ),
                        desc
                    );
                }
            }
        }
        Ok(())
    }

    fn description(&self, layer: &str, table: &str) -> String {
        stmon_models::describe::table(&self.project, &self.wh.catalog, layer, table)
    }

    async fn interactive(&self) -> anyhow::Result<ExitCode> {
        use rustyline::error::ReadlineError;
        let mut rl = rustyline::DefaultEditor::new()?;
        let history: Option<PathBuf> =
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".stmon_history"));
        if let Some(h) = &history {
            let _ = rl.load_history(h);
        }
        println!(
            "stmon sql on {} — statements end with ';'; \\d lists tables, \\d NAME its columns, \\q quits",
            self.wh.root
        );
        let mut buf = String::new();
        loop {
            let prompt = if buf.is_empty() { "stmon> " } else { "   ..> " };
            match rl.readline(prompt) {
                Ok(line) => {
                    let trimmed = line.trim();
                    if buf.is_empty() && trimmed.starts_with('\\') {
                        let _ = rl.add_history_entry(trimmed);
                        let mut parts = trimmed.split_whitespace();
                        match (parts.next(), parts.next()) {
                            (Some("\\q"), _) => break,
                            (Some("\\d"), name) => {
                                if let Err(e) = self.describe(name).await {
                                    eprintln!("error: {e}");
                                }
                            }
                            _ => eprintln!("unknown command {trimmed}: \\d [NAME], \\q"),
                        }
                        continue;
                    }
                    if !buf.is_empty() {
                        buf.push('\n');
                    }
                    buf.push_str(&line);
                    if trimmed.ends_with(';') {
                        let _ = rl.add_history_entry(buf.as_str());
                        for stmt in stmon_warehouse::split_statements(&buf) {
                            if let Err(e) = self.execute(&stmt).await {
                                eprintln!("error: {e}");
                            }
                        }
                        buf.clear();
                    }
                }
                Err(ReadlineError::Interrupted) => buf.clear(),
                Err(ReadlineError::Eof) => break,
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(h) = &history {
            let _ = rl.save_history(h);
        }
        Ok(ExitCode::SUCCESS)
    }
}
