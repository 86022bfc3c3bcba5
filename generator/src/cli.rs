//! The `candlecutter` command line: argument definitions and what each subcommand does.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::error::{Error, Result};
use crate::generate::{self, Request};
use crate::placeholders::{Given, Placeholders};
use crate::template::Template;
use crate::{embedded, name, update, values};

#[derive(Debug, Parser)]
#[command(name = "candlecutter", version, about = "Start a Candle deep-learning project that trains out of the box")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a new training workspace in DESTINATION/NAME.
    New(NewArgs),
    /// List the template's placeholders with their choices and defaults, and the presets.
    Variants,
    /// Bring this candlecutter's template into a project generated from an earlier one, keeping
    /// your edits (three-way merge; conflicts are marked and named, and exit with status 3).
    Update(UpdateArgs),
    /// Maintainers: stamp a template folder with its hash, or snapshot it for generator/releases/.
    #[command(hide = true)]
    Template(TemplateArgs),
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The generated project (default: the current folder).
    pub project: Option<PathBuf>,
    /// Print what would change and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only say whether a newer template is available: exit status 0 if not, 4 if it is.
    #[arg(long, conflicts_with_all = ["dry_run", "base_template"])]
    pub check: bool,
    /// Update even with uncommitted changes (the update's changes then mix with yours in git).
    #[arg(long)]
    pub allow_dirty: bool,
    /// The template the project was generated from, when this candlecutter does not carry it: a
    /// checkout of candlecutter at that version, or its template/ folder. With --define, adopts a
    /// project generated before candlecutter recorded its template in .candlecutter.toml.
    #[arg(long, value_name = "PATH")]
    pub base_template: Option<PathBuf>,
    /// Update to the template in this folder instead of the one built in (a candlecutter checkout
    /// or its template/ folder).
    #[arg(long, value_name = "PATH")]
    pub template: Option<PathBuf>,
    /// Answer a placeholder (repeatable): one the newer template adds, or, when adopting, every
    /// answer the project was generated with.
    #[arg(long, short = 'd', value_name = "KEY=VALUE")]
    pub define: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TemplateArgs {
    #[command(subcommand)]
    pub action: TemplateAction,
}

#[derive(Debug, Subcommand)]
pub enum TemplateAction {
    /// Write this binary's version and the folder's hash into its .candlecutter.toml.liquid.
    Stamp {
        dir: PathBuf,
        /// The version to record [default: this binary's].
        #[arg(long)]
        version: Option<String>,
    },
    /// Write a compressed snapshot of the folder (for generator/releases/).
    Snapshot {
        dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

/// `update` exits with this when conflicts remain.
pub const EXIT_CONFLICTS: u8 = 3;
/// `update --check` exits with this when a newer template is available.
pub const EXIT_NEWER: u8 = 4;

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The project's name: its folder and its package name (for example my-mnist).
    pub name: String,
    /// The folder to create the project in (default: the current folder).
    #[arg(long, value_name = "DIR")]
    pub destination: Option<PathBuf>,
    /// Compute backend: cpu or cuda.
    #[arg(long)]
    pub backend: Option<String>,
    /// Model to start from: mlp, cnn or convnext.
    #[arg(long)]
    pub model: Option<String>,
    /// Include ONNX export (the default).
    #[arg(long, overrides_with = "no_onnx")]
    pub onnx: bool,
    /// Leave ONNX export out.
    #[arg(long)]
    pub no_onnx: bool,
    /// Start from a named preset (see `candlecutter variants`).
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// Read placeholder values from a cargo-generate values file ([values] table).
    #[arg(long, value_name = "FILE")]
    pub values_file: Option<PathBuf>,
    /// Set any placeholder, as in cargo generate (repeatable): -d model=mlp
    #[arg(long, short = 'd', value_name = "KEY=VALUE")]
    pub define: Vec<String>,
    /// Ask for the placeholders not given (only when standard input is a terminal).
    #[arg(long)]
    pub interactive: bool,
    /// Generate from the template in this folder instead of the one built in (a candlecutter
    /// checkout or its template/ folder; for template development).
    #[arg(long, value_name = "PATH")]
    pub template: Option<PathBuf>,
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::New(args) => new(args).map(|()| ExitCode::SUCCESS),
        Command::Variants => variants().map(|()| ExitCode::SUCCESS),
        Command::Update(args) => update(args),
        Command::Template(args) => template_action(args).map(|()| ExitCode::SUCCESS),
    }
}

