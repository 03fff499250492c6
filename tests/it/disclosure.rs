//! Disclosure control (`marts.disclosure`) on data made for it, with every
//! figure worked out by hand, and the public edition of the nightly reports.
//!
//! Shaoxing, 2023, year end. Enterprise R&D (万元), one December report per
//! firm, every firm above-scale industrial:
//!
//! | county | firms' R&D | units | largest share | rd_intensity |
//! |---|---|---|---|---|
//! | 越城 330602 | 10, 10 | 2 | 0.5 | primary: fewer than 3 units |
//! | 柯桥 330603 | 90, 5, 5 | 3 | 0.9 | primary: one firm holds more than 85 % |
//! | 上虞 330604 | 20, 20, 20 | 3 | 0.33 | published, 60 / 1000 = 0.06 |
//! | 新昌 330624 | 30, 30, 40 | 3 | 0.4 | published, 100 / 1000 = 0.1 |
//! | city 330600 | all 11 | 11 | 90 / 280 | published, 280 / 5550 |
//!
//! GDP 2023-Q4: 1,250 越城, 800 柯桥, 1,000 上虞 and 新昌, 750 诸暨 and
//! 嵊州 (no firms): 越城's rd_intensity is 20 / 1250 = 0.016, 柯桥's
//! 100 / 800 = 0.125.
//!
//! Technology contracts, seller side: 越城 three sellers 11.1 + 22.2 + 33.3
//! = 66.6; 柯桥 one seller, 777.7 (primary: one unit); 上虞 100 + 200 + 300
//! = 600; 新昌 400 + 500 + 600 = 1500; the city 2944.3. With 柯桥 alone
//! suppressed, 柯桥 = city − the others, so one more county is suppressed:
//! the one with the smallest total above zero, 越城 (66.6), not 诸暨 or
//! 嵊州 (0: suppressing a zero protects nothing).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

fn credit(county: &str, n: usize) -> String {
    let first = format!("91{county}MA2HND1{n:02}");
    let check = stmon_core::credit_code::check_char(&first).expect("17 characters");
    format!("{first}{check}")
}

/// The inbox described at the top of this file.
fn inbox(dir: &Path) -> PathBuf {
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let firms: [(&str, &[f64]); 4] = [
        ("330602", &[10.0, 10.0]),
        ("330603", &[90.0, 5.0, 5.0]),
        ("330604", &[20.0, 20.0, 20.0]),
        ("330624", &[30.0, 30.0, 40.0]),
    ];
    let mut rd = String::from("period,credit_code,name,county_code,industry_code,above_scale,high_tech_industry,revenue,rd_expenditure,basic_research,value_added,submitted_at\n");
    let mut n = 0;
    for (county, amounts) in firms {
        for a in amounts {
            n += 1;
            rd.push_str(&format!(
                "2023-12,{},企业{n},{county},C39,Y,Y,1000,{a},0,100,2024-01-10 09:00\n",
                credit(county, n)
            ));
        }
    }
    std::fs::write(inbox.join("enterprise_rd.csv"), rd).unwrap();
    let mut gdp = String::from("period,county_code,gdp,high_tech_investment,submitted_at\n");
    for (county, g) in [
        ("330602", 1250),
        ("330603", 800),
        ("330604", 1000),
        ("330624", 1000),
        ("330681", 750),
        ("330683", 750),
    ] {
        gdp.push_str(&format!("2023-Q4,{county},{g},10,2024-01-20 09:00\n"));
    }
    std::fs::write(inbox.join("county_economy.csv"), gdp).unwrap();
    let sellers: [(&str, &[&str]); 4] = [
        ("330602", &["11.1", "22.2", "33.3"]),
        ("330603", &["777.7"]),
        ("330604", &["100", "200", "300"]),
        ("330624", &["400", "500", "600"]),
    ];
    let mut tc = String::from(
        "contract_id,registered_on,county_code,seller_credit_code,contract_type,amount,submitted_at\n",
    );
    let mut k = 0;
    for (county, amounts) in sellers {
        for a in amounts {
            k += 1;
            tc.push_str(&format!(
                "T{k},2023-06-10,{county},{},development,{a},2023-06-15 09:00\n",
                credit(county, 50 + k)
            ));
        }
    }
    std::fs::write(inbox.join("tech_contract.csv"), tc).unwrap();
    inbox
}

