//! Data-parallel training over MPI, end to end: `mpirun -np 2 <this project> train` against one
//! process with the same config. Compiled with the `distributed` feature only; needs `mpirun` on
//! PATH (Debian: `apt-get install libopenmpi-dev openmpi-bin libclang-dev`). As root, Open MPI also
//! needs OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 in the environment.
#![cfg(feature = "distributed")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::Device;

const BINARY: &str = env!(concat!("CARGO_BIN_EXE_", env!("CARGO_PKG_NAME")));

/// A small MNIST-shaped data set as plain IDX files: `count` 28×28 images whose mean brightness
/// follows their label, so a few steps learn something.
fn write_idx(dir: &Path, count: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut images = vec![0, 0, 8, 3];
    let mut labels = vec![0, 0, 8, 1];
    for n in [count as u32, 28, 28] {
        images.extend(n.to_be_bytes());
    }
    labels.extend((count as u32).to_be_bytes());
    let mut state = 12345u32;
    for i in 0..count {
        let label = (i % 10) as u8;
        labels.push(label);
        for _ in 0..28 * 28 {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            images.push(((state >> 24) as u8 / 2).saturating_add(label * 12));
        }
    }
    for split in ["train", "t10k"] {
        std::fs::write(dir.join(format!("{split}-images-idx3-ubyte")), &images).unwrap();
        std::fs::write(dir.join(format!("{split}-labels-idx1-ubyte")), &labels).unwrap();
    }
}

/// `train` with `ranks` processes (1: without a launcher) and these settings; the run folder.
fn train(root: &Path, ranks: usize, name: &str, set: &[&str]) -> PathBuf {
    let mut command = if ranks == 1 {
        Command::new(BINARY)
    } else {
        let mut mpirun = Command::new("mpirun");
        mpirun.args(["-np", &ranks.to_string(), "--oversubscribe", BINARY]);
        mpirun
    };
    command.current_dir(env!("CARGO_MANIFEST_DIR")).arg("train");
    let data = root.join("data");
    let saved = root.join("saved");
    for setting in [
        format!("name={name:?}"),
        format!("data_loader.args.data_dir={:?}", data.to_str().unwrap()),
        format!("trainer.save_dir={:?}", saved.to_str().unwrap()),
        "data_loader.args.batch_size=30".into(),
        "trainer.tensorboard=false".into(),
        r#"optimizer={"type": "sgd", "args": {"lr": 0.01, "momentum": 0.9}}"#.into(),
    ]
    .iter()
    .map(String::as_str)
    .chain(set.iter().copied())
    {
        command.args(["--set", setting]);
    }
    let output = command.env("RAYON_NUM_THREADS", "1").output().expect("mpirun starts (is Open MPI installed?)");
    assert!(
        output.status.success(),
        "train with {ranks} processes failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let runs: Vec<PathBuf> = std::fs::read_dir(saved.join(name)).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(runs.len(), 1, "one run folder for {name}, whatever the number of ranks: {runs:?}");
    runs.into_iter().next().unwrap()
}

fn weights(file: &Path) -> BTreeMap<String, Vec<f32>> {
    let checkpoint = experiment::checkpoint::load(file, &Device::Cpu).unwrap();
    checkpoint
        .weights
        .iter()
        .map(|(name, t)| (name.clone(), t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

fn assert_close(one: &BTreeMap<String, Vec<f32>>, other: &BTreeMap<String, Vec<f32>>, what: &str) {
    assert_eq!(one.keys().collect::<Vec<_>>(), other.keys().collect::<Vec<_>>());
    for (name, expected) in one {
        let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
        let worst = expected.iter().zip(&other[name]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= 1e-5 * scale, "{what}: {name} differs by {worst} (scale {scale})");
    }
}

/// The `val` rows of metrics.csv as (loss, accuracy).
fn val_rows(run: &Path) -> Vec<(f64, f64)> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .filter(|l| l.split(',').nth(1) == Some("val"))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[2].parse().unwrap(), f[3].parse().unwrap())
        })
        .collect()
}

