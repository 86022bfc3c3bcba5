//! Every parser a user's file reaches, fed thousands of damaged and random inputs: IDX (plain and
//! gzip), `config.json` and `--set`, checkpoints (the safetensors header and the metadata), images for
//! `predict`, CSV tables, and ONNX files for `--onnx`. Each input must give a value or a typed error,
//! never a panic, and no parser may allocate more than [`bound`] for it: a 100-byte file claiming
//! 10^7 images is refused before anything is allocated for them.
//!
//! The inputs come from a seeded [`mutate::Mutator`]; a failure prints the parser, the case number and
//! the input's file, so it can be replayed. One test runs them all in turn, so the allocation count
//! (this binary's global allocator) is that parser's alone.

mod mutate;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{DType, Device};
use data_loader::table::{Encoding, FitOptions, Table, TargetKind};
use data_loader::{IdxImages, read_images, read_labels, write_images, write_labels};
use experiment::checkpoint::{self, TrainerState};
use model::DataSpec;

use mutate::Mutator;

/// Counts the bytes live and the most live at once since [`Peak::start`].
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            let live = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size - layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most any parser may allocate for an input of `len` bytes: 32 MiB, plus 64 bytes per input
/// byte (a table's fields and numbers, an image's pixels as f32) and, for gzip, 1,100 per byte
/// (deflate's largest expansion is 1,032 to 1).
fn bound(len: usize, gzip: bool) -> usize {
    (32 << 20) + len * if gzip { 1_100 } else { 64 }
}

/// Runs `parse` on `valid` (which must parse) and then on each of `cases` inputs made by `make`
/// (each written to `dir/file` first, for parsers that read files): no panic, a message for every
/// error, and at most [`bound`] allocated.
#[allow(clippy::too_many_arguments)]
fn fuzz<T, E: std::fmt::Display>(
    name: &str,
    cases: usize,
    dir: &Path,
    file: &str,
    gzip: bool,
    valid: &[u8],
    mut make: impl FnMut(&mut Mutator, &[u8]) -> Vec<u8>,
    mut parse: impl FnMut(&Path, &[u8]) -> Result<T, E>,
) {
    let mut mutator = Mutator::new(name.bytes().map(u64::from).sum());
    let path = dir.join(file);
    std::fs::write(&path, valid).unwrap();
    if let Err(e) = parse(&path, valid) {
        panic!("{name}: the valid input is refused: {e}");
    }
    let (mut ok, mut errors) = (0, 0);
    for case in 0..cases {
        let input = make(&mut mutator, valid);
        std::fs::write(&path, &input).unwrap();
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| parse(&path, &input)));
        let used = PEAK.load(Ordering::Relaxed).saturating_sub(before);
        let keep = || {
            let kept = dir.join(format!("{name}-case{case}"));
            std::fs::copy(&path, &kept).unwrap();
            kept.display().to_string()
        };
        match result {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(e)) => {
                errors += 1;
                assert!(!e.to_string().trim().is_empty(), "{name} case {case}: an empty error message ({})", keep());
            }
            Err(_) => panic!("{name} case {case}: the parser panicked on {} ({} bytes)", keep(), input.len()),
        }
        let most = bound(input.len(), gzip);
        assert!(
            used <= most,
            "{name} case {case}: {used} bytes allocated for {} input bytes (bound {most}): {}",
            input.len(),
            keep()
        );
    }
    eprintln!("{name}: {cases} inputs, {ok} read, {errors} refused with an error");
    assert!(errors > 0, "{name}: no input was refused, so the mutations never reached the checks");
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn idx_files(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let images = IdxImages { count: 3, rows: 4, cols: 5, pixels: (0..60).collect() };
    write_images(&dir.join("images"), &images).unwrap();
    write_labels(&dir.join("labels"), &[0, 7, 9]).unwrap();
    (std::fs::read(dir.join("images")).unwrap(), std::fs::read(dir.join("labels")).unwrap())
}

fn checkpoint_file(dir: &Path) -> Vec<u8> {
    let varmap = candle_nn::VarMap::new();
    varmap.get((2, 3), "fc.weight", candle_nn::Init::Const(0.5), DType::F32, &Device::Cpu).unwrap();
    varmap.get(2, "fc.bias", candle_nn::Init::Const(0.0), DType::F32, &Device::Cpu).unwrap();
    let spec = DataSpec::new([3], vec!["a".into(), "b".into()]).unwrap();
    let path = dir.join("valid.safetensors");
    checkpoint::save(&path, &varmap, &spec, None, Some(&TrainerState::default())).unwrap();
    std::fs::read(path).unwrap()
}

