//! The fast CPU path of the layers in `model`, and the process set-up that keeps it fast. **This
//! crate needs no editing**: your models and layers live in `model/`, your data in `data_loader/`;
//! they call in here, as do the loss (`experiment`) and the optimisers (`training`).
//!
//! - [`conv`]: 2-D convolution (`im2col` + GEMM, depthwise) with fused backward passes;
//! - [`linear`]: the fully connected layer's product onto its bias, one op forward;
//! - [`activation`]: ReLU and the exact GELU, one op forward and one backward each;
//! - [`pool`]: max-pooling with the gradient at each window's first maximum (and the same
//!   function with tensor ops for other devices);
//! - [`norm`]: layer normalisation over one dimension, one op each way;
//! - [`loss`]: cross-entropy with label smoothing, one op each way;
//! - [`optim`]: the AdamW and SGD updates, one in-place pass over each parameter;
//! - [`alloc`]: the global allocator that reuses large buffers between steps;
//! - [`runtime`]: thread count, allocator settings and the thread pool the program runs on.
//!
//! Every kernel is a candle custom op on f32 CPU tensors; the layers fall back to candle's own
//! ops on other devices (with the same gradients), and the tests here compare each kernel with
//! candle's ops or finite differences.

pub mod activation;
pub mod alloc;
mod buffer;
pub mod conv;
pub mod linear;
pub mod loss;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod runtime;
mod simd;
