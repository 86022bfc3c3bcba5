//! One column of a [`Table`]: its fields, and errors that name the file, the line and the column.

use super::error;
use super::number::parse_number;
use super::read::Table;
use crate::error::{DataError, Result};

/// One column of a table, for reading fields and naming them in errors.
pub(super) struct Column<'a> {
    pub(super) table: &'a Table,
    pub(super) index: usize,
}

impl Column<'_> {
    pub(super) fn name(&self) -> &str {
        &self.table.header()[self.index]
    }

    pub(super) fn get(&self, row: usize) -> &str {
        self.table.field(row, self.index)
    }

    /// The field as a finite f32 number, NaN when it is not one (see [`Table::number`]).
    #[inline]
    pub(super) fn number(&self, row: usize) -> f32 {
        self.table.number(row, self.index)
    }

    pub(super) fn error(&self, row: usize, message: impl Into<String>) -> DataError {
        error(self.table.path(), Some(self.table.line(row)), Some(self.name()), message)
    }

    /// An error about the whole column (no line).
    pub(super) fn column_error(&self, message: impl Into<String>) -> DataError {
        error(self.table.path(), None, Some(self.name()), message)
    }

    /// The feature-value-is-missing error; `fitted` when the encoding already exists.
    pub(super) fn missing(&self, row: usize, fitted: bool) -> DataError {
        let advice = if fitted {
            "fill it in; or, to fill missing values with the training mean (numeric columns) or most \
             frequent category (categorical columns), set `data_loader.args.fill_missing` to true and train again"
        } else {
            "fill it in, leave the column out with `data_loader.args.exclude`, or set \
             `data_loader.args.fill_missing` to true to fill missing values with the training mean \
             (numeric columns) or most frequent category (categorical columns)"
        };
        self.error(row, format!("the value is missing (empty field); {advice}"))
    }

    /// A target field, which may never be missing.
    pub(super) fn target(&self, row: usize) -> Result<&str> {
        let value = self.get(row);
        if value.is_empty() {
            return Err(self.error(
                row,
                "the target is missing (empty field); every row needs a target: fill it in or remove the row",
            ));
        }
        Ok(value)
    }

    /// A value target: present, finite, in f32 range.
    pub(super) fn target_value(&self, row: usize) -> Result<f64> {
        let x = self.number(row);
        if !x.is_nan() {
            return Ok(f64::from(x));
        }
        let value = self.target(row)?;
        parse_number(value).map_err(|problem| {
            self.error(
                row,
                format!(
                    "{}; a regression target (`data_loader.args.task` \"regression\") must be a number",
                    problem.describe(value)
                ),
            )
        })
    }

    /// A 0/1 label column's field as 0.0 or 1.0.
    pub(super) fn label_flag(&self, row: usize) -> Result<f32> {
        let value = self.target(row)?;
        match value.parse::<f64>() {
            Ok(0.0) => Ok(0.0),
            Ok(1.0) => Ok(1.0),
            _ => Err(self.error(
                row,
                format!(
                    "{value:?} is not 0 or 1; with `data_loader.args.task` \"multi_label\" each target column holds 1 when \
                     its label applies and 0 when not (for one column of label names, set \
                     `data_loader.args.label_delimiter`)"
                ),
            )),
        }
    }
}