#[test]
fn two_ranks_train_the_model_of_one_process_and_resume_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // 270 training images at batch 30: 9 steps an epoch, the ranks take 15 each.
    write_idx(&dir.path().join("data"), 300);
    let epochs = ["trainer.epochs=2"];
    let one = train(dir.path(), 1, "one", &epochs);
    let two = train(dir.path(), 2, "two", &epochs);
    let last = "checkpoint-epoch2.safetensors";
    assert_close(&weights(&one.join(last)), &weights(&two.join(last)), "2 ranks against 1 process");
    // Validation is sharded over the ranks and its counts summed: one process's numbers.
    let (val1, val2) = (val_rows(&one), val_rows(&two));
    assert_eq!(val1.len(), 2);
    for ((loss1, acc1), (loss2, acc2)) in val1.into_iter().zip(val2) {
        assert!((loss1 - loss2).abs() <= 1e-5 * loss1.abs(), "val loss {loss1} vs {loss2}");
        assert_eq!(acc1, acc2, "val accuracy");
    }

    // Stopped mid-epoch 2, then resumed on 2 ranks: the uninterrupted 2-rank run's weights.
    let stopped = train(dir.path(), 2, "resumed", &["trainer.epochs=2", "trainer.max_steps=13"]);
    assert!(stopped.join("checkpoint-step13.safetensors").exists());
    let mut resume = Command::new("mpirun");
    resume
        .args(["-np", "2", "--oversubscribe", BINARY, "train", "--resume"])
        .arg(&stopped)
        .args(["--set", "trainer.max_steps=null"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RAYON_NUM_THREADS", "1");
    let output = resume.output().unwrap();
    assert!(output.status.success(), "resume failed:\n{}", String::from_utf8_lossy(&output.stderr));
    assert_close(&weights(&two.join(last)), &weights(&stopped.join(last)), "resumed against uninterrupted");
}

/// The pid of the process whose environment holds `tag` and Open MPI's rank `rank`.
fn pid_of_rank(tag: &str, rank: usize) -> Option<u32> {
    let wanted = [format!("CANDLECUTTER_TEST_TAG={tag}"), format!("OMPI_COMM_WORLD_RANK={rank}")];
    std::fs::read_dir("/proc").ok()?.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()).find(|pid| {
        std::fs::read(format!("/proc/{pid}/environ"))
            .map(|env| {
                let vars: Vec<&[u8]> = env.split(|b| *b == 0).collect();
                wanted.iter().all(|w| vars.contains(&w.as_bytes()))
            })
            .unwrap_or(false)
    })
}