fn sql(wh: &Path, q: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_stmon"))
        .current_dir(repo())
        .env("STMON_WAREHOUSE", wh)
        .args(["sql", "--format", "csv", "-c", q])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The text of every sheet and the shared strings of an XLSX file.
fn xlsx_text(path: &Path) -> String {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut text = String::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        if f.name().ends_with(".xml") {
            std::io::Read::read_to_string(&mut f, &mut text).unwrap();
        }
    }
    text
}

#[test]
fn few_units_and_dominance_are_withheld_with_their_complement_in_every_public_file() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = inbox(tmp.path());
    let reports = tmp.path().join("reports");
    let pipeline = tmp.path().join("p.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "name: disclosure\nyear: 2023\ninbox: {}\nsteps: [ingest, models, tests, progress, assessment, reports]\n\
             targets: {}\nschemes: [{}]\nreports: {}\nprogress: {{as_of: 2023-12}}\npublic: true\n",
            inbox.display(),
            repo().join("pipelines/targets-2023.yaml").display(),
            repo()
                .join("pipelines/assessment-counties-2023.yaml")
                .display(),
            reports.display()
        ),
    )
    .unwrap();
    let wh = tmp.path().join("wh");
    let out = Command::new(env!("CARGO_BIN_EXE_stmon"))
        .current_dir(repo())
        .env("STMON_WAREHOUSE", &wh)
        .args(["run", pipeline.to_str().unwrap()])
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert!(log.contains("public edition"), "{log}");

    // The flags, as worked out above.
    let flags = sql(
        &wh,
        "select indicator_id, division_code, status, coalesce(rule, '') as rule, units, \
         cast(round(top_share, 4) as varchar) as top \
         from marts.disclosure where year = 2023 and as_of_month = 12 and known \
         and indicator_id in ('rd_intensity', 'tech_transaction_volume') \
         and division_code in ('330600', '330602', '330603', '330604', '330624', '330681') \
         order by indicator_id, division_code",
    );
    let expected = "indicator_id,division_code,status,rule,units,top\n\
        rd_intensity,330600,published,,11,0.3214\n\
        rd_intensity,330602,primary,few_units,2,0.5\n\
        rd_intensity,330603,primary,dominance,3,0.9\n\
        rd_intensity,330604,published,,3,0.3333\n\
        rd_intensity,330624,published,,3,0.4\n\
        rd_intensity,330681,published,,0,\n\
        tech_transaction_volume,330600,published,,10,0.2641\n\
        tech_transaction_volume,330602,secondary,complement,3,0.5\n\
        tech_transaction_volume,330603,primary,few_units,1,1.0\n\
        tech_transaction_volume,330604,published,,3,0.5\n\
        tech_transaction_volume,330624,published,,3,0.4\n\
        tech_transaction_volume,330681,published,,,\n";
    assert_eq!(flags, expected);

    // The public progress table: the withheld cells are *, the others as
    // in the internal edition; the internal edition marks what it hides.
    let read = |p: PathBuf| {
        let mut r = csv::Reader::from_path(&p).unwrap();
        r.records()
            .map(|x| x.unwrap().iter().map(String::from).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    let internal = read(reports.join("progress-2023-12.csv"));
    let public = read(reports.join("public/progress-2023-12-public.csv"));
    assert_eq!(internal.len(), public.len());
    let find = |rows: &[Vec<String>], code: &str, id: &str| {
        rows.iter()
            .find(|r| r[0] == code && r[3] == id)
            .unwrap_or_else(|| panic!("{code} {id}"))
            .clone()
    };
    for (code, id, mark) in [
        ("330602", "rd_intensity", "保密（原发）"),
        ("330603", "rd_intensity", "保密（原发）"),
        ("330603", "tech_transaction_volume", "保密（原发）"),
        ("330602", "tech_transaction_volume", "保密（隐藏）"),
    ] {
        let p = find(&public, code, id);
        assert_eq!(
            (p[5].as_str(), p[7].as_str(), p[9].as_str()),
            ("*", "*", ""),
            "{p:?}"
        );
        assert!(p[10].starts_with("保密"), "{p:?}");
        let i = find(&internal, code, id);
        assert_eq!(i[12], mark, "{i:?}");
        assert_ne!(i[5], "*");
    }
    assert_eq!(find(&internal, "330602", "rd_intensity")[5], "0.016");
    assert_eq!(
        find(&internal, "330602", "tech_transaction_volume")[5],
        "66.6"
    );
    assert_eq!(find(&public, "330604", "rd_intensity")[5], "0.06");
    assert_eq!(find(&public, "330624", "rd_intensity")[5], "0.1");
    assert_eq!(
        find(&public, "330600", "rd_intensity")[5],
        (280.0f64 / 5550.0).to_string()
    );
    assert_eq!(
        find(&public, "330624", "tech_transaction_volume")[5],
        "1500"
    );

    // No withheld number in any public file, in any form it is written in
    // (CSV, XLSX cells, the page's 万元 and percent), while the internal
    // edition has them: 越城 0.016 = 1.60 %, 66.6; 柯桥 0.125 = 12.50 %, 777.7.
    let public_dir = reports.join("public");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&public_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "progress-2023-12-public.csv",
        "progress-2023-12-public.xlsx",
        "progress-2023-12-public.html",
        "assessment_counties.csv",
        "assessment-2023.xlsx",
        "assessment-2023.html",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    let text = |p: &Path| {
        if p.extension().is_some_and(|e| e == "xlsx") {
            xlsx_text(p)
        } else {
            std::fs::read_to_string(p).unwrap()
        }
    };
    for f in &files {
        let t = text(f);
        for secret in ["777.7", "66.6", "0.016", "0.125", "1.60%", "12.50%"] {
            assert!(!t.contains(secret), "{secret} in {}", f.display());
        }
    }
    let internal_page = text(&reports.join("progress-2023-12.html"));
    for shown in ["777.7", "66.6", "1.60%", "12.50%"] {
        assert!(
            internal_page.contains(shown),
            "{shown} in the internal page"
        );
    }
    let public_page = text(&public_dir.join("progress-2023-12-public.html"));
    assert!(public_page.contains("公开版") && public_page.contains("保密"));
    assert!(public_page.contains("6.00%"), "published values stay");

    // The county ranking: the withheld inputs are *, and so are their rows'
    // totals; ranks stay.
    let ranking = read(public_dir.join("assessment_counties.csv"));
    let head = {
        let mut r = csv::Reader::from_path(public_dir.join("assessment_counties.csv")).unwrap();
        r.headers()
            .unwrap()
            .iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let col = |name: &str| {
        head.iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{name} in {head:?}"))
    };
    let keqiao = ranking.iter().find(|r| r[1] == "330603").unwrap();
    assert_eq!(keqiao[col("全社会R&D经费占GDP比重 指标值")], "*");
    assert_eq!(keqiao[col("技术交易额 指标值")], "*");
    assert_eq!(keqiao[col("总分")], "*");
    assert!(keqiao[col("排名")].parse::<u32>().is_ok());
    let shangyu = ranking.iter().find(|r| r[1] == "330604").unwrap();
    assert_eq!(shangyu[col("全社会R&D经费占GDP比重 指标值")], "0.060000");
}
