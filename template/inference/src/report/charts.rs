//! The report's PNG charts, drawn with plotters into an RGB buffer and encoded with `image`: no
//! system libraries, and the text is set in DejaVu Sans, embedded (see assets/LICENSE-DejaVu.txt).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Width and height of the loss, accuracy and learning-rate charts.
pub const LINE_CHART_SIZE: (u32, u32) = (1000, 600);
/// Width and height of the confusion matrix.
pub const CONFUSION_SIZE: (u32, u32) = (900, 860);

pub(super) const FONT: &str = "sans-serif";
pub(super) const TITLE_SIZE: u32 = 30;
pub(super) const AXIS_TITLE_SIZE: u32 = 24;
pub(super) const TICK_SIZE: u32 = 19;
/// Colours that stay apart for colour-blind readers (matplotlib's tab:blue and tab:orange).
pub const BLUE_SERIES: RGBColor = RGBColor(31, 119, 180);
pub const ORANGE_SERIES: RGBColor = RGBColor(255, 127, 14);

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("drawing {path}: {message}")]
    Draw { path: PathBuf, message: String },
    #[error("writing {path}: {source}; check that the run folder is writable")]
    Write { path: PathBuf, source: image::ImageError },
}

/// One line of a chart: its legend label and (epoch, value) points.
pub struct Series<'a> {
    pub label: &'a str,
    pub color: RGBColor,
    pub points: Vec<(usize, f64)>,
}

/// The labels and value kind of a line chart.
pub struct LineChart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub values: Values,
}

/// What the y axis holds, which decides its range and where the legend goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Values {
    /// Non-negative and usually falling (loss, learning rate): the axis starts at 0, the legend
    /// sits top right.
    FromZero,
    /// A fraction in [0, 1] that usually rises (accuracy): the axis stops at 1, the legend sits
    /// bottom right.
    Fraction,
}

/// Register the embedded font with plotters, once per process.
fn register_font() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, include_bytes!("../../assets/DejaVuSans.ttf")).is_ok()
    })
}

/// Draw into a white RGB canvas of `size` and save it as PNG at `path`.
pub(super) fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), String>,
) -> Result<(), ChartError> {
    let failed = |message: String| ChartError::Draw { path: path.to_path_buf(), message };
    if !register_font() {
        return Err(failed("the embedded font could not be loaded".into()));
    }
    let mut pixels = vec![255u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        draw(&root).map_err(failed)?;
        root.present().map_err(|e| failed(e.to_string()))?;
    }
    image::save_buffer_with_format(path, &pixels, size.0, size.1, image::ColorType::Rgb8, image::ImageFormat::Png)
        .map_err(|source| ChartError::Write { path: path.to_path_buf(), source })
}

/// Lines over epochs, with a dot on every point (a run of one epoch still shows), and a legend
/// when there is more than one series. Epochs are whole numbers on the x axis.
pub fn line_chart(path: &Path, labels: &LineChart<'_>, series: &[Series<'_>]) -> Result<(), ChartError> {
    let points = || series.iter().flat_map(|s| s.points.iter());
    let last_epoch = points().map(|(e, _)| *e).max().unwrap_or(1).max(1) as i32;
    let (low, high) = value_range(points().map(|(_, v)| *v), labels.values);
    render(path, LINE_CHART_SIZE, |root| {
        let e = |e: DrawingAreaErrorKind<_>| e.to_string();
        root.fill(&WHITE).map_err(e)?;
        let mut chart = ChartBuilder::on(root)
            .caption(labels.title, (FONT, TITLE_SIZE))
            .margin(20)
            .x_label_area_size(65)
            .y_label_area_size(105)
            .build_cartesian_2d(0..last_epoch + 1, low..high)
            .map_err(e)?;
        let small = high.abs().max(low.abs()) < 1e-2;
        let decimals = (-((high - low) / 8.0).log10()).ceil().clamp(0.0, 6.0) as usize;
        chart
            .configure_mesh()
            .x_desc(labels.x_label)
            .y_desc(labels.y_label)
            .axis_desc_style((FONT, AXIS_TITLE_SIZE))
            .label_style((FONT, TICK_SIZE))
            .x_labels((last_epoch as usize + 2).min(12))
            // Only whole epochs of the run; the padding columns 0 and last + 1 stay blank.
            .x_label_formatter(&|x| if (1..=last_epoch).contains(x) { x.to_string() } else { String::new() })
            .y_label_formatter(&|y| {
                if *y == 0.0 {
                    "0".into()
                } else if small {
                    format!("{y:.2e}")
                } else {
                    format!("{y:.decimals$}")
                }
            })
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.12))
            .draw()
            .map_err(e)?;
        for s in series {
            let style = s.color.stroke_width(3);
            let line = s.points.iter().map(|(x, y)| (*x as i32, *y));
            chart
                .draw_series(LineSeries::new(line, style))
                .map_err(e)?
                .label(s.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 30, y)], style));
            chart
                .draw_series(s.points.iter().map(|(x, y)| Circle::new((*x as i32, *y), 5, s.color.filled())))
                .map_err(e)?;
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .position(match labels.values {
                    Values::FromZero => SeriesLabelPosition::UpperRight,
                    Values::Fraction => SeriesLabelPosition::LowerRight,
                })
                .label_font((FONT, AXIS_TITLE_SIZE - 2))
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK.mix(0.4))
                .margin(15)
                .draw()
                .map_err(e)?;
        }
        Ok(())
    })
}

