//! Optimisers (`config.json` `optimizer`): AdamW with decoupled weight decay and SGD with
//! momentum, Nesterov and weight decay, written out so that their state can be checkpointed and
//! restored exactly. Updates follow PyTorch's `torch.optim.AdamW` and `torch.optim.SGD`.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, Var};
pub use experiment::optimizer::{AdamWArgs, OptimizerConfig, SgdArgs};

use kernels::optim::{FusedUpdate, Rule};

/// One parameter and its optimiser state (AdamW: the first and second moments; SGD: the momentum
/// buffer; empty until the first step).
struct Slot {
    name: String,
    var: Var,
    /// Tensors on the parameter's device, for the tensor-op update.
    state: Vec<Tensor>,
    /// Host buffers, for the fused in-place CPU update.
    host: Vec<Vec<f32>>,
}

impl Slot {
    /// CPU f32 parameters get the fused update.
    fn fusable(&self) -> bool {
        self.var.device().is_cpu() && self.var.dtype() == DType::F32
    }
}

pub struct Optimizer {
    config: OptimizerConfig,
    slots: Vec<Slot>,
    steps: u64,
    /// Use the fused CPU update where it applies (tests turn it off to compare both).
    fused: bool,
}

impl Optimizer {
    /// Optimise `vars` (name, variable), e.g. from `VarMap::data()`.
    pub fn new(config: &OptimizerConfig, vars: impl IntoIterator<Item = (String, Var)>) -> Self {
        let mut slots: Vec<Slot> =
            vars.into_iter().map(|(name, var)| Slot { name, var, state: Vec::new(), host: Vec::new() }).collect();
        slots.sort_by(|a, b| a.name.cmp(&b.name));
        Self { config: config.clone(), slots, steps: 0, fused: true }
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Apply one update with learning rate `lr` (from the scheduler).
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.steps += 1;
        for slot in &mut self.slots {
            let Some(grad) = grads.get(slot.var.as_tensor()) else { continue };
            if self.fused && slot.fusable() {
                fused_step(&self.config, slot, grad, lr, self.steps)?;
            } else {
                tensor_step(&self.config, slot, grad, lr, self.steps)?;
            }
        }
        Ok(())
    }

    /// The state as named tensors (`<param>.<state index>`), for a checkpoint.
    pub fn state_tensors(&self) -> HashMap<String, Tensor> {
        let mut tensors = HashMap::new();
        for slot in &self.slots {
            for (i, t) in slot.state.iter().enumerate() {
                tensors.insert(format!("{}.{i}", slot.name), t.clone());
            }
            for (i, buffer) in slot.host.iter().enumerate() {
                let t = Tensor::from_slice(buffer, slot.var.shape(), slot.var.device())
                    .expect("a host buffer has its parameter's size");
                tensors.insert(format!("{}.{i}", slot.name), t);
            }
        }
        tensors
    }

    /// Restore what [`Optimizer::state_tensors`] and [`Optimizer::steps`] returned.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, steps: u64) -> Result<()> {
        for slot in &mut self.slots {
            let saved = (0..).map_while(|i| tensors.get(&format!("{}.{i}", slot.name)));
            if self.fused && slot.fusable() {
                slot.host = saved.map(|t| t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()).collect::<Result<_>>()?;
                slot.state.clear();
            } else {
                slot.state = saved.map(|t| t.to_device(slot.var.device())).collect::<Result<_>>()?;
                slot.host.clear();
            }
        }
        self.steps = steps;
        Ok(())
    }
}

