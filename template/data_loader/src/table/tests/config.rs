//! Configuration: column names in the config checked against the header, features and exclude,
//! the columns a later table must have, and the encoding's JSON.

use super::{PATH, assert_mentions, fit, fit_error, options, table};
use crate::table::{ColumnKind, Encoding, TargetKind};

#[test]
fn config_names_that_are_not_in_the_header_name_their_key() {
    let text = "a,b,y\n1,2,p\n3,4,q\n";
    let mut cases = vec![];
    cases.push(("data_loader.args.target", options(&["nope"], TargetKind::Classes)));
    let mut o = options(&["y"], TargetKind::Classes);
    o.features = Some(vec!["a".into(), "nope".into()]);
    cases.push(("data_loader.args.features", o));
    let mut o = options(&["y"], TargetKind::Classes);
    o.exclude = vec!["nope".into()];
    cases.push(("data_loader.args.exclude", o));
    let mut o = options(&["y"], TargetKind::Classes);
    o.kinds.insert("nope".into(), ColumnKind::Numeric);
    cases.push(("data_loader.args.kinds", o));
    for (key, o) in cases {
        assert_mentions(&fit_error(text, &o), &[PATH, key, "\"nope\"", "\"a\", \"b\", \"y\""]);
    }
}

#[test]
fn target_settings_that_cannot_work_are_errors() {
    let text = "a,b,y\n1,2,p\n3,4,q\n";
    assert_mentions(&fit_error(text, &options(&[], TargetKind::Classes)), &[PATH, "data_loader.args.target` is empty"]);
    let mut o = options(&["y"], TargetKind::Classes);
    o.features = Some(vec!["a".into(), "y".into()]);
    assert_mentions(
        &fit_error(text, &o),
        &[PATH, "column \"y\"", "data_loader.args.target", "data_loader.args.features"],
    );
    assert_mentions(
        &fit_error(text, &options(&["a", "a"], TargetKind::Labels)),
        &[PATH, "data_loader.args.target", "\"a\" twice"],
    );
    let mut o = options(&["y"], TargetKind::Classes);
    o.exclude = vec!["a".into(), "b".into()];
    assert_mentions(&fit_error(text, &o), &[PATH, "no feature columns", "data_loader.args.exclude"]);
}

#[test]
fn features_and_exclude_choose_the_inputs() {
    let text = "a,b,c,y\n1,2,3,p\n4,5,6,q\n";
    let mut o = options(&["y"], TargetKind::Classes);
    o.exclude = vec!["b".into()];
    assert_eq!(fit(text, &o).input_names(), ["a", "c"]);
    o.features = Some(vec!["c".into(), "b".into(), "a".into()]);
    let e = fit(text, &o);
    assert_eq!(e.input_names(), ["c", "a"]);
    assert_eq!(e.encode_inputs(&table(text)).unwrap(), [3., 1., 6., 4.]);
}

#[test]
fn check_columns_names_the_missing_ones() {
    let e = fit("a,b,y\n1,2,p\n3,4,q\n", &options(&["y"], TargetKind::Classes));
    let predict = table("b,extra,a\n1,2,3\n");
    assert!(e.check_columns(&predict, false).is_ok());
    assert_eq!(e.encode_inputs(&predict).unwrap(), [3., 1.]);
    let message = e.check_columns(&predict, true).unwrap_err().to_string();
    assert_mentions(&message, &[PATH, "lacks the column \"y\"", "\"a\", \"b\""]);
    let message = e.encode_inputs(&table("b,x\n1,2\n")).unwrap_err().to_string();
    assert_mentions(&message, &[PATH, "lacks the column \"a\"", "extra columns are fine"]);
    let message = e.encode_targets(&predict).unwrap_err().to_string();
    assert_mentions(&message, &[PATH, "no target column \"y\""]);
}

#[test]
fn the_encoding_round_trips_through_json_and_refuses_unknown_fields() {
    let mut o = options(&["y"], TargetKind::Classes);
    o.fill_missing = true;
    o.unknown_category = true;
    let e = fit("x,c,y\n1,u,a\n2,v,b\n", &o);
    let json = serde_json::to_string(&e).unwrap();
    assert!(json.contains("\"kind\":\"numeric\"") && json.contains("\"kind\":\"classes\""), "{json}");
    assert_eq!(serde_json::from_str::<Encoding>(&json).unwrap(), e);
    let typo = json.replacen("\"fill\"", "\"fil\"", 1);
    assert!(serde_json::from_str::<Encoding>(&typo).is_err(), "{typo}");
    assert_eq!(serde_json::from_str::<ColumnKind>("\"categorical\"").unwrap(), ColumnKind::Categorical);
    assert_eq!(serde_json::from_str::<TargetKind>("\"values\"").unwrap(), TargetKind::Values);
    assert_eq!(TargetKind::default(), TargetKind::Classes);
}
