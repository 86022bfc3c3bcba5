//! Small image-folder data sets for tests, written from scratch (PNG through flate2) so nothing
//! is downloaded and no image crate is needed here.

use std::io::Write;
use std::path::Path;

/// The classes of [`write_folder`], as the data type must report them (sorted folder names).
pub const CLASSES: [&str; 3] = ["bluish", "greenish", "reddish"];

/// An 8-bit RGB PNG of `width` x `height` from `rgb` (row by row, 3 bytes a pixel).
pub fn write_png(path: &Path, width: u32, height: u32, rgb: &[u8]) -> std::io::Result<()> {
    assert_eq!(rgb.len(), (width * height * 3) as usize, "one RGB triple per pixel");
    let chunk = |out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]| {
        out.extend((data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend(crc.sum().to_be_bytes());
    };
    let mut header = Vec::new();
    header.extend(width.to_be_bytes());
    header.extend(height.to_be_bytes());
    header.extend([8, 2, 0, 0, 0]); // 8 bits, RGB, deflate, no filter method, no interlace
    let mut raw = Vec::with_capacity(rgb.len() + height as usize);
    for row in rgb.chunks(width as usize * 3) {
        raw.push(0); // filter: none
        raw.extend_from_slice(row);
    }
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&raw)?;
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &header);
    chunk(&mut png, b"IDAT", &encoder.finish()?);
    chunk(&mut png, b"IEND", &[]);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, png)
}

/// A learnable image of class `class` (an index into [`CLASSES`]): that colour channel bright,
/// the others noisy, `width` x `height`.
pub fn class_image(class: usize, width: u32, height: u32, seed: u32) -> Vec<u8> {
    // CLASSES is sorted by name: bluish, greenish, reddish -> channels 2, 1, 0.
    let bright = 2 - class;
    (0..width * height)
        .flat_map(|p| {
            let noise = ((p.wrapping_mul(2_654_435_761).wrapping_add(seed.wrapping_mul(40_503))) >> 24) as u8 / 2;
            (0..3).map(move |c| if c == bright { 180 + noise / 2 } else { noise })
        })
        .collect()
}

/// `root/<split>/<class>/<i>.png` for every class: `per_class` images of several sizes (none
/// square, none 28x28), plus a text file in each class folder that the loader must skip.
pub fn write_folder(root: &Path, split: &str, per_class: usize) -> std::io::Result<()> {
    for (class, name) in CLASSES.iter().enumerate() {
        let dir = root.join(split).join(name);
        for i in 0..per_class {
            let (width, height) = (20 + (i % 4) as u32 * 5, 17 + (i % 3) as u32 * 6);
            write_png(&dir.join(format!("{i}.png")), width, height, &class_image(class, width, height, i as u32))?;
        }
        std::fs::write(dir.join("notes.txt"), "not an image")?;
    }
    Ok(())
}