/// `mpirun -np 2` training for a long time in `dir`, its ranks' environments tagged `tag`, once
/// both ranks run and rank 0 has made the run folder.
fn start_long_job(dir: &Path, tag: &str, env: &[(&str, &str)]) -> Job {
    write_idx(&dir.join("data"), 300);
    let mut child = Command::new("mpirun")
        .args([
            "-np",
            "2",
            "--oversubscribe",
            BINARY,
            "train",
            "--set",
            "name=\"long\"",
            "--set",
            "trainer.epochs=1000",
        ])
        .args(["--set", &format!("data_loader.args.data_dir={:?}", dir.join("data").to_str().unwrap())])
        .args(["--set", &format!("trainer.save_dir={:?}", dir.join("saved").to_str().unwrap())])
        .args([
            "--set",
            "trainer.tensorboard=false",
            "--set",
            "trainer.early_stop=0",
            "--set",
            "data_loader.args.batch_size=10",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RAYON_NUM_THREADS", "1")
        .env("CANDLECUTTER_TEST_TAG", tag)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("mpirun starts");
    let pipe = child.stderr.take().expect("stderr is piped");
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let collected = stderr.clone();
    let reader = std::thread::spawn(move || {
        // Bytes, not `lines()`: a line that is not UTF-8 must not stop the draining.
        let (mut pipe, mut line) = (std::io::BufReader::new(pipe), Vec::new());
        while std::io::BufRead::read_until(&mut pipe, b'\n', &mut line).is_ok_and(|n| n > 0) {
            collected.lock().unwrap().push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
    });
    let mut job = Job { child, stderr, reader };
    let started = std::time::Instant::now();
    while pid_of_rank(tag, 1).is_none() || !dir.join("saved/long").exists() {
        if let Some(status) = job.child.try_wait().unwrap() {
            panic!("mpirun ended ({status}) before the ranks trained:\n{}", job.stderr());
        }
        assert!(started.elapsed().as_secs() < 60, "the ranks did not start within 60 s");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Into the training steps.
    std::thread::sleep(std::time::Duration::from_secs(2));
    job
}

/// A running `mpirun` and the thread that collects its stderr as it comes: the small model logs
/// several epochs a second, more than a pipe holds, and an undrained pipe stalls the job.
struct Job {
    child: std::process::Child,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

impl Job {
    /// Its stderr so far, after waiting up to 5 s for the pipe to close (a rank that outlived
    /// mpirun would hold it open).
    fn stderr(&self) -> String {
        let waited = std::time::Instant::now();
        while !self.reader.is_finished() && waited.elapsed().as_secs() < 5 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.stderr.lock().unwrap().clone()
    }
}

/// Waits for `job` to end, at most `seconds` after `since`; its status and stderr.
fn ends_within(
    mut job: Job,
    since: std::time::Instant,
    seconds: u64,
    what: &str,
) -> (std::process::ExitStatus, String) {
    let status = loop {
        if let Some(status) = job.child.try_wait().unwrap() {
            break status;
        }
        if since.elapsed().as_secs() >= seconds {
            let _ = job.child.kill();
            let _ = job.child.wait();
            let stderr = job.stderr();
            let tail: String =
                stderr.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            panic!("the job still ran {seconds} s after {what}; the end of its stderr:\n{tail}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    (status, job.stderr())
}

#[test]
fn killing_one_rank_ends_the_others_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("kill-{}", std::process::id());
    let job = start_long_job(dir.path(), &tag, &[]);
    let victim = pid_of_rank(&tag, 1).expect("rank 1 runs");
    let killed = std::time::Instant::now();
    assert!(Command::new("kill").args(["-KILL", &victim.to_string()]).status().unwrap().success());
    let (status, stderr) = ends_within(job, killed, 10, "rank 1 was killed");
    assert!(!status.success(), "a job that lost a rank must fail");
    assert!(stderr.contains("rank 1"), "the launcher's message names the rank: {stderr}");
    assert!(pid_of_rank(&tag, 0).is_none(), "rank 0 is gone too");
}

#[test]
fn ctrl_c_on_the_launcher_stops_every_rank_with_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("interrupt-{}", std::process::id());
    // Open MPI kills the ranks 1 s after passing on the signal, by default; a loaded machine may
    // need longer for the last step and the checkpoint (the README says to raise it likewise;
    // mpirun then waits about that long before it exits).
    let job = start_long_job(dir.path(), &tag, &[("OMPI_MCA_odls_base_sigkill_timeout", "5")]);
    let pressed = std::time::Instant::now();
    assert!(Command::new("kill").args(["-INT", &job.child.id().to_string()]).status().unwrap().success());
    let (_, stderr) = ends_within(job, pressed, 30, "Ctrl-C");
    assert!(pid_of_rank(&tag, 0).is_none() && pid_of_rank(&tag, 1).is_none(), "both ranks are gone");
    let run = std::fs::read_dir(dir.path().join("saved/long")).unwrap().next().unwrap().unwrap().path();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["stopped_by"], "interrupted", "{stderr}");
    // Where both ranks stopped: mid-epoch a step checkpoint, at an epoch's end that epoch's.
    let (checkpoint, state) = experiment::resume::find_checkpoint(&run).expect("rank 0 saved a checkpoint");
    assert_eq!(Some(state.global_step), summary["global_steps"].as_u64(), "{stderr}");
    assert!(!weights(&checkpoint).is_empty(), "the checkpoint loads");
    assert_eq!(stderr.matches("Ctrl-C: stopping after this step").count(), 1, "rank 0 alone says so: {stderr}");
}
