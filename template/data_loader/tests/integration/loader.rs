//! TensorDataset staging and DataLoader batching: shapes, normalisation, subsets, and the epoch
//! order's determinism, coverage and resumability.

use candle_core::{DType, Device, Tensor};
use data_loader::{DataError, DataLoader, Dataset, Normalize, TensorDataset};

use crate::support::split;

fn mnist_normalize() -> Normalize {
    Normalize::uniform(data_loader::mnist::MEAN, data_loader::mnist::STD)
}

/// A CPU dataset of `n` samples whose pixels are `i / 255` for sample `i` (no standardisation).
fn dataset(n: usize) -> TensorDataset {
    TensorDataset::from_mnist(&split(n), None, &Normalize::identity(), &Device::Cpu).expect("stage dataset")
}

/// The sample ids in each batch, read back from the first pixel of each image.
fn batch_ids(loader: &DataLoader<'_, TensorDataset>, epoch: u64, skip: usize) -> Vec<Vec<u32>> {
    loader
        .epoch_from(epoch, skip)
        .map(|batch| {
            let (images, labels) = batch.expect("batch");
            let first_pixels = images.flatten_from(1).expect("flatten").narrow(1, 0, 1).expect("narrow");
            let ids: Vec<u32> = first_pixels
                .flatten_all()
                .expect("flatten")
                .to_vec1::<f32>()
                .expect("f32")
                .iter()
                .map(|p| (p * 255.0).round() as u32)
                .collect();
            let labels = labels.to_vec1::<u32>().expect("u32 labels");
            assert_eq!(labels, ids.iter().map(|i| i % 10).collect::<Vec<_>>(), "labels travel with images");
            ids
        })
        .collect()
}

#[test]
fn batches_have_expected_shapes_and_dtypes() {
    let data = dataset(10);
    let loader = DataLoader::new(&data, 4, true, false, 1).expect("loader");
    let batches: Vec<(Tensor, Tensor)> = loader.epoch(0).collect::<candle_core::Result<_>>().expect("epoch");
    assert_eq!(batches.len(), 3);
    let (images, labels) = &batches[0];
    assert_eq!(images.dims(), &[4, 1, 3, 2]);
    assert_eq!(images.dtype(), DType::F32);
    assert_eq!(labels.dims(), &[4]);
    assert_eq!(labels.dtype(), DType::U32);
    assert_eq!(batches[2].0.dims(), &[2, 1, 3, 2], "last batch holds the remainder");
}

#[test]
fn same_seed_and_epoch_give_identical_batches() {
    let data = dataset(50);
    let a = DataLoader::new(&data, 8, true, false, 42).expect("loader");
    let b = DataLoader::new(&data, 8, true, false, 42).expect("loader");
    assert_eq!(batch_ids(&a, 3, 0), batch_ids(&b, 3, 0));
}

#[test]
fn different_epochs_and_seeds_give_different_orders() {
    let data = dataset(50);
    let loader = DataLoader::new(&data, 50, true, false, 42).expect("loader");
    let other_seed = DataLoader::new(&data, 50, true, false, 43).expect("loader");
    let epoch0 = batch_ids(&loader, 0, 0);
    assert_ne!(epoch0, batch_ids(&loader, 1, 0));
    assert_ne!(epoch0, batch_ids(&other_seed, 0, 0));
    assert_ne!(epoch0[0], (0..50).collect::<Vec<u32>>(), "shuffled order should not be the identity");
}

#[test]
fn unshuffled_epochs_are_in_file_order() {
    let data = dataset(7);
    let loader = DataLoader::new(&data, 3, false, false, 0).expect("loader");
    assert_eq!(batch_ids(&loader, 5, 0), vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
}

#[test]
fn every_sample_exactly_once_per_epoch() {
    let data = dataset(23);
    let loader = DataLoader::new(&data, 5, true, false, 9).expect("loader");
    for epoch in 0..3 {
        let mut seen: Vec<u32> = batch_ids(&loader, epoch, 0).concat();
        seen.sort_unstable();
        assert_eq!(seen, (0..23).collect::<Vec<u32>>(), "epoch {epoch}");
    }
}

#[test]
fn drop_last_counts_and_last_batch_size() {
    let data = dataset(10);
    let keep = DataLoader::new(&data, 4, true, false, 0).expect("loader");
    assert_eq!((keep.num_batches(), keep.num_samples()), (3, 10));
    let sizes: Vec<usize> = batch_ids(&keep, 0, 0).iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![4, 4, 2]);

    let drop = DataLoader::new(&data, 4, true, true, 0).expect("loader");
    assert_eq!((drop.num_batches(), drop.num_samples()), (2, 8));
    let ids = batch_ids(&drop, 0, 0);
    assert_eq!(ids.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4]);
    let mut distinct = ids.concat();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 8, "no sample repeats when dropping the remainder");

    let exact = DataLoader::new(&data, 5, false, true, 0).expect("loader");
    assert_eq!((exact.num_batches(), exact.num_samples()), (2, 10), "nothing to drop when it divides");
    assert_eq!(exact.epoch(0).len(), 2);
}

