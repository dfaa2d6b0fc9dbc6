//! One SVG bar chart per operation: p95 (light) and p50 (dark, inside it) latency of each
//! backend and raw baseline, on a logarithmic axis so that microseconds and milliseconds fit
//! on one chart.

use std::path::Path;
use std::time::Duration;

use plotters::coord::ranged1d::{IntoSegmentedCoord, SegmentValue};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::BenchError;
use crate::stats::format_duration;

/// One bar of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Label under the bar (backend, or backend and baseline).
    pub label: String,
    /// Median latency.
    pub p50: Duration,
    /// 95th percentile latency.
    pub p95: Duration,
    /// Whether this bar is a raw baseline (drawn in another colour).
    pub raw: bool,
}

const P50: RGBColor = RGBColor(0x1f, 0x5f, 0xa8);
const P95: RGBColor = RGBColor(0xa9, 0xc8, 0xea);
const RAW_P50: RGBColor = RGBColor(0x8a, 0x5a, 0x00);
const RAW_P95: RGBColor = RGBColor(0xf2, 0xd0, 0x8a);

/// Draws `bars` under `title` into the SVG file `path`. With no bars it draws an empty chart
/// that says so.
pub fn draw(path: &Path, title: &str, bars: &[Bar]) -> Result<(), BenchError> {
    let fail = |e: &dyn std::fmt::Display| BenchError::Chart {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let width = (200 + 140 * bars.len() as u32).max(480);
    let root = SVGBackend::new(path, (width, 380)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    if bars.is_empty() {
        root.draw(&Text::new(
            format!("{title}: no backend measured this operation"),
            (20, 180),
            ("sans-serif", 16),
        ))
        .map_err(|e| fail(&e))?;
        return root.present().map_err(|e| fail(&e));
    }
    let micros = |d: Duration| (d.as_secs_f64() * 1e6).max(1e-3);
    let low = bars.iter().map(|b| micros(b.p50)).fold(f64::MAX, f64::min) / 3.0;
    let high = bars.iter().map(|b| micros(b.p95)).fold(0.0, f64::max) * 3.0;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{title}: latency (p50 dark, p95 light)"),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(
            // Integer ranges are inclusive in plotters: 0..n-1 gives n segments.
            (0..bars.len().saturating_sub(1) as u32).into_segmented(),
            (low..high).log_scale(),
        )
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc("latency (log scale)")
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => bars
                .get(*i as usize)
                .map(|b| b.label.clone())
                .unwrap_or_default(),
            SegmentValue::Last => String::new(),
        })
        .y_label_formatter(&|v| format_duration(Duration::from_secs_f64(v / 1e6)))
        .draw()
        .map_err(|e| fail(&e))?;
    let rect = |i: usize, value: f64, color: RGBColor, inset: u32| {
        let i = i as u32;
        let mut r = Rectangle::new(
            [
                (SegmentValue::Exact(i), low),
                (SegmentValue::Exact(i + 1), value),
            ],
            color.filled(),
        );
        r.set_margin(0, 0, inset, inset);
        r
    };
    chart
        .draw_series(
            bars.iter()
                .enumerate()
                .map(|(i, b)| rect(i, micros(b.p95), if b.raw { RAW_P95 } else { P95 }, 12)),
        )
        .map_err(|e| fail(&e))?;
    chart
        .draw_series(
            bars.iter()
                .enumerate()
                .map(|(i, b)| rect(i, micros(b.p50), if b.raw { RAW_P50 } else { P50 }, 30)),
        )
        .map_err(|e| fail(&e))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            Text::new(
                format!("{} / {}", format_duration(b.p50), format_duration(b.p95)),
                (SegmentValue::CenterOf(i as u32), micros(b.p95) * 1.1),
                TextStyle::from(("sans-serif", 12).into_font())
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        }))
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))
}
