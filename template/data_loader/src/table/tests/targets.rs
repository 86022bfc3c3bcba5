//! Targets: classes, labels from 0/1 columns or one delimited column, and values (as written,
//! with the fitted mean and std recorded).

use super::{PATH, assert_mentions, close, fit, fit_error, options, table};
use crate::table::{Encoding, Feature, TargetEncoding, TargetKind, Targets};

#[test]
fn classes_are_sorted_numerically_when_all_are_integers() {
    let e = fit("x,y\n1,10\n2,2\n3,1\n4,2\n", &options(&["y"], TargetKind::Classes));
    assert_eq!(e.target_names(), ["1", "2", "10"]);
    assert_eq!(e.target_kind(), TargetKind::Classes);
    let targets = e.encode_targets(&table("x,y\n1,10\n2,2\n3,1\n")).unwrap();
    assert_eq!(targets, Targets::Classes(vec![2, 1, 0]));
    let e = fit("x,y\n1,b\n2,10\n3,a\n", &options(&["y"], TargetKind::Classes));
    assert_eq!(e.target_names(), ["10", "a", "b"]);
}

#[test]
fn an_unseen_or_missing_class_is_an_error() {
    let e = fit("x,y\n1,cat\n2,dog\n", &options(&["y"], TargetKind::Classes));
    let message = e.encode_targets(&table("x,y\n1,cat\n2,emu\n")).unwrap_err().to_string();
    assert_mentions(&message, &[PATH, "line 3", "column \"y\"", "\"emu\"", "\"cat\", \"dog\""]);
    let message = fit_error("x,y\n1,cat\n2,\n3,dog\n", &options(&["y"], TargetKind::Classes));
    assert_mentions(&message, &[PATH, "line 3", "column \"y\"", "target is missing"]);
}

#[test]
fn a_single_class_is_an_error() {
    let message = fit_error("x,y\n1,a\n2,a\n", &options(&["y"], TargetKind::Classes));
    assert_mentions(&message, &[PATH, "at least two classes", "column \"y\" has only \"a\""]);
}

#[test]
fn several_class_columns_are_an_error_that_suggests_labels() {
    let message = fit_error("x,a,b\n1,0,1\n", &options(&["a", "b"], TargetKind::Classes));
    assert_mentions(&message, &[PATH, "names 2 columns", "`data_loader.args.task`", "\"multi_label\""]);
}

#[test]
fn labels_from_0_1_columns() {
    let text = "x,cat,dog\n1,1,0\n2,0,0\n3,1,1.0\n";
    let e = fit(text, &options(&["cat", "dog"], TargetKind::Labels));
    assert_eq!((e.target_kind(), e.target_names()), (TargetKind::Labels, vec!["cat".to_string(), "dog".into()]));
    assert_eq!(e.input_names(), ["x"]);
    assert_eq!(e.encode_targets(&table(text)).unwrap(), Targets::Labels(vec![1., 0., 0., 0., 1., 1.]));
    let message = fit_error("x,cat,dog\n1,1,0\n2,yes,0\n", &options(&["cat", "dog"], TargetKind::Labels));
    assert_mentions(&message, &[PATH, "line 3", "column \"cat\"", "\"yes\" is not 0 or 1", "label_delimiter"]);
}

#[test]
fn labels_from_a_delimited_column() {
    let mut o = options(&["tags"], TargetKind::Labels);
    o.label_delimiter = Some("|".into());
    let text = "x,tags\n1,dog|cat\n2, cat | \n3,\n4,|emu||\n";
    let e = fit(text, &o);
    assert_eq!(e.target_names(), ["cat", "dog", "emu"]);
    assert_eq!(
        e.encode_targets(&table(text)).unwrap(),
        Targets::Labels(vec![1., 1., 0., 1., 0., 0., 0., 0., 0., 0., 0., 1.])
    );
    let message = e.encode_targets(&table("x,tags\n1,cat|owl\n")).unwrap_err().to_string();
    assert_mentions(&message, &[PATH, "line 2", "column \"tags\"", "\"owl\"", "\"cat\", \"dog\", \"emu\""]);
    assert_mentions(&fit_error("x,tags\n1,\n2,|\n", &o), &[PATH, "column \"tags\"", "no label names"]);
}

