//! `GET /`: the status page, server-rendered HTML from the same JSON as `/status`. It
//! reloads itself every few seconds (`<meta http-equiv="refresh">`); no script, no build
//! step. Everything that comes from Jenkins, EC2 or the config file (node names, build names,
//! labels, errors) is HTML-escaped.

use serde_json::Value;
use std::fmt::Write;

/// Seconds between reloads of the page.
pub const REFRESH_SECONDS: u32 = 5;

/// Escape text for HTML element content and double-quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as escaped text: strings without quotes, null as "–".
fn t(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::String(s) => escape(s),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() != 0.0 => format!("{f:.2}"),
            _ => n.to_string(),
        },
        other => escape(&other.to_string()),
    }
}

fn duration(v: &Value) -> String {
    match v.as_f64() {
        None => "–".into(),
        Some(s) if s < 120.0 => format!("{s:.0} s"),
        Some(s) if s < 7200.0 => format!("{:.0} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3600.0),
    }
}

fn dollars(v: &Value) -> String {
    match v.as_f64() {
        None => "–".into(),
        Some(d) => format!("${d:.4}"),
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}\
th{background:#f3f3f3}.err{color:#a00}.muted{color:#777}h2{margin-top:1.5em}code{background:#f3f3f3}";

/// The whole page for one `/status` document.
pub fn render(status: &Value) -> String {
    let mut h = String::new();
    let fleet = t(&status["fleet_id"]);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
<title>nectr-fleet {fleet}</title><style>{STYLE}</style></head><body>\n\
<h1>nectr-fleet <span id=\"fleet\">{fleet}</span></h1>\n"
    );
    if status.get("fleet_id").is_none() {
        h.push_str("<p id=\"waiting\">No poll has finished yet; this page reloads itself.</p></body></html>\n");
        return h;
    }
    let role = &status["role"];
    let _ = writeln!(
        h,
        "<p>Jenkins <code>{}</code> · as of <time id=\"time\">{}</time> · role {}{} · reloads every {REFRESH_SECONDS} s</p>",
        t(&status["jenkins_url"]),
        t(&status["time"]),
        t(&role["mode"]),
        role.get("generation").map(|g| format!(" (generation {})", t(g))).unwrap_or_default(),
    );
    let lp = &status["last_poll"];
    if lp["observed"] == Value::Bool(true) {
        h.push_str("<p id=\"poll\">Last poll: observed.</p>\n");
    } else {
        h.push_str("<p id=\"poll\" class=\"err\">Last poll: failed, no action taken.</p>\n");
    }
    if let Some(errs) = lp["errors"].as_array().filter(|e| !e.is_empty()) {
        h.push_str("<ul id=\"errors\" class=\"err\">");
        for e in errs {
            let _ = write!(h, "<li>{}</li>", t(e));
        }
        h.push_str("</ul>\n");
    }

    if status["controller_restart"]["idle_clocks_held_until"].is_string() {
        let _ = writeln!(
            h,
            "<p id=\"restart\">Jenkins restarted at {}: no node counts as idle until {} (jenkins.restart_grace), while resumed builds take their nodes back.</p>",
            t(&status["controller_restart"]["at"]),
            t(&status["controller_restart"]["idle_clocks_held_until"]),
        );
    }

    // Budget.
    let b = &status["budget"];
    let _ = writeln!(
        h,
        "<h2>Budget</h2><p id=\"budget\">Spending {}/h of {} · headroom {}</p>",
        dollars(&b["dollars_per_hour"]),
        if b["max_dollars_per_hour"].is_null() {
            "no cap (max_dollars_per_hour unset)".into()
        } else {
            format!("{}/h", dollars(&b["max_dollars_per_hour"]))
        },
        if b["headroom_dollars_per_hour"].is_null() {
            "unlimited".into()
        } else {
            format!("{}/h", dollars(&b["headroom_dollars_per_hour"]))
        },
    );

    // Pools.
    let empty = serde_json::Map::new();
    let pools = status["pools"].as_object().unwrap_or(&empty);
    let instances = status["instances"].as_array().cloned().unwrap_or_default();
    for (name, p) in pools {
        let id = escape(name);
        let _ = writeln!(
            h,
            "<section class=\"pool\" data-pool=\"{id}\"><h2>Pool {id}</h2>\n\
<p class=\"backend\">{}</p>\n\
<p>Demand <b class=\"demand\">{}</b> executor(s) (oldest waits {}) · supply: idle {}, busy {}, connecting {}, in flight {} · \
{} instance(s), {} in flight, {} fenced, {} interrupted · {}/h{}</p>",
            match p["backend"]["kind"].as_str() {
                Some("asg") => format!(
                    "Auto Scaling group <b>{}</b> (desired capacity, targeted scale-in)",
                    t(&p["backend"]["group"])
                ),
                _ => "EC2 instances launched directly (RunInstances)".to_string(),
            },
            t(&p["demand_executors"]),
            duration(&p["oldest_wait_seconds"]),
            t(&p["idle_executors"]),
            t(&p["busy_executors"]),
            t(&p["connecting_executors"]),
            t(&p["in_flight_executors"]),
            t(&p["instances"]),
            t(&p["in_flight_instances"]),
            t(&p["fenced"]),
            t(&p["interrupted"]),
            dollars(&p["dollars_per_hour"]),
            if p["capped_by"].is_null() {
                String::new()
            } else {
                format!(" · capped by {}", t(&p["capped_by"]))
            },
        );
        h.push_str("<table class=\"instances\"><tr><th>instance</th><th>node</th><th>type</th><th>age</th><th>state</th><th>current build</th><th>idle for</th><th>cost so far</th></tr>\n");
        let mut any = false;
        for i in instances
            .iter()
            .filter(|i| i["pool"].as_str() == Some(name))
        {
            any = true;
            let builds = i["builds"]
                .as_array()
                .map(|b| b.iter().map(t).collect::<Vec<_>>().join("<br>"))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "–".into());
            let _ = writeln!(
                h,
                "<tr class=\"instance\"><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{builds}</td><td>{}</td><td>{}</td></tr>",
                t(&i["id"]),
                t(&i["node"]),
                t(&i["type"]),
                if i["spot"] == Value::Bool(true) { " (spot)" } else { "" },
                duration(&i["age_seconds"]),
                if i["spot_notice"].is_object() {
                    format!(
                        "{} <b class=\"notice\">spot {} notice {}</b>",
                        t(&i["state"]),
                        t(&i["spot_notice"]["kind"]),
                        t(&i["spot_notice"]["time"])
                    )
                } else {
                    t(&i["state"])
                },
                duration(&i["idle_seconds"]),
                dollars(&i["cost_dollars"]),
            );
        }
        if !any {
            h.push_str("<tr><td colspan=\"8\" class=\"muted\">no instances</td></tr>\n");
        }
        h.push_str("</table></section>\n");
    }

    // Cost by job.
    let jc = &status["job_costs"];
    if let Some(jobs) = jc["jobs"].as_array() {
        let _ = writeln!(
            h,
            "<h2>Cost by job</h2>\n<p>Finished builds since this process started: each build's time on an executor × its instance's price per second ÷ the instance's executors ({} running now).</p>",
            t(&jc["running_builds"])
        );
        h.push_str("<table id=\"job-costs\"><tr><th>job</th><th>builds</th><th>instance-seconds</th><th>dollars</th><th>by pool</th><th>by day</th></tr>\n");
        if jobs.is_empty() {
            h.push_str("<tr><td colspan=\"6\" class=\"muted\">no finished builds yet</td></tr>\n");
        }
        let split = |m: &Value| {
            m.as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| {
                            format!(
                                "{} {} ({} builds)",
                                escape(k),
                                dollars(&v["dollars"]),
                                t(&v["builds"])
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("<br>")
                })
                .unwrap_or_default()
        };
        for j in jobs {
            let _ = writeln!(
                h,
                "<tr class=\"job-cost\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                t(&j["job"]),
                t(&j["builds"]),
                j["instance_seconds"].as_f64().map_or("–".into(), |s| format!("{s:.0}")),
                dollars(&j["dollars"]),
                split(&j["pools"]),
                split(&j["days"]),
            );
        }
        h.push_str("</table>\n");
    }

    // Decisions.
    h.push_str("<h2>Last decisions</h2>\n<table id=\"decisions\"><tr><th>time</th><th>pool</th><th>decision</th><th>reason</th></tr>\n");
    let decisions = status["decisions"].as_array().cloned().unwrap_or_default();
    if decisions.is_empty() {
        h.push_str("<tr><td colspan=\"4\" class=\"muted\">none yet</td></tr>\n");
    }
    for d in decisions.iter().rev() {
        let _ = writeln!(
            h,
            "<tr class=\"decision\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            t(&d["time"]),
            t(&d["pool"]),
            t(&d["action"]),
            t(&d["reason"])
        );
    }
    h.push_str("</table>\n");
    if let Some(acts) = lp["recent_actions"].as_array().filter(|a| !a.is_empty()) {
        h.push_str("<h2>Recent actions</h2><ul id=\"actions\">");
        for a in acts {
            let _ = write!(h, "<li>{}</li>", t(a));
        }
        h.push_str("</ul>\n");
    }
    if let Some(nl) = status["not_launchable"]
        .as_object()
        .filter(|m| !m.is_empty())
    {
        h.push_str("<h2>Waiting items nectr will not launch for</h2><ul>");
        for (reason, n) in nl {
            let _ = write!(h, "<li>{} × {}</li>", t(n), escape(reason));
        }
        h.push_str("</ul>\n");
    }

    // Config.
    let c = &status["config"];
    let _ = writeln!(
        h,
        "<h2>Config in force</h2><p>File <code>{}</code>; pools {}.</p>",
        t(&c["path"]),
        c["pools"]
            .as_array()
            .map(|p| p.iter().map(t).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    );
    if let Some(pc) = c["in_force"].as_array() {
        h.push_str("<table id=\"config\"><tr><th>pool</th><th>labels</th><th>instances</th><th>spare executors</th><th>idle timeout</th><th>price</th></tr>\n");
        for p in pc {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}..{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                t(&p["name"]),
                p["labels"]
                    .as_array()
                    .map(|l| l.iter().map(t).collect::<Vec<_>>().join(" "))
                    .unwrap_or_default(),
                t(&p["min_instances"]),
                t(&p["max_instances"]),
                t(&p["spare_executors"]),
                duration(&p["idle_timeout_seconds"]),
                if p["price"].is_null() {
                    "–".into()
                } else {
                    format!("{}/h", dollars(&p["price"]))
                },
            );
        }
        h.push_str("</table>\n");
        let mut rows = String::new();
        for p in pc {
            for sc in p["schedules"].as_array().into_iter().flatten() {
                let state = if sc["in_force"].as_bool() == Some(true) {
                    format!(
                        "<b>in force</b> since {} until {}",
                        t(&sc["since"]),
                        t(&sc["until"])
                    )
                } else {
                    format!("next from {}", t(&sc["next_start"]))
                };
                let _ = writeln!(
                    rows,
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    t(&p["name"]),
                    t(&sc["schedule"]),
                    state
                );
            }
        }
        if !rows.is_empty() {
            h.push_str(
                "<table id=\"schedules\"><tr><th>pool</th><th>schedule</th><th>window</th></tr>\n",
            );
            h.push_str(&rows);
            h.push_str("</table>\n");
        }
    }
    if !c["error"].is_null() {
        let _ = writeln!(
            h,
            "<p id=\"rejected\" class=\"err\">Rejected edit (the config above stays in force): <pre>{}</pre></p>",
            t(&c["error"])
        );
    }
    h.push_str("<p class=\"muted\">JSON: <a href=\"/status\">/status</a> · <a href=\"/metrics\">/metrics</a> · <a href=\"/healthz\">/healthz</a></p></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_user_data_everywhere() {
        let evil = "<script>alert('x')</script>&\"";
        let s = json!({
            "fleet_id": "f", "time": "now", "role": {"mode": "single"},
            "last_poll": {"observed": true, "errors": [evil], "recent_actions": [evil]},
            "pools": {evil: {"demand_executors": 1}},
            "instances": [{"pool": evil, "id": "i-1", "node": evil, "builds": [evil], "type": "c5.large"}],
            "decisions": [{"time": "t", "pool": evil, "action": evil, "reason": evil}],
            "not_launchable": {evil: 1},
            "config": {"path": evil, "pools": [evil], "error": evil,
                       "in_force": [{"name": evil, "labels": [evil]}]},
            "budget": {},
        });
        let h = render(&s);
        assert!(!h.contains("<script>"), "{h}");
        assert!(!h.contains("alert('x')"), "{h}");
        assert!(h.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"));
        assert!(h.contains("i-1"));
        assert!(h.contains("id=\"rejected\""));
    }

    #[test]
    fn a_page_before_the_first_poll() {
        let h = render(&Value::Null);
        assert!(h.contains("No poll has finished yet"));
        assert!(h.contains("http-equiv=\"refresh\""));
    }
}
