//! The binary's own smoke test. (It also makes `cargo test` build the `candlecutter` binary,
//! which the end-to-end tests at the repository root run.)

use std::process::Command;

#[test]
fn variants_lists_every_placeholder_with_its_choices_and_every_preset() {
    let out = Command::new(env!("CARGO_BIN_EXE_candlecutter")).arg("variants").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for expected in ["backend", "cpu | cuda", "mlp | cnn | convnext", "onnx", "true | false", "mnist-cnn-cpu"] {
        assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
    }
}
