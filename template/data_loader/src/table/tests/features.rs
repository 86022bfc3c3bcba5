//! Features: kinds inferred and overridden, numeric statistics, one-hot categories, missing and
//! bad values, and encoding many rows in parallel.

use super::{PATH, assert_mentions, close, fit, fit_error, options, table};
use crate::table::moments::Moments;
use crate::table::{ColumnKind, Encoding, Feature, MAX_CATEGORIES, ROWS_PER_TASK, TargetKind};

#[test]
fn moments_combined_by_blocks_match_one_pass() {
    let values: Vec<f64> = (0..1000).map(|i| ((i * 37) % 101) as f64 * 0.5 - 3.0).collect();
    let whole = Moments::of(&values);
    let blocks = values.chunks(64).map(Moments::of).fold(Moments::default(), Moments::then);
    assert_eq!((whole.n, blocks.n), (1000, 1000));
    assert!(close(whole.mean, blocks.mean) && close(whole.std(), blocks.std()), "{whole:?} {blocks:?}");
    assert_eq!((blocks.min, blocks.max), (-3.0, 47.0));
    assert!(Moments::of(&[0.1; 3]).is_constant() && !whole.is_constant());
}

#[test]
fn infers_numeric_and_categorical_columns_and_honours_kinds() {
    let text = "age,city,zip,y\n30,Paris,75001,a\n40,Rome,00184,b\n";
    let e = fit(text, &options(&["y"], TargetKind::Classes));
    assert!(matches!(&e.features[0], Feature::Numeric { column, .. } if column == "age"));
    assert!(matches!(&e.features[1], Feature::Categorical { column, .. } if column == "city"));
    assert!(matches!(&e.features[2], Feature::Numeric { column, .. } if column == "zip"));
    let mut o = options(&["y"], TargetKind::Classes);
    o.kinds.insert("zip".into(), ColumnKind::Categorical);
    let e = fit(text, &o);
    assert_eq!(
        e.features[2],
        Feature::Categorical {
            column: "zip".into(),
            categories: vec!["00184".into(), "75001".into()],
            unknown: false,
            fill: None
        }
    );
    assert_eq!(e.input_names(), ["age", "city=Paris", "city=Rome", "zip=00184", "zip=75001"]);
}

#[test]
fn a_kinds_override_to_numeric_names_the_value_that_is_not_a_number() {
    let mut o = options(&["y"], TargetKind::Classes);
    o.kinds.insert("city".into(), ColumnKind::Numeric);
    let message = fit_error("city,y\n1,a\nParis,b\n", &o);
    assert_mentions(&message, &[PATH, "line 3", "column \"city\"", "\"Paris\" is not a number", "kinds"]);
}

#[test]
fn one_hot_encodes_and_unknown_values_go_to_the_extra_input() {
    let train = table("city,y\nRome,a\nParis,b\nRome,a\n");
    let val = table("y,city\na,Lyon\nb,Paris\n");
    let mut o = options(&["y"], TargetKind::Classes);
    let e = Encoding::fit(&train, &o).unwrap();
    assert_eq!(e.encode_inputs(&train).unwrap(), [0., 1., 1., 0., 0., 1.]);
    let message = e.encode_inputs(&val).unwrap_err().to_string();
    assert_mentions(&message, &[PATH, "line 2", "column \"city\"", "\"Lyon\"", "data_loader.args.unknown_category"]);

    o.unknown_category = true;
    let e = Encoding::fit(&train, &o).unwrap();
    assert_eq!(e.width(), 3);
    assert_eq!(e.input_names(), ["city=Paris", "city=Rome", "city=<unknown>"]);
    assert_eq!(e.encode_inputs(&val).unwrap(), [0., 0., 1., 1., 0., 0.]);
    assert_eq!(e.input_mean_std(), (vec![0.0; 3], vec![1.0; 3]));
}

#[test]
fn numeric_features_are_standardised_with_the_population_std() {
    // x = 1, 2, 3, 4: mean 2.5, population variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25.
    let text = "x,c,y\n1,7,a\n2,7,b\n3,7,a\n4,7,b\n";
    let e = fit(text, &options(&["y"], TargetKind::Classes));
    let Feature::Numeric { mean, std, fill, .. } = &e.features[0] else { panic!("x is numeric") };
    assert!(close(*mean, 2.5) && close(*std, 1.25f64.sqrt()), "{mean} {std}");
    assert_eq!(*fill, None);
    // A constant column keeps std 1 (it encodes as 0 after subtracting its mean).
    assert!(matches!(&e.features[1], Feature::Numeric { mean, std, .. } if close(*mean, 7.0) && *std == 1.0));
    let (mean, std) = e.input_mean_std();
    assert_eq!(mean, [2.5, 7.0]);
    assert_eq!(std, [1.25f32.sqrt(), 1.0]);
    // Inputs are raw, not standardised.
    assert_eq!(e.encode_inputs(&table(text)).unwrap(), [1., 7., 2., 7., 3., 7., 4., 7.]);
}

