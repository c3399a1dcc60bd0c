//! The `fargate-operator` binary: `run` the controllers or print the `crd`s.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use fargate_operator::api::{crd_file_content, crd_file_name, crds};
use fargate_operator::config::{Cli, Command};

fn print_crds(out_dir: Option<std::path::PathBuf>) -> Result<(), Box<dyn std::error::Error>> {
    match out_dir {
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for crd in crds() {
                // An error, not print!'s panic, when the reader has gone (`crd | head`).
                write!(out, "---\n{}", serde_yaml::to_string(&crd)?)?;
            }
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            for crd in crds() {
                std::fs::write(dir.join(crd_file_name(&crd)), crd_file_content(&crd)?)?;
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { out_dir } => match print_crds(out_dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("fargate-operator crd: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Run(config) => {
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(err) => {
                    eprintln!("fargate-operator: cannot start the async runtime: {err}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(fargate_operator::operator::run(*config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!(%err, "fargate-operator stopped");
                    eprintln!("fargate-operator: {err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
