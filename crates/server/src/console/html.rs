//! The console's HTML: `maud` templates, escaped by construction (issue 11). Text from data goes
//! in as `(value)` and is escaped; markup is only what the templates spell out. No script, no
//! inline style (the Content-Security-Policy allows neither), no build step: the one stylesheet
//! is served from `/console/style.css`.

use std::fmt::Write;

use maud::{Markup, PreEscaped, html};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::auth::Session;

/// What a query value or a path segment keeps as it is: letters, digits and `-_.~`; every other
/// byte of its UTF-8 is percent-encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a query-string value or a path segment.
pub fn url(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font-family:"Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif;color:#1d2433;background:#f4f5f7;font-size:15px;line-height:1.5}
header{background:#a3191f;color:#fff;padding:10px 16px;display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center}
header a{color:#fff;text-decoration:none}
header .brand{font-weight:bold;font-size:17px;margin-right:auto}
header form{display:inline;margin:0}
header button{background:none;border:1px solid #fff;color:#fff;border-radius:4px;padding:2px 8px;cursor:pointer}
main{max-width:1200px;margin:0 auto;padding:12px}
h1{font-size:20px;margin:8px 0 12px}
h2{font-size:17px;margin:18px 0 8px}
.card{background:#fff;border-radius:6px;padding:12px;margin-bottom:12px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px}
.stat{background:#fff;border-radius:6px;padding:10px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.stat b{display:block;font-size:24px;color:#a3191f}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #e3e5e9;padding:6px 8px;text-align:left;vertical-align:top;white-space:nowrap}
td.wrap{white-space:normal;min-width:200px}
.snippet{white-space:normal;font-size:13px;color:#5b6472;min-width:240px;max-width:520px}
mark{background:#fde68a;color:inherit;padding:0 1px}
th{background:#f0f1f4;font-weight:600}
.bar{background:#e8c7c8;height:10px;border-radius:5px}
.bar i{display:block;background:#a3191f;height:10px;border-radius:5px}
.warn{color:#b45309;font-weight:600}
.ok{color:#15803d}
form.filters{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-end}
form.filters label{display:flex;flex-direction:column;font-size:13px}
input,select,button{font-size:15px;padding:6px 8px;border:1px solid #c5c9d1;border-radius:4px;background:#fff}
button.primary,a.button{background:#a3191f;color:#fff;border:none;border-radius:4px;padding:7px 14px;text-decoration:none;display:inline-block;cursor:pointer}
.pager{display:flex;gap:12px;margin:10px 0}
.conflict{border:1px solid #f59e0b;background:#fffbeb;border-radius:6px;padding:10px;margin:8px 0}
.msg{padding:10px;border-radius:6px;margin-bottom:12px;background:#ecfdf5;color:#065f46}
.err{background:#fef2f2;color:#991b1b}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;margin:0}
dt{color:#5b6472}
dd{margin:0;white-space:pre-wrap}
.photos{display:flex;flex-wrap:wrap;gap:12px}
figure.photo{margin:0;width:220px;max-width:100%}
figure.photo img{width:100%;height:auto;border-radius:4px;background:#e3e5e9;display:block}
figure.photo figcaption{font-size:13px;color:#5b6472;margin-top:4px}
.pending{color:#b45309}
.narrow{max-width:420px;margin:30px auto}
form.filters.stack{flex-direction:column;align-items:stretch}
.note{font-size:13px;color:#5b6472}
td.barcell{width:50%}
.badref{color:#991b1b}
textarea{font-size:15px;padding:6px 8px;border:1px solid #c5c9d1;border-radius:4px;width:100%;font-family:inherit}
form.step{border-top:1px solid #e3e5e9;padding:10px 0}
form.filters label.grow{flex:1 1 260px}
.field-err{color:#991b1b;font-size:13px}td.cell-err{background:#fef2f2;color:#991b1b}ul.row-errors{margin:0;padding-left:18px;color:#991b1b}
nav.tabs{display:flex;flex-wrap:wrap;gap:6px 14px;margin:0 0 10px}
nav.tabs b{color:#a3191f}
tr.badrow td{background:#fef2f2}
form.filters.stack label.grow{flex:none}
form.filters.stack select[multiple]{min-height:120px}
@media (max-width:600px){main{padding:8px}h1{font-size:18px}.stat b{font-size:20px}}
@media print{header,.noprint,form.filters{display:none}body{background:#fff;font-size:11pt}main{max-width:none;padding:0}.card,.stat{box-shadow:none;border:1px solid #c5c9d1}.scroll{overflow:visible}th,td{white-space:normal}tr{break-inside:avoid}thead{display:table-header-group}h2{break-after:avoid}a{color:inherit;text-decoration:none}}
"#;

/// The console's stylesheet: [`STYLE`] plus the bar widths `.w0` … `.w100` (a bar's width is a
/// class, not a `style` attribute, so the policy needs no `'unsafe-inline'`).
pub fn stylesheet() -> &'static str {
    static CSS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let mut css = STYLE.trim_start().to_string();
        for w in 0..=100 {
            let _ = writeln!(css, ".w{w}{{width:{w}%}}");
        }
        // The dashboard's charts (issue 13).
        css.push_str(super::charts::STYLE.trim_start());
        css
    });
    &CSS
}

/// The whole page around `body`. `who` is the signed-in account's line (with a sign-out form
/// carrying the CSRF token), none on the sign-in page.
pub fn page(title: &str, who: Option<&Who>, body: Markup) -> Markup {
    html! {
        (PreEscaped("<!doctype html>"))
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · 三进工作台" }
                link rel="stylesheet" href="/console/style.css";
            }
            body {
                header {
                    a class="brand" href="/console/dashboard" { "三进工作台" }
                    @if let Some(w) = who {
                        a href="/console/dashboard" { "工作概况" }
                        a href="/console/records?kind=visit" { "活动记录" }
                        a href="/console/records?kind=opinion" { "社情民意" }
                        a href="/console/opinions" { "社情民意办理" }
                        a href="/console/review" { "批量审核" }
                        a href="/console/records?kind=household" { "困难户" }
                        a href="/console/plans" { "年度计划" }
                        a href="/console/export" { "导出台账" }
                        a href="/console/directory" { "委员名录" }
                        a href="/console/assessment" { "履职考核" }
                        a href="/console/report" { "季度通报" }
                        span { (w.name) "（" (w.role) "）" }
                        form method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(w.csrf);
                            button type="submit" { "退出" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The body of an error page: what went wrong, and the way back.
pub fn error_body(message: &str) -> Markup {
    html! {
        div class="msg err" { (message) }
        p { a href="/console/dashboard" { "返回工作概况" } }
    }
}

/// The account line of a page's header: name, role and the CSRF token of the sign-out form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Who {
    pub name: String,
    pub role: &'static str,
    pub csrf: String,
}

impl Who {
    pub fn of(s: &Session) -> Who {
        Who {
            name: s.account.name.clone(),
            role: s.account.role.zh(),
            csrf: s.csrf.clone(),
        }
    }
}

/// The sign-in page (with the reason of a refused attempt).
pub fn login(error: Option<&str>) -> Markup {
    let body = html! {
        div class="card narrow" {
            h1 { "登录三进工作台" }
            @if let Some(e) = error {
                div class="msg err" { (e) }
            }
            form method="post" action="/console/login" class="filters stack" {
                label {
                    "账号（委员编号或工作人员编号）"
                    input name="account" id="account" autocomplete="username" required;
                }
                label {
                    "密码"
                    input name="password" id="password" type="password" autocomplete="current-password" required;
                }
                button class="primary" type="submit" id="signin" { "登录" }
            }
            p class="note" { "工作台供机关工作人员和活动组组长使用。密码由管理员用 sanjin admin set-password 设置。" }
        }
    };
    page("登录", None, body)
}

/// The path of `member`'s yearly record (履职档案) of `year` (issue 13); here so that the pages
/// linking to it need not import the member page.
pub(super) fn member_link(member: &str, year: i32) -> String {
    format!("/console/members/{}?year={year}", url(member))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        // Text and attribute values from data are escaped by the templates.
        let text = "<a href=\"x\">'&'</a>";
        assert_eq!(
            html! { td { (text) } }.into_string(),
            "<td>&lt;a href=&quot;x&quot;&gt;'&amp;'&lt;/a&gt;</td>"
        );
        assert_eq!(
            html! { td { ("<script>alert(1)</script>") } }.into_string(),
            "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>"
        );
        assert_eq!(
            html! { a href=(text) { "x" } }.into_string(),
            "<a href=\"&lt;a href=&quot;x&quot;&gt;'&amp;'&lt;/a&gt;\">x</a>"
        );
        assert_eq!(url("组 1&x"), "%E7%BB%84%201%26x");
        assert_eq!(url("a-b_c.d~e/f?g#h"), "a-b_c.d~e%2Ff%3Fg%23h");
    }

    #[test]
    fn pages_carry_no_inline_style_or_script() {
        let who = Who {
            name: "王芳".into(),
            role: "机关工作人员",
            csrf: "00".into(),
        };
        let p = page("标题", Some(&who), html! { p { "x" } }).into_string();
        for bad in [
            "<style",
            "style=",
            "<script",
            "javascript:",
            " onclick=",
            " onload=",
        ] {
            assert!(!p.contains(bad), "{bad} in {p}");
        }
        assert!(stylesheet().contains(".w37{width:37%}"));
    }
}