#[test]
fn fill_missing_fills_numeric_with_the_mean_and_categorical_with_the_most_frequent() {
    let text = "x,c,y\n1,b,a\n,a,b\n5,b,a\n3,,b\n";
    let mut o = options(&["y"], TargetKind::Classes);
    o.fill_missing = true;
    let e = fit(text, &o);
    assert_eq!(
        e.features[0],
        Feature::Numeric { column: "x".into(), mean: 3.0, std: (8.0f64 / 3.0).sqrt(), fill: Some(3.0) }
    );
    assert!(matches!(&e.features[1], Feature::Categorical { fill: Some(f), .. } if f == "b"));
    assert_eq!(e.encode_inputs(&table(text)).unwrap(), [1., 0., 1., 3., 1., 0., 5., 0., 1., 3., 0., 1.]);
}

#[test]
fn a_missing_feature_is_an_error_that_suggests_fill_missing() {
    let o = options(&["y"], TargetKind::Classes);
    for text in ["x,y\n1,a\n,b\n", "x,y\nu,a\n,b\n"] {
        let message = fit_error(text, &o);
        assert_mentions(&message, &[PATH, "line 3", "column \"x\"", "missing", "data_loader.args.fill_missing"]);
    }
    // An encoding fitted without fill_missing refuses missing values in later rows too.
    let e = fit("x,c,y\n1,u,a\n2,v,b\n", &o);
    for val in ["x,c,y\n,u,a\n", "x,c,y\n1,,a\n"] {
        let message = e.encode_inputs(&table(val)).unwrap_err().to_string();
        assert_mentions(&message, &[PATH, "line 2", "missing", "fill_missing", "train again"]);
    }
}

#[test]
fn an_all_missing_column_is_an_error_even_with_fill_missing() {
    let mut o = options(&["y"], TargetKind::Classes);
    o.fill_missing = true;
    for kind in [None, Some(ColumnKind::Categorical)] {
        if let Some(kind) = kind {
            o.kinds.insert("x".into(), kind);
        }
        let message = fit_error("x,z,y\n,1,a\n,2,b\n", &o);
        assert_mentions(&message, &[PATH, "column \"x\"", "no values", "data_loader.args.exclude"]);
    }
}

#[test]
fn non_finite_and_out_of_range_numbers_are_errors() {
    let o = options(&["y"], TargetKind::Classes);
    for (value, what) in [
        ("nan", "not a finite number"),
        ("inf", "not a finite number"),
        ("NaN", "not a finite number"),
        ("1e39", "range of f32"),
    ] {
        let message = fit_error(&format!("x,y\n1,a\n{value},b\n"), &o);
        assert_mentions(&message, &[PATH, "line 3", "column \"x\"", &format!("\"{value}\""), what]);
    }
    // Forced numeric: the first bad value is reported.
    let mut forced = o.clone();
    forced.kinds.insert("x".into(), ColumnKind::Numeric);
    assert_mentions(&fit_error("x,y\ninf,a\nabc,b\n", &forced), &["line 2", "\"inf\"", "not a finite number"]);
    // With a word among them, "nan" is just another category.
    let e = fit("x,y\nnan,a\nabc,b\n", &o);
    assert!(matches!(&e.features[0], Feature::Categorical { categories, .. } if categories == &["abc", "nan"]));
}

#[test]
fn a_numeric_feature_that_is_not_a_number_later_names_the_value() {
    let e = fit("x,y\n1,a\n2,b\n", &options(&["y"], TargetKind::Classes));
    let message = e.encode_inputs(&table("x,y\n3,a\nthree,b\n")).unwrap_err().to_string();
    assert_mentions(&message, &[PATH, "line 3", "column \"x\"", "\"three\" is not a number", "numeric in training"]);
}

#[test]
fn an_identifier_column_is_too_many_categories() {
    let mut text = String::from("id,y\n");
    for i in 0..=MAX_CATEGORIES {
        text.push_str(&format!("{i},{}\n", i % 2));
    }
    text.push_str("x1,0\n");
    let message = fit_error(&text, &options(&["y"], TargetKind::Classes));
    let line = format!("line {}", MAX_CATEGORIES + 3);
    assert_mentions(&message, &[PATH, "column \"id\"", "distinct values", &line, "\"x1\"", "data_loader.args.exclude"]);
}

#[test]
fn encodes_many_rows_in_parallel_and_reports_the_first_bad_line() {
    let rows = 3 * ROWS_PER_TASK + 5;
    let mut text = String::from("x,c,y\n");
    for i in 0..rows {
        text.push_str(&format!("{i},{},{}\n", ["p", "q"][i % 2], i % 3));
    }
    let t = table(&text);
    let e = Encoding::fit(&t, &options(&["y"], TargetKind::Classes)).unwrap();
    let inputs = e.encode_inputs(&t).unwrap();
    assert_eq!(inputs.len(), rows * 3);
    let last = rows - 1;
    assert_eq!(
        &inputs[last * 3..],
        [last as f32, if last.is_multiple_of(2) { 1.0 } else { 0.0 }, if last.is_multiple_of(2) { 0.0 } else { 1.0 }]
    );
    // Bad values in the last and the second task: the earlier line is reported.
    let bad = text
        .replace(&format!("\n{last},"), &format!("\nbad{last},"))
        .replace(&format!("\n{},", ROWS_PER_TASK + 1), &format!("\nbad{},", ROWS_PER_TASK + 1));
    let message = e.encode_inputs(&table(&bad)).unwrap_err().to_string();
    assert_mentions(&message, &[&format!("line {}", ROWS_PER_TASK + 3)]);
}
