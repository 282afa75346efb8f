//! The reports page's charts, drawn on the server as SVG with `plotters` (its SVG backend
//! only: no fonts, no CDN; the browser renders the Chinese labels with its own fonts).

use plotters::prelude::*;

use super::{CATEGORY_KEYS, Summary};

const W: u32 = 640;
const H: u32 = 260;
const FONT: &str = "sans-serif";

/// Colours of the categories, in [`CATEGORY_KEYS`] order.
const CATEGORY_COLOURS: [RGBColor; 5] = [
    RGBColor(37, 99, 235),
    RGBColor(217, 119, 6),
    RGBColor(220, 38, 38),
    RGBColor(22, 163, 74),
    RGBColor(148, 163, 184),
];

pub fn category_label(key: &str) -> &'static str {
    match key {
        "consulting" => "咨询类",
        "data" => "数据类",
        "program" => "程序类",
        "other" => "其他类",
        _ => "未分类",
    }
}

type Drawn = Result<(), Box<dyn std::error::Error>>;

fn svg(draw: impl FnOnce(DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Drawn) -> String {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (W, H)).into_drawing_area();
        if let Err(e) = root
            .fill(&WHITE)
            .map_err(Into::into)
            .and_then(|()| draw(root))
        {
            tracing::warn!(error = %e, "a chart could not be drawn");
        }
    }
    out
}

/// Bars: `labels[i]` has `stacks[i]` (one value per series, drawn bottom up).
fn stacked_bars(
    caption: &str,
    labels: &[String],
    stacks: &[Vec<usize>],
    colours: &[RGBColor],
) -> String {
    svg(|root| {
        let max = stacks
            .iter()
            .map(|s| s.iter().sum::<usize>())
            .max()
            .unwrap_or(0)
            .max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, (FONT, 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(36)
            .build_cartesian_2d(0..labels.len().max(1), 0..max + max / 10 + 1)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(labels.len().clamp(1, 12))
            .x_label_formatter(&|i| labels.get(*i).cloned().unwrap_or_default())
            .label_style((FONT, 11))
            .draw()?;
        for (i, stack) in stacks.iter().enumerate() {
            let mut base = 0;
            for (k, v) in stack.iter().enumerate() {
                if *v == 0 {
                    continue;
                }
                let colour = colours[k % colours.len()];
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(i, base), (i + 1, base + v)],
                    colour.filled(),
                )))?;
                base += v;
            }
        }
        Ok(())
    })
}

/// Tickets filed per day, stacked by category.
pub fn daily_by_category(s: &Summary) -> String {
    let labels: Vec<String> = s.days.iter().map(|d| d.date[5..].to_owned()).collect();
    let stacks: Vec<Vec<usize>> = s
        .days
        .iter()
        .map(|d| {
            CATEGORY_KEYS
                .iter()
                .map(|k| d.by_category.get(k).copied().unwrap_or(0))
                .collect()
        })
        .collect();
    stacked_bars(
        "每日提交工单（按分类）",
        &labels,
        &stacks,
        &CATEGORY_COLOURS,
    )
}

/// Tickets by system.
pub fn by_system(s: &Summary) -> String {
    let mut systems: Vec<(&String, &usize)> = s.by_system.iter().collect();
    systems.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let labels: Vec<String> = systems.iter().map(|(k, _)| (*k).clone()).collect();
    let stacks: Vec<Vec<usize>> = systems.iter().map(|(_, n)| vec![**n]).collect();
    stacked_bars("按系统", &labels, &stacks, &[RGBColor(37, 99, 235)])
}

/// Resolution-time distribution.
pub fn resolution_distribution(s: &Summary) -> String {
    let labels: Vec<String> = s
        .resolution_buckets
        .iter()
        .map(|(l, _)| l.clone())
        .collect();
    let stacks: Vec<Vec<usize>> = s.resolution_buckets.iter().map(|(_, n)| vec![*n]).collect();
    stacked_bars("解决时长分布", &labels, &stacks, &[RGBColor(22, 163, 74)])
}

/// 及时率 per day (days without resolutions are skipped).
pub fn sla_trend(s: &Summary) -> String {
    svg(|root| {
        let n = s.days.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption("每日及时率（SLA 达标）", (FONT, 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(40)
            .build_cartesian_2d(0..n, 0f64..1.05)?;
        chart
            .configure_mesh()
            .x_labels(n.clamp(1, 12))
            .x_label_formatter(&|i| {
                s.days
                    .get(*i)
                    .map(|d| d.date[5..].to_owned())
                    .unwrap_or_default()
            })
            .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
            .label_style((FONT, 11))
            .draw()?;
        let points: Vec<(usize, f64)> = s
            .days
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.timely_rate.map(|r| (i, r)))
            .collect();
        chart.draw_series(LineSeries::new(
            points.clone(),
            RGBColor(220, 38, 38).stroke_width(2),
        ))?;
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 3, RGBColor(220, 38, 38).filled())),
        )?;
        Ok(())
    })
}

/// Reports by weekday × hour, darker for more.
pub fn heatmap(s: &Summary) -> String {
    const DAYS: [&str; 7] = ["周一", "周二", "周三", "周四", "周五", "周六", "周日"];
    svg(|root| {
        let max = s
            .heatmap
            .iter()
            .flatten()
            .copied()
            .max()
            .unwrap_or(0)
            .max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption("提交时段热力图（星期 × 小时）", (FONT, 16))
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(40)
            .build_cartesian_2d(0..24usize, 0..7usize)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(12)
            .y_labels(7)
            .y_label_formatter(&|d| {
                DAYS.get(6 - (*d).min(6))
                    .copied()
                    .unwrap_or_default()
                    .to_owned()
            })
            .label_style((FONT, 11))
            .draw()?;
        for (d, hours) in s.heatmap.iter().enumerate() {
            for (h, n) in hours.iter().enumerate() {
                let shade = 255 - (200 * n / max) as u8;
                let row = 6 - d;
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(h, row), (h + 1, row + 1)],
                    RGBColor(shade, shade, 255).filled(),
                )))?;
            }
        }
        Ok(())
    })
}