#[test]
fn label_delimiter_settings_that_cannot_work_are_errors() {
    let text = "x,a,b\n1,p,q\n";
    let mut o = options(&["a", "b"], TargetKind::Labels);
    o.label_delimiter = Some("|".into());
    assert_mentions(&fit_error(text, &o), &[PATH, "label_delimiter", "from one column", "names 2"]);
    o.target = vec!["a".into()];
    o.label_delimiter = Some(String::new());
    assert_mentions(&fit_error(text, &o), &[PATH, "label_delimiter` is empty"]);
    o.label_delimiter = Some("|".into());
    o.target_kind = TargetKind::Classes;
    assert_mentions(&fit_error(text, &o), &[PATH, "label_delimiter", "not \"multi_label\""]);
}

#[test]
fn value_targets_stay_as_written_and_the_fitted_mean_and_std_are_recorded() {
    // y = 1, 3, 3: mean 7/3, population std sqrt(8/9); z = 10, 10, 40: mean 20, std sqrt(200).
    let text = "x,y,z\n0,1,10\n1,3,10\n2,3,40\n";
    let mut o = options(&["y", "z"], TargetKind::Values);
    let e = fit(text, &o);
    assert_eq!(
        e.target,
        TargetEncoding::Values { columns: vec!["y".into(), "z".into()], mean: vec![0.0; 2], std: vec![1.0; 2] }
    );
    assert_eq!(e.encode_targets(&table(text)).unwrap(), Targets::Values(vec![1., 10., 3., 10., 3., 40.]));
    o.standardize_target = true;
    let e = fit(text, &o);
    let TargetEncoding::Values { mean, std, .. } = &e.target else { panic!("values") };
    assert!(close(mean[0], 7.0 / 3.0) && close(std[0], (8.0f64 / 9.0).sqrt()), "{mean:?} {std:?}");
    assert!(close(mean[1], 20.0) && close(std[1], 200f64.sqrt()), "{mean:?} {std:?}");
    // Still as written: the caller standardises them with the recorded mean and std.
    assert_eq!(
        e.encode_targets(&table("x,y,z\n0,5,20\n1,-0.5,1e6\n")).unwrap(),
        Targets::Values(vec![5., 20., -0.5, 1e6])
    );
    assert_eq!(e.target_names(), ["y", "z"]);
}

#[test]
fn bad_value_targets_are_errors() {
    let o = options(&["y"], TargetKind::Values);
    for (value, what) in [("abc", "is not a number"), ("nan", "not a finite number")] {
        let message = fit_error(&format!("x,y\n1,2\n2,{value}\n"), &o);
        assert_mentions(&message, &[PATH, "line 3", "column \"y\"", &format!("\"{value}\""), what]);
    }
    assert_mentions(&fit_error("x,y\n1,2\n2,\n", &o), &[PATH, "line 3", "column \"y\"", "target is missing"]);
    let message = fit_error("x,y\n1,2.5\n2,2.5\n", &o);
    assert_mentions(&message, &[PATH, "column \"y\"", "constant", "R² is undefined", "cannot be learnt"]);
    // The recorded mean and std do not scale the targets: a tiny std is no overflow, but a value
    // beyond f32 or not finite is refused when encoding, at its line and column.
    let e = Encoding {
        features: vec![Feature::Numeric { column: "x".into(), mean: 0.0, std: 1.0, fill: None }],
        target: TargetEncoding::Values { columns: vec!["y".into()], mean: vec![0.0], std: vec![1e-300] },
    };
    assert_eq!(e.encode_targets(&table("x,y\n1,1\n")).unwrap(), Targets::Values(vec![1.0]));
    for (value, what) in [("1e39", "beyond the range of f32"), ("inf", "not a finite number")] {
        let message = e.encode_targets(&table(&format!("x,y\n1,1\n2,{value}\n"))).unwrap_err().to_string();
        assert_mentions(&message, &[PATH, "line 3", "column \"y\"", &format!("\"{value}\""), what]);
    }
    let mut edited = e.clone();
    edited.target = TargetEncoding::Values { columns: vec!["y".into()], mean: vec![], std: vec![1.0] };
    let message = edited.encode_targets(&table("x,y\n1,1\n")).unwrap_err().to_string();
    assert_mentions(&message, &[PATH, "1 target columns but 0 means", "Train again"]);
}
