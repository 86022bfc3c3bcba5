//! Fitting an [`Encoding`] on the training rows: the config's column names checked against the
//! header, the targets' classes, labels or statistics, and (in `feature`) each feature's kind and
//! statistics or categories.

mod feature;

use std::collections::HashSet;

use rayon::prelude::*;

use self::feature::{fit_feature, scan_numeric};
use super::column::Column;
use super::encoding::{ColumnKind, Encoding, FitOptions, TargetEncoding, TargetKind};
use super::moments::Moments;
use super::read::Table;
use super::{error, list};
use crate::error::Result;

/// [`Encoding::fit`]: the columns from the config, the targets, then the features, those that may
/// be numeric read as numbers first, a block of rows at a time.
pub(super) fn fit(train: &Table, options: &FitOptions) -> Result<Encoding> {
    let (targets, features) = resolve_columns(train, options)?;
    let target = fit_target(train, &targets, options)?;
    // Every feature not forced categorical is read as numbers first, a block of rows at a time.
    let numeric: Vec<(usize, bool)> = features
        .iter()
        .filter(|(_, kind)| *kind != Some(ColumnKind::Categorical))
        .map(|&(index, kind)| (index, kind == Some(ColumnKind::Numeric)))
        .collect();
    let mut scans = scan_numeric(train, &numeric).into_iter();
    let features: Vec<_> = features
        .into_iter()
        .map(|(index, kind)| (index, kind, if kind == Some(ColumnKind::Categorical) { None } else { scans.next() }))
        .collect();
    let features = features
        .into_par_iter()
        .map(|(index, kind, scan)| fit_feature(&Column { table: train, index }, kind, scan, options))
        .collect::<Vec<_>>()
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    Ok(Encoding { features, target })
}

/// Checks the config's column names against the header: the target columns, and the features with
/// their kind overrides.
#[allow(clippy::type_complexity)]
fn resolve_columns(table: &Table, options: &FitOptions) -> Result<(Vec<usize>, Vec<(usize, Option<ColumnKind>)>)> {
    let path = table.path();
    if options.target.is_empty() {
        return Err(error(
            path,
            None,
            None,
            "`data_loader.args.target` is empty; name the column to predict (or several, with \
             `data_loader.args.task` \"multi_label\" or \"regression\")",
        ));
    }
    let targets = indices(table, "data_loader.args.target", &options.target, true)?;
    let excluded = indices(table, "data_loader.args.exclude", &options.exclude, false)?;
    for name in options.kinds.keys() {
        indices(table, "data_loader.args.kinds", std::slice::from_ref(name), false)?;
    }
    match (options.target_kind, &options.label_delimiter) {
        (TargetKind::Classes, _) if targets.len() > 1 => {
            return Err(error(
                path,
                None,
                None,
                format!(
                    "`data_loader.args.target` names {} columns, but a classification target (task \
                     \"classification\") is one column of class names; for several 0/1 columns, one per label, set \
                     `data_loader.args.task` to \"multi_label\"",
                    targets.len()
                ),
            ));
        }
        (TargetKind::Labels, Some(delimiter)) if delimiter.is_empty() => {
            return Err(error(
                path,
                None,
                None,
                "`data_loader.args.label_delimiter` is empty; set it to the text between label names, e.g. \"|\"",
            ));
        }
        (TargetKind::Labels, Some(_)) if targets.len() > 1 => {
            return Err(error(
                path,
                None,
                None,
                format!(
                    "`data_loader.args.label_delimiter` reads the label names from one column, but \
                     `data_loader.args.target` names {}; name one column, or remove label_delimiter to read \
                     each target column as a 0/1 label",
                    targets.len()
                ),
            ));
        }
        (TargetKind::Classes | TargetKind::Values, Some(_)) => {
            return Err(error(
                path,
                None,
                None,
                "`data_loader.args.label_delimiter` is set, but `data_loader.args.task` is not \"multi_label\"; \
                 remove it, or set task to \"multi_label\"",
            ));
        }
        _ => {}
    }

    if let Some(image) = &options.image_column {
        let column = indices(table, "data_loader.args.images.column", std::slice::from_ref(image), true)?[0];
        if targets.contains(&column) {
            return Err(error(
                path,
                None,
                Some(image),
                "is both the image column (`data_loader.args.images.column`) and a target (`data_loader.args.target`); \
                 name the column of image files and the column(s) to predict apart",
            ));
        }
        return Ok((targets, Vec::new()));
    }
    let features: Vec<usize> = match &options.features {
        Some(names) => {
            let listed = indices(table, "data_loader.args.features", names, true)?;
            if let Some(&both) = listed.iter().find(|i| targets.contains(i)) {
                return Err(error(
                    path,
                    None,
                    Some(&table.header()[both]),
                    "is both a target (`data_loader.args.target`) and a feature (`data_loader.args.features`); \
                     a model cannot read its own target: remove it from the features",
                ));
            }
            listed.into_iter().filter(|i| !excluded.contains(i)).collect()
        }
        None => (0..table.header().len()).filter(|i| !targets.contains(i) && !excluded.contains(i)).collect(),
    };
    if features.is_empty() {
        return Err(error(
            path,
            None,
            None,
            format!(
                "no feature columns are left after the targets and `data_loader.args.exclude`; the header has {}; \
                 keep at least one column as model input",
                list(table.header())
            ),
        ));
    }
    let features = features.into_iter().map(|i| (i, options.kinds.get(&table.header()[i]).copied())).collect();
    Ok((targets, features))
}

