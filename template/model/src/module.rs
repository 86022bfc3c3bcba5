//! A model is written once. Its layers ([`Layer`]: a forward pass and an ONNX emission each) are
//! composed in a [`Module::run`], generic over a [`Flow`]: the same `run` trains and infers with
//! candle tensors ([`Candle`]) and records the ONNX graph ([`Export`]), so the exported graph is
//! the model that trained, layer for layer. Ordinary Rust control flow in `run` (loops over
//! blocks, an `if` on the config, a residual `f.add`) is fine: it runs once per export, like
//! `torch.onnx.export` tracing, so what is exported is the path taken for the configured model.
//! A branch on the *values* of a tensor cannot be exported (the graph has no control flow).

use candle_core::{Result, Tensor};

use crate::DataSpec;
use crate::graph::{Graph, Value};
use crate::output::Unstandardize;

/// One layer: its forward pass, and the ONNX ops that compute exactly the same at inference.
pub trait Layer: Send + Sync {
    /// The layer's VarBuilder prefix (`blocks.1.dw`, which names its checkpoint keys), or `""`
    /// for a layer without parameters (it is then named after the layer before it).
    fn path(&self) -> &str {
        ""
    }

    /// A short name of the kind of layer (`relu`), for messages.
    fn kind(&self) -> &'static str;

    /// `train` enables dropout and batch statistics; evaluation and inference pass `false`.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor>;

    /// Appends the inference-time computation to `g`; `x` is the layer's input. The default says
    /// that this layer cannot be exported, which fails `export` before anything is written.
    fn emit(&self, _g: &mut Graph, _x: &Value) -> Result<Value> {
        candle_core::bail!(
            "has no ONNX emission ({}): implement `Layer::emit` for it, or build it from layers that have one \
             (model/src/ lists them)",
            std::any::type_name::<Self>()
        )
    }
}

/// What a forward pass runs on: candle tensors ([`Candle`]) or the ONNX graph ([`Export`]).
pub trait Flow {
    type Value: Clone;

    /// Runs one layer on `x`.
    fn layer<L: Layer + ?Sized>(&mut self, layer: &L, x: &Self::Value) -> Result<Self::Value>;

    /// `a + b`, elementwise (a residual connection).
    fn add(&mut self, a: &Self::Value, b: &Self::Value) -> Result<Self::Value>;
}

/// Something with a forward pass written once: a layer, a block of layers, a whole model.
pub trait Module: Send + Sync {
    fn run<F: Flow>(&self, f: &mut F, x: F::Value) -> Result<F::Value>;
}

impl<L: Layer> Module for L {
    fn run<F: Flow>(&self, f: &mut F, x: F::Value) -> Result<F::Value> {
        f.layer(self, &x)
    }
}

/// Modules applied in order.
impl<M: Module> Module for Vec<M> {
    fn run<F: Flow>(&self, f: &mut F, x: F::Value) -> Result<F::Value> {
        self.iter().try_fold(x, |x, m| m.run(f, x))
    }
}

/// A module that may be absent (the identity then).
impl<M: Module> Module for Option<M> {
    fn run<F: Flow>(&self, f: &mut F, x: F::Value) -> Result<F::Value> {
        match self {
            Some(m) => m.run(f, x),
            None => Ok(x),
        }
    }
}

/// Layers of different kinds applied in order: `Sequential::new().add(conv).add(Relu)`.
#[derive(Default)]
pub struct Sequential(Vec<Box<dyn Layer>>);

impl Sequential {
    pub fn new() -> Self {
        Self::default()
    }

    /// `self` followed by `layer`.
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, layer: impl Layer + 'static) -> Self {
        self.0.push(Box::new(layer));
        self
    }
}

impl Module for Sequential {
    fn run<F: Flow>(&self, f: &mut F, x: F::Value) -> Result<F::Value> {
        self.0.iter().try_fold(x, |x, layer| f.layer(layer.as_ref(), &x))
    }
}

/// Names each layer's output: its path, or `<kind> after <previous path>` without parameters.
#[derive(Debug, Default)]
struct Names {
    last: String,
}

impl Names {
    fn of(&mut self, path: &str, kind: &str) -> String {
        if path.is_empty() {
            if self.last.is_empty() { format!("{kind} (first layer)") } else { format!("{kind} after {}", self.last) }
        } else {
            self.last = path.to_owned();
            path.to_owned()
        }
    }
}

/// The forward pass with candle tensors; with tracing on, every layer's output is kept by name.
#[derive(Debug, Default)]
pub struct Candle {
    pub train: bool,
    trace: Option<Vec<(String, Tensor)>>,
    names: Names,
}

