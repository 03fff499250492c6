//! The command line of the model layer: `stmon models`, `stmon progress` and
//! `stmon sql`, as a person runs them.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::*;

fn stmon(wh: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stmon"));
    c.current_dir(repo())
        .env("STMON_WAREHOUSE", wh)
        .env("HOME", wh.parent().unwrap())
        .env_remove("STMON_SCHEMAS")
        .env_remove("STMON_SQL");
    c
}

fn ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// One warehouse with the indicator fixture and every model, shared by the tests below.
fn built() -> &'static std::path::Path {
    static WH: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    WH.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let wh = dir.path().join("wh");
        ok(stmon(&wh).args(["ingest", "fixtures/indicators/base"]));
        ok(stmon(&wh).args(["ingest", "fixtures/indicators/later"]));
        let text = ok(stmon(&wh).args(["models", "run"]));
        assert!(text.contains("26 model(s): 0 failed, 0 skipped"), "{text}");
        dir
    })
    .path()
}

#[test]
fn sql_one_shot_in_three_formats_and_errors_without_a_trace() {
    let wh = built().join("wh");
    let q = "select division_code, value from marts.indicators where year = 2023 and as_of_month = 12 \
             and indicator_id = 'tech_transaction_volume' and division_code in ('330602', '330603') order by 1";
    let csv = ok(stmon(&wh).args(["sql", "--format", "csv", "-c", q]));
    assert_eq!(csv, "division_code,value\n330602,100.0\n330603,50.5\n");
    let json = ok(stmon(&wh).args(["sql", "--format", "json", "-c", q]));
    assert_eq!(
        json,
        "{\"division_code\":\"330602\",\"value\":100.0}\n{\"division_code\":\"330603\",\"value\":50.5}\n"
    );
    let table = ok(stmon(&wh).args(["sql", "-c", q]));
    assert!(table.contains("| 330603        | 50.5  |"), "{table}");

    let out = stmon(&wh)
        .args(["sql", "-c", "select nope from marts.indicators"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.starts_with("error: ") && err.contains("nope"), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

/// `stmon sql` plans under the read-only options: what would write or
/// change the session is refused with exit 2, and nothing is written.
#[test]
fn sql_refuses_what_writes_at_the_plan() {
    let wh = built().join("wh");
    let count = "select count(*) as n from marts.indicators";
    let before = ok(stmon(&wh).args(["sql", "--format", "csv", "-c", count]));
    let dir = tempfile::tempdir().unwrap();
    let stolen = dir.path().join("stolen.csv");
    for sql in [
        "insert into marts.indicators select * from marts.indicators".to_string(),
        "explain analyze insert into marts.indicators select * from marts.indicators".to_string(),
        format!(
            "copy (select * from marts.indicators) to '{}'",
            stolen.display()
        ),
        "create view v as select 1".to_string(),
        "set datafusion.execution.target_partitions = 64".to_string(),
    ] {
        let out = stmon(&wh).args(["sql", "-c", &sql]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{sql}: {err}");
        assert!(err.contains("stmon sql is read-only"), "{sql}: {err}");
    }
    assert!(!stolen.exists());
    let after = ok(stmon(&wh).args(["sql", "--format", "csv", "-c", count]));
    assert_eq!(before, after);
}

#[test]
fn the_interactive_shell_takes_multi_line_statements_and_lists_tables() {
    let wh = built().join("wh");
    let mut child = stmon(&wh)
        .arg("sql")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"select value\nfrom marts.indicators\nwhere year = 2023 and as_of_month = 12\n  and division_code = '330600' and indicator_id = 'talent_teams';\n\\d\n\\d marts.indicators\n\\q\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("| 4.0   |"), "{text}");
    assert!(text.contains("marts.indicators"), "{text}");
    assert!(text.contains("current.enterprise_rd"), "{text}");
    assert!(
        text.contains("as_of_month") && text.contains("12 = year end"),
        "{text}"
    );
}

#[test]
fn models_list_and_graph() {
    let wh = built().join("wh");
    let list = ok(stmon(&wh).args(["models", "list"]));
    let names: Vec<&str> = list
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(names.len(), 26);
    assert!(
        names.iter().position(|n| *n == "staging.enterprise_rd")
            < names.iter().position(|n| *n == "marts.indicators")
    );
    let dot = ok(stmon(&wh).args(["models", "graph", "--dot"]));
    assert!(dot.starts_with("digraph models {"));
    assert!(dot.contains("\"intermediate.division_enterprise\" -> \"marts.indicators\";"));
    assert!(dot.contains("\"intermediate.form_months\" -> \"marts.indicators\";"));
}

#[test]
fn progress_compares_actuals_with_targets_and_writes_csv_and_xlsx() {
    let base = built();
    let wh = base.join("wh");
    let targets = base.join("targets.yaml");
    std::fs::write(
        &targets,
        "year: 2023\nindicators:\n\
         \x20 rd_intensity: {label: 全社会R&D经费占GDP比重, kind: rate, unit: percent, targets: {\"330602\": 0.01}}\n\
         \x20 tech_transaction_volume: {label: 技术交易额, kind: cumulative, unit: wan_yuan, targets: {\"330602\": 150, \"330600\": 400}}\n\
         \x20 talent_teams: {label: 人才团队, kind: cumulative, targets: {\"330603\": 10}}\n",
    )
    .unwrap();
    let out = base.join("reports");
    let text = ok(stmon(&wh).args([
        "progress",
        "--year",
        "2023",
        "--as-of",
        "2023-06",
        "--targets",
        targets.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(text.contains("2023 progress as of 2023-06"), "{text}");
    let csv = std::fs::read_to_string(out.join("progress-2023-06.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "\u{feff}区划代码,区划名称,层级,指标代码,指标名称,实际值,目标值,完成率,时间进度,状态,说明,待核实,公开版"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let find = |code: &str, id: &str| {
        rows.iter()
            .find(|r| r[0] == code && r[3] == id)
            .unwrap_or_else(|| panic!("{code} {id} in {csv}"))
            .clone()
    };
    // As of June, rd_intensity uses Q2: 25 / 5000 = 0.005, half the target: red.
    let r = find("330602", "rd_intensity");
    assert_eq!((r[5], r[7], r[9]), ("0.005", "0.5", "红"));
    // 100 of 150 by June: 0.667 ≥ time progress 0.5: green.
    let r = find("330602", "tech_transaction_volume");
    assert_eq!((r[5], r[8], r[9]), ("100", "0.5", "绿"));
    assert!(r[7].starts_with("0.666"));
    // The city: 100 of 400 = 0.25 < 0.8 × 0.5: red.
    let r = find("330600", "tech_transaction_volume");
    assert_eq!((r[7], r[9]), ("0.25", "红"));
    // 柯桥's teams arrive in December: 0 of 10 by June: red.
    let r = find("330603", "talent_teams");
    assert_eq!((r[5], r[7], r[9]), ("0", "0", "红"));
    assert!(out.join("progress-2023-06.xlsx").metadata().unwrap().len() > 1000);
}

/// The `<tag … attr="…">` values of one attribute, in document order.
fn attr_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let key = format!(" {attr}=\"");
    html.match_indices(&key)
        .map(|(i, _)| {
            let rest = &html[i + key.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect()
}

/// A progress card: indicator, completion, and (month, completion) per chart dot.
type Card = (String, String, Vec<(String, String)>);

#[test]
fn progress_html_puts_red_first_and_charts_each_month_with_the_numbers_of_the_table() {
    let base = built();
    let wh = base.join("wh");
    let dir = tempfile::tempdir().unwrap();
    let targets = dir.path().join("targets.yaml");
    // tech_transaction_volume first in the file: the page reorders red first.
    std::fs::write(
        &targets,
        "year: 2023\nindicators:\n\
         \x20 tech_transaction_volume: {label: 技术交易额, kind: cumulative, unit: wan_yuan, targets: {\"330602\": 150, \"330603\": 100, \"330600\": 400}}\n\
         \x20 rd_intensity: {label: 全社会R&D经费占GDP比重, kind: rate, unit: percent, targets: {\"330602\": 0.01}}\n\
         \x20 talent_teams: {label: 人才团队, kind: cumulative, targets: {\"330603\": 10}}\n",
    )
    .unwrap();
    let out = dir.path().join("reports");
    let args = |out: &std::path::Path| {
        vec![
            "progress".to_string(),
            "--year".into(),
            "2023".into(),
            "--as-of".into(),
            "2023-06".into(),
            "--targets".into(),
            targets.display().to_string(),
            "--out".into(),
            out.display().to_string(),
            "--html".into(),
        ]
    };
    let text = ok(stmon(&wh).args(args(&out)));
    let path = out.join("progress-2023-06.html");
    assert!(
        text.contains(&format!("written: {}", path.display())),
        "{text}"
    );
    let html = std::fs::read_to_string(&path).unwrap();
    // Offline: nothing loaded from elsewhere, no script at all.
    for outside in ["<script", "src=", "href=\"http", "url(", "<link", "@import"] {
        assert!(!html.contains(outside), "{outside}");
    }
    assert!(html.contains("截至2023年6月，时间进度 50.0%"));

    // The city first, then the counties with the most red lights first:
    // 柯桥 (330603) has two reds (0 of 100 contracts by June, 0 of 10
    // teams), 越城 (330602) one (R&D intensity 0.005 / 0.01 = 0.5 < 0.8).
    let sections: Vec<&str> = attr_values(&html, "id")
        .into_iter()
        .filter(|i| i.starts_with("d-"))
        .collect();
    assert_eq!(sections, ["d-330600", "d-330603", "d-330602"]);
    let overview: Vec<&str> = attr_values(&html, "data-division");
    // The overview's rows, then the red table's rows (by division, red order).
    assert_eq!(
        overview,
        ["330600", "330603", "330602", "330600", "330603", "330603", "330602"]
    );
    assert!(html.contains("红灯指标（4 项）"));
    assert!(html.contains(
        "<tr data-division=\"330603\"><td class=\"t\"><a href=\"#d-330603\">柯桥区</a></td><td>2</td><td>0</td><td>0</td><td>0</td><td></td></tr>"
    ));

    // Each division's cards: red first, the file's order within a light.
    let cards = |code: &str| -> Vec<Card> {
        let start = html.find(&format!("id=\"d-{code}\"")).unwrap();
        let end = html[start..].find("</section>").unwrap() + start;
        html[start..end]
            .split("<div class=\"card ")
            .skip(1)
            .map(|card| {
                let ind = attr_values(card, "data-indicator")[0].to_string();
                let completion = attr_values(card, "data-completion")[0].to_string();
                let months = attr_values(card, "data-month");
                let values = attr_values(card, "data-completion")[1..].to_vec();
                assert_eq!(months.len(), values.len());
                let points = months
                    .iter()
                    .zip(values)
                    .map(|(m, v)| (m.to_string(), v.to_string()))
                    .collect();
                (ind, completion, points)
            })
            .collect()
    };
    let p = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    let yuecheng = cards("330602");
    assert_eq!(
        yuecheng.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
        ["rd_intensity", "tech_transaction_volume"]
    );
    // R&D intensity: no quarter before March; Q1 0.0052 (March–May), Q2
    // 0.005 (June), against 0.01.
    assert_eq!(yuecheng[0].1, "0.5000");
    assert_eq!(
        yuecheng[0].2,
        p(&[
            ("3", "0.5200"),
            ("4", "0.5200"),
            ("5", "0.5200"),
            ("6", "0.5000")
        ])
    );
    // Contracts: T1 (100 万元, February) against 150.
    assert_eq!(yuecheng[1].1, "0.6667");
    assert_eq!(
        yuecheng[1].2,
        p(&[
            ("1", "0.0000"),
            ("2", "0.6667"),
            ("3", "0.6667"),
            ("4", "0.6667"),
            ("5", "0.6667"),
            ("6", "0.6667")
        ])
    );
    let keqiao = cards("330603");
    assert_eq!(
        keqiao
            .iter()
            .map(|c| (c.0.as_str(), c.1.as_str()))
            .collect::<Vec<_>>(),
        [
            ("tech_transaction_volume", "0.0000"),
            ("talent_teams", "0.0000")
        ]
    );
    // Amounts under 1 亿 in 万.
    assert!(html.contains("实际 100万 / 目标 150万"));
    // The city: 100 of 400 = 25 %, red against 50 %.
    let city = cards("330600");
    assert_eq!(
        (city[0].0.as_str(), city[0].1.as_str()),
        ("tech_transaction_volume", "0.2500")
    );
    assert!(html.contains("<span class=\"light red\">红</span> 完成率 <b>25.0%</b> · 应达 50.0%"));

    // The command on the page writes the same page again.
    let cmd = html.split("<dt>重现命令</dt><dd><code>").nth(1).unwrap();
    let cmd = &cmd[..cmd.find("</code>").unwrap()];
    assert!(
        cmd.starts_with("stmon progress --year 2023 --as-of 2023-06 --targets "),
        "{cmd}"
    );
    assert!(
        cmd.contains(" --version ") && cmd.ends_with(" --html"),
        "{cmd}"
    );
    let again = dir.path().join("again");
    let mut words: Vec<String> = cmd.split(' ').skip(1).map(str::to_string).collect();
    words.extend(["--out".to_string(), again.display().to_string()]);
    ok(stmon(&wh).args(&words));
    let strip = |h: &str| {
        let i = h.find("<dt>生成时间</dt>").unwrap();
        let j = h[i..].find("</dd>").unwrap() + i;
        format!("{}{}", &h[..i], &h[j..])
    };
    let html2 = std::fs::read_to_string(again.join("progress-2023-06.html")).unwrap();
    assert_eq!(strip(&html), strip(&html2));
}

#[test]
fn docs_site_links_resolve_and_every_model_form_and_lineage_is_there() {
    let wh = built().join("wh");
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    let text = ok(stmon(&wh).args(["docs", "--out", site.to_str().unwrap()]));
    assert!(text.contains("page(s) to"), "{text}");

    // Walk every page's links: each file exists, each #fragment is an id in it.
    let mut pages = Vec::new();
    let mut stack = vec![site.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                pages.push(p);
            }
        }
    }
    let mut links = 0;
    for page in &pages {
        let html = std::fs::read_to_string(page).unwrap();
        assert!(
            !html.contains("src=\"http") && !html.contains("href=\"http"),
            "{}",
            page.display()
        );
        for href in attr_values(&html, "href") {
            let (file, frag) = href.split_once('#').unwrap_or((href, ""));
            let target = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            assert!(
                target.is_file(),
                "{}: link {href} to nothing",
                page.display()
            );
            if !frag.is_empty() {
                let t = std::fs::read_to_string(&target).unwrap();
                assert!(
                    t.contains(&format!("id=\"{frag}\"")),
                    "{}: {href}: no such anchor",
                    page.display()
                );
            }
            links += 1;
        }
    }
    assert!(links > 500, "{links} links walked");

    // Every model and every form has its page, linked from the index.
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    let project = stmon_models::Project::load(&repo().join("sql")).unwrap();
    assert_eq!(project.models.len(), 26);
    for m in &project.models {
        let rel = format!("models/{}.html", m.id);
        assert!(index.contains(&format!("href=\"{rel}\"")), "{rel}");
        let page = std::fs::read_to_string(site.join(&rel)).unwrap();
        assert!(page.contains("<pre class=\"sql\">"), "{rel}");
    }
    let catalog = catalog();
    // The contract's seven forms and stmon's own review_response.
    assert_eq!(catalog.forms.len(), 8);
    for form in catalog.forms.values() {
        let rel = format!("forms/{}.html", form.name);
        assert!(index.contains(&format!("href=\"{rel}\"")), "{rel}");
        let page = std::fs::read_to_string(site.join(&rel)).unwrap();
        // The review's rules, each with its id, and the open queries.
        for r in form.review.iter().flat_map(|r| &r.rules) {
            assert!(
                page.contains(&format!("<code>{}</code>", r.id)),
                "{rel}: {}",
                r.id
            );
        }
        assert_eq!(
            page.contains("当前待核实查询"),
            form.review.is_some(),
            "{rel}"
        );
        for c in &form.columns {
            assert!(
                page.contains(&format!(
                    "<td class=\"t\">{}</td>",
                    c.label.replace('&', "&amp;")
                )),
                "{rel}: {}",
                c.label
            );
        }
    }
    // The search index inline in the index page: every model and form, and
    // what a search finds them by (labels, enumeration labels, columns).
    let data = index.split("const INDEX=").nth(1).unwrap();
    let data = &data[..data.find(";window.addEventListener").unwrap()];
    let entries: Vec<serde_json::Value> = serde_json::from_str(data).unwrap();
    let find = |url: &str| {
        entries
            .iter()
            .find(|e| e["u"] == url)
            .unwrap_or_else(|| panic!("{url} not in the search index"))
    };
    for m in &project.models {
        find(&format!("models/{}.html", m.id));
    }
    assert!(find("forms/zone_report.html")["k"]
        .as_str()
        .unwrap()
        .contains("national 国家级"));
    assert!(find("indicators.html#i-rd_intensity")["t"]
        .as_str()
        .unwrap()
        .contains("全社会R&D经费占GDP比重"));
    let zones = std::fs::read_to_string(site.join("forms/zone_report.html")).unwrap();
    assert!(zones.contains("national=国家级，provincial=省级，provincial_park=省级高新园区"));

    // The lineage of rd_intensity: exactly its three forms, in the graph's
    // table and in the catalogue; the graph links its node.
    let lineage = std::fs::read_to_string(site.join("lineage.html")).unwrap();
    assert!(lineage.contains(
        "id=\"l-rd_intensity\" data-forms=\"county_economy enterprise_rd institute_report\""
    ));
    assert!(lineage.contains("id=\"l-tech_transaction_volume\" data-forms=\"tech_contract\""));
    assert!(lineage.contains("<a href=\"indicators.html#i-rd_intensity\" class=\"node\""));
    assert!(lineage.contains("data-from=\"ind:rd_intensity\" data-to=\"scheme:"));
    let indicators = std::fs::read_to_string(site.join("indicators.html")).unwrap();
    assert!(indicators.contains(
        "id=\"i-rd_intensity\" data-forms=\"county_economy enterprise_rd institute_report\""
    ));
    assert!(indicators.contains("全社会R&amp;D经费占GDP比重"));

    // History: raw/enterprise_rd was created, then written by the base
    // batch (version 1) and by the correction's batch (version 2).
    let batch_of = |file: &str| {
        let csv = ok(stmon(&wh).args([
            "sql",
            "--format",
            "csv",
            "-c",
            &format!("select batch_id from audit.batches where file = '{file}'"),
        ]));
        csv.lines().nth(1).unwrap().to_string()
    };
    let form = std::fs::read_to_string(site.join("forms/enterprise_rd.html")).unwrap();
    let rows: Vec<&str> = form.split("<tr data-version=").skip(1).collect();
    assert_eq!(rows.len(), 3);
    assert!(
        rows[0].starts_with("\"2\"")
            && rows[0].contains(&batch_of(
                "fixtures/indicators/later/enterprise_rd_correction.csv"
            ))
    );
    assert!(
        rows[1].starts_with("\"1\"")
            && rows[1].contains(&batch_of("fixtures/indicators/base/enterprise_rd.csv"))
    );
    assert!(rows[2].starts_with("\"0\"") && rows[2].contains("CREATE TABLE"));
}
