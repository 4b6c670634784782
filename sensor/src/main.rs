//! `osect-sensor`: the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "osect-sensor", version, about = "OT network sensor: packets to Zeek-compatible logs and minute bundles")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Read capture files (pcap or pcapng) and write the logs, like `zeek -r`.
    Replay {
        /// Capture files, read in the order given.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Folder for the logs (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Config file (TOML); defaults apply without one.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Cut the output by packet time into interval folders and bundles, as `run` does.
        #[arg(long)]
        bundles: bool,
        /// Seed for connection uids (reproducible output).
        #[arg(long)]
        seed: Option<u64>,
        /// Do not verify checksums (Zeek's -C).
        #[arg(short = 'C', long)]
        ignore_checksums: bool,
    },
    /// Capture live from the configured interface.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Replay { .. } | Cmd::Run { .. } => {
            eprintln!("osect-sensor: not implemented yet");
            ExitCode::from(1)
        }
    }
}
