//! Pixel standardisation, channel by channel: `(pixel / 255 - mean[c]) / std[c]`, so inputs are
//! roughly zero-mean and unit-variance, which keeps early activations and gradients in the range
//! the default initialisations expect. [`ChannelStats`] measures the numbers on a data set (what
//! `"normalize": "auto"` uses).

use candle_core::Tensor;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::{DataError, Result};

/// The standardisation of every channel. In a config, `mean` and `std` are each one number (the
/// same for every channel) or one number per channel: `{"mean": [0.49, 0.48, 0.45], "std": 0.25}`.
/// Unknown fields are an error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    pub mean: PerChannel,
    pub std: PerChannel,
}

/// `data_loader.args.normalize`: the numbers, or `"auto"`: measured on the training split when
/// training starts (see [`ChannelStats`]) and written into the run's config.json, so that
/// evaluation, prediction and export use exactly the numbers training used.
#[derive(Clone, Debug, PartialEq)]
pub enum NormalizeSetting {
    Auto,
    Fixed(Normalize),
}

impl NormalizeSetting {
    /// The numbers; for `"auto"`, an error naming the setting (`section` is where it sits in the
    /// config, e.g. `data_loader.args`) and saying where the measured numbers are.
    pub fn fixed(&self, section: &str) -> Result<&Normalize> {
        match self {
            Self::Fixed(normalize) => Ok(normalize),
            Self::Auto => Err(DataError::InvalidNormalize(format!(
                "`{section}.normalize` is \"auto\", which training measures and writes into the run's config.json; use that \
                 config (the default for a checkpoint: leave out --config), or give the numbers"
            ))),
        }
    }
}

/// One number for every channel, or one per channel.
#[derive(Clone, Debug, PartialEq)]
pub struct PerChannel(pub Vec<f32>);

impl Normalize {
    /// The same `mean` and `std` for every channel.
    pub fn uniform(mean: f32, std: f32) -> Self {
        Self { mean: PerChannel(vec![mean]), std: PerChannel(vec![std]) }
    }

    /// No standardisation: pixels scaled to [0, 1] only.
    pub fn identity() -> Self {
        Self::uniform(0.0, 1.0)
    }

    /// Per-channel numbers for images of `channels` channels: one number is repeated, a list must
    /// have exactly `channels` entries. Refuses numbers that would turn pixels into NaN or infinity.
    pub fn for_channels(&self, channels: usize) -> Result<Channels> {
        let expand = |what: &str, values: &PerChannel| match values.0.len() {
            1 => Ok(vec![values.0[0]; channels]),
            n if n == channels => Ok(values.0.clone()),
            n => Err(DataError::InvalidNormalize(format!(
                "`{what}` has {n} values but the images have {channels} channels: give one number, or one per channel"
            ))),
        };
        let (mean, std) = (expand("mean", &self.mean)?, expand("std", &self.std)?);
        if let Some(c) = (0..channels).find(|&c| !mean[c].is_finite()) {
            return Err(DataError::InvalidNormalize(format!(
                "`mean` of channel {c} is {}: it must be a finite number",
                mean[c]
            )));
        }
        if let Some(c) = (0..channels).find(|&c| !std[c].is_finite() || std[c] <= 0.0) {
            return Err(DataError::InvalidNormalize(format!(
                "`std` of channel {c} is {}: it must be a finite number above 0 (1 leaves the pixels as they are)",
                std[c]
            )));
        }
        Ok(Channels { mean, std })
    }

    /// Whether the numbers are usable for some channel count: no empty list, lists of one
    /// length (or one number), every mean finite and every std finite and > 0.
    pub fn validate(&self) -> Result<()> {
        let (m, s) = (self.mean.0.len(), self.std.0.len());
        if m == 0 || s == 0 {
            return Err(DataError::InvalidNormalize("`mean` and `std` need at least one number".into()));
        }
        if m != s && m != 1 && s != 1 {
            return Err(DataError::InvalidNormalize(format!(
                "`mean` has {m} values and `std` {s}: give one per channel in both, or one number"
            )));
        }
        self.for_channels(m.max(s)).map(drop)
    }
}

/// Standardisation resolved for a channel count: exactly one mean and one std per channel (for a
/// table's feature vectors, per feature: dimension 1 is the "channel" of both).
#[derive(Clone, Debug, PartialEq)]
pub struct Channels {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Channels {
    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// The normalised value of one raw pixel of channel `c`.
    pub fn apply(&self, c: usize, pixel: u8) -> f32 {
        (f32::from(pixel) / 255.0 - self.mean[c]) / self.std[c]
    }

