//! The `candlecutter` command line: argument definitions and what each subcommand does.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::{Error, Result};
use crate::generate::{self, Request};
use crate::placeholders::{Given, Placeholders};
use crate::{embedded, name, values};

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
}

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
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::New(args) => new(args),
        Command::Variants => variants(),
    }
}

fn new(args: NewArgs) -> Result<()> {
    let placeholders = Placeholders::from_template()?;
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
    let path =
        generate::generate(&Request { name: args.name.clone(), destination, values: values.clone(), interactive })?;

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
    for define in &args.define {
        let (key, value) = define.split_once('=').ok_or_else(|| Error::MalformedDefine(define.clone()))?;
        if key.trim().is_empty() {
            return Err(Error::MalformedDefine(define.clone()));
        }
        given.push(flag(key.trim(), value, "--define"));
    }
    Ok(given)
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
