#!/usr/bin/env python3
"""Writes pipelines/targets-2023.yaml: the city's 2023 targets from the work
plan and their allocation to the six counties (rule in the file's header).
Run from the repository root: python3 pipelines/allocate_targets.py"""

SHARES = {"330602": 0.14, "330603": 0.20, "330604": 0.20, "330624": 0.10, "330681": 0.22, "330683": 0.14}
NAMES = {"330602": "越城区", "330603": "柯桥区", "330604": "上虞区", "330624": "新昌县", "330681": "诸暨市", "330683": "嵊州市"}
# id, label, kind, display unit, city target (warehouse units), seed item
INDICATORS = [
    ("rd_intensity", "全社会R&D经费占GDP比重", "rate", "percent", 0.031, "主要目标, 7"),
    ("industrial_rd_ratio", "规上工业企业研发经费占营业收入比重", "rate", "percent", 0.033, "主要目标, 7"),
    ("high_tech_va_share", "高新技术产业增加值占规上工业增加值比重", "rate", "percent", 0.62, "主要目标, 9"),
    ("high_tech_investment_growth", "高新技术产业投资增长", "rate", "percent", 0.10, "主要目标"),
    ("new_high_tech_enterprises", "新认定国家高新技术企业", "cumulative", "count", 400, "主要目标, 8"),
    ("new_tech_smes", "新认定省科技型中小企业", "cumulative", "count", 800, "主要目标, 8"),
    ("tech_transaction_volume", "技术交易额", "cumulative", "wan_yuan", 1350000, "主要目标, 11"),
    ("basic_research_growth", "基础研究经费增长", "rate", "percent", 0.50, "7"),
    ("high_tech_enterprise_share_change", "高新技术企业占规上工业企业比重提升", "rate", "points", 0.03, "8"),
    ("corridor_key_project_investment", "科创走廊重点项目投资", "cumulative", "wan_yuan", 2000000, "1"),
    ("sci_tech_finance", "金融扶持科技企业", "cumulative", "wan_yuan", 2000000, "1"),
    ("new_provincial_enterprise_research_institutes", "新增省级企业研究院", "cumulative", "count", 10, "5"),
    ("new_provincial_high_tech_rd_centers", "新增省级高新技术企业研发中心", "cumulative", "count", 40, "5"),
    ("innovation_consortia", "创新联合体", "cumulative", "count", 10, "5"),
    ("talent_teams", "新引进培育领军人才和创新团队", "cumulative", "count", 100, "6"),
    ("key_tech_projects", "产业关键核心技术攻关项目", "cumulative", "count", 50, "10"),
    ("import_substitutions", "进口替代成果", "cumulative", "count", 15, "10"),
    ("incubators", "新建孵化器、众创空间", "cumulative", "count", 15, "9"),
    ("tech_commissioners", "选派科技特派员", "cumulative", "count", 100, "14"),
    ("agricultural_enterprise_research_institutes", "农业企业研究院", "cumulative", "count", 5, "14"),
    ("star_innovation_bases", "星创天地", "cumulative", "count", 5, "14"),
]


def allocate(total, integer):
    if not integer:
        return {c: round(total * s, 4) for c, s in SHARES.items()}
    raw = {c: total * s for c, s in SHARES.items()}
    base = {c: int(v) for c, v in raw.items()}
    order = sorted(raw, key=lambda c: (-(raw[c] - int(raw[c])), c))
    for c in order[: total - sum(base.values())]:
        base[c] += 1
    return base


out = """# 2023 targets: the city's (330600) exactly as in the work plan
# (../shared/seed/shaoxing-2023-st-work-plan.zh.txt, listed in indicators.md),
# and an allocation to the six counties. Written by allocate_targets.py.
#
# Allocation rule (the bureau's to change; this is configuration, not code):
# - cumulative counts and amounts are split by each county's share of the
#   city's economy: 越城 14 %, 柯桥 20 %, 上虞 20 %, 新昌 10 %, 诸暨 22 %,
#   嵊州 14 %; counts by largest remainder, so the counties' targets add up to
#   the city's; a county allocated 0 has no target for that indicator;
# - rates, ratios, growth and share changes: each county carries the city's
#   target (a rate cannot be split).
# Units are the warehouse's: fractions (0.031 = 3.1 %), 万元, counts.
year: 2023
source: shaoxing-2023-st-work-plan.zh.txt
indicators:
""".splitlines()
for id, label, kind, unit, city, seed in INDICATORS:
    out += [f"  {id}:", f"    label: {label}", f"    kind: {kind}", f"    unit: {unit}",
            f"    # seed item {seed}", "    targets:", f'      "330600": {city}']
    a = allocate(city, unit == "count") if kind == "cumulative" else {c: city for c in SHARES}
    if kind == "cumulative":
        assert abs(sum(a.values()) - city) < 1e-6, (id, a)
    out += [f'      "{c}": {a[c]}   # {NAMES[c]}' for c in SHARES if a[c] != 0]
open("pipelines/targets-2023.yaml", "w").write("\n".join(out) + "\n")
