//! The charts of a checkpoint's scores beyond a classification's confusion matrix: for a
//! regression, predicted against true values (with the line of perfect predictions) and the
//! residuals' histogram, per target; for a multi-label model, each label's F1 as a bar.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::charts::{
    AXIS_TITLE_SIZE, BLUE_SERIES, ChartError, FONT, LINE_CHART_SIZE, ORANGE_SERIES, TICK_SIZE, TITLE_SIZE, render,
};

/// Bins of a residual histogram.
pub const HISTOGRAM_BINS: usize = 30;

/// `[low, high]` of `values` (finite ones), widened a little, and never empty.
fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (low, high) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    if !low.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((high - low) * 0.05).max(1e-6 * high.abs().max(1.0));
    (low - pad, high + pad)
}

/// A chart on `root` titled `title`, with room for the axis labels (`y_labels` pixels left of it).
fn builder<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_labels: u32,
) -> ChartBuilder<'a, 'b, DB> {
    let mut builder = ChartBuilder::on(root);
    builder.caption(title, (FONT, TITLE_SIZE - 4)).margin(20).x_label_area_size(65).y_label_area_size(y_labels);
    builder
}

fn draw_error(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Predicted (y) against true (x) values, one dot a sample, on equal ranges with the diagonal
/// of perfect predictions.
pub fn scatter_chart(path: &Path, title: &str, target: &str, points: &[(f64, f64)]) -> Result<(), ChartError> {
    let (low, high) = span(points.iter().flat_map(|&(t, p)| [t, p]));
    render(path, (900, 860), |root| {
        root.fill(&WHITE).map_err(draw_error)?;
        let mut chart = builder(root, title, 105).build_cartesian_2d(low..high, low..high).map_err(draw_error)?;
        chart
            .configure_mesh()
            .x_desc(format!("true {target}"))
            .y_desc(format!("predicted {target}"))
            .axis_desc_style((FONT, AXIS_TITLE_SIZE))
            .label_style((FONT, TICK_SIZE))
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.12))
            .draw()
            .map_err(draw_error)?;
        chart
            .draw_series(LineSeries::new([(low, low), (high, high)], ORANGE_SERIES.stroke_width(2)))
            .map_err(draw_error)?;
        let dot = (points.len() as f64).powf(-0.25).mul_add(12.0, 1.0).clamp(2.0, 6.0) as i32;
        chart
            .draw_series(points.iter().map(|&(t, p)| Circle::new((t, p), dot, BLUE_SERIES.mix(0.6).filled())))
            .map_err(draw_error)?;
        Ok(())
    })
}

/// The residuals (predicted - true) in [`HISTOGRAM_BINS`] bins.
pub fn histogram_chart(path: &Path, title: &str, target: &str, residuals: &[f64]) -> Result<(), ChartError> {
    let (low, high) = span(residuals.iter().copied().chain([0.0]));
    let width = (high - low) / HISTOGRAM_BINS as f64;
    let mut counts = [0u64; HISTOGRAM_BINS];
    for r in residuals.iter().filter(|r| r.is_finite()) {
        counts[(((r - low) / width) as usize).min(HISTOGRAM_BINS - 1)] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.1;
    render(path, LINE_CHART_SIZE, |root| {
        root.fill(&WHITE).map_err(draw_error)?;
        let mut chart = builder(root, title, 105).build_cartesian_2d(low..high, 0.0..top).map_err(draw_error)?;
        chart
            .configure_mesh()
            .x_desc(format!("predicted - true {target}"))
            .y_desc("samples")
            .axis_desc_style((FONT, AXIS_TITLE_SIZE))
            .label_style((FONT, TICK_SIZE))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.12))
            .draw()
            .map_err(draw_error)?;
        chart
            .draw_series(counts.iter().enumerate().map(|(i, &n)| {
                let x = low + i as f64 * width;
                Rectangle::new([(x + 0.04 * width, 0.0), (x + 0.96 * width, n as f64)], BLUE_SERIES.filled())
            }))
            .map_err(draw_error)?;
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (0.0, top)], ORANGE_SERIES.stroke_width(2)))
            .map_err(draw_error)?;
        Ok(())
    })
}

/// One horizontal bar a name, its value in [0, 1] written beside it (NaN: "n/a").
pub fn bar_chart(path: &Path, title: &str, value: &str, names: &[String], values: &[f64]) -> Result<(), ChartError> {
    let rows = names.len().max(1) as i32;
    let height = (160 + 36 * rows).clamp(300, 2000) as u32;
    render(path, (1000, height), |root| {
        root.fill(&WHITE).map_err(draw_error)?;
        let mut chart = builder(root, title, 200)
            .build_cartesian_2d(0.0..1.12, (0..rows - 1).into_segmented())
            .map_err(draw_error)?;
        let label = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(r) | SegmentValue::Exact(r) if (0..rows).contains(r) => {
                names.get((rows - 1 - r) as usize).cloned().unwrap_or_default()
            }
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(value)
            .axis_desc_style((FONT, AXIS_TITLE_SIZE))
            .label_style((FONT, TICK_SIZE))
            .y_labels(rows as usize)
            .y_label_formatter(&label)
            .x_label_formatter(&|x| if *x <= 1.0 { format!("{x:.1}") } else { String::new() })
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.12))
            .draw()
            .map_err(draw_error)?;
        for (i, v) in values.iter().enumerate() {
            let row = rows - 1 - i as i32;
            let shown = if v.is_finite() { v.clamp(0.0, 1.0) } else { 0.0 };
            let (top, bottom) = (SegmentValue::Exact(row), SegmentValue::Exact(row + 1));
            let bar = [(0.0, top), (shown, bottom)];
            chart.draw_series([Rectangle::new(bar.clone(), BLUE_SERIES.filled())]).map_err(draw_error)?;
            // A wide white edge: the gap between one bar and the next.
            chart.draw_series([Rectangle::new(bar, WHITE.stroke_width(6))]).map_err(draw_error)?;
            let text = if v.is_finite() { format!("{v:.3}") } else { "n/a".into() };
            let style = TextStyle::from((FONT, TICK_SIZE).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
            chart
                .draw_series([Text::new(text, (shown + 0.01, SegmentValue::CenterOf(row)), style)])
                .map_err(draw_error)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_hold_every_value_and_are_never_empty() {
        let (low, high) = span([1.0, 3.0, f64::NAN].into_iter());
        assert!(low < 1.0 && high > 3.0 && high - low < 2.5, "{low}..{high}");
        let (low, high) = span([5.0].into_iter());
        assert!(low < 5.0 && high > 5.0);
        assert_eq!(span(std::iter::empty()), (0.0, 1.0));
    }

    #[test]
    fn the_charts_are_written_as_png() {
        let dir = tempfile::tempdir().unwrap();
        let points: Vec<(f64, f64)> = (0..50).map(|i| (i as f64, i as f64 + (i % 7) as f64 - 3.0)).collect();
        let residuals: Vec<f64> = points.iter().map(|(t, p)| p - t).collect();
        scatter_chart(&dir.path().join("s.png"), "scatter", "y", &points).unwrap();
        histogram_chart(&dir.path().join("h.png"), "residuals", "y", &residuals).unwrap();
        bar_chart(&dir.path().join("b.png"), "F1", "F1", &["a".into(), "b".into()], &[0.5, f64::NAN]).unwrap();
        for file in ["s.png", "h.png", "b.png"] {
            let image = image::open(dir.path().join(file)).unwrap();
            assert!(image.width() >= 900, "{file}");
        }
    }
}
