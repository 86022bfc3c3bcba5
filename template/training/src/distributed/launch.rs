//! Which group this process was started as: alone (as `cargo run -- train` starts it), or as one
//! rank of a job an MPI launcher started (`mpirun -np N`, `mpiexec`, Slurm's `srun`).

use super::{CollectiveError, Group};

/// The launchers we recognise, by the world size each puts in every rank's environment.
const WORLD_SIZE_VARIABLES: [(&str, &str); 3] = [
    ("OMPI_COMM_WORLD_SIZE", "Open MPI's mpirun"),
    ("PMI_SIZE", "MPICH's mpiexec (Hydra)"),
    ("SLURM_STEP_NUM_TASKS", "Slurm's srun"),
];

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(
        "this process is one of {world} started by {launcher} ({variable}={world}), but the binary was built \
         without the `distributed` feature, so each would train alone; rebuild with \
         `cargo build --release --features distributed` (it needs an MPI library: see \"More than one \
         process\" in README.md), or start one process without the launcher"
    )]
    NotBuilt { world: usize, launcher: &'static str, variable: &'static str },
    #[error("starting MPI: {0}")]
    Mpi(#[from] CollectiveError),
    #[error(
        "{launcher} started {world} processes ({variable}={world}), but MPI sees {mpi} in this one's job, so \
         each would train alone; the MPI library this binary uses cannot talk to that launcher: under Slurm try \
         `srun --mpi=pmix` (or `--mpi=pmi2`; `srun --mpi=list` shows the choices), or start the job with the \
         `mpirun` of the MPI the program was built against"
    )]
    WorldMismatch { world: usize, mpi: usize, launcher: &'static str, variable: &'static str },
}

/// How many processes the launcher started, by which launcher, from `variable`; `None` when no
/// launcher started this one.
pub fn launched_world(env: impl Fn(&str) -> Option<String>) -> Option<(usize, &'static str, &'static str)> {
    WORLD_SIZE_VARIABLES
        .iter()
        .find_map(|(variable, launcher)| Some((env(variable)?.trim().parse().ok()?, *launcher, *variable)))
}

/// The group this process belongs to: [`Group::single`] unless a launcher started more than one
/// process, in which case MPI is initialised (with the `distributed` feature) and this is one rank.
pub fn from_environment() -> Result<Group, LaunchError> {
    match launched_world(|name| std::env::var(name).ok()) {
        None | Some((0 | 1, _, _)) => Ok(Group::single()),
        Some((world, launcher, variable)) => join(world, launcher, variable),
    }
}

#[cfg(feature = "distributed")]
fn join(world: usize, launcher: &'static str, variable: &'static str) -> Result<Group, LaunchError> {
    use super::Collective;
    let mpi = super::mpi::Mpi::init()?;
    // A launcher MPI cannot talk to leaves every process an MPI job of its own.
    if mpi.world() != world {
        return Err(LaunchError::WorldMismatch { world, mpi: mpi.world(), launcher, variable });
    }
    Ok(Group::new(std::sync::Arc::new(mpi)))
}

#[cfg(not(feature = "distributed"))]
fn join(world: usize, launcher: &'static str, variable: &'static str) -> Result<Group, LaunchError> {
    Err(LaunchError::NotBuilt { world, launcher, variable })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn each_launcher_is_recognised_and_no_launcher_is_one_process() {
        assert_eq!(launched_world(env(&[])), None);
        assert_eq!(launched_world(env(&[("OMPI_COMM_WORLD_SIZE", "4")])).map(|w| w.0), Some(4));
        assert_eq!(launched_world(env(&[("PMI_SIZE", "2")])).map(|w| w.0), Some(2));
        assert_eq!(launched_world(env(&[("SLURM_STEP_NUM_TASKS", "8")])).map(|w| w.0), Some(8));
        // sbatch's own script (no srun step) is not a rank.
        assert_eq!(launched_world(env(&[("SLURM_NTASKS", "8")])), None);
    }

    #[test]
    fn a_launch_without_the_feature_says_how_to_build_it() {
        if cfg!(feature = "distributed") {
            return;
        }
        let err = join(2, "Open MPI's mpirun", "OMPI_COMM_WORLD_SIZE").unwrap_err().to_string();
        assert!(err.contains("--features distributed") && err.contains("one of 2"), "{err}");
    }
}