impl Candle {
    pub fn new(train: bool) -> Self {
        Self { train, ..Default::default() }
    }

    /// Inference that keeps every layer's output (see [`Candle::outputs`]).
    pub fn tracing() -> Self {
        Self { trace: Some(Vec::new()), ..Default::default() }
    }

    /// The layers' outputs by name, in the order they ran (empty unless tracing).
    pub fn outputs(self) -> Vec<(String, Tensor)> {
        self.trace.unwrap_or_default()
    }

    fn keep(&mut self, path: &str, kind: &str, y: &Tensor) {
        if let Some(trace) = &mut self.trace {
            trace.push((self.names.of(path, kind), y.clone()));
        }
    }
}

impl Flow for Candle {
    type Value = Tensor;

    fn layer<L: Layer + ?Sized>(&mut self, layer: &L, x: &Tensor) -> Result<Tensor> {
        let y = layer.forward_t(x, self.train)?;
        self.keep(layer.path(), layer.kind(), &y);
        Ok(y)
    }

    fn add(&mut self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let y = (a + b)?;
        self.keep("", "add", &y);
        Ok(y)
    }
}

/// The forward pass recorded as an ONNX graph, each layer's output marked with its name.
pub struct Export<'g> {
    g: &'g mut Graph,
    names: Names,
}

impl<'g> Export<'g> {
    pub fn new(g: &'g mut Graph) -> Self {
        Self { g, names: Names::default() }
    }
}

impl Flow for Export<'_> {
    type Value = Value;

    fn layer<L: Layer + ?Sized>(&mut self, layer: &L, x: &Value) -> Result<Value> {
        let name = self.names.of(layer.path(), layer.kind());
        let y = layer.emit(self.g, x).map_err(|e| candle_core::Error::Msg(format!("export: layer `{name}`: {e}")))?;
        self.g.mark(&name, &y);
        Ok(y)
    }

    fn add(&mut self, a: &Value, b: &Value) -> Result<Value> {
        let name = self.names.of("", "add");
        let y = self.g.node("Add", 7, &[a, b], vec![], "Add");
        self.g.mark(&name, &y);
        Ok(y)
    }
}

/// A trained model as everything after training sees it: outputs `[batch, outputs]` (logits of
/// the classes or labels, or values in their own units) from samples `[batch, ...input_shape]`.
///
/// `Send + Sync` so a model can sit behind an `Arc` in a server or be shared with a data-loading thread.
pub trait Classifier: Send + Sync {
    /// `train = true` enables dropout (and batch statistics); evaluation and inference pass
    /// `false`, which is deterministic.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor>;

    /// Records the inference-time model into `g`: `x` is the standardised input, the result the
    /// outputs. Models built from [`Module`]s ([`Network`]) record their layers; other
    /// classifiers (an ONNX file run by tract, say) cannot be exported.
    fn emit(&self, _g: &mut Graph, _x: &Value) -> Result<Value> {
        candle_core::bail!("this classifier is not built from layers and cannot be exported")
    }

    /// Inference on `xs` that returns every layer's output by name (the last one is the outputs).
    fn trace(&self, xs: &Tensor) -> Result<Vec<(String, Tensor)>> {
        Ok(vec![("logits".to_owned(), self.forward_t(xs, false)?)])
    }
}

/// A [`Module`] built for a data spec, as a [`Classifier`] (what the registry returns): the
/// module, then the output layer the target needs ([`Unstandardize`] for scaled values).
pub struct Network<M> {
    spec: DataSpec,
    module: M,
    output: Option<Unstandardize>,
}

impl<M: Module> Network<M> {
    pub fn new(spec: &DataSpec, module: M) -> Self {
        Self { spec: spec.clone(), module, output: Unstandardize::for_target(&spec.target) }
    }

    fn run<F: Flow>(&self, f: &mut F, x: F::Value) -> Result<F::Value> {
        let y = self.module.run(f, x)?;
        self.output.run(f, y)
    }
}

impl<M: Module> Classifier for Network<M> {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.spec.check_input(xs)?;
        self.run(&mut Candle::new(train), xs.clone())
    }

    fn emit(&self, g: &mut Graph, x: &Value) -> Result<Value> {
        self.run(&mut Export::new(g), x.clone())
    }

    fn trace(&self, xs: &Tensor) -> Result<Vec<(String, Tensor)>> {
        self.spec.check_input(xs)?;
        let mut flow = Candle::tracing();
        self.run(&mut flow, xs.clone())?;
        Ok(flow.outputs())
    }
}