/// The update as tensor ops: works on every device and dtype.
fn tensor_step(config: &OptimizerConfig, slot: &mut Slot, grad: &Tensor, lr: f64, step: u64) -> Result<()> {
    let t = step as i32;
    let param = slot.var.as_tensor();
    match config {
        OptimizerConfig::Adamw(a) => {
            if slot.state.is_empty() {
                slot.state = vec![grad.zeros_like()?, grad.zeros_like()?];
            }
            let m = ((&slot.state[0] * a.beta1)? + (grad * (1.0 - a.beta1))?)?;
            let v = ((&slot.state[1] * a.beta2)? + (grad.sqr()? * (1.0 - a.beta2))?)?;
            let m_hat = (&m / (1.0 - a.beta1.powi(t)))?;
            let v_hat = (&v / (1.0 - a.beta2.powi(t)))?;
            let decayed = (param * (1.0 - lr * a.weight_decay))?;
            let update = (m_hat / (v_hat.sqrt()? + a.eps)?)?;
            slot.var.set(&(decayed - (update * lr)?)?)?;
            slot.state = vec![m, v];
        }
        OptimizerConfig::Sgd(s) => {
            let mut d = if s.weight_decay > 0.0 { (grad + (param * s.weight_decay)?)? } else { grad.clone() };
            if s.momentum > 0.0 {
                let buf = match slot.state.first() {
                    Some(buf) => ((buf * s.momentum)? + &d)?,
                    None => d.clone(),
                };
                d = if s.nesterov { (&d + (&buf * s.momentum)?)? } else { buf.clone() };
                slot.state = vec![buf];
            }
            slot.var.set(&(param - (d * lr)?)?)?;
        }
    }
    Ok(())
}

