//! Encoding a table with a fitted [`Encoding`]: each row's features into raw `f32` inputs (one
//! [`Encoder`] per feature), and its targets into [`Targets`], in the targets' own units.

use std::collections::HashMap;

use rayon::prelude::*;

use super::column::Column;
use super::encoding::{Encoding, Feature, TargetEncoding, Targets};
use super::fit::split_labels;
use super::number::parse_number;
use super::read::Table;
use super::{ROWS_PER_TASK, error, list};
use crate::error::{DataError, Result};

/// [`Encoding::encode_inputs`]: each row's inputs written by one [`Encoder`] per feature, a block of
/// rows per task; the first bad row in file order is reported.
pub(super) fn inputs(encoding: &Encoding, table: &Table) -> Result<Vec<f32>> {
    encoding.check_columns(table, false)?;
    let encoders = encoding.features.iter().map(|feature| Encoder::new(feature, table)).collect::<Result<Vec<_>>>()?;
    let width = encoding.width();
    let mut out = vec![0f32; table.len() * width];
    if width == 0 {
        return Ok(out);
    }
    let failures: Vec<DataError> = out
        .par_chunks_mut(width * ROWS_PER_TASK)
        .enumerate()
        .filter_map(|(task, chunk)| {
            let first = task * ROWS_PER_TASK;
            chunk.chunks_mut(width).enumerate().find_map(|(i, inputs)| {
                let mut at = 0;
                for encoder in &encoders {
                    if let Err(e) = encoder.encode(first + i, &mut inputs[at..at + encoder.width]) {
                        return Some(e);
                    }
                    at += encoder.width;
                }
                None
            })
        })
        .collect();
    match failures.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// [`Encoding::encode_targets`].
pub(super) fn targets(encoding: &Encoding, table: &Table) -> Result<Targets> {
    let columns = encoding
        .target
        .columns()
        .iter()
        .map(|name| {
            table.column(name).map(|index| Column { table, index }).map_err(|_| {
                error(
                    table.path(),
                    None,
                    None,
                    format!(
                        "has no target column \"{name}\" (its header has {}); the model was trained to predict {}",
                        list(table.header()),
                        list(encoding.target.columns())
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if let TargetEncoding::Values { columns: names, mean, std } = &encoding.target
        && (mean.len() != names.len() || std.len() != names.len())
    {
        return Err(error(
            table.path(),
            None,
            None,
            format!(
                "cannot be encoded: the recorded encoding has {} target columns but {} means and {} stds; \
                 was its config.json edited? Train again to record a consistent one",
                names.len(),
                mean.len(),
                std.len()
            ),
        ));
    }
    match &encoding.target {
        TargetEncoding::Classes { classes, .. } => {
            let column = &columns[0];
            let index: HashMap<&str, u32> = classes.iter().enumerate().map(|(i, c)| (c.as_str(), i as u32)).collect();
            (0..table.len())
                .map(|row| {
                    let value = column.target(row)?;
                    index.get(value).copied().ok_or_else(|| {
                        column.error(
                            row,
                            format!(
                                "class {value:?} is not one of the classes seen in training ({}); \
                                 fix the value, or train on rows that include it",
                                list(classes)
                            ),
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()
                .map(Targets::Classes)
        }
        TargetEncoding::Labels { delimiter: Some(delimiter), labels, .. } => {
            let column = &columns[0];
            let index: HashMap<&str, usize> = labels.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
            let mut out = vec![0f32; table.len() * labels.len()];
            for row in 0..table.len() {
                for name in split_labels(column.get(row), delimiter) {
                    let i = *index.get(name).ok_or_else(|| {
                        column.error(
                            row,
                            format!(
                                "label {name:?} is not one of the labels seen in training ({}); \
                                 fix the value, or train on rows that include it",
                                list(labels)
                            ),
                        )
                    })?;
                    out[row * labels.len() + i] = 1.0;
                }
            }
            Ok(Targets::Labels(out))
        }
        TargetEncoding::Labels { delimiter: None, .. } => {
            let mut out = vec![0f32; table.len() * columns.len()];
            for row in 0..table.len() {
                for (j, column) in columns.iter().enumerate() {
                    out[row * columns.len() + j] = column.label_flag(row)?;
                }
            }
            Ok(Targets::Labels(out))
        }
        TargetEncoding::Values { .. } => {
            let mut out = vec![0f32; table.len() * columns.len()];
            for row in 0..table.len() {
                for (j, column) in columns.iter().enumerate() {
                    // As written: `target_value` refuses what is not finite or beyond f32.
                    out[row * columns.len() + j] = column.target_value(row)? as f32;
                }
            }
            Ok(Targets::Values(out))
        }
    }
}
/// One feature bound to a table's column, ready to encode rows.
struct Encoder<'a> {
    column: Column<'a>,
    width: usize,
    kind: EncoderKind<'a>,
}

enum EncoderKind<'a> {
    Numeric { fill: Option<f64> },
    Categorical { index: HashMap<&'a str, usize>, categories: &'a [String], unknown: bool, fill: Option<&'a str> },
}

impl<'a> Encoder<'a> {
    fn new(feature: &'a Feature, table: &'a Table) -> Result<Encoder<'a>> {
        let column = Column { table, index: table.column(feature.column())? };
        let kind = match feature {
            Feature::Numeric { fill, .. } => EncoderKind::Numeric { fill: *fill },
            Feature::Categorical { categories, unknown, fill, .. } => EncoderKind::Categorical {
                index: categories.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect(),
                categories,
                unknown: *unknown,
                fill: fill.as_deref(),
            },
        };
        Ok(Encoder { column, width: feature.width(), kind })
    }

    /// Writes row `row`'s inputs into `out` (`width` zeros).
    #[inline]
    fn encode(&self, row: usize, out: &mut [f32]) -> Result<()> {
        match &self.kind {
            EncoderKind::Numeric { fill } => {
                let x = self.column.number(row);
                if !x.is_nan() {
                    out[0] = x;
                    return Ok(());
                }
                // Not a number: fill it, or say why from the text.
                let value = self.column.get(row);
                let x = if value.is_empty() {
                    fill.ok_or_else(|| self.column.missing(row, true))?
                } else {
                    parse_number(value).map_err(|problem| {
                        let problem = problem.describe(value);
                        self.column.error(row, format!("{problem}; the column was numeric in training"))
                    })?
                };
                out[0] = x as f32;
            }
            EncoderKind::Categorical { index, categories, unknown, fill } => {
                let value = self.column.get(row);
                let value = match (value.is_empty(), fill) {
                    (false, _) => value,
                    (true, Some(fill)) => fill,
                    (true, None) => return Err(self.column.missing(row, true)),
                };
                match index.get(value) {
                    Some(&i) => out[i] = 1.0,
                    None if *unknown => out[categories.len()] = 1.0,
                    None => {
                        return Err(self.column.error(
                            row,
                            format!(
                                "{value:?} was not seen in the training rows (categories: {}); fix the value, \
                                 or set `data_loader.args.unknown_category` to true and train again to give \
                                 unseen values an input of their own",
                                list(categories)
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}
