//! The `"model"` section of `config.json` as the other crates use it: parse, validate, build, round trip.
//!
//! Written against the shipped model (`ModelConfig::default()`), so it runs whichever model a project
//! was generated with.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use model::{DataSpec, ModelConfig};

/// Grey 32x24 images in seven classes: any shape a model takes will do.
fn spec() -> DataSpec {
    DataSpec::new([1, 32, 24], DataSpec::numbered_classes(7)).expect("a valid spec")
}

/// Parses `json` with `MODEL` replaced by the shipped model's name. (The JSON is written with spaces
/// between braces and without `format!` so that no template-engine delimiters appear in this file.)
fn parse(json: &str) -> Result<ModelConfig, serde_json::Error> {
    serde_json::from_str(&json.replace("MODEL", shipped()))
}

fn shipped() -> &'static str {
    ModelConfig::default().name()
}

#[test]
fn empty_args_mean_the_defaults() {
    let cfg = parse(r#"{ "type": "MODEL", "args": {} }"#).expect("valid config");
    assert_eq!(cfg, ModelConfig::default());
}

#[test]
fn missing_or_null_args_mean_the_defaults() {
    let cfg = parse(r#"{ "type": "MODEL" }"#).expect("args may be left out");
    assert_eq!(cfg, ModelConfig::default());
    let cfg = parse(r#"{ "type": "MODEL", "args": null }"#).expect("args may be null");
    assert_eq!(cfg, ModelConfig::default());
}

#[test]
fn args_before_type_parse_too() {
    let cfg = parse(r#"{ "args": {}, "type": "MODEL" }"#).expect("key order is free");
    assert_eq!(cfg, ModelConfig::default());
}

#[test]
fn unknown_arg_is_rejected_naming_it() {
    for json in
        [r#"{ "type": "MODEL", "args": { "dropuot": 0.1 } }"#, r#"{ "args": { "dropuot": 0.1 }, "type": "MODEL" }"#]
    {
        let err = parse(json).expect_err("a typo must not be ignored").to_string();
        assert!(err.contains("unknown field `dropuot`"), "{err}");
    }
}

#[test]
fn unknown_type_is_rejected_listing_the_known_one() {
    let err = parse(r#"{ "type": "resnet", "args": {} }"#).expect_err("not shipped").to_string();
    assert!(err.contains("unknown variant `resnet`"), "{err}");
    assert!(err.contains(&format!("`{}`", shipped())), "{err}");
}

#[test]
fn unknown_top_level_key_is_rejected() {
    let err = parse(r#"{ "type": "MODEL", "arguments": {} }"#).expect_err("typo of args");
    // serde words this one as an invalid value; it still names the key and the allowed ones.
    let err = err.to_string();
    assert!(err.contains(r#"string "arguments", expected "type" or "args""#), "{err}");
}

#[test]
fn round_trips_through_json_with_type_and_args() {
    let cfg = ModelConfig::default();
    let json = serde_json::to_value(&cfg).expect("serializes");
    assert_eq!(json["type"], shipped());
    assert!(json["args"].is_object(), "{json}");
    let back: ModelConfig = serde_json::from_value(json).expect("parses back");
    assert_eq!(back, cfg);
}

#[test]
fn default_config_validates_and_builds_a_classifier() {
    let cfg = ModelConfig::default();
    cfg.validate().expect("defaults are valid");
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let spec = spec();
    let model = cfg.build(&spec, vb).expect("builds");
    assert!(model::parameter_count(&varmap) > 0);

    let [c, h, w] = spec.image_shape().unwrap();
    let xs = Tensor::zeros((3, c, h, w), DType::F32, &Device::Cpu).expect("zeros");
    let logits = model.forward_t(&xs, false).expect("forward");
    assert_eq!(logits.dims(), [3, spec.outputs()]);
}

#[test]
fn a_checkpoint_loads_into_a_fresh_model_with_the_same_outputs() {
    let cfg = ModelConfig::default();
    let dir = std::env::temp_dir().join(format!("model-crate-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("model.safetensors");

    let varmap = VarMap::new();
    let model = cfg.build(&spec(), VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).expect("builds");
    varmap.save(&path).expect("saves");

    // SAFETY: the file was just written by this test and is not modified while mapped.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&path], DType::F32, &Device::Cpu) }.expect("opens");
    let loaded = cfg.build(&spec(), vb).expect("every key is in the checkpoint");

    let [c, h, w] = spec().image_shape().unwrap();
    let xs = Tensor::ones((2, c, h, w), DType::F32, &Device::Cpu).expect("ones");
    let a: Vec<Vec<f32>> = model.forward_t(&xs, false).and_then(|t| t.to_vec2()).expect("forward");
    let b: Vec<Vec<f32>> = loaded.forward_t(&xs, false).and_then(|t| t.to_vec2()).expect("forward");
    assert_eq!(a, b);
    std::fs::remove_dir_all(&dir).expect("clean up");
}
