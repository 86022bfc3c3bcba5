//! Finding the checkpoint to resume from: a checkpoint file, or a run folder, meaning its newest
//! checkpoint (the one with the most optimiser steps).

use std::path::{Path, PathBuf};

use crate::checkpoint::{self, TrainerState};

#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("cannot resume from {path}: it does not exist")]
    Missing { path: PathBuf },
    #[error(
        "cannot resume from {path}: it holds no checkpoint-*.safetensors with trainer state \
         (model_best.safetensors has weights only); pass a run folder or a checkpoint-epoch<N> file"
    )]
    NoCheckpoint { path: PathBuf },
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
}

/// The checkpoint `path` names, and its trainer state.
pub fn find_checkpoint(path: &Path) -> Result<(PathBuf, TrainerState), ResumeError> {
    if !path.exists() {
        return Err(ResumeError::Missing { path: path.to_path_buf() });
    }
    // Only checkpoint-* files carry the optimiser state a resume needs.
    let is_checkpoint = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("checkpoint-") && n.ends_with(".safetensors"))
    };
    let candidates: Vec<PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)
            .map_err(|source| ResumeError::Read { path: path.to_path_buf(), source })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_checkpoint(p))
            .collect()
    } else {
        vec![path.to_path_buf()].into_iter().filter(|p| is_checkpoint(p)).collect()
    };
    let mut best: Option<(PathBuf, TrainerState)> = None;
    for candidate in candidates {
        let Some(state) = checkpoint::read_state(&candidate)? else { continue };
        if best.as_ref().is_none_or(|(_, b)| state.global_step > b.global_step) {
            best = Some((candidate, state));
        }
    }
    best.ok_or_else(|| ResumeError::NoCheckpoint { path: path.to_path_buf() })
}

/// `config` for resuming the run in `run_dir`: with what that run measured on its training
/// split (its config.json: `"normalize": "auto"`'s numbers, a table's encoding) instead of
/// measuring again, so a resumed run prepares its data exactly as it started even if the data has
/// changed since.
pub fn with_recorded_normalize(config: crate::Config, run_dir: &Path) -> crate::Config {
    if !config.data_loader.needs_fitting() {
        return config;
    }
    let recorded = crate::Config::load(&run_dir.join("config.json"), &[]).ok();
    match recorded.and_then(|r| r.data_loader.fitted()) {
        Some(fitted) => {
            let data_loader = config.data_loader.with_fitted(&fitted);
            crate::Config { data_loader, ..config }
        }
        None => config,
    }
}