fn new(args: NewArgs) -> Result<()> {
    let template = match &args.template {
        Some(path) => Template::from_dir(path)?,
        None => Template::built_in()?,
    };
    template.check_stamped()?;
    let placeholders = Placeholders::parse(template.config()?)?;
    name::validate(&args.name, &embedded::workspace_names()?)?;

    // Later layers win: preset, then values file, then the command line.
    let mut layers = Vec::new();
    if let Some(preset) = &args.preset {
        layers.push(values::preset(preset)?.values);
    }
    if let Some(path) = &args.values_file {
        layers.push(values::read_file(path)?);
    }
    layers.push(command_line_values(&args)?);

    let interactive = args.interactive && std::io::stdin().is_terminal();
    let values = placeholders.resolve(&layers, !interactive)?;
    let destination = match args.destination {
        Some(dir) => dir,
        None => std::env::current_dir().map_err(crate::error::io("reading the current folder"))?,
    };
    let path = generate::generate(&Request {
        name: args.name.clone(),
        destination,
        values: values.clone(),
        interactive,
        template,
    })?;

    println!("Generated {} in {}", args.name, path.display());
    for (key, value) in &values {
        println!("  {key:<12} {value}");
    }
    let cuda = values.get("backend").is_some_and(|b| b == "cuda");
    println!("\nNext:");
    println!("  cd {}", path.display());
    println!("  cargo run --release -- download   # MNIST into data/, checked against its SHA-256");
    println!("  cargo run --release -- train");
    println!("  cargo test                        # the project's own tests");
    if cuda {
        println!(
            "  # CUDA builds need the CUDA toolkit (nvcc); without it: cargo run --release --no-default-features -- train"
        );
    }
    Ok(())
}

/// The values given by --backend, --model, --onnx/--no-onnx and --define, in one layer.
fn command_line_values(args: &NewArgs) -> Result<Vec<Given>> {
    let flag =
        |key: &str, value: &str, source: &str| Given { key: key.into(), value: value.into(), source: source.into() };
    let mut given = Vec::new();
    if let Some(backend) = &args.backend {
        given.push(flag("backend", backend, "--backend"));
    }
    if let Some(model) = &args.model {
        given.push(flag("model", model, "--model"));
    }
    if args.onnx {
        given.push(flag("onnx", "true", "--onnx"));
    }
    if args.no_onnx {
        given.push(flag("onnx", "false", "--no-onnx"));
    }
    given.extend(defines(&args.define)?);
    Ok(given)
}

/// `--define KEY=VALUE` arguments as given values.
fn defines(defines: &[String]) -> Result<Vec<Given>> {
    let mut given = Vec::new();
    for define in defines {
        let (key, value) = define.split_once('=').ok_or_else(|| Error::MalformedDefine(define.clone()))?;
        if key.trim().is_empty() {
            return Err(Error::MalformedDefine(define.clone()));
        }
        given.push(Given { key: key.trim().into(), value: value.into(), source: "--define".into() });
    }
    Ok(given)
}

fn update(args: UpdateArgs) -> Result<ExitCode> {
    let options = update::Options {
        project: args.project.unwrap_or_else(|| PathBuf::from(".")),
        template: args.template,
        base_template: args.base_template,
        define: defines(&args.define)?,
        dry_run: args.dry_run,
        allow_dirty: args.allow_dirty,
        // A test hook: make the n-th file operation fail, to prove that nothing is left half-done.
        fail_at: std::env::var("CANDLECUTTER_UPDATE_FAIL_AT").ok().and_then(|n| n.parse().ok()),
    };
    if args.check {
        return Ok(match update::check(&options)? {
            Some((have, available)) => {
                println!("template {available} is available (this project has {have}): run `candlecutter update`");
                ExitCode::from(EXIT_NEWER)
            }
            None => {
                println!("up to date with this candlecutter's template");
                ExitCode::SUCCESS
            }
        });
    }
    let report = update::update(&options)?;
    print!("{}", describe_update(&report));
    Ok(if report.conflicts().is_empty() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_CONFLICTS) })
}