    /// Each channel's value of a black pixel (byte 0): what crops pad with.
    pub fn black(&self) -> Vec<f32> {
        (0..self.channels()).map(|c| self.apply(c, 0)).collect()
    }

    /// Per channel, raw pixel byte -> normalised value.
    pub fn tables(&self) -> Vec<[f32; 256]> {
        (0..self.channels()).map(|c| std::array::from_fn(|p| self.apply(c, p as u8))).collect()
    }

    /// Standardises `[n, channels, ...]` values (images scaled to [0, 1], as `predict` and the
    /// ONNX checks prepare them, or `[n, features]` table rows), with the same arithmetic as the tables.
    pub fn apply_tensor(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = self.broadcast_dims(x.rank());
        let mean = Tensor::from_slice(&self.mean, dims.as_slice(), x.device())?;
        let std = Tensor::from_slice(&self.std, dims.as_slice(), x.device())?;
        x.broadcast_sub(&mean)?.broadcast_div(&std)
    }

    /// `[1, channels, 1, ...]` for inputs of rank `rank`: the shape the means and stds broadcast
    /// from (the ONNX graph's constants have it too).
    pub fn broadcast_dims(&self, rank: usize) -> Vec<usize> {
        let mut dims = vec![1; rank.max(2)];
        dims[1] = self.channels();
        dims
    }
}

/// Running sums of pixel values per channel, for measuring a data set's mean and std.
#[derive(Clone, Debug)]
pub struct ChannelStats {
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
    count: u64,
}

impl ChannelStats {
    pub fn new(channels: usize) -> Self {
        Self { sum: vec![0.0; channels], sum_sq: vec![0.0; channels], count: 0 }
    }

    /// Adds one sample's raw bytes, channel by channel (`channels x plane` bytes).
    pub fn add(&mut self, sample: &[u8]) {
        let plane = sample.len() / self.sum.len();
        if plane == 0 {
            return;
        }
        for (c, values) in sample.chunks_exact(plane).enumerate() {
            let (mut s, mut sq) = (0u64, 0u64);
            for &p in values {
                s += u64::from(p);
                sq += u64::from(p) * u64::from(p);
            }
            self.sum[c] += s as f64 / 255.0;
            self.sum_sq[c] += sq as f64 / (255.0 * 255.0);
        }
        self.count += plane as u64;
    }

