//! TensorBoard event files: a short run's file is read back with a reader written here from the
//! TFRecord and protobuf specifications (not the writer's code): the framing and both CRCs of
//! every record, the tags and steps, and the per-epoch values against metrics.csv.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use experiment::RunDir;
use training::tensorboard::crc32c::masked_crc32c;
use training::tensorboard::{CONFIG_TAG, EPOCH_TAGS, STEP_LOSS, STEP_LR};
use training::{TrainOptions, train};

/// One decoded `Event`.
#[derive(Debug, Default)]
struct Event {
    wall_time: f64,
    step: i64,
    file_version: Option<String>,
    scalars: Vec<(String, f32)>,
    /// (tag, plugin name, dtype, string value)
    texts: Vec<(String, String, u64, String)>,
}

/// Split a file into records, checking the length CRC and the data CRC of each.
fn records(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        assert!(rest.len() >= 12, "a truncated record header");
        let length = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
        let length_crc = u32::from_le_bytes(rest[8..12].try_into().unwrap());
        assert_eq!(length_crc, masked_crc32c(&rest[..8]), "length CRC of record {}", out.len());
        assert!(rest.len() >= 12 + length + 4, "a truncated record");
        let data = &rest[12..12 + length];
        let data_crc = u32::from_le_bytes(rest[12 + length..16 + length].try_into().unwrap());
        assert_eq!(data_crc, masked_crc32c(data), "data CRC of record {}", out.len());
        out.push(data);
        rest = &rest[16 + length..];
    }
    out
}

/// Protobuf fields of one message: (field number, wire type, payload as a varint or bytes).
enum Field<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Fixed32([u8; 4]),
    Bytes(&'a [u8]),
}

fn varint(bytes: &mut &[u8]) -> u64 {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (byte, rest) = bytes.split_first().expect("a truncated varint");
        *bytes = rest;
        value |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return value;
        }
    }
    panic!("a varint longer than 10 bytes")
}

fn fields(mut bytes: &[u8]) -> Vec<(u64, Field<'_>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes);
        let field = match key & 7 {
            0 => Field::Varint(varint(&mut bytes)),
            1 => {
                let (head, rest) = bytes.split_at(8);
                bytes = rest;
                Field::Fixed64(head.try_into().unwrap())
            }
            2 => {
                let len = varint(&mut bytes) as usize;
                let (head, rest) = bytes.split_at(len);
                bytes = rest;
                Field::Bytes(head)
            }
            5 => {
                let (head, rest) = bytes.split_at(4);
                bytes = rest;
                Field::Fixed32(head.try_into().unwrap())
            }
            other => panic!("unexpected wire type {other}"),
        };
        out.push((key >> 3, field));
    }
    out
}

fn bytes_of<'a>(field: &Field<'a>) -> &'a [u8] {
    match field {
        Field::Bytes(b) => b,
        _ => panic!("expected a length-delimited field"),
    }
}

fn text(field: &Field<'_>) -> String {
    String::from_utf8(bytes_of(field).to_vec()).unwrap()
}

fn decode_event(data: &[u8]) -> Event {
    let mut event = Event::default();
    for (number, field) in fields(data) {
        match (number, &field) {
            (1, Field::Fixed64(b)) => event.wall_time = f64::from_le_bytes(*b),
            (2, Field::Varint(v)) => event.step = *v as i64,
            (3, _) => event.file_version = Some(text(&field)),
            (5, _) => decode_summary(bytes_of(&field), &mut event),
            _ => panic!("unexpected Event field {number}"),
        }
    }
    event
}

