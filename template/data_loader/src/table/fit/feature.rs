//! Fitting one feature column: read as numbers (in blocks of rows, in parallel) unless `kinds`
//! makes it categorical; numeric when every present value is a number, one-hot categories
//! otherwise.

use std::collections::HashMap;

use rayon::prelude::*;

use super::sort_names;
use crate::error::Result;
use crate::table::column::Column;
use crate::table::encoding::{ColumnKind, Feature, FitOptions};
use crate::table::moments::Moments;
use crate::table::number::{NumberProblem, parse_number};
use crate::table::read::Table;
use crate::table::{MAX_CATEGORIES, ROWS_PER_TASK};

/// What a numeric scan of a column found.
enum Scan {
    Numeric(Feature),
    /// Not numeric: the first row whose value is not a number.
    NotNumeric(usize),
}

/// `scan` is the column read as numbers, None when `kinds` makes it categorical.
pub(super) fn fit_feature(
    column: &Column,
    kind: Option<ColumnKind>,
    scan: Option<NumericScan>,
    options: &FitOptions,
) -> Result<Feature> {
    let first_text = match scan {
        None => None,
        Some(scan) => match scan.finish(column, kind == Some(ColumnKind::Numeric), options)? {
            Scan::Numeric(feature) => return Ok(feature),
            Scan::NotNumeric(row) => Some(row),
        },
    };
    fit_categorical(column, first_text, options)
}

/// What reading a column as numbers found in some rows.
#[derive(Clone, Default)]
pub(super) struct NumericScan {
    moments: Moments,
    /// The first row with an empty field.
    missing: Option<usize>,
    /// The first row whose value is not a number.
    not_number: Option<usize>,
    /// The first row with a number that is not finite or beyond f32.
    not_finite: Option<(usize, NumberProblem)>,
}

impl NumericScan {
    /// Reads `rows`; `stop_at_text` stops at the first non-number (the column is not numeric).
    fn rows(column: &Column, rows: std::ops::Range<usize>, stop_at_text: bool, values: &mut Vec<f64>) -> NumericScan {
        values.clear();
        let mut scan = NumericScan::default();
        for row in rows {
            let x = column.number(row);
            if !x.is_nan() {
                values.push(f64::from(x));
                continue;
            }
            // Not a number: say why from the text.
            let value = column.get(row);
            if value.is_empty() {
                scan.missing.get_or_insert(row);
                continue;
            }
            match parse_number(value) {
                Ok(x) => values.push(x),
                Err(NumberProblem::NotANumber) => {
                    scan.not_number.get_or_insert(row);
                    if stop_at_text {
                        break;
                    }
                }
                Err(problem) => {
                    scan.not_finite.get_or_insert((row, problem));
                }
            }
        }
        scan.moments = Moments::of(values);
        scan
    }

    /// What `self`'s rows followed by `later`'s found.
    fn then(self, later: NumericScan) -> NumericScan {
        NumericScan {
            moments: self.moments.then(later.moments),
            missing: self.missing.or(later.missing),
            not_number: self.not_number.or(later.not_number),
            not_finite: self.not_finite.or(later.not_finite),
        }
    }

    /// The numeric feature, the row that makes the column categorical, or the first row at fault;
    /// `forced` when `kinds` makes the column numeric.
    fn finish(self, column: &Column, forced: bool, options: &FitOptions) -> Result<Scan> {
        if let (false, Some(row)) = (forced, self.not_number) {
            return Ok(Scan::NotNumeric(row));
        }
        let missing = self.missing.filter(|_| !options.fill_missing);
        let first = [missing, self.not_number, self.not_finite.map(|(row, _)| row)].into_iter().flatten().min();
        if let Some(row) = first {
            let value = column.get(row);
            return Err(if Some(row) == missing {
                column.missing(row, false)
            } else if Some(row) == self.not_number {
                column.error(
                    row,
                    format!(
                        "{value:?} is not a number, but `data_loader.args.kinds` makes the column numeric; fix \
                         the value, or make the column \"categorical\""
                    ),
                )
            } else {
                let problem = self.not_finite.map_or(NumberProblem::NotFinite, |(_, problem)| problem);
                column.error(row, problem.describe(value))
            });
        }
        let moments = self.moments;
        if moments.n == 0 {
            return Err(column.column_error(
                "has no values in the training rows, only missing ones; leave it out with `data_loader.args.exclude`",
            ));
        }
        Ok(Scan::Numeric(Feature::Numeric {
            column: column.name().to_owned(),
            mean: moments.mean,
            std: if moments.is_constant() { 1.0 } else { moments.std() },
            fill: options.fill_missing.then_some(moments.mean),
        }))
    }
}

/// Reads `columns` (index, forced numeric) of every row as numbers, a block of rows per task
/// (the block's fields stay in cache across its columns); blocks are combined in row order, so the
/// numbers do not depend on the thread count.
pub(super) fn scan_numeric(table: &Table, columns: &[(usize, bool)]) -> Vec<NumericScan> {
    if columns.is_empty() {
        return Vec::new();
    }
    let blocks: Vec<Vec<NumericScan>> = (0..table.len().div_ceil(ROWS_PER_TASK))
        .into_par_iter()
        .map(|block| {
            let rows = block * ROWS_PER_TASK..table.len().min((block + 1) * ROWS_PER_TASK);
            let mut values = Vec::with_capacity(ROWS_PER_TASK);
            columns
                .iter()
                .map(|&(index, forced)| NumericScan::rows(&Column { table, index }, rows.clone(), !forced, &mut values))
                .collect()
        })
        .collect();
    blocks.into_iter().fold(vec![NumericScan::default(); columns.len()], |scans, block| {
        scans.into_iter().zip(block).map(|(scan, later)| scan.then(later)).collect()
    })
}

/// One-hot categories; `first_text` is the row that made an inferred column categorical.
fn fit_categorical(column: &Column, first_text: Option<usize>, options: &FitOptions) -> Result<Feature> {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for row in 0..column.table.len() {
        let value = column.get(row);
        if value.is_empty() {
            if !options.fill_missing {
                return Err(column.missing(row, false));
            }
            continue;
        }
        *counts.entry(value).or_default() += 1;
    }
    if counts.is_empty() {
        return Err(column.column_error(
            "has no values in the training rows, only missing ones; leave it out with `data_loader.args.exclude`",
        ));
    }
    if counts.len() > MAX_CATEGORIES {
        let why = match first_text {
            Some(row) => format!(
                " (it is categorical because line {} has {:?}, which is not a number; if the column is \
                 meant to be numeric, fix that value)",
                column.table.line(row),
                column.get(row)
            ),
            None => String::new(),
        };
        return Err(column.column_error(format!(
            "has {} distinct values in the training rows, more than the {MAX_CATEGORIES} one-hot inputs a \
             categorical column may make{why}; leave it out with `data_loader.args.exclude` (an identifier \
             column cannot be learnt from)",
            counts.len()
        )));
    }
    let mut categories: Vec<String> = counts.keys().map(|&c| c.to_owned()).collect();
    sort_names(&mut categories);
    let fill = options.fill_missing.then(|| {
        let mut best: Option<(&String, u64)> = None;
        for category in &categories {
            let n = counts[category.as_str()];
            if best.is_none_or(|(_, m)| n > m) {
                best = Some((category, n));
            }
        }
        best.map_or_else(String::new, |(c, _)| c.clone())
    });
    Ok(Feature::Categorical { column: column.name().to_owned(), categories, unknown: options.unknown_category, fill })
}
