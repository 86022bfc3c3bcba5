//! Edits a user makes to a generated project, as the generated README describes them.

use std::path::Path;

/// `(text to find, text to put after it)` in the generated `model/src/cnn.rs`: a BatchNorm after
/// `conv1` (the README's example of changing a model).
pub const BATCH_NORM_AFTER_CONV1: [(&str, &str); 4] = [
    ("use crate::pool::{Flatten, MaxPool2d};\n", "use crate::batch_norm::{BatchNorm2d, batch_norm2d};\n"),
    ("    conv1: Conv2d,\n", "    bn1: BatchNorm2d,\n"),
    ("vb.pp(\"conv1\"))?.with_relu(),\n", "            bn1: batch_norm2d(CONV1_CHANNELS, vb.pp(\"bn1\"))?,\n"),
    ("let x = f.layer(&self.conv1, &x)?; // [batch, 32, h - 2, w - 2]\n", "        let x = f.layer(&self.bn1, &x)?;\n"),
];

/// Insert each addition after its anchor in the file at `path`.
pub fn insert_after(path: &Path, edits: &[(&str, &str)]) -> Result<(), String> {
    let mut text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for (anchor, addition) in edits {
        let at = text.find(anchor).ok_or(format!("{} no longer has {anchor:?}; update this test", path.display()))?;
        text.insert_str(at + anchor.len(), addition);
    }
    std::fs::write(path, text).map_err(|e| e.to_string())
}
