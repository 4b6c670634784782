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
        /// Suricata rule files to run against the capture (alerts go to eve.json).
        #[arg(long, num_args = 1..)]
        rules: Vec<String>,
        /// Checksum checks as Suricata's -k: `none` or `all`.
        #[arg(short = 'k', value_name = "none|all")]
        checksum_mode: Option<String>,
        /// Suricata-style settings (`stream.midstream=true`, `vars.address-groups.HOME_NET=...`).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Signature rule tools.
    Rules {
        #[command(subcommand)]
        cmd: RulesCmd,
    },
    /// Capture live from the configured interface.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum RulesCmd {
    /// Parse rule files and print what loads and what is skipped, by reason.
    Check {
        /// Rule files, folders or globs (default: the config's detect.rules).
        files: Vec<String>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Applies Suricata `--set KEY=VALUE` settings the sensor understands; others are warned about.
fn apply_sets(cfg: &mut Config, sets: &[String]) -> Result<(), String> {
    for s in sets {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| format!("--set {s}: expected KEY=VALUE"))?;
        let truthy = matches!(v, "true" | "yes" | "1" | "on");
        if k == "stream.midstream" {
            cfg.detect.midstream = truthy;
        } else if let Some(name) = k
            .strip_prefix("vars.address-groups.")
            .or_else(|| k.strip_prefix("vars.port-groups."))
        {
            match name {
                "HOME_NET" => cfg.detect.home_net = Some(v.to_string()),
                "EXTERNAL_NET" => cfg.detect.external_net = Some(v.to_string()),
                _ => {
                    cfg.detect.vars.insert(name.to_string(), v.to_string());
                }
            }
        } else if k == "classification-file" {
            cfg.detect.classification_file = Some(PathBuf::from(v));
        } else {
            eprintln!("osect-sensor: warning: --set {k}: not used by this sensor");
        }
    }
    Ok(())
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
            rules,
            checksum_mode,
            sets,
        } => {
            let mut cfg = match load_config(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if !rules.is_empty() {
                cfg.detect.rules = rules;
                cfg.detect.enabled = true;
            }
            match checksum_mode.as_deref() {
                None | Some("all") => {}
                Some("none") => cfg.decode.verify_checksums = false,
                Some(m) => {
                    eprintln!("osect-sensor: -k {m}: expected none or all");
                    return ExitCode::from(2);
                }
            }
            if let Err(e) = apply_sets(&mut cfg, &sets) {
                eprintln!("osect-sensor: {e}");
                return ExitCode::from(2);
            }
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
        Cmd::Rules {
            cmd: RulesCmd::Check { files, config },
        } => {
            let mut cfg = match load_config(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if !files.is_empty() {
                cfg.detect.rules = files;
            }
            if cfg.detect.rules.is_empty() {
                eprintln!("osect-sensor: rules check: no rule files given");
                return ExitCode::from(2);
            }
            match osect_sensor::detect::RuleSet::load(&cfg.detect) {
                Ok(rs) => {
                    println!("{}", rs.report);
                    if rs.report.invalid.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("osect-sensor: {e}");
                    ExitCode::from(2)
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
        None => Ok(Config::default()),
        Some(p) => Config::load(p).map_err(|e| {
            eprintln!("osect-sensor: {e}");
            ExitCode::from(2)
        }),
    }
}
