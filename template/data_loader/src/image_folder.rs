//! A folder per class, the most common layout of all: `root/train/<class>/<image>`, with optional
//! `root/val/<class>/...` and `root/test/<class>/...` beside it. Class names are the folder names of
//! `train/`, sorted by their bytes (so `"10"` comes before `"9"`), the same in every split; `val/`
//! and `test/` may lack a class but not add one. PNG, JPEG and BMP files are images (by
//! extension, any case); other files are skipped and counted. Every image is converted to the
//! configured channels (1: grey, 3: RGB) and resized to the configured size with a triangle
//! filter, ignoring its aspect ratio.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// The file extensions read as images.
pub const EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

/// How every image of a split is turned into a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageFormat {
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// `(height, width)` after resizing.
    pub size: (usize, usize),
}

impl ImageFormat {
    /// `[channels, height, width]`.
    pub fn sample_shape(&self) -> [usize; 3] {
        [self.channels, self.size.0, self.size.1]
    }

    /// Values per sample.
    pub fn sample_len(&self) -> usize {
        self.channels * self.size.0 * self.size.1
    }

    /// Decodes `path` into `out` as bytes, channel by channel, row by row.
    pub fn decode_into(&self, path: &Path, out: &mut Vec<u8>) -> Result<()> {
        let unreadable = |reason: String| DataError::Unreadable { path: path.to_path_buf(), reason };
        let image = image::ImageReader::open(path)
            .map_err(|source| DataError::Io { path: path.to_path_buf(), source })?
            .with_guessed_format()
            .map_err(|source| DataError::Io { path: path.to_path_buf(), source })?
            .decode()
            .map_err(|e| unreadable(e.to_string()))?;
        let (height, width) = self.size;
        let (w, h) = (width as u32, height as u32);
        let image = if image.width() == w && image.height() == h {
            image
        } else {
            image.resize_exact(w, h, image::imageops::FilterType::Triangle)
        };
        if self.channels == 1 {
            out.extend_from_slice(image.to_luma8().as_raw());
        } else {
            let rgb = image.to_rgb8();
            for channel in 0..3 {
                out.extend(rgb.pixels().map(|p| p.0[channel]));
            }
        }
        Ok(())
    }
}

/// The images of one split and their labels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// `(file, label)`, sorted by class, then by file name.
    pub files: Vec<(PathBuf, u32)>,
    /// Files that are not images (by extension), left out.
    pub not_images: usize,
    /// Images left out because they could not be read (with `skip_unreadable`).
    pub unreadable: Vec<PathBuf>,
}

/// The class names: the sub-folders of `root/train`, sorted. Errors when `train/` is missing or
/// has no class folder.
pub fn classes(root: &Path) -> Result<Vec<String>> {
    let train = root.join("train");
    if !train.is_dir() {
        return Err(DataError::Layout {
            path: train,
            problem: "no such folder: an image-folder data set needs `train/<class>/<image>` files \
                      (and optionally `val/` and `test/` laid out the same way)"
                .into(),
        });
    }
    let classes = sub_folders(&train)?;
    if classes.is_empty() {
        return Err(DataError::Layout {
            path: train,
            problem: "has no class folders: put each class's images in a folder named after the class, \
                      e.g. train/cat/1.png"
                .into(),
        });
    }
    Ok(classes)
}

/// The images of `root/split` for `classes` (the training split's). A split folder may lack a
/// class but not have one that `classes` lacks; in `train/` every class needs an image. With
/// `skip_unreadable`, files whose header cannot be read are left out and listed; otherwise the
/// first is an error naming it.
pub fn list(root: &Path, split: &str, classes: &[String], skip_unreadable: bool) -> Result<Listing> {
    let dir = root.join(split);
    let mut listing = Listing::default();
    for folder in sub_folders(&dir)? {
        if !classes.contains(&folder) {
            return Err(DataError::Layout {
                path: dir.join(&folder),
                problem: format!(
                    "is a class that train/ does not have (its classes: {classes:?}); add it to train/ or \
                     remove it from {split}/"
                ),
            });
        }
    }
    for (label, class) in classes.iter().enumerate() {
        let folder = dir.join(class);
        if !folder.is_dir() {
            if split == "train" {
                return Err(DataError::Layout { path: folder, problem: "missing".into() });
            }
            continue;
        }
        let mut images = Vec::new();
        for entry in read_dir(&folder)? {
            let path = entry.path();
            if !path.is_file() {
                continue;
            }
            if !is_image(&path) {
                listing.not_images += 1;
                continue;
            }
            match image::ImageReader::open(&path).and_then(|r| r.with_guessed_format()).map(|r| r.into_dimensions()) {
                Ok(Ok(_)) => images.push(path),
                Ok(Err(e)) if skip_unreadable => {
                    let _ = e;
                    listing.unreadable.push(path);
                }
                Ok(Err(e)) => return Err(DataError::Unreadable { path, reason: e.to_string() }),
                Err(source) => return Err(DataError::Io { path, source }),
            }
        }
        if images.is_empty() && split == "train" {
            return Err(DataError::Layout {
                path: folder,
                problem: "has no readable PNG, JPEG or BMP image: add images or remove the class folder".into(),
            });
        }
        images.sort();
        listing.files.extend(images.into_iter().map(|p| (p, label as u32)));
    }
    if listing.files.is_empty() {
        return Err(DataError::Layout { path: dir, problem: "has no images".into() });
    }
    Ok(listing)
}

fn is_image(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    let io = |source| DataError::Io { path: dir.to_path_buf(), source };
    std::fs::read_dir(dir).map_err(io)?.collect::<std::io::Result<Vec<_>>>().map_err(io)
}

/// The names of the folders in `dir`, sorted; hidden ones (`.git`, ...) left out.
fn sub_folders(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = read_dir(dir)?
        .into_iter()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}