fn image_file(format: image::ImageFormat) -> Vec<u8> {
    let image = image::RgbImage::from_fn(9, 7, |x, y| image::Rgb([(x * 20) as u8, (y * 30) as u8, 128]));
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

const TABLE: &str = "id,size,colour,\"note, quoted\",price\n1,2.5,red,\"a \"\"b\"\"\",10\n2,-3e2,blue,,20.5\n3,0.001,red,x,-7\n4,,green,y,1e3\n";
const PLAIN_TABLE: &str = "size;colour;price\r\n2.5;red;10\r\n-3e2;blue;20.5\r\n0.001;red;-7\r\n";

fn read_and_fit(path: &Path, bytes: &[u8]) -> data_loader::Result<usize> {
    let table = Table::from_bytes(path, bytes, None)?;
    let header = table.header().to_vec();
    let target = header.last().cloned().unwrap_or_default();
    let exclude = header.iter().filter(|name| *name == "id").cloned().collect();
    let options = FitOptions {
        target: vec![target],
        target_kind: TargetKind::Values,
        exclude,
        fill_missing: true,
        ..Default::default()
    };
    let encoding = Encoding::fit(&table, &options)?;
    Ok(encoding.encode_inputs(&table)?.len() + encoding.encode_targets(&table).map(|_| 0)?)
}

#[test]
fn no_damaged_or_random_input_panics_or_allocates_beyond_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let (images, labels) = idx_files(d);
    fuzz("idx-images", 3000, d, "f", false, &images, |m, v| m.mutate(v), |p, _| read_images(p));
    fuzz("idx-labels", 2000, d, "f", false, &labels, |m, v| m.mutate(v), |p, _| read_labels(p));
    // Damaged before compression (a bad header, well compressed) and after (a bad gzip stream).
    let (images_gz, labels_gz) = (gzip(&images), gzip(&labels));
    fuzz("idx-images-gz", 1500, d, "f", true, &images_gz, |m, _| gzip(&m.mutate(&images)), |p, _| read_images(p));
    fuzz("idx-images-gz-stream", 1500, d, "f", true, &images_gz, |m, v| m.mutate(v), |p, _| read_images(p));
    fuzz("idx-labels-gz-stream", 1000, d, "f", true, &labels_gz, |m, v| m.mutate(v), |p, _| read_labels(p));

    let config = include_str!("../../../config.json");
    let config_path = Path::new("config.json");
    let from_json =
        |bytes: &[u8], set: &[String]| experiment::Config::from_json(&String::from_utf8_lossy(bytes), config_path, set);
    fuzz("config.json", 3000, d, "f", false, config.as_bytes(), |m, v| m.mutate(v), |_, bytes| from_json(bytes, &[]));
    const KEYS: &[&str] = &[
        "seed",
        "device",
        "trainer.epochs",
        "trainer.monitor",
        "data_loader.args.batch_size",
        "data_loader.args.validation_split",
        "data_loader.args.normalize",
        "data_loader.args.augment.crop_padding",
        "optimizer.args.lr",
        "optimizer.type",
        "loss.args.label_smoothing",
        "model.args",
        "lr_scheduler",
        "data_loader.type",
        "metrics",
        "trainer.grad_clip_norm",
        "x.y.z",
        "trainer",
    ];
    const VALUES: &[&str] = &[
        "1",
        "-1",
        "0",
        "1.5",
        "1e400",
        "null",
        "true",
        "\"cuda\"",
        "[]",
        "{}",
        "\"max val_accuracy\"",
        "[1, 2]",
        "x",
        "",
    ];
    let make_set = |m: &mut Mutator, _: &[u8]| {
        let set = format!("{}={}", m.pick(KEYS), m.pick(VALUES));
        if m.below(4) == 0 { m.mutate(set.as_bytes()) } else { set.into_bytes() }
    };
    fuzz("--set", 3000, d, "f", false, b"seed=7", make_set, |_, bytes| {
        from_json(config.as_bytes(), &[String::from_utf8_lossy(bytes).into_owned()])
    });

    let checkpoint = checkpoint_file(d);
    fuzz(
        "checkpoint",
        3000,
        d,
        "f.safetensors",
        false,
        &checkpoint,
        |m, v| m.mutate(v),
        |p, _| {
            checkpoint::read_spec(p)?;
            checkpoint::read_state(p)?;
            checkpoint::load(p, &Device::Cpu).map(|_| ())
        },
    );

    let spec = DataSpec::new([1, 28, 28], DataSpec::numbered_classes(10)).unwrap();
    for (format, file) in
        [(image::ImageFormat::Png, "f.png"), (image::ImageFormat::Jpeg, "f.jpg"), (image::ImageFormat::Bmp, "f.bmp")]
    {
        fuzz(
            &format!("predict-{file}"),
            1000,
            d,
            file,
            false,
            &image_file(format),
            |m, v| m.mutate(v),
            |p, _| inference::predict::prepare(p, &spec, true),
        );
    }

    fuzz("csv-quoted", 3000, d, "f.csv", false, TABLE.as_bytes(), |m, v| m.mutate(v), read_and_fit);
    fuzz("csv-plain", 3000, d, "f.csv", false, PLAIN_TABLE.as_bytes(), |m, v| m.mutate(v), read_and_fit);

    #[cfg(feature = "onnx")]
    {
        use inference::onnx::onnx_protobuf::Message;
        let config = experiment::Config::from_json(config, config_path, &["device=\"cpu\"".into()]).unwrap();
        let built = experiment::build_model(&config, &spec, &Device::Cpu).unwrap();
        let names = model::parameter_names(&built.varmap);
        let proto = inference::onnx::build_model_proto(
            &config,
            &spec,
            built.model.as_ref(),
            &names,
            inference::onnx::DEFAULT_OPSET,
            None,
        )
        .unwrap();
        let valid = proto.write_to_bytes().unwrap();
        // A real model's file is mostly weights: damage lands in them more often than in the graph.
        fuzz("onnx", 300, d, "f.onnx", false, &valid, |m, v| m.mutate(v), |p, _| inference::onnx::OnnxModel::load(p));
    }
}