/// The update's report: one line per file that something happened to, then a summary.
pub fn describe_update(report: &update::Report) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let w = &mut out;
    if report.up_to_date {
        let _ = writeln!(w, "already at template {}; nothing to do", report.to);
        return out;
    }
    if !report.finished {
        let verb = if report.dry_run { "would update" } else { "updating" };
        let _ = writeln!(w, "{verb} from template {} to {}", report.from, report.to);
    }
    for line in &report.lines {
        let note = line.note.as_ref().map(|n| format!("  ({n})")).unwrap_or_default();
        let _ = writeln!(w, "  {:<15} {}{note}", line.action.word(), line.path);
    }
    let conflicts = report.conflicts();
    let mut counts: Vec<(usize, &str)> = Vec::new();
    for action in [
        update::Action::Updated,
        update::Action::Merged,
        update::Action::Conflict,
        update::Action::Kept,
        update::Action::Added,
        update::Action::Removed,
        update::Action::DeletedByYou,
    ] {
        let n = report.lines.iter().filter(|l| l.action == action).count();
        if n > 0 {
            counts.push((n, action.word()));
        }
    }
    let counts: Vec<String> = counts.iter().map(|(n, word)| format!("{n} {word}")).collect();
    let summary = if counts.is_empty() { String::new() } else { format!("{}, ", counts.join(", ")) };
    if !report.finished {
        let _ = writeln!(w, "{summary}{} unchanged", report.unchanged);
    }
    if report.finished {
        if conflicts.is_empty() {
            let done = if report.dry_run { "would be recorded" } else { "recorded" };
            let _ = writeln!(w, "conflicts resolved; template {} {done} in .candlecutter.toml", report.to);
        } else {
            let _ = writeln!(
                w,
                "conflict markers remain in {}: resolve them, then run `candlecutter update` again",
                conflicts.join(", ")
            );
        }
    } else if report.dry_run {
        let _ = writeln!(w, "dry run: nothing was written");
    } else if conflicts.is_empty() {
        let _ = writeln!(w, "done: the project is at template {} (review with `git diff`)", report.to);
    } else {
        let _ = writeln!(
            w,
            "NOT finished: {} conflicted file(s): {}\nResolve the <<<<<<< markers (or undo everything with \
             `git checkout . && git clean -fd`), then run `candlecutter update` again to record template {}",
            conflicts.len(),
            conflicts.join(", "),
            report.to
        );
    }
    out
}

fn template_action(args: TemplateArgs) -> Result<()> {
    match args.action {
        TemplateAction::Stamp { dir, version } => {
            let version = version.as_deref().unwrap_or(env!("CARGO_PKG_VERSION"));
            let hash = crate::template::stamp(&dir, version)?;
            println!("{version} {hash}");
        }
        TemplateAction::Snapshot { dir, out } => {
            let template = crate::template::Template::from_dir(&dir)?;
            template.check_stamped()?;
            let bytes = template.snapshot()?;
            let tmp = out.with_extension("partial");
            std::fs::write(&tmp, bytes).map_err(crate::error::io(format!("writing {}", tmp.display())))?;
            std::fs::rename(&tmp, &out).map_err(crate::error::io(format!("writing {}", out.display())))?;
            println!("{} {} -> {}", template.version, template.hash, out.display());
        }
    }
    Ok(())
}

fn variants() -> Result<()> {
    let placeholders = Placeholders::from_template()?;
    println!("Placeholders (set with --define KEY=VALUE, or in a values file):");
    for p in placeholders.iter() {
        println!("  {:<12} {:<22} default {:<10} {}", p.name, p.describe_choices(), p.default, p.prompt);
    }
    println!("  {:<12} {:<22} from $CARGO_NAME/$CARGO_EMAIL or git config", "authors", "(built in)");
    println!("\nPresets (use with --preset NAME; the files are in examples/):");
    for preset in values::presets()? {
        let values: Vec<String> = preset.values.iter().map(|g| format!("{}={}", g.key, g.value)).collect();
        println!("  {:<22} {:<40} {}", preset.name, values.join(" "), preset.summary);
    }
    Ok(())
}
