//! Rendering the embedded template with cargo-generate's own engine, so that `candlecutter new`
//! and `cargo generate --path template` cannot drift apart, and doing it atomically: the project
//! is rendered into a hidden staging folder beside its final place and renamed into place only
//! once complete. On failure nothing is left behind, and an existing folder is never touched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result, io};
use crate::template::Template;

pub struct Request {
    pub name: String,
    /// The folder the project goes into (as `destination/name`); created if missing.
    pub destination: PathBuf,
    /// Placeholder values, already checked.
    pub values: BTreeMap<String, String>,
    /// Let cargo-generate prompt for the placeholders not in `values`.
    pub interactive: bool,
    pub template: Template,
}

/// Generate the project and return its path.
pub fn generate(request: &Request) -> Result<PathBuf> {
    let destination = std::path::absolute(&request.destination)
        .map_err(io(format!("resolving {}", request.destination.display())))?;
    let target = destination.join(&request.name);
    if target.symlink_metadata().is_ok() {
        return Err(Error::DestinationExists { path: target });
    }
    let created = CreatedDirs::create(&destination)?;

    let result = render_into_place(request, &destination, &target);
    if result.is_err() {
        created.remove();
    }
    result.map(|()| target)
}

fn render_into_place(request: &Request, destination: &Path, target: &Path) -> Result<()> {
    // Same file system as the target, so the final rename is atomic.
    let staging = tempfile::Builder::new()
        .prefix(".candlecutter-")
        .tempdir_in(destination)
        .map_err(io(format!("creating a staging folder in {}", destination.display())))?;
    let rendered = request.template.render_into(staging.path(), &request.name, &request.values, request.interactive)?;

    if target.symlink_metadata().is_ok() {
        return Err(Error::DestinationExists { path: target.to_path_buf() });
    }
    std::fs::rename(&rendered, target).map_err(io(format!("moving the project into {}", target.display())))?;
    Ok(())
    // `staging` is removed when dropped, on success and on error alike.
}

/// The folders `create` had to make, so that a failed generation can remove them again.
struct CreatedDirs(Vec<PathBuf>);

impl CreatedDirs {
    fn create(dir: &Path) -> Result<Self> {
        let mut missing: Vec<PathBuf> =
            dir.ancestors().take_while(|d| d.symlink_metadata().is_err()).map(Path::to_path_buf).collect();
        missing.reverse();
        for d in &missing {
            std::fs::create_dir(d).map_err(io(format!("creating {}", d.display())))?;
        }
        Ok(Self(missing))
    }

    /// Remove the created folders, deepest first, as long as they are empty.
    fn remove(self) {
        for d in self.0.iter().rev() {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
        }
    }
}