fn decode_summary(bytes: &[u8], event: &mut Event) {
    for (number, value) in fields(bytes) {
        assert_eq!(number, 1, "Summary has only `value`");
        let (mut tag, mut scalar, mut plugin, mut dtype, mut string) = (String::new(), None, None, 0, None);
        for (number, field) in fields(bytes_of(&value)) {
            match (number, &field) {
                (1, _) => tag = text(&field),
                (2, Field::Fixed32(b)) => scalar = Some(f32::from_le_bytes(*b)),
                (8, _) => {
                    for (n, f) in fields(bytes_of(&field)) {
                        match (n, &f) {
                            (1, Field::Varint(v)) => dtype = *v,
                            (2, _) => assert!(bytes_of(&f).is_empty(), "a scalar string tensor has no dimensions"),
                            (8, _) => string = Some(text(&f)),
                            _ => panic!("unexpected TensorProto field {n}"),
                        }
                    }
                }
                (9, _) => {
                    let metadata = fields(bytes_of(&field));
                    let plugin_data = fields(bytes_of(&metadata[0].1));
                    plugin = Some(text(&plugin_data[0].1));
                }
                _ => panic!("unexpected Summary.Value field {number}"),
            }
        }
        match (scalar, string) {
            (Some(v), None) => event.scalars.push((tag, v)),
            (None, Some(s)) => event.texts.push((tag, plugin.expect("text has plugin metadata"), dtype, s)),
            _ => panic!("a value with neither simple_value nor a string tensor: {tag}"),
        }
    }
}

fn event_files(run: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("events.out.tfevents."))
        .collect();
    files.sort();
    files
}

fn read_events(path: &Path) -> Vec<Event> {
    records(&std::fs::read(path).unwrap()).into_iter().map(decode_event).collect()
}

/// tag -> [(step, value)] over `events`.
fn series(events: &[Event]) -> BTreeMap<String, Vec<(i64, f32)>> {
    let mut out: BTreeMap<String, Vec<(i64, f32)>> = BTreeMap::new();
    for event in events {
        for (tag, value) in &event.scalars {
            out.entry(tag.clone()).or_default().push((event.step, *value));
        }
    }
    out
}

/// metrics.csv as (epoch, split) -> [loss, accuracy, lr, seconds, samples_per_sec].
fn metrics_csv(run: &Path) -> BTreeMap<(i64, String), Vec<f64>> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let numbers = cells[2..].iter().map(|c| c.parse().unwrap()).collect();
            ((cells[0].parse().unwrap(), cells[1].to_string()), numbers)
        })
        .collect()
}