/// The same update in one in-place pass over a CPU f32 parameter.
fn fused_step(config: &OptimizerConfig, slot: &mut Slot, grad: &Tensor, lr: f64, step: u64) -> Result<()> {
    let n = slot.var.elem_count();
    let (rule, buffers) = match config {
        OptimizerConfig::Adamw(a) => {
            let t = step as i32;
            let rule = Rule::AdamW {
                decay: (1.0 - lr * a.weight_decay) as f32,
                beta1: a.beta1 as f32,
                beta2: a.beta2 as f32,
                eps: a.eps as f32,
                lr: lr as f32,
                bias1: (1.0 - a.beta1.powi(t)) as f32,
                bias2: (1.0 - a.beta2.powi(t)) as f32,
            };
            (rule, 2)
        }
        OptimizerConfig::Sgd(s) => {
            let rule = Rule::Sgd {
                lr: lr as f32,
                momentum: s.momentum as f32,
                nesterov: s.nesterov,
                weight_decay: s.weight_decay as f32,
                first: slot.host.is_empty(),
            };
            (rule, usize::from(s.momentum > 0.0))
        }
    };
    if slot.host.len() != buffers {
        slot.host = vec![vec![0.0; n]; buffers];
    }
    let grad = if grad.is_contiguous() { grad.clone() } else { grad.contiguous()? };
    let update = FusedUpdate { rule, state: std::cell::RefCell::new(&mut slot.host) };
    slot.var.as_tensor().inplace_op2(&grad, &update)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn run(config: OptimizerConfig, steps: usize) -> Vec<f32> {
        let w = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
        let mut opt = Optimizer::new(&config, [("w".to_string(), w.clone())]);
        for _ in 0..steps {
            // loss = sum(w^2) / 2, so the gradient is w itself.
            let loss = (w.as_tensor().sqr().unwrap().sum_all().unwrap() * 0.5).unwrap();
            let lr = config.lr();
            opt.step(&loss.backward().unwrap(), lr).unwrap();
        }
        w.as_tensor().to_vec1().unwrap()
    }

    /// By hand: m = 0.1 g, v = 0.001 g^2, m_hat = g, v_hat = g^2, update = g / (|g| + eps) = sign(g).
    /// w = w (1 - lr wd) - lr sign(w) = [1 * 0.999 - 0.1, -2 * 0.999 + 0.1] = [0.899, -1.898].
    #[test]
    fn adamw_first_step_matches_hand_computation() {
        let cfg = OptimizerConfig::Adamw(AdamWArgs { lr: 0.1, weight_decay: 0.01, ..Default::default() });
        let w = run(cfg, 1);
        assert!((w[0] - 0.899).abs() < 1e-6 && (w[1] + 1.898).abs() < 1e-6, "{w:?}");
    }

    /// By hand with g = w: step 1 buf = g = 1, w = 1 - 0.1 = 0.9;
    /// step 2 g = 0.9, buf = 0.5 * 1 + 0.9 = 1.4, w = 0.9 - 0.14 = 0.76.
    /// Nesterov: step 1 d = 1 + 0.5 * 1 = 1.5, w = 0.85; step 2 g = 0.85, buf = 0.5 + 0.85 = 1.35,
    /// d = 0.85 + 0.675 = 1.525, w = 0.85 - 0.1525 = 0.6975.
    #[test]
    fn sgd_momentum_and_nesterov_match_hand_computation() {
        let plain = SgdArgs { lr: 0.1, momentum: 0.5, nesterov: false, weight_decay: 0.0 };
        assert!((run(OptimizerConfig::Sgd(plain.clone()), 2)[0] - 0.76).abs() < 1e-6);
        let nesterov = SgdArgs { nesterov: true, ..plain };
        assert!((run(OptimizerConfig::Sgd(nesterov), 2)[0] - 0.6975).abs() < 1e-6);
    }

    #[test]
    fn restored_state_continues_identically() {
        let cfg = OptimizerConfig::Adamw(AdamWArgs::default());
        let straight = run(cfg.clone(), 4);

        let w = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
        let mut first = Optimizer::new(&cfg, [("w".to_string(), w.clone())]);
        let grad_step = |opt: &mut Optimizer| {
            let loss = (w.as_tensor().sqr().unwrap().sum_all().unwrap() * 0.5).unwrap();
            opt.step(&loss.backward().unwrap(), cfg.lr()).unwrap();
        };
        grad_step(&mut first);
        grad_step(&mut first);
        let mut second = Optimizer::new(&cfg, [("w".to_string(), w.clone())]);
        second.load_state(&first.state_tensors(), first.steps()).unwrap();
        grad_step(&mut second);
        grad_step(&mut second);
        assert_eq!(w.as_tensor().to_vec1::<f32>().unwrap(), straight);
    }

    /// The fused CPU update and the tensor-op update (the GPU path) agree, step after step, for
    /// every rule; and a checkpointed fused state continues like the tensor state.
    #[test]
    fn fused_update_matches_the_tensor_ops() {
        let rules = [
            OptimizerConfig::Adamw(AdamWArgs { lr: 0.01, ..Default::default() }),
            OptimizerConfig::Sgd(SgdArgs { lr: 0.05, momentum: 0.9, nesterov: false, weight_decay: 0.01 }),
            OptimizerConfig::Sgd(SgdArgs { lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 0.0 }),
            OptimizerConfig::Sgd(SgdArgs { lr: 0.05, momentum: 0.0, nesterov: false, weight_decay: 0.1 }),
        ];
        for config in rules {
            let init: Vec<f32> = (0..40_000).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
            let trajectories: Vec<Vec<f32>> = [true, false]
                .into_iter()
                .map(|fused| {
                    let w = Var::from_slice(&init, (200, 200), &Device::Cpu).unwrap();
                    let mut opt = Optimizer::new(&config, [("w".to_string(), w.clone())]);
                    opt.fused = fused;
                    for _ in 0..5 {
                        // loss = sum(w^3) / 3: the gradient w^2 changes with every step.
                        let loss = (w.as_tensor().powf(3.0).unwrap().sum_all().unwrap() / 3.0).unwrap();
                        opt.step(&loss.backward().unwrap(), config.lr()).unwrap();
                    }
                    let state = opt.state_tensors();
                    assert_eq!(state.len(), opt.slots[0].state.len() + opt.slots[0].host.len());
                    w.as_tensor().flatten_all().unwrap().to_vec1().unwrap()
                })
                .collect();
            let worst = trajectories[0].iter().zip(&trajectories[1]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "{config:?}: fused and tensor updates differ by {worst}");
        }
    }
}
