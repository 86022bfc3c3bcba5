//! Which ONNX IR version and opsets the exporter writes, and which IR/opset pairs are valid.

use super::OnnxError;

/// The IR version of the files written: readable by onnxruntime >= 1.11, tract, and every
/// runtime that reads opset 17.
pub const IR_VERSION: i64 = 8;

/// The opset written unless `--opset` says otherwise: the first with LayerNormalization.
pub const DEFAULT_OPSET: i64 = 17;

/// The oldest opset the exporter writes. Every op it emits has, from opset 13 on, the semantics
/// used here; older runtimes are not worth the combinations to test.
pub const MIN_OPSET: i64 = 13;

/// `(IR version, newest default-domain opset it can import)`, from the ONNX release table
/// (onnx `helper.VERSION_TABLE`).
const IR_MAX_OPSET: [(i64, i64); 9] = [(3, 8), (4, 9), (5, 10), (6, 11), (7, 14), (8, 18), (9, 20), (10, 22), (11, 23)];

/// The newest default-domain opset a model of `ir_version` may import; `None` for an IR version
/// this table does not know.
pub fn max_opset(ir_version: i64) -> Option<i64> {
    IR_MAX_OPSET.iter().find(|(ir, _)| *ir == ir_version).map(|(_, opset)| *opset)
}

/// Checks `requested` against what the graph needs (`required`, from the ops it uses) and what
/// [`IR_VERSION`] allows; the error names the valid range for this model.
pub fn resolve(model: &str, requested: i64, required: i64) -> Result<i64, OnnxError> {
    let max = max_opset(IR_VERSION).expect("IR_VERSION is in the table");
    let min = MIN_OPSET.max(required);
    if (min..=max).contains(&requested) {
        return Ok(requested);
    }
    let why = if required > MIN_OPSET {
        format!(
            "its graph uses an op that first appears in opset {required}, and IR version \
             {IR_VERSION} allows at most opset {max}"
        )
    } else {
        format!(
            "the exporter writes opsets from {MIN_OPSET}, and IR version {IR_VERSION} allows at \
             most opset {max}"
        )
    };
    Err(OnnxError::Opset { model: model.to_owned(), requested, min, max, why })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ir_8_reads_opsets_up_to_18() {
        assert_eq!(max_opset(8), Some(18));
        assert_eq!(max_opset(7), Some(14));
        assert_eq!(max_opset(99), None);
    }

    #[test]
    fn layer_norm_models_start_at_17_and_others_at_13() {
        assert_eq!(resolve("cnn", 13, 12).expect("valid"), 13);
        assert_eq!(resolve("convnext", 18, 17).expect("valid"), 18);
        let err = resolve("convnext", 16, 17).expect_err("no LayerNormalization in 16");
        assert!(err.to_string().contains("use --opset 17..=18"), "{err}");
        let err = resolve("cnn", 12, 12).expect_err("below the floor");
        assert!(err.to_string().contains("use --opset 13..=18"), "{err}");
        let err = resolve("cnn", 19, 12).expect_err("IR 8 stops at 18");
        assert!(err.to_string().contains("IR version 8 allows at most opset 18"), "{err}");
    }
}
