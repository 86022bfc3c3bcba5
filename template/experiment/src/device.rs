//! Which device to train on: `auto`, `cpu`, `cuda` or `cuda:N`, and choosing it with a reason.

use candle_core::Device;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// CUDA device 0 when built with the `cuda` feature and a GPU is present, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

impl std::str::FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("expected \"auto\", \"cpu\", \"cuda\" or \"cuda:N\", got {s:?}")),
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => write!(f, "auto"),
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl serde::Serialize for DeviceSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DeviceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "device \"{0}\" needs the `cuda` feature, and this binary was built without it; \
         rebuild with `cargo run --release --features cuda -- train`, or set \"device\": \"cpu\""
    )]
    NotCompiled(DeviceSpec),
    #[error("device \"{spec}\" is not usable ({source}); {available}")]
    Unavailable { spec: DeviceSpec, source: Box<candle_core::Error>, available: String },
}

impl DeviceSpec {
    /// The device to use, and why, for the log.
    pub fn select(self) -> Result<(Device, String), DeviceError> {
        let cuda_built = candle_core::utils::cuda_is_available();
        match self {
            Self::Cpu => Ok((Device::Cpu, "device \"cpu\" in the config".into())),
            Self::Cuda(_) if !cuda_built => Err(DeviceError::NotCompiled(self)),
            Self::Cuda(n) => {
                Device::new_cuda(n).map(|d| (d, format!("device \"{self}\" in the config"))).map_err(|source| {
                    DeviceError::Unavailable {
                        spec: self,
                        source: Box::new(source),
                        available: available_cuda_devices(),
                    }
                })
            }
            Self::Auto if !cuda_built => {
                Ok((Device::Cpu, "auto: built without the `cuda` feature, using the CPU".into()))
            }
            Self::Auto => match Device::new_cuda(0) {
                Ok(d) => Ok((d, "auto: built with `cuda` and a GPU is present, using cuda:0".into())),
                Err(e) => Ok((Device::Cpu, format!("auto: no usable GPU ({e}), using the CPU"))),
            },
        }
    }
}

impl DeviceSpec {
    /// The device of the process with `local_rank` among a data-parallel job's processes on this
    /// machine, one GPU each: the configured CUDA ordinal plus the local rank (`"cuda"` puts
    /// local rank 1 on cuda:1), unless the launcher left each rank a single visible GPU
    /// (`CUDA_VISIBLE_DEVICES` with one entry, as `srun --gpus-per-task=1` does), which is then the
    /// configured one; the CPU is every rank's CPU.
    pub fn select_for(self, local_rank: usize) -> Result<(Device, String), DeviceError> {
        match self {
            _ if local_rank == 0 => self.select(),
            Self::Cuda(_) if one_visible_gpu(std::env::var("CUDA_VISIBLE_DEVICES").ok().as_deref()) => {
                let (device, _) = self.select()?;
                Ok((
                    device,
                    format!("device \"{self}\" in the config: the one GPU CUDA_VISIBLE_DEVICES leaves this rank"),
                ))
            }
            Self::Cuda(n) => {
                let (device, _) = Self::Cuda(n + local_rank).select()?;
                Ok((
                    device,
                    format!("device \"{self}\" in the config, plus local rank {local_rank}: cuda:{}", n + local_rank),
                ))
            }
            // Rank 0 of this machine takes cuda:0 when it opens; then every rank needs its own GPU.
            Self::Auto if candle_core::utils::cuda_is_available() && Device::new_cuda(0).is_ok() => {
                Self::Cuda(0).select_for(local_rank)
            }
            _ => self.select(),
        }
    }
}

/// Whether `CUDA_VISIBLE_DEVICES` (its value) leaves the process exactly one GPU.
fn one_visible_gpu(visible: Option<&str>) -> bool {
    visible.is_some_and(|v| v.split(',').filter(|d| !d.trim().is_empty()).count() == 1)
}

/// The CUDA devices that open, in words, for error messages.
fn available_cuda_devices() -> String {
    let usable: Vec<String> =
        (0..16).take_while(|i| Device::new_cuda(*i).is_ok()).map(|i| format!("cuda:{i}")).collect();
    if usable.is_empty() {
        "no CUDA device is usable here; set \"device\": \"cpu\"".into()
    } else {
        format!("the usable devices are {}", usable.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_and_round_trips() {
        for (text, spec) in [("auto", DeviceSpec::Auto), ("cpu", DeviceSpec::Cpu), ("cuda:3", DeviceSpec::Cuda(3))] {
            assert_eq!(text.parse::<DeviceSpec>().unwrap(), spec);
            assert_eq!(spec.to_string(), text);
        }
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        for bad in ["gpu", "cuda:", "cuda:x", "CPU", ""] {
            assert!(bad.parse::<DeviceSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn cpu_and_auto_without_cuda_select_the_cpu() {
        let (device, why) = DeviceSpec::Cpu.select().unwrap();
        assert!(device.is_cpu(), "{why}");
        if !candle_core::utils::cuda_is_available() {
            let (device, why) = DeviceSpec::Auto.select().unwrap();
            assert!(device.is_cpu());
            assert!(why.contains("without the `cuda` feature"), "{why}");
        }
    }

    #[test]
    fn a_rank_left_one_gpu_by_its_launcher_takes_it() {
        assert!(one_visible_gpu(Some("3")));
        assert!(one_visible_gpu(Some("GPU-5f2c1a")));
        assert!(!one_visible_gpu(Some("0,1")));
        assert!(!one_visible_gpu(Some("")));
        assert!(!one_visible_gpu(None));
    }

    #[test]
    fn cuda_without_the_feature_says_how_to_enable_it() {
        if candle_core::utils::cuda_is_available() {
            return;
        }
        let msg = DeviceSpec::Cuda(0).select().unwrap_err().to_string();
        assert!(msg.contains("--features cuda"), "{msg}");
    }
}