#[test]
fn epoch_from_resumes_where_epoch_would_be() {
    let data = dataset(30);
    let loader = DataLoader::new(&data, 4, true, false, 5).expect("loader");
    let full = batch_ids(&loader, 2, 0);
    for skip in [0, 1, 5, 7] {
        assert_eq!(batch_ids(&loader, 2, skip), full[skip..].to_vec(), "skip {skip}");
    }
    assert_eq!(loader.epoch_from(2, 8).len(), 0, "skipping past the end yields nothing");
    assert!(batch_ids(&loader, 2, 100).is_empty());
}

#[test]
fn batch_size_zero_is_rejected() {
    let data = dataset(3);
    let err = DataLoader::new(&data, 0, true, false, 0).expect_err("batch size 0");
    assert!(matches!(err, DataError::InvalidLoader(_)), "{err}");
    assert!(err.to_string().contains("at least 1"), "{err}");
}

#[test]
fn normalisation_of_known_pixels() {
    // Sample 0 is all 0s, sample 255 all 255s. References: (0/255 - 0.1307) / 0.3081 and (1 - 0.1307) / 0.3081.
    let data =
        TensorDataset::from_mnist(&split(256), Some(&[0, 255, 51]), &mnist_normalize(), &Device::Cpu).expect("stage");
    let values = data.images().flatten_from(1).expect("flatten").to_vec2::<f32>().expect("f32");
    let expected = [-0.424_212_9_f32, 2.821_486_5, (0.2 - 0.1307) / 0.3081];
    for (row, want) in values.iter().zip(expected) {
        assert!(row.iter().all(|v| (v - want).abs() < 1e-5), "got {row:?}, want {want}");
    }
    assert_eq!(data.labels().to_vec1::<u32>().expect("u32"), vec![0, 5, 1]);
}