/// The y range for `values`: from 0 up to the highest value and a quarter more (room for the
/// legend), or for a fraction from a little under the lowest value to 1.
fn value_range(values: impl Iterator<Item = f64>, kind: Values) -> (f64, f64) {
    let (low, high) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    if !low.is_finite() {
        return (0.0, 1.0);
    }
    match kind {
        Values::FromZero if high > 0.0 => (0.0, high * 1.25),
        // All zero, or negative (not a loss): a span around the values.
        Values::FromZero => (low - 1.0, high.max(0.0) + 1.0),
        Values::Fraction => {
            let span = (high - low).max(0.02);
            ((low - 0.3 * span).max(0.0), (high + 0.05 * span).min(1.005))
        }
    }
}

/// A heatmap of `confusion[true][predicted]` with the count in every cell, the axes labelled with
/// `names` (the class numbers where a name is missing); a cell's shade is its share of the true
/// class, so each row reads the same however many images the class has.
pub fn confusion_chart(path: &Path, title: &str, confusion: &[Vec<u64>], names: &[String]) -> Result<(), ChartError> {
    let classes = confusion.len() as i32;
    render(path, CONFUSION_SIZE, |root| {
        let e = |e: DrawingAreaErrorKind<_>| e.to_string();
        root.fill(&WHITE).map_err(e)?;
        // y runs from the bottom: row r (true class r) is drawn at y = classes - 1 - r, so class 0
        // is the top row, as in the printed matrix.
        let flip = move |y: i32| classes - 1 - y;
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, TITLE_SIZE - 4))
            .margin(20)
            .x_label_area_size(70)
            .y_label_area_size(80)
            // An integer range includes its end as a segment: 0..classes - 1 is `classes` cells.
            .build_cartesian_2d((0..classes - 1).into_segmented(), (0..classes - 1).into_segmented())
            .map_err(e)?;
        let label = move |v: &SegmentValue<i32>, flipped: bool| match v {
            SegmentValue::CenterOf(c) | SegmentValue::Exact(c) if (0..classes).contains(c) => {
                let class = if flipped { flip(*c) } else { *c };
                names.get(class as usize).cloned().unwrap_or_else(|| class.to_string())
            }
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("predicted class")
            .y_desc("true class")
            .axis_desc_style((FONT, AXIS_TITLE_SIZE))
            .label_style((FONT, TICK_SIZE + 1))
            .x_labels(classes as usize)
            .y_labels(classes as usize)
            .x_label_formatter(&|v| label(v, false))
            .y_label_formatter(&|v| label(v, true))
            .draw()
            .map_err(e)?;
        let cell_font = (TICK_SIZE as i32 - (classes - 10).max(0)).max(10) as u32;
        for (row, counts) in confusion.iter().enumerate() {
            let total: u64 = counts.iter().sum();
            for (col, count) in counts.iter().enumerate() {
                let share = if total == 0 { 0.0 } else { *count as f64 / total as f64 };
                let (x, y) = (col as i32, flip(row as i32));
                let cell = [
                    (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                ];
                chart.draw_series([Rectangle::new(cell.clone(), shade(share).filled())]).map_err(e)?;
                chart.draw_series([Rectangle::new(cell, WHITE.stroke_width(1))]).map_err(e)?;
                // Zeros in grey, so the counts that matter stand out.
                let ink = if share > 0.55 {
                    WHITE
                } else if *count == 0 {
                    RGBColor(160, 160, 160)
                } else {
                    BLACK
                };
                let style = TextStyle::from((FONT, cell_font).into_font())
                    .color(&ink)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                let at = (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y));
                chart.draw_series([Text::new(count.to_string(), at, style)]).map_err(e)?;
            }
        }
        Ok(())
    })
}

/// White (0) to dark blue (1).
fn shade(share: f64) -> RGBColor {
    let t = share.clamp(0.0, 1.0);
    let mix = |from: f64, to: f64| (from + (to - from) * t).round() as u8;
    RGBColor(mix(247.0, 8.0), mix(251.0, 48.0), mix(255.0, 107.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_start_at_zero_or_stop_at_one() {
        let (low, high) = value_range([0.001, 0.001].into_iter(), Values::FromZero);
        assert_eq!(low, 0.0);
        assert!(high > 0.001 && high < 0.002, "{high}");
        let (low, high) = value_range([0.9, 1.0].into_iter(), Values::Fraction);
        assert!(low < 0.9 && low > 0.8 && high <= 1.005 && high > 1.0, "{low}..{high}");
        let (low, high) = value_range([1.0].into_iter(), Values::Fraction);
        assert!(low < 1.0 && high > 1.0, "a constant gets a visible span: {low}..{high}");
        assert_eq!(value_range(std::iter::empty(), Values::FromZero), (0.0, 1.0));
    }

    #[test]
    fn shades_run_from_white_to_dark_blue() {
        assert_eq!(shade(0.0), RGBColor(247, 251, 255));
        assert_eq!(shade(1.0), RGBColor(8, 48, 107));
        assert_eq!(shade(2.0), shade(1.0));
    }
}