#[test]
fn a_run_writes_an_event_file_with_every_step_and_the_metrics_csv_numbers_per_epoch() {
    let dir = tempfile::tempdir().unwrap();
    support::write_data(&dir.path().join("data"), 96);
    let config = support::config(dir.path(), &["name=\"tb\"", "trainer.epochs=3"]);
    let run = RunDir::create(&config).unwrap();
    let summary = train(&config, &run, &TrainOptions::default()).unwrap();
    assert_eq!(summary.global_steps, 18, "96 images, 10% validation, batch 16: 6 steps per epoch");

    let files = event_files(run.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let events = read_events(&files[0]);
    assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
    assert!(events.iter().all(|e| e.wall_time > 1.6e9), "wall times are Unix seconds");

    // The config, as Markdown for the text plugin, at step 0.
    let texts: Vec<_> = events.iter().flat_map(|e| e.texts.iter().map(move |t| (e.step, t))).collect();
    assert_eq!(texts.len(), 2);
    let (step, (tag, plugin, dtype, markdown)) = &texts[0];
    assert_eq!((*step, tag.as_str(), plugin.as_str(), *dtype), (0, CONFIG_TAG, "text", 7));
    let json = markdown.strip_prefix("```json\n").and_then(|m| m.strip_suffix("\n```")).expect("a JSON code block");
    assert_eq!(serde_json::from_str::<serde_json::Value>(json).unwrap()["trainer"]["epochs"], 3);
    // The data's shape and class names, as text.
    let (step, (tag, _, _, data)) = &texts[1];
    assert_eq!((*step, tag.as_str()), (0, training::tensorboard::DATA_TAG));
    assert!(data.contains("classes:") && data.contains("0: 0"), "{data}");

    let series = series(&events);
    let mut expected_tags: Vec<&str> = EPOCH_TAGS.to_vec();
    expected_tags.extend([STEP_LOSS, STEP_LR]);
    expected_tags.sort();
    assert_eq!(series.keys().map(String::as_str).collect::<Vec<_>>(), expected_tags);

    // Every step, numbered from 1; the learning rate is the configured constant.
    let steps: Vec<i64> = series[STEP_LOSS].iter().map(|(s, _)| *s).collect();
    assert_eq!(steps, (1..=18).collect::<Vec<_>>());
    assert!(series[STEP_LOSS].iter().all(|(_, loss)| loss.is_finite() && *loss > 0.0));
    let lr = config.optimizer.lr() as f32; // TensorBoard stores f32
    assert!(series[STEP_LR].iter().all(|(_, logged)| *logged == lr));
    // The synthetic data is learnable: the last steps' loss is below the first's.
    assert!(series[STEP_LOSS][17].1 < series[STEP_LOSS][0].1, "{:?}", series[STEP_LOSS]);

    // Per epoch: one point each, equal to metrics.csv within its printed precision.
    let csv = metrics_csv(run.path());
    let columns = [
        ("train/loss", "train", 0, 1e-6),
        ("train/accuracy", "train", 1, 1e-6),
        ("val/loss", "val", 0, 1e-6),
        ("val/accuracy", "val", 1, 1e-6),
        ("epoch/seconds", "train", 3, 1e-3),
        ("epoch/samples_per_sec", "train", 4, 0.1),
    ];
    for (tag, split, column, precision) in columns {
        let points = &series[tag];
        assert_eq!(points.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![1, 2, 3], "{tag}");
        for (epoch, value) in points {
            let expected = csv[&(*epoch, split.to_string())][column];
            let tolerance = precision + f64::from(f32::EPSILON) * expected.abs();
            assert!((f64::from(*value) - expected).abs() <= tolerance, "{tag} epoch {epoch}: {value} vs {expected}");
        }
    }
}

#[test]
fn a_resumed_run_adds_a_second_file_that_continues_the_steps() {
    let dir = tempfile::tempdir().unwrap();
    support::write_data(&dir.path().join("data"), 96);
    let stopped = support::config(dir.path(), &["name=\"tb\"", "trainer.max_steps=8"]);
    let run = RunDir::create(&stopped).unwrap();
    train(&stopped, &run, &TrainOptions::default()).unwrap();
    let (checkpoint, _) = experiment::resume::find_checkpoint(run.path()).unwrap();
    let resumed = support::config(dir.path(), &["name=\"tb\""]);
    train(&resumed, &run, &TrainOptions { resume: Some(checkpoint), ..Default::default() }).unwrap();

    let files = event_files(run.path());
    assert_eq!(files.len(), 2, "{files:?}");
    let first = series(&read_events(&files[0]));
    let second = series(&read_events(&files[1]));
    let steps = |s: &BTreeMap<String, Vec<(i64, f32)>>, tag: &str| s[tag].iter().map(|(s, _)| *s).collect::<Vec<_>>();
    assert_eq!(steps(&first, STEP_LOSS), (1..=8).collect::<Vec<_>>());
    assert_eq!(steps(&second, STEP_LOSS), (9..=12).collect::<Vec<_>>());
    assert_eq!(steps(&first, "val/accuracy"), vec![1]);
    assert_eq!(steps(&second, "val/accuracy"), vec![2]);
}

#[test]
fn tensorboard_false_writes_no_event_file() {
    let dir = tempfile::tempdir().unwrap();
    support::write_data(&dir.path().join("data"), 48);
    let config = support::config(dir.path(), &["name=\"off\"", "trainer.tensorboard=false", "trainer.epochs=1"]);
    let run = RunDir::create(&config).unwrap();
    train(&config, &run, &TrainOptions::default()).unwrap();
    assert!(run.file("metrics.csv").exists());
    assert!(event_files(run.path()).is_empty());
}
