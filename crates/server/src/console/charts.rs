//! The dashboard's charts (issue 13) as server-rendered SVG: pure functions from the ledger's
//! figures ([`sanjin_ledger::Charts`]) to markup, nothing fetched from anywhere (the server may
//! have no internet), no script.
//!
//! Every chart is a `<figure>` holding an `<svg role="img">` with a `<title>` and a `<desc>`
//! (the figures in one sentence) and, under it, the same figures as a small table (the text
//! alternative, folded in a `<details>`). Sizes come from the `viewBox` only, so a chart scales
//! to the width of a 390 px phone; colours come from the stylesheet's classes ([`STYLE`]), never
//! a `style` attribute (the console's policy forbids inline styles); geometry is SVG's own
//! attributes (`x`, `width`, `points`…). Every text goes through `maud`, so it is escaped.

use maud::{Markup, html};
use sanjin_ledger::{Charts, Durations, bucket_zh};

/// The charts' rules in the console's stylesheet (appended to it by `html::stylesheet`).
pub const STYLE: &str = r#"
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,440px),1fr));gap:12px;margin-bottom:12px}
figure.chart{margin:0}
figure.chart svg{display:block;width:100%;height:auto}
figure.chart figcaption{font-size:13px;color:#5b6472;margin-top:4px}
figure.chart details{margin-top:6px;font-size:13px}
figure.chart summary{cursor:pointer;color:#5b6472}
svg .ax{stroke:#9aa1ad;stroke-width:1}
svg .grid{stroke:#e3e5e9;stroke-width:1}
svg text{font-size:15px;fill:#5b6472}
svg text.v{font-size:15px;fill:#1d2433}
svg text.big{font-size:17px;fill:#1d2433;font-weight:600}
svg .s1{fill:#a3191f}
svg .s2{fill:#c5c9d1}
svg .s3{fill:#d97706}
svg .track{fill:#f0f1f4}
svg .line{fill:none;stroke:#a3191f;stroke-width:2.5}
svg .area{fill:#a3191f;fill-opacity:.12}
svg .dot{fill:#a3191f}
svg .goal{stroke:#15803d;stroke-width:1.5;stroke-dasharray:5 4}
svg text.goal{fill:#15803d;stroke:none}
"#;

/// The drawing's width in `viewBox` units (a phone shows it at ~0.8 of that).
const W: f64 = 480.0;
/// Left margin for the y axis' numbers.
const LEFT: f64 = 50.0;
const RIGHT: f64 = 8.0;

/// A number without a trailing `.0`.
fn num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

fn pct(part: i64, whole: i64) -> String {
    if whole <= 0 {
        "0".into()
    } else {
        num((part as f64 * 1000.0 / whole as f64).round() / 10.0)
    }
}

/// A round top for an axis holding `max` (1, 2, 5 × 10ⁿ, at least 4 so there are 4 ticks).
fn nice_top(max: i64) -> i64 {
    let max = max.max(4);
    let mut step = 1;
    loop {
        for m in [1, 2, 5] {
            if m * step * 4 >= max {
                return m * step * 4;
            }
        }
        step *= 10;
    }
}

/// The y axis (gridlines and numbers, 0 to `top` in 4 steps) of a plot from `y0` (bottom) up
/// `h` units.
fn y_axis(top: i64, y0: f64, h: f64) -> Markup {
    html! {
        @for i in 0..=4 {
            @let y = y0 - h * i as f64 / 4.0;
            line class=(if i == 0 { "ax" } else { "grid" }) x1=(num(LEFT)) x2=(num(W - RIGHT)) y1=(num(y)) y2=(num(y)) {}
            text x=(num(LEFT - 4.0)) y=(num(y + 4.0)) text-anchor="end" { (top * i / 4) }
        }
    }
}

/// A chart's frame: the figure, the svg with its title and description, the caption and the
/// table.
fn figure(
    id: &str,
    title: &str,
    desc: &str,
    height: f64,
    body: Markup,
    caption: &str,
    table: Markup,
) -> Markup {
    html! {
        figure class="card chart" id=(id) {
            h2 { (title) }
            svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {W} {height}"))
                role="img" aria-labelledby=(format!("{id}-t {id}-d")) {
                title id=(format!("{id}-t")) { (title) }
                desc id=(format!("{id}-d")) { (desc) }
                (body)
            }
            figcaption { (caption) }
            details {
                summary { "查看数据" }
                div class="scroll" { (table) }
            }
        }
    }
}

/// A legend entry at (`x`, `y`).
fn legend(x: f64, y: f64, class: &str, label: &str) -> Markup {
    html! {
        rect class=(class) x=(num(x)) y=(num(y - 10.0)) width="12" height="12" rx="2" {}
        text x=(num(x + 16.0)) y=(num(y)) { (label) }
    }
}

/// Activities per month (bars) against the plan items due that month (grey bars).
pub fn activities(c: &Charts) -> Markup {
    let (h, y0) = (170.0, 200.0);
    let max = c
        .months
        .iter()
        .map(|m| m.visits.unwrap_or(0).max(m.planned))
        .max()
        .unwrap_or(0);
    let top = nice_top(max);
    let slot = (W - LEFT - RIGHT) / 12.0;
    let bar = slot * 0.36;
    let y = |v: i64| y0 - h * v as f64 / top as f64;
    let visits: i64 = c.months.iter().filter_map(|m| m.visits).sum();
    let planned: i64 = c
        .months
        .iter()
        .filter(|m| m.month <= c.through)
        .map(|m| m.planned)
        .sum();
    let desc = format!(
        "{} 年 1–{} 月活动记录 {} 次，同期计划 {} 项；{}",
        c.year,
        c.through,
        visits,
        planned,
        c.months
            .iter()
            .map(|m| match m.visits {
                Some(v) => format!("{}月 活动{}次 计划{}项", m.month, v, m.planned),
                None => format!("{}月 计划{}项", m.month, m.planned),
            })
            .collect::<Vec<_>>()
            .join("，")
    );
    let body = html! {
        (y_axis(top, y0, h))
        @for (i, m) in c.months.iter().enumerate() {
            @let x = LEFT + slot * i as f64 + slot * 0.12;
            @if let Some(v) = m.visits {
                rect class="s1" x=(num(x)) y=(num(y(v))) width=(num(bar)) height=(num(y0 - y(v))) {
                    title { (m.month) "月 活动 " (v) " 次" }
                }
            }
            rect class="s2" x=(num(x + bar + 1.0)) y=(num(y(m.planned))) width=(num(bar)) height=(num(y0 - y(m.planned))) {
                title { (m.month) "月 计划 " (m.planned) " 项" }
            }
            text x=(num(LEFT + slot * (i as f64 + 0.5))) y=(num(y0 + 17.0)) text-anchor="middle" { (m.month) "月" }
        }
        (legend(LEFT, 16.0, "s1", "活动记录（次）"))
        (legend(LEFT + 140.0, 16.0, "s2", "计划项目（项）"))
    };
    let table = html! {
        table class="chart-data" {
            tr { th { "月份" } th { "活动（次）" } th { "计划（项）" } }
            @for m in &c.months {
                tr {
                    td { (m.month) "月" }
                    td {
                        @match m.visits {
                            Some(v) => { (v) }
                            None => { "—" }
                        }
                    }
                    td { (m.planned) }
                }
            }
        }
    };
    figure(
        "chart-activities",
        "每月活动与计划",
        &desc,
        225.0,
        body,
        &format!(
            "红色：当月开始的活动记录；灰色：计划在当月开展的计划项目。1–{} 月共活动 {} 次，计划 {} 项。",
            c.through, visits, planned
        ),
        table,
    )
}

/// Members who took part, cumulatively by month, against all members of the scope.
pub fn coverage(c: &Charts) -> Markup {
    let (h, y0) = (160.0, 200.0);
    let cov = &c.coverage;
    let total = cov.members;
    let last = cov.covered.last().copied().unwrap_or(0);
    let top = nice_top(total.max(last));
    let slot = (W - LEFT - RIGHT) / 12.0;
    let x = |i: usize| LEFT + slot * (i as f64 + 0.5);
    let y = |v: i64| y0 - h * v as f64 / top as f64;
    let points: Vec<String> = cov
        .covered
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
        .collect();
    let area = match (points.first(), cov.covered.len()) {
        (Some(_), n) => format!(
            "{:.1},{y0:.1} {} {:.1},{y0:.1}",
            x(0),
            points.join(" "),
            x(n - 1)
        ),
        _ => String::new(),
    };
    let desc = format!(
        "{} 年截至 {} 月，参加过活动的委员累计 {} 人，占本范围委员 {} 人的 {}%；{}",
        c.year,
        c.through,
        last,
        total,
        pct(last, total),
        cov.covered
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{}月 {}人", i + 1, v))
            .collect::<Vec<_>>()
            .join("，")
    );
    let body = html! {
        (y_axis(top, y0, h))
        line class="goal" x1=(num(LEFT)) x2=(num(W - RIGHT)) y1=(num(y(total))) y2=(num(y(total))) {}
        text class="goal" x=(num(W - RIGHT)) y=(num(y(total) - 5.0)) text-anchor="end" { "委员总数 " (total) " 人" }
        @if !points.is_empty() {
            polygon class="area" points=(area) {}
            polyline class="line" points=(points.join(" ")) {}
        }
        @for (i, v) in cov.covered.iter().enumerate() {
            circle class="dot" cx=(num(x(i))) cy=(num(y(*v))) r="3.5" {
                title { (i + 1) "月底 累计 " (v) " 人" }
            }
        }
        @for i in 0..12 {
            text x=(num(x(i))) y=(num(y0 + 17.0)) text-anchor="middle" { (i + 1) "月" }
        }
        text class="big" x=(num(LEFT)) y="18" {
            "已覆盖 " (last) " / " (total) " 人（" (pct(last, total)) "%）"
        }
    };
    let table = html! {
        table class="chart-data" {
            tr { th { "截至" } th { "累计参加（人）" } th { "覆盖率" } }
            @for (i, v) in cov.covered.iter().enumerate() {
                tr { td { (i + 1) "月底" } td { (v) } td { (pct(*v, total)) "%" } }
            }
        }
    };
    figure(
        "chart-coverage",
        "委员参加活动覆盖（全覆盖）",
        &desc,
        225.0,
        body,
        &format!(
            "计入：作为参加人或记录人出现在活动记录中、或记录过社情民意的委员，从 1 月起累计；目标线为本范围委员总数 {total} 人（每位委员每年至少参加一次）。"
        ),
        table,
    )
}

fn median_zh(d: &Durations) -> String {
    d.median_days
        .map_or_else(|| "—".to_string(), |m| format!("{} 天", num(m)))
}

/// Opinion handling times: how many notes took how long, to the handling and to the feedback.
pub fn handling(c: &Charts) -> Markup {
    let hd = &c.handling;
    let (h, y0) = (140.0, 200.0);
    let max = hd
        .done
        .buckets
        .iter()
        .chain(&hd.feedback.buckets)
        .copied()
        .max()
        .unwrap_or(0);
    let top = nice_top(max);
    let slot = (W - LEFT - RIGHT) / 5.0;
    let bar = slot * 0.34;
    let y = |v: i64| y0 - h * v as f64 / top as f64;
    let desc = format!(
        "{} 年 1–{} 月记录的社情民意 {} 条：已办理 {} 条，从提交到办理用时中位数 {}；已反馈 {} 条，到反馈用时中位数 {}；尚未办理 {} 条，已办理待反馈 {} 条。办理用时分布：{}；反馈用时分布：{}",
        c.year,
        c.through,
        hd.recorded,
        hd.done.count,
        median_zh(&hd.done),
        hd.feedback.count,
        median_zh(&hd.feedback),
        hd.open,
        hd.awaiting_feedback,
        (0..5)
            .map(|i| format!("{} {}条", bucket_zh(i), hd.done.buckets[i]))
            .collect::<Vec<_>>()
            .join("，"),
        (0..5)
            .map(|i| format!("{} {}条", bucket_zh(i), hd.feedback.buckets[i]))
            .collect::<Vec<_>>()
            .join("，"),
    );
    let body = html! {
        text class="big" x=(num(LEFT)) y="18" {
            "中位数：办理 " (median_zh(&hd.done)) "，反馈 " (median_zh(&hd.feedback))
        }
        text x=(num(LEFT)) y="38" {
            "尚未办理 " tspan class="v" { (hd.open) } " 条 · 已办理待反馈 " (hd.awaiting_feedback) " 条"
        }
        (y_axis(top, y0, h))
        @for i in 0..5 {
            @let x = LEFT + slot * i as f64 + slot * 0.14;
            @let (a, b) = (hd.done.buckets[i], hd.feedback.buckets[i]);
            rect class="s1" x=(num(x)) y=(num(y(a))) width=(num(bar)) height=(num(y0 - y(a))) {
                title { "办理用时 " (bucket_zh(i)) "：" (a) " 条" }
            }
            rect class="s3" x=(num(x + bar + 1.0)) y=(num(y(b))) width=(num(bar)) height=(num(y0 - y(b))) {
                title { "反馈用时 " (bucket_zh(i)) "：" (b) " 条" }
            }
            text x=(num(LEFT + slot * (i as f64 + 0.5))) y=(num(y0 + 17.0)) text-anchor="middle" { (bucket_zh(i)) }
        }
        (legend(W - 190.0, 56.0, "s1", "提交→办理"))
        (legend(W - 95.0, 56.0, "s3", "提交→反馈"))
    };
    let table = html! {
        table class="chart-data" {
            tr { th { "用时" } th { "提交→办理（条）" } th { "提交→反馈（条）" } }
            @for i in 0..5 {
                tr { td { (bucket_zh(i)) } td { (hd.done.buckets[i]) } td { (hd.feedback.buckets[i]) } }
            }
            tr { td { "中位数" } td { (median_zh(&hd.done)) } td { (median_zh(&hd.feedback)) } }
            tr { td { "尚未办理" } td colspan="2" { (hd.open) " 条" } }
            tr { td { "已办理待反馈" } td colspan="2" { (hd.awaiting_feedback) " 条" } }
        }
    };
    figure(
        "chart-handling",
        "社情民意办理用时",
        &desc,
        225.0,
        body,
        &format!(
            "本年 1–{} 月记录的 {} 条社情民意，从首次提交起计天数（不足一天按一天计）；尚未办理：已提交、已采纳或已转办。",
            c.through, hd.recorded
        ),
        table,
    )
}

/// "六个一": per type, the groups of the scope that held one, against all of them.
pub fn six_ones(c: &Charts) -> Markup {
    // Each type: its name and figures on one line, its bar under them, as wide as the chart.
    let (row_h, top_y) = (46.0, 30.0);
    let track = W - RIGHT;
    let target = c.groups;
    let height = top_y + row_h * c.six_ones.len() as f64 + 8.0;
    let done_all = c
        .six_ones
        .iter()
        .filter(|s| s.groups_done >= target && target > 0)
        .count();
    let desc = format!(
        "{} 年截至 {} 月“六个一”：目标为每个活动组每项至少一次，共 {} 个活动组；{}",
        c.year,
        c.through,
        target,
        c.six_ones
            .iter()
            .map(|s| format!(
                "{} 已完成 {}/{} 组、共 {} 次",
                s.activity_type.zh(),
                s.groups_done,
                target,
                s.visits
            ))
            .collect::<Vec<_>>()
            .join("，")
    );
    let body = html! {
        text class="big" x="0" y="18" {
            (done_all) " / 6 项已全部完成（共 " (target) " 个活动组）"
        }
        @for (i, s) in c.six_ones.iter().enumerate() {
            @let y = top_y + row_h * i as f64;
            @let w = if target > 0 { track * (s.groups_done.min(target)) as f64 / target as f64 } else { 0.0 };
            text x="0" y=(num(y + 16.0)) { (s.activity_type.zh()) }
            text class="v" x=(num(track)) y=(num(y + 16.0)) text-anchor="end" {
                (s.groups_done) "/" (target) " 组 · " (s.visits) " 次"
            }
            rect class="track" x="0" y=(num(y + 22.0)) width=(num(track)) height="14" rx="3" {}
            rect class="s1" x="0" y=(num(y + 22.0)) width=(num(w)) height="14" rx="3" {
                title { (s.activity_type.zh()) "：" (s.groups_done) "/" (target) " 个组，共 " (s.visits) " 次" }
            }
        }
    };
    let table = html! {
        table class="chart-data" {
            tr { th { "项目" } th { "已完成的组" } th { "目标（组）" } th { "次数" } }
            @for s in &c.six_ones {
                tr { td { (s.activity_type.zh()) } td { (s.groups_done) } td { (target) } td { (s.visits) } }
            }
        }
    };
    figure(
        "chart-six-ones",
        "“六个一”进度",
        &desc,
        height,
        body,
        "每个活动组每年每项至少开展一次：条形为已开展该项的活动组占本范围活动组的比例，右侧为已完成组数和活动次数。",
        table,
    )
}

/// The four charts.
pub fn all(c: &Charts) -> Markup {
    html! {
        h2 { (c.year) " 年图表（1–" (c.through) " 月）" }
        div class="charts" id="charts" {
            (activities(c))
            (coverage(c))
            (handling(c))
            (six_ones(c))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sanjin_core::domain::ActivityType;
    use sanjin_ledger::{Coverage, Handling, MonthFigures, SixOneFigures};

    fn sample() -> Charts {
        Charts {
            year: 2025,
            through: 3,
            months: (1..=12)
                .map(|m| MonthFigures {
                    month: m,
                    visits: (m <= 3).then_some(m as i64 * 2),
                    planned: 3,
                })
                .collect(),
            coverage: Coverage {
                members: 10,
                covered: vec![2, 5, 7],
            },
            handling: Handling {
                recorded: 4,
                done: Durations {
                    count: 2,
                    median_days: Some(7.5),
                    buckets: [1, 1, 0, 0, 0],
                },
                feedback: Durations {
                    count: 1,
                    median_days: Some(9.0),
                    buckets: [0, 1, 0, 0, 0],
                },
                open: 1,
                awaiting_feedback: 1,
            },
            groups: 2,
            six_ones: ActivityType::SIX_ONES
                .iter()
                .map(|t| SixOneFigures {
                    activity_type: *t,
                    visits: 1,
                    groups_done: 1,
                })
                .collect(),
        }
    }

    #[test]
    fn issue13_charts_are_svg_with_titles_and_tables_and_no_inline_style() {
        let html = all(&sample()).into_string();
        for id in [
            "chart-activities",
            "chart-coverage",
            "chart-handling",
            "chart-six-ones",
        ] {
            assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
            assert!(html.contains(&format!("<title id=\"{id}-t\">")), "{id}");
        }
        assert_eq!(html.matches("<svg").count(), 4);
        assert_eq!(html.matches("role=\"img\"").count(), 4);
        assert!(!html.contains("style="), "no inline style");
        assert!(html.contains("已覆盖 7 / 10 人（70%）"));
        assert!(html.contains("中位数：办理 7.5 天，反馈 9 天"));
        assert!(html.contains("1–3 月共活动 12 次，计划 9 项"));
        assert!(html.contains("0 / 6 项已全部完成"));
    }

    #[test]
    fn issue13_axes_round_up() {
        assert_eq!(nice_top(0), 4);
        assert_eq!(nice_top(5), 8);
        assert_eq!(nice_top(9), 20);
        assert_eq!(nice_top(41), 80);
        assert_eq!(nice_top(28_609), 40_000);
        assert_eq!(num(7.0), "7");
        assert_eq!(num(7.5), "7.5");
        assert_eq!(pct(1, 3), "33.3");
    }
}
