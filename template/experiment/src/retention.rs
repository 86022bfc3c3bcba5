//! Which epoch checkpoints to keep: the `save_top_k` best by the monitored metric (the most recent
//! ones when nothing is monitored), plus always the newest, which a resume needs.

use serde::{Deserialize, Serialize};

/// A checkpoint on disk and the monitored value it had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kept {
    pub file: String,
    pub epoch: usize,
    pub metric: Option<f64>,
}

/// Add `new` to `kept`; return the files to delete. `higher_is_better` is None when unmonitored.
pub fn admit(kept: &mut Vec<Kept>, new: Kept, top_k: usize, higher_is_better: Option<bool>) -> Vec<String> {
    kept.retain(|k| k.file != new.file);
    kept.push(new.clone());
    let mut ranked = kept.clone();
    ranked.sort_by(|a, b| {
        let (x, y) = (a.metric.unwrap_or(f64::NAN), b.metric.unwrap_or(f64::NAN));
        match higher_is_better {
            Some(true) => y.total_cmp(&x),
            Some(false) => x.total_cmp(&y),
            None => b.epoch.cmp(&a.epoch),
        }
    });
    let keep: Vec<&Kept> = ranked.iter().take(top_k).chain(std::iter::once(&new)).collect();
    let (stay, go): (Vec<Kept>, Vec<Kept>) = kept.drain(..).partition(|k| keep.iter().any(|x| x.file == k.file));
    *kept = stay;
    go.into_iter().map(|k| k.file).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(epoch: usize, metric: f64) -> Kept {
        Kept { file: format!("checkpoint-epoch{epoch}.safetensors"), epoch, metric: Some(metric) }
    }

    #[test]
    fn keeps_the_best_k_and_the_newest() {
        let mut list = Vec::new();
        let mut deleted = Vec::new();
        for (epoch, acc) in [(1, 0.90), (2, 0.95), (3, 0.93), (4, 0.91)] {
            deleted.extend(admit(&mut list, kept(epoch, acc), 1, Some(true)));
        }
        let files: Vec<_> = list.iter().map(|k| k.epoch).collect();
        // Epoch 2 is the best, epoch 4 the newest.
        assert_eq!(files, [2, 4]);
        assert_eq!(deleted, ["checkpoint-epoch1.safetensors", "checkpoint-epoch3.safetensors"]);
    }

    #[test]
    fn lower_is_better_for_losses_and_recency_when_unmonitored() {
        let mut list = Vec::new();
        for (epoch, loss) in [(1, 0.5), (2, 0.2), (3, 0.4)] {
            admit(&mut list, kept(epoch, loss), 1, Some(false));
        }
        assert_eq!(list.iter().map(|k| k.epoch).collect::<Vec<_>>(), [2, 3]);
        let mut list = Vec::new();
        for epoch in 1..=4 {
            admit(&mut list, kept(epoch, 0.0), 2, None);
        }
        assert_eq!(list.iter().map(|k| k.epoch).collect::<Vec<_>>(), [3, 4]);
    }
}
