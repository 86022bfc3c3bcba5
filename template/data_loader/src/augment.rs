//! Training-time augmentation: a random crop of a padded image and an optional horizontal flip.
//! What a sample gets is a pure function of `(seed, epoch, sample index)` — never of the batch it
//! lands in, the thread that decodes it or how many steps ran before — so a resumed run, a
//! streamed run and an in-memory run all see exactly the same pixels.

use candle_core::Tensor;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

/// `data_loader.args.augment`; everything off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Augment {
    /// Pad each side by this many pixels, then crop a random window of the original size (the
    /// image moves by up to this much). The padding is black (pixel value 0, standardised like
    /// the image), as torchvision's `RandomCrop` pads. 0: no crop.
    pub crop_padding: usize,
    /// Mirror half of the images left to right. Off by default: digits and text must not flip.
    pub horizontal_flip: bool,
}

impl Augment {
    /// Whether this changes nothing.
    pub fn is_off(&self) -> bool {
        self.crop_padding == 0 && !self.horizontal_flip
    }

    /// Whether this fits images of `height` x `width`; `key` is where the config sets it (for the
    /// message). `crop_padding` may be at most half the smaller side, so that every crop keeps at
    /// least half of the image in each direction: beyond that, whole crops can be padding alone,
    /// and the model is trained on black squares.
    pub fn check(&self, key: &str, height: usize, width: usize) -> Result<(), String> {
        let most = height.min(width) / 2;
        if self.crop_padding > most {
            return Err(format!(
                "`{key}.crop_padding` is {} but the images are {height}x{width}: it can be at most {most} (half the \
                 smaller side, so every crop keeps at least half of the image in each direction); 2 to 4 pixels is \
                 usual for images of 28 to 32 pixels",
                self.crop_padding
            ));
        }
        Ok(())
    }

    /// The augmentation of one epoch of a run seeded with `seed`.
    pub fn for_epoch(self, seed: u64, epoch: u64) -> EpochAugment {
        EpochAugment { augment: self, seed, epoch }
    }
}

/// [`Augment`] for one epoch: what each sample of that epoch gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochAugment {
    augment: Augment,
    seed: u64,
    epoch: u64,
}

/// The draw for one sample: the crop window's offset into the padded image, and the flip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Draw {
    pub dy: usize,
    pub dx: usize,
    pub flip: bool,
}

/// Keeps augmentation's random numbers apart from the shuffle's (which seed ChaCha with `seed`).
const AUGMENT_KEY: u64 = 0x6175_676d_656e_7421;

