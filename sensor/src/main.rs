//! `osect-sensor`: the command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use osect_sensor::config::Config;
use osect_sensor::logs::sensor_log;
use osect_sensor::pipeline;

#[derive(Parser)]
#[command(
    name = "osect-sensor",
    version,
    about = "OT network sensor: packets to Zeek-compatible logs and minute bundles"
)]
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

/// Exit codes: 0 success, 1 runtime failure (unreadable capture, output error), 2 bad
/// invocation or configuration (nothing was started).
fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Replay {
            files,
            out,
            config,
            bundles,
            seed,
            ignore_checksums,
        } => {
            let mut cfg = match load_config(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if seed.is_some() {
                cfg.conn.uid_seed = seed;
            }
            if ignore_checksums {
                cfg.decode.verify_checksums = false;
            }
            sensor_log::init(
                bundles.then(|| out.join("sensor.log")).as_deref(),
                if bundles {
                    log::LevelFilter::Info
                } else {
                    log::LevelFilter::Warn
                },
            );
            match pipeline::replay(&files, &out, &cfg, bundles) {
                Ok(report) => {
                    let s = &report.stats;
                    eprintln!(
                        "osect-sensor: {} packets, {} connections, {} records written to {}",
                        s.packets_read,
                        s.flows_created,
                        s.records_written,
                        out.display()
                    );
                    if report.errors.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        for e in &report.errors {
                            eprintln!("osect-sensor: {e}");
                        }
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("osect-sensor: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Cmd::Run { config } => {
            let cfg = match load_config(Some(&config)) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if cfg.capture.interface.is_none() {
                eprintln!(
                    "osect-sensor: config file {}: capture.interface: required for run",
                    config.display()
                );
                return ExitCode::from(2);
            }
            sensor_log::init(Some(&cfg.output.sensor_log), log::LevelFilter::Info);
            let stop = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
                    eprintln!("osect-sensor: cannot install signal handler: {e}");
                    return ExitCode::from(1);
                }
            }
            match pipeline::run_live(&cfg, stop) {
                Ok(s) => {
                    log::info!("stopped: {}", s.to_line());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    log::error!("{e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn load_config(path: Option<&Path>) -> Result<Config, ExitCode> {
    match path {
        None => Config::builtin(),
        Some(p) => Config::load(p),
    }
    .map_err(|e| {
        eprintln!("osect-sensor: {e}");
        ExitCode::from(2)
    })
}
