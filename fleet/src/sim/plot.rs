//! SVG plots of a comparison (plotters, SVG backend only: no font or bitmap dependencies).

use super::report::Comparison;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

const COLORS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
];

fn err(path: &Path) -> impl Fn(String) -> String + '_ {
    move |e| format!("plot {}: {e}", path.display())
}

/// One line chart with a series per policy.
fn lines(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), String> {
    let e = err(path);
    let xmax = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let ymax = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.05;
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..xmax, 0f64..ymax)
        .map_err(|x| e(x.to_string()))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(|x| e(x.to_string()))?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
            .map_err(|x| e(x.to_string()))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(x.to_string()))?;
    root.present().map_err(|x| e(x.to_string()))?;
    Ok(())
}

/// queue.svg, instances.svg, cost.svg (over time, hours) and wait-cdf.svg.
pub fn write_all(c: &Comparison, dir: &Path) -> Result<Vec<PathBuf>, String> {
    let hours = |t: u64| t as f64 / 3_600_000.0;
    let mut files = Vec::new();
    type Pick = fn(&super::engine::Sample) -> f64;
    let charts: [(&str, &str, &str, Pick); 3] = [
        ("queue.svg", "queue depth", "queued builds", |s| {
            s.queue as f64
        }),
        ("instances.svg", "instances", "live instances", |s| {
            s.instances as f64
        }),
        ("cost.svg", "cumulative cost", "dollars", |s| s.cost),
    ];
    for (file, title, y, pick) in charts {
        let series: Vec<(String, Vec<(f64, f64)>)> = c
            .policies
            .iter()
            .map(|p| {
                (
                    p.policy.clone(),
                    p.samples.iter().map(|s| (hours(s.t_ms), pick(s))).collect(),
                )
            })
            .collect();
        let path = dir.join(file);
        lines(
            &path,
            &format!("{title} — {}", c.workload),
            "hours",
            y,
            &series,
        )?;
        files.push(path);
    }
    let series: Vec<(String, Vec<(f64, f64)>)> = c
        .policies
        .iter()
        .map(|p| {
            let n = p.waits_s.len().max(1) as f64;
            let pts = p
                .waits_s
                .iter()
                .enumerate()
                .map(|(i, w)| (*w, (i + 1) as f64 / n))
                .collect();
            (p.policy.clone(), pts)
        })
        .collect();
    let path = dir.join("wait-cdf.svg");
    lines(
        &path,
        &format!("queue wait CDF — {}", c.workload),
        "wait (s)",
        "share of builds",
        &series,
    )?;
    files.push(path);
    Ok(files)
}

/// sweep.svg: nectr's cost and p95 wait against the idle timeout (minutes).
pub fn sweep(points: &[(f64, f64, f64)], dir: &Path) -> Result<PathBuf, String> {
    let path = dir.join("sweep.svg");
    let cost: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.1)).collect();
    let wait: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.2)).collect();
    let dollars = dir.join("sweep-cost.svg");
    lines(
        &dollars,
        "nectr cost vs idle timeout",
        "idle timeout (min)",
        "dollars",
        &[("nectr cost".into(), cost)],
    )?;
    lines(
        &path,
        "nectr p95 wait vs idle timeout",
        "idle timeout (min)",
        "p95 wait (s)",
        &[("nectr p95 wait".into(), wait)],
    )?;
    Ok(path)
}