/// The indices of `names`, each required to be in the header (and listed once when `unique`).
fn indices(table: &Table, key: &str, names: &[String], unique: bool) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let Some(i) = table.header().iter().position(|h| h == name) else {
            return Err(error(
                table.path(),
                None,
                None,
                format!(
                    "`{key}` names the column \"{name}\", which is not in the header; the header has {}",
                    list(table.header())
                ),
            ));
        };
        if unique && out.contains(&i) {
            return Err(error(
                table.path(),
                None,
                None,
                format!("`{key}` lists the column \"{name}\" twice; list each column once"),
            ));
        }
        out.push(i);
    }
    Ok(out)
}

fn fit_target(table: &Table, targets: &[usize], options: &FitOptions) -> Result<TargetEncoding> {
    let columns: Vec<Column> = targets.iter().map(|&index| Column { table, index }).collect();
    let names = || columns.iter().map(|c| c.name().to_owned()).collect::<Vec<_>>();
    match options.target_kind {
        TargetKind::Classes => {
            let column = &columns[0];
            let mut seen = HashSet::new();
            for row in 0..table.len() {
                seen.insert(column.target(row)?);
            }
            let mut classes: Vec<String> = seen.into_iter().map(str::to_owned).collect();
            sort_names(&mut classes);
            if classes.len() < 2 {
                return Err(column.column_error(format!(
                    "a classification target needs at least two classes; column \"{}\" has only {:?} in the \
                     training rows",
                    column.name(),
                    classes.first().map_or("", String::as_str)
                )));
            }
            Ok(TargetEncoding::Classes { column: column.name().to_owned(), classes })
        }
        TargetKind::Labels => match &options.label_delimiter {
            Some(delimiter) => {
                let column = &columns[0];
                let mut seen = HashSet::new();
                for row in 0..table.len() {
                    seen.extend(split_labels(column.get(row), delimiter));
                }
                if seen.is_empty() {
                    return Err(column.column_error(format!(
                        "has no label names in the training rows (split at {delimiter:?}, \
                         `data_loader.args.label_delimiter`); check the delimiter"
                    )));
                }
                let mut labels: Vec<String> = seen.into_iter().map(str::to_owned).collect();
                sort_names(&mut labels);
                Ok(TargetEncoding::Labels { columns: names(), delimiter: Some(delimiter.clone()), labels })
            }
            None => {
                for row in 0..table.len() {
                    for column in &columns {
                        column.label_flag(row)?;
                    }
                }
                Ok(TargetEncoding::Labels { columns: names(), delimiter: None, labels: names() })
            }
        },
        TargetKind::Values => {
            let mut mean = Vec::with_capacity(columns.len());
            let mut std = Vec::with_capacity(columns.len());
            for column in &columns {
                let values = (0..table.len()).map(|row| column.target_value(row)).collect::<Result<Vec<_>>>()?;
                let moments = Moments::of(&values);
                if moments.is_constant() {
                    return Err(column.column_error(format!(
                        "the regression target is constant ({:?} in every training row): it cannot be learnt, and \
                         R² is undefined for a constant target; predict another column, or drop this one from \
                         `data_loader.args.target`",
                        column.get(0)
                    )));
                }
                let (m, s) = if options.standardize_target { (moments.mean, moments.std()) } else { (0.0, 1.0) };
                mean.push(m);
                std.push(s);
            }
            Ok(TargetEncoding::Values { columns: names(), mean, std })
        }
    }
}

/// The label names in a delimited field: split, trimmed, empty pieces left out.
pub(super) fn split_labels<'a>(field: &'a str, delimiter: &'a str) -> impl Iterator<Item = &'a str> {
    field.split(delimiter).map(str::trim).filter(|s| !s.is_empty())
}

/// Sorts numerically when every name is an integer ("2" before "10"), by bytes otherwise.
fn sort_names(names: &mut Vec<String>) {
    let integers: Option<Vec<i64>> = names.iter().map(|n| n.parse().ok()).collect();
    match integers {
        Some(integers) => {
            let mut pairs: Vec<(i64, String)> = integers.into_iter().zip(names.drain(..)).collect();
            pairs.sort();
            names.extend(pairs.into_iter().map(|(_, n)| n));
        }
        None => names.sort(),
    }
}