impl EpochAugment {
    /// What sample `sample` (its index in the data set) gets: ChaCha8 keyed by the seed, stream =
    /// the epoch, word position = the sample, so any sample's draw is computed directly.
    pub fn draw(&self, sample: u32) -> Draw {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ AUGMENT_KEY);
        rng.set_stream(self.epoch);
        rng.set_word_pos(u128::from(sample) * 4);
        let span = 2 * self.augment.crop_padding as u64 + 1;
        let bounded = |word: u32| ((u64::from(word) * span) >> 32) as usize;
        let (dy, dx, flip) = (bounded(rng.next_u32()), bounded(rng.next_u32()), rng.next_u32() & 1 == 1);
        Draw { dy, dx, flip: flip && self.augment.horizontal_flip }
    }

    /// Augments one sample in place: `values` holds `[channels, height, width]` standardised
    /// values; `fill` is each channel's padding value (a black pixel, standardised).
    pub fn apply(&self, sample: u32, values: &mut [f32], shape: [usize; 3], fill: &[f32]) {
        let [_, h, w] = shape;
        let Draw { dy, dx, flip } = self.draw(sample);
        let pad = self.augment.crop_padding;
        if dy == pad && dx == pad && !flip {
            return;
        }
        let source = values.to_vec();
        for (c, (plane, out)) in source.chunks_exact(h * w).zip(values.chunks_exact_mut(h * w)).enumerate() {
            let pad_value = fill.get(c).copied().unwrap_or(0.0);
            for y in 0..h {
                // Row y of the window is row y + dy - pad of the image (padding outside it).
                let sy = (y + dy).checked_sub(pad).filter(|&sy| sy < h);
                for x in 0..w {
                    let cx = if flip { w - 1 - x } else { x };
                    let sx = (cx + dx).checked_sub(pad).filter(|&sx| sx < w);
                    out[y * w + x] = match (sy, sx) {
                        (Some(sy), Some(sx)) => plane[sy * w + sx],
                        _ => pad_value,
                    };
                }
            }
        }
    }

    /// Augments a batch `[n, c, h, w]` whose rows are the samples `samples` (through the host:
    /// the same arithmetic as the streamed path, on any device).
    pub fn apply_batch(&self, images: &Tensor, samples: &[u32], fill: &[f32]) -> candle_core::Result<Tensor> {
        let (n, c, h, w) = images.dims4()?;
        let mut values = images.flatten_all()?.to_vec1::<f32>()?;
        for (&sample, chunk) in samples.iter().zip(values.chunks_exact_mut(c * h * w)) {
            self.apply(sample, chunk, [c, h, w], fill);
        }
        Tensor::from_vec(values, (n, c, h, w), images.device())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crop(pad: usize, flip: bool) -> EpochAugment {
        Augment { crop_padding: pad, horizontal_flip: flip }.for_epoch(7, 3)
    }

    #[test]
    fn crop_padding_is_bounded_by_half_the_smaller_side() {
        let augment = |crop_padding| Augment { crop_padding, horizontal_flip: false };
        assert!(augment(16).check("data_loader.args.augment", 32, 40).is_ok());
        let err = augment(17).check("data_loader.args.augment", 32, 40).unwrap_err();
        assert!(err.contains("`data_loader.args.augment.crop_padding` is 17") && err.contains("at most 16"), "{err}");
        let err = augment(100_000).check("data_loader.args.images.augment", 32, 32).unwrap_err();
        assert!(err.contains("`data_loader.args.images.augment.crop_padding` is 100000"), "{err}");
        assert!(augment(0).check("k", 1, 1).is_ok());
    }

    #[test]
    fn draws_depend_on_seed_epoch_and_sample_only() {
        let a = crop(4, true);
        assert_eq!(a.draw(12), a.draw(12));
        let draws: Vec<Draw> = (0..200).map(|s| a.draw(s)).collect();
        assert!(draws.iter().all(|d| d.dy <= 8 && d.dx <= 8));
        assert!(draws.iter().any(|d| d.flip) && draws.iter().any(|d| !d.flip));
        let offsets: std::collections::BTreeSet<usize> = draws.iter().map(|d| d.dx).collect();
        assert_eq!(offsets.len(), 9, "every offset 0..=8 occurs in 200 draws: {offsets:?}");
        let other_epoch = Augment { crop_padding: 4, horizontal_flip: true }.for_epoch(7, 4);
        assert_ne!(draws, (0..200).map(|s| other_epoch.draw(s)).collect::<Vec<_>>());
        assert!((0..200).all(|s| !crop(4, false).draw(s).flip), "no flip unless asked");
    }

    #[test]
    fn crops_move_the_image_and_fill_with_black() {
        // One 1x3x3 image 1..9; find a sample whose draw shifts it by one pixel right and down.
        let a = crop(1, false);
        let sample = (0..1000).find(|&s| a.draw(s) == Draw { dy: 0, dx: 0, flip: false }).unwrap();
        let mut values: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        // -0.5: a black pixel after standardisation.
        a.apply(sample, &mut values, [1, 3, 3], &[-0.5]);
        assert_eq!(values, [-0.5, -0.5, -0.5, -0.5, 1., 2., -0.5, 4., 5.]);
    }

    #[test]
    fn flips_mirror_each_row() {
        let a = crop(0, true);
        let sample = (0..1000).find(|&s| a.draw(s).flip).unwrap();
        let mut values: Vec<f32> = (1..=6).map(|v| v as f32).collect();
        a.apply(sample, &mut values, [2, 1, 3], &[0.0, 0.0]);
        assert_eq!(values, [3., 2., 1., 6., 5., 4.]);
    }

    #[test]
    fn a_batch_is_augmented_sample_by_sample() {
        let a = crop(2, true);
        let samples = [5u32, 900, 31];
        let data: Vec<f32> = (0..3 * 2 * 4 * 4).map(|v| v as f32).collect();
        let batch = Tensor::from_vec(data.clone(), (3, 2, 4, 4), &candle_core::Device::Cpu).unwrap();
        let fill = [-1.0, -2.0];
        let out = a.apply_batch(&batch, &samples, &fill).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (i, &s) in samples.iter().enumerate() {
            let mut one = data[i * 32..(i + 1) * 32].to_vec();
            a.apply(s, &mut one, [2, 4, 4], &fill);
            assert_eq!(out[i * 32..(i + 1) * 32], one[..]);
        }
    }
}
