//! `trainer.init_from`: a new run starts from a checkpoint trained on data with another number of
//! classes; every parameter whose name and shape match is loaded, the head is skipped with both
//! shapes named, and with `freeze_loaded` the loaded parameters do not change while training.

mod support;

use candle_core::Device;
use experiment::{RunDir, checkpoint};
use model::DataSpec;
use training::init_from;
use training::{TrainOptions, train};

fn values(varmap: &candle_nn::VarMap, name: &str) -> Vec<f32> {
    varmap.data().lock().unwrap()[name].as_tensor().flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn a_ten_class_checkpoint_initialises_a_five_class_model_except_its_head() {
    let dir = tempfile::tempdir().unwrap();
    let config = support::config(dir.path(), &[]);
    let [ten, five] = [10, 5].map(|n| DataSpec::new([1, 20, 20], DataSpec::numbered_classes(n)).unwrap());
    let source = experiment::build_model(&config, &ten, &Device::Cpu).unwrap();
    let path = dir.path().join("ten.safetensors");
    checkpoint::save(&path, &source.varmap, &ten, None, None).unwrap();

    let target = experiment::build_model(&config, &five, &Device::Cpu).unwrap();
    let report = init_from::apply(&path, &target.varmap, &Device::Cpu, true).unwrap();
    // Exactly the parameters whose shapes differ (those sized by the class count) are skipped.
    let shapes = |b: &experiment::Built| -> Vec<(String, Vec<usize>)> {
        let mut v: Vec<_> =
            b.varmap.data().lock().unwrap().iter().map(|(n, v)| (n.clone(), v.dims().to_vec())).collect();
        v.sort();
        v
    };
    let differing: Vec<String> =
        shapes(&source).into_iter().zip(shapes(&target)).filter(|(a, b)| a.1 != b.1).map(|(a, _)| a.0).collect();
    assert!(!differing.is_empty() && differing.len() <= 2, "{differing:?}");
    let skipped: Vec<&String> = report.skipped.iter().map(|(n, _)| n).collect();
    assert_eq!(skipped, differing.iter().collect::<Vec<_>>());
    assert!(
        report.skipped.iter().all(|(_, why)| why.contains("in the checkpoint") && why.contains("here")),
        "{report:?}"
    );
    assert_eq!(report.loaded.len() + report.skipped.len(), target.varmap.all_vars().len());
    for name in &report.loaded {
        assert_eq!(values(&target.varmap, name), values(&source.varmap, name), "{name}");
    }
    let summary = report.summary();
    assert!(
        summary.contains(&format!("loaded {}", report.loaded.len())) && summary.contains(&differing[0]),
        "{summary}"
    );
}

#[test]
fn frozen_loaded_parameters_do_not_change_and_unfrozen_ones_do() {
    let dir = tempfile::tempdir().unwrap();
    support::write_data(&dir.path().join("data"), 96);
    let first = support::config(dir.path(), &["name=\"first\"", "trainer.epochs=1"]);
    let run = RunDir::create(&first).unwrap();
    train(&first, &run, &TrainOptions::default()).unwrap();
    let source = run.file("checkpoint-epoch1.safetensors");

    let init = format!("trainer.init_from={:?}", source.display().to_string());
    let second =
        support::config(dir.path(), &["name=\"second\"", "trainer.epochs=1", &init, "trainer.freeze_loaded=true"]);
    let run2 = RunDir::create(&second).unwrap();
    train(&second, &run2, &TrainOptions::default()).unwrap();
    let before = checkpoint::load(&source, &Device::Cpu).unwrap().weights;
    let after = checkpoint::load(&run2.file("checkpoint-epoch1.safetensors"), &Device::Cpu).unwrap().weights;
    for (name, tensor) in &after {
        let (a, b) = (
            tensor.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            before[name].flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert_eq!(a, b, "{name} is frozen: every parameter matched, so every one was loaded and frozen");
    }
    // Without freezing, training moves them.
    let third = support::config(dir.path(), &["name=\"third\"", "trainer.epochs=1", &init]);
    let run3 = RunDir::create(&third).unwrap();
    train(&third, &run3, &TrainOptions::default()).unwrap();
    let moved = checkpoint::load(&run3.file("checkpoint-epoch1.safetensors"), &Device::Cpu).unwrap().weights;
    assert!(moved.iter().any(|(n, t)| t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        != before[n].flatten_all().unwrap().to_vec1::<f32>().unwrap()));
}

#[test]
fn a_checkpoint_of_another_model_matches_nothing_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let spec = DataSpec::new([1, 20, 20], DataSpec::numbered_classes(3)).unwrap();
    let other = candle_nn::VarMap::new();
    other.get((2, 2), "unrelated.weight", candle_nn::Init::Const(1.0), candle_core::DType::F32, &Device::Cpu).unwrap();
    let path = dir.path().join("other.safetensors");
    checkpoint::save(&path, &other, &spec, None, None).unwrap();
    let config = support::config(dir.path(), &[]);
    let target = experiment::build_model(&config, &spec, &Device::Cpu).unwrap();
    let err = init_from::apply(&path, &target.varmap, &Device::Cpu, true).unwrap_err().to_string();
    assert!(err.contains("trainer.init_from") && err.contains("another model type"), "{err}");
}