#[test]
fn normalize_config_needs_both_fields_and_rejects_unknown_ones() {
    let err = serde_json::from_str::<Normalize>(r#"{"mean": 0.5}"#).expect_err("no std");
    assert!(err.to_string().contains("missing field `std`"), "{err}");
    let err = serde_json::from_str::<Normalize>(r#"{"mean": 0.1, "stdev": 0.3}"#).expect_err("typo");
    assert!(err.to_string().contains("stdev"), "{err}");
}

#[test]
fn degenerate_normalisation_is_rejected() {
    for normalize in [Normalize::uniform(0.1, 0.0), Normalize::uniform(f32::NAN, 1.0)] {
        let err = TensorDataset::from_mnist(&split(2), None, &normalize, &Device::Cpu).expect_err("bad std");
        assert!(matches!(err, DataError::InvalidNormalize(_)), "{err}");
    }
}

#[test]
fn subset_indices_out_of_range_are_rejected() {
    let err = TensorDataset::from_mnist(&split(4), Some(&[1, 4]), &mnist_normalize(), &Device::Cpu)
        .expect_err("index 4 of 4");
    assert!(matches!(err, DataError::IndexOutOfRange { index: 4, len: 4 }), "{err}");
}

#[test]
fn empty_subset_gives_an_empty_loader() {
    let data = TensorDataset::from_mnist(&split(4), Some(&[]), &mnist_normalize(), &Device::Cpu).expect("empty");
    assert!(data.is_empty());
    let loader = DataLoader::new(&data, 4, true, false, 0).expect("loader");
    assert_eq!((loader.num_batches(), loader.epoch(0).count()), (0, 0));
}

#[test]
fn new_checks_that_tensors_fit() {
    let device = Device::Cpu;
    let images = Tensor::zeros((3, 1, 2, 2), DType::F32, &device).expect("images");
    let ok = TensorDataset::new(images.clone(), Tensor::zeros(3, DType::U32, &device).expect("labels"));
    assert_eq!(ok.expect("matching tensors").len(), 3);
    for labels in [
        Tensor::zeros(2, DType::U32, &device).expect("labels"),
        Tensor::zeros(3, DType::F32, &device).expect("labels"),
        Tensor::zeros((3, 1), DType::U32, &device).expect("labels"),
    ] {
        let err = TensorDataset::new(images.clone(), labels).expect_err("mismatch");
        assert!(matches!(err, DataError::Shape(_)), "{err}");
    }
    // Table rows [n, features] with any target of a task: classes, labels or values.
    let rows = Tensor::zeros((3, 4), DType::F32, &device).expect("rows");
    for targets in [Tensor::zeros(3, DType::U32, &device), Tensor::zeros((3, 2), DType::F32, &device)] {
        assert_eq!(TensorDataset::new(rows.clone(), targets.expect("targets")).expect("rows fit").len(), 3);
    }
    let scalars = Tensor::zeros(3, DType::F32, &device).expect("not samples");
    let err = TensorDataset::new(scalars, Tensor::zeros(3, DType::U32, &device).expect("labels"));
    assert!(matches!(err, Err(DataError::Shape(_))));
}

#[test]
fn augmented_batches_are_the_plain_ones_augmented_sample_by_sample() {
    use data_loader::Augment;
    let data = dataset(40);
    let plain = DataLoader::new(&data, 16, true, false, 9).expect("loader");
    let augment = Augment { crop_padding: 4, horizontal_flip: true };
    let augmented = DataLoader::new(&data, 16, true, false, 9).expect("loader").with_augment(augment);
    for epoch in [1u64, 2] {
        let order = plain.epoch_order(epoch);
        let want_aug = augment.for_epoch(9, epoch);
        for (b, (p, a)) in plain.epoch(epoch).zip(augmented.epoch(epoch)).enumerate() {
            let ((p, pl), (a, al)) = (p.expect("plain"), a.expect("augmented"));
            assert_eq!(pl.to_vec1::<u32>().unwrap(), al.to_vec1::<u32>().unwrap(), "same samples");
            let samples = &order[b * 16..(b * 16 + 16).min(40)];
            let want = want_aug.apply_batch(&p, samples, &[0.0]).expect("augment");
            let (a, want) = (
                a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                want.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            assert_eq!(a, want, "epoch {epoch} batch {b}");
            assert_ne!(a, p.flatten_all().unwrap().to_vec1::<f32>().unwrap(), "augmentation changes the pixels");
        }
    }
    // Replaying an epoch gives the same pixels; another epoch, others.
    let first =
        |epoch| augmented.epoch(epoch).next().unwrap().unwrap().0.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(first(1), first(1));
    assert_ne!(first(1), first(2));
}

#[test]
fn shards_of_every_batch_are_disjoint_in_rank_order_and_together_the_batch() {
    let data = dataset(10);
    let whole = DataLoader::new(&data, 4, true, false, 5).expect("loader");
    let world = 3;
    let shards: Vec<Vec<Vec<u32>>> = (0..world)
        .map(|rank| {
            let loader = DataLoader::new(&data, 4, true, false, 5).unwrap().with_shard(rank, world).expect("shard");
            batch_ids(&loader, 2, 1)
        })
        .collect();
    let expected = batch_ids(&whole, 2, 1);
    for (b, batch) in expected.iter().enumerate() {
        let joined: Vec<u32> = shards.iter().flat_map(|rank| rank[b].clone()).collect();
        assert_eq!(&joined, batch, "batch {b}: the ranks' parts, in rank order, are the batch");
    }
    // The last batch has 2 samples: ranks 1 and 2 take one each, rank 0 none.
    assert_eq!(shards.iter().map(|rank| rank[1].len()).collect::<Vec<_>>(), [0, 1, 1]);
    let loader = DataLoader::new(&data, 4, true, false, 5).unwrap().with_shard(2, world).unwrap();
    assert_eq!(loader.batch_len_and_offset(0), (4, 2));
    assert_eq!(loader.batch_len_and_offset(2), (2, 1));
}

#[test]
fn a_shard_that_cannot_exist_is_an_error_saying_what_to_change() {
    let data = dataset(10);
    let err = DataLoader::new(&data, 2, true, false, 5).unwrap().with_shard(0, 3).unwrap_err().to_string();
    assert!(err.contains("batch of 2") && err.contains("at least 3"), "{err}");
    let err = DataLoader::new(&data, 4, true, false, 5).unwrap().with_shard(3, 3).unwrap_err().to_string();
    assert!(err.contains("rank 3 of 3"), "{err}");
}