    /// The measured mean and (population) std per channel, rounded to 4 decimals so that the
    /// resolved config reads well; a constant channel gets std 1 (it carries no information).
    pub fn finish(&self) -> Result<Normalize> {
        if self.count == 0 {
            return Err(DataError::InvalidNormalize("\"auto\" needs at least one training image".into()));
        }
        let n = self.count as f64;
        let round = |v: f64| ((v * 1e4).round() / 1e4) as f32;
        let mean: Vec<f32> = self.sum.iter().map(|&s| round(s / n)).collect();
        let std = self
            .sum
            .iter()
            .zip(&self.sum_sq)
            .map(|(&s, &sq)| {
                let var = (sq / n - (s / n) * (s / n)).max(0.0);
                let std = round(var.sqrt());
                if std > 0.0 { std } else { 1.0 }
            })
            .collect();
        Ok(Normalize { mean: PerChannel(mean), std: PerChannel(std) })
    }
}

impl Serialize for PerChannel {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => serializer.serialize_f32(*one),
            many => many.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for PerChannel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct PerChannelVisitor;
        impl<'de> Visitor<'de> for PerChannelVisitor {
            type Value = PerChannel;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number, or a list of one number per channel")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<PerChannel, E> {
                Ok(PerChannel(vec![v as f32]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<PerChannel, E> {
                Ok(PerChannel(vec![v as f32]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<PerChannel, E> {
                Ok(PerChannel(vec![v as f32]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<PerChannel, A::Error> {
                let mut values = Vec::new();
                while let Some(v) = seq.next_element::<f32>()? {
                    values.push(v);
                }
                if values.is_empty() {
                    return Err(de::Error::invalid_length(0, &self));
                }
                Ok(PerChannel(values))
            }
        }
        deserializer.deserialize_any(PerChannelVisitor)
    }
}

impl Serialize for NormalizeSetting {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Self::Auto => serializer.serialize_str("auto"),
            Self::Fixed(normalize) => normalize.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for NormalizeSetting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct SettingVisitor;
        impl<'de> Visitor<'de> for SettingVisitor {
            type Value = NormalizeSetting;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#""auto" or {"mean": ..., "std": ...} (a number or one per channel each)"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<NormalizeSetting, E> {
                match v {
                    "auto" => Ok(NormalizeSetting::Auto),
                    _ => Err(de::Error::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> std::result::Result<NormalizeSetting, A::Error> {
                Normalize::deserialize(de::value::MapAccessDeserializer::new(map)).map(NormalizeSetting::Fixed)
            }
        }
        deserializer.deserialize_any(SettingVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn one_number_is_every_channel_and_a_list_is_one_per_channel() {
        let n: Normalize = serde_json::from_str(r#"{"mean": 0.5, "std": [0.1, 0.2, 0.4]}"#).unwrap();
        let c = n.for_channels(3).unwrap();
        assert_eq!(c.mean, [0.5; 3]);
        assert_eq!(c.std, [0.1, 0.2, 0.4]);
        assert_eq!(c.apply(2, 255), (1.0 - 0.5) / 0.4);
        let err = n.for_channels(1).unwrap_err().to_string();
        assert!(err.contains("`std` has 3 values but the images have 1 channels"), "{err}");
        // Written back as it was given.
        assert_eq!(serde_json::to_string(&n).unwrap(), r#"{"mean":0.5,"std":[0.1,0.2,0.4]}"#);
    }

    #[test]
    fn bad_numbers_and_bad_settings_are_refused_by_name() {
        for (json, needle) in [
            (r#"{"mean": 0.5, "std": 0}"#, "`std` of channel 0 is 0: it must be a finite number above 0"),
            (r#"{"mean": [0.1, 1e39], "std": 1}"#, "`mean` of channel 1 is inf"),
            (r#"{"mean": [0.1, 0.2], "std": [1, 1, 1]}"#, "`mean` has 2 values and `std` 3"),
        ] {
            let n: Normalize = serde_json::from_str(json).unwrap();
            let err = n.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{json}: {err}");
        }
        for (json, needle) in [
            (r#""automatic""#, r#""auto" or {"mean""#),
            (r#"{"mean": 0.1, "stdev": 0.3}"#, "unknown field `stdev`"),
            (r#"{"mean": [], "std": 1}"#, "invalid length 0"),
        ] {
            let err = serde_json::from_str::<NormalizeSetting>(json).unwrap_err().to_string();
            assert!(err.contains(needle), "{json}: {err}");
        }
        assert_eq!(serde_json::from_str::<NormalizeSetting>(r#""auto""#).unwrap(), NormalizeSetting::Auto);
        let err = NormalizeSetting::Auto.fixed("data_loader.args").unwrap_err().to_string();
        assert!(err.contains("`data_loader.args.normalize` is \"auto\"") && err.contains("run's config.json"), "{err}");
    }

    #[test]
    fn measured_statistics_are_those_of_the_pixels() {
        let mut stats = ChannelStats::new(2);
        // Channel 0: 0 and 255 (mean 0.5, std 0.5); channel 1: constant 51 (mean 0.2, std 0 -> 1).
        stats.add(&[0, 255, 51, 51]);
        stats.add(&[255, 0, 51, 51]);
        let n = stats.finish().unwrap();
        assert_eq!(n.mean.0, [0.5, 0.2]);
        assert_eq!(n.std.0, [0.5, 1.0]);
        assert!(ChannelStats::new(3).finish().is_err());
    }

    #[test]
    fn tensors_are_standardised_as_the_tables_do() {
        let c =
            Normalize { mean: PerChannel(vec![0.2, 0.6]), std: PerChannel(vec![0.5, 0.25]) }.for_channels(2).unwrap();
        let pixels = [0u8, 128, 255, 17];
        let x: Vec<f32> = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
        let x = Tensor::from_vec(x, (1, 2, 1, 2), &Device::Cpu).unwrap();
        let got = c.apply_tensor(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let tables = c.tables();
        let want: Vec<f32> = pixels.iter().enumerate().map(|(i, &p)| tables[i / 2][usize::from(p)]).collect();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-6, "{got:?} {want:?}");
        }
    }
}
