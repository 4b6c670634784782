//! `osect-sensor`: the command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use osect_sensor::config::Config;
use osect_sensor::diag;
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
    /// Health report for the serial console: version, slot, interface, counters, spool, disk.
    Status {
        /// Config file (default /etc/osect/sensor.toml, else built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The status report plus PASS/FAIL checks with reasons; exits 1 when a check fails.
    Diag {
        /// Config file (default /etc/osect/sensor.toml, else built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a support bundle (.tar.gz: system facts, redacted config, sensor.log, counters,
    /// spool listing, upload history, certificate expiry; never private keys).
    Support {
        /// Folder for the bundle (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// The sensor's config file; it need not be valid (it is redacted as text).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Send the bundles queued in the spool to `upload.url`, oldest first.
    Upload {
        #[arg(long)]
        config: PathBuf,
        /// One round: exit 0 when the spool is empty, 1 (with the reason) when a bundle
        /// could not be delivered. Without it: keep uploading until SIGTERM.
        #[arg(long)]
        once: bool,
    },
    /// Install a signed RAUC bundle (file, or https:// URL fetched over the upload channel)
    /// to the inactive slot and reboot into it; `--confirm` checks and marks the booted slot.
    Upgrade {
        /// Bundle file or https:// URL.
        #[arg(required_unless_present = "confirm")]
        source: Option<String>,
        /// Config file (default /etc/osect/sensor.toml, else built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Download and verify the signature only; write nothing.
        #[arg(long, conflicts_with = "confirm")]
        check: bool,
        /// Do not reboot (after an install, or after a failed trial).
        #[arg(long)]
        no_reboot: bool,
        /// Health check of the booted slot (run by the init scripts after start): mark it good,
        /// or, for a freshly updated slot that fails, reboot so the boot counter runs down.
        #[arg(long)]
        confirm: bool,
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
    /// Install a new rule archive (.tar.gz with rules/*.rules, like ET Open's): fetched from
    /// detect.update_url over the upload channel, or --from FILE; its MD5 checked (from
    /// <url>.md5, FILE.md5 or --md5), unpacked into detect.update_dir, test-loaded, made
    /// `current` (the old set kept as `previous`), and the running sensor told with SIGHUP.
    /// A bad archive leaves the installed rules untouched (exit 1).
    Update {
        /// Config file (default /etc/osect/sensor.toml, else built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Local archive instead of detect.update_url.
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
        /// Expected MD5 (32 hex digits) instead of <url>.md5 or FILE.md5.
        #[arg(long, value_name = "HEX")]
        md5: Option<String>,
        /// Install without a checksum to compare with (e.g. a FILE with no FILE.md5).
        #[arg(long, conflicts_with = "md5")]
        no_checksum: bool,
        /// Install even if the new set loads less than half the rules the installed set does.
        #[arg(long)]
        allow_shrink: bool,
        /// Do not signal the running sensor.
        #[arg(long)]
        no_reload: bool,
    },
    /// Make the previous rule set current again and tell the running sensor.
    Rollback {
        /// Config file (default /etc/osect/sensor.toml, else built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Do not signal the running sensor.
        #[arg(long)]
        no_reload: bool,
    },
}

/// This process's resident and peak resident memory in KiB (`VmRSS`, `VmHWM`), where /proc says.
fn resident_kib() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
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

/// Exit codes: 0 success, 1 runtime failure (unreadable capture, output error, a bundle not
/// delivered), 2 bad invocation or configuration (nothing was started).
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
                    // The report ends with its `loaded N of M` line; memory goes just before it.
                    let text = rs.report.to_string();
                    let (head, last) = text.rsplit_once('\n').unwrap_or(("", &text));
                    if !head.is_empty() {
                        println!("{head}");
                    }
                    if let Some((rss, peak)) = resident_kib() {
                        println!(
                            "memory: {} MiB resident with the rules loaded (peak {} MiB)",
                            rss / 1024,
                            peak / 1024
                        );
                    }
                    println!("{last}");
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
        Cmd::Rules {
            cmd:
                RulesCmd::Update {
                    config,
                    from,
                    md5,
                    no_checksum,
                    allow_shrink,
                    no_reload,
                },
        } => {
            let opts = osect_sensor::detect::update::UpdateOptions {
                from,
                md5,
                no_checksum,
                allow_shrink,
            };
            rules_update(config, Some(&opts), no_reload)
        }
        Cmd::Rules {
            cmd: RulesCmd::Rollback { config, no_reload },
        } => rules_update(config, None, no_reload),
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
            if cfg.upload.url.is_some() {
                if let Err(e) = osect_sensor::upload::tls_config(&cfg) {
                    eprintln!("osect-sensor: config file {}: {e}", config.display());
                    return ExitCode::from(2);
                }
            }
            sensor_log::init(Some(&cfg.output.sensor_log), log::LevelFilter::Info);
            let stop = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
                    eprintln!("osect-sensor: cannot install signal handler: {e}");
                    return ExitCode::from(1);
                }
            }
            // SIGHUP: re-read the rule files (see `pipeline::RuleReloader`).
            let reload = Arc::new(AtomicBool::new(false));
            if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())
            {
                eprintln!("osect-sensor: cannot install signal handler: {e}");
                return ExitCode::from(1);
            }
            match pipeline::run_live(&cfg, stop, reload) {
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
        Cmd::Status { config, json } => {
            let r = diag::Report::gather(config.as_deref(), &diag::Sources::default());
            if json {
                println!("{}", r.render_json(None));
            } else {
                print!("{}", r.render_text());
            }
            ExitCode::SUCCESS
        }
        Cmd::Diag { config, json } => {
            let mut r = diag::Report::gather(config.as_deref(), &diag::Sources::default());
            r.probe_server(std::time::Duration::from_secs(5));
            let checks = r.checks();
            if json {
                println!("{}", r.render_json(Some(&checks)));
            } else {
                print!("{}{}", r.render_text(), diag::render_checks(&checks));
            }
            if checks.iter().any(|c| c.status == diag::Status::Fail) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Cmd::Support { out, config } => support(&out, config),
        Cmd::Upload { config, once } => upload(&config, once),
        Cmd::Upgrade {
            source,
            config,
            check,
            no_reboot,
            confirm,
        } => upgrade(source.as_deref(), config, check, no_reboot, confirm),
    }
}

/// `upgrade`: exit 0 done (or rebooting), 1 refused or failed (the running slot untouched),
/// 2 bad configuration.
fn upgrade(
    source: Option<&str>,
    config: Option<PathBuf>,
    check_only: bool,
    no_reboot: bool,
    confirm: bool,
) -> ExitCode {
    use osect_sensor::upgrade;
    let (_, cfg) = match box_config(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let up = upgrade::Upgrade::new(&cfg);
    if confirm {
        let probe = upgrade::health::Probe::system(cfg.spool_dir(), cfg.upload.url.is_some());
        return match upgrade::confirm(&up, &probe, no_reboot) {
            upgrade::Verdict::Failed { .. } => ExitCode::from(1),
            _ => ExitCode::SUCCESS,
        };
    }
    let Some(source) = source else {
        return ExitCode::from(2);
    };
    let opts = upgrade::InstallOptions {
        check_only,
        no_reboot,
    };
    match upgrade::install(&cfg, &up, source, opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("osect-sensor: upgrade: {e}");
            ExitCode::from(1)
        }
    }
}

/// `rules update` (`opts`) or `rules rollback` (`None`): exit 0 installed, unchanged or
/// rolled back; 1 refused or failed (the installed rules untouched); 2 bad invocation or
/// configuration.
fn rules_update(
    config: Option<PathBuf>,
    opts: Option<&osect_sensor::detect::update::UpdateOptions>,
    no_reload: bool,
) -> ExitCode {
    use osect_sensor::detect::update::{self, Outcome, SensorReload, UpdateError};
    let (config, cfg) = match box_config(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut out = std::io::stdout();
    let changed = match opts {
        Some(opts) => match update::update(&cfg, opts, &mut out) {
            Ok(Outcome::Installed { .. }) => true,
            Ok(Outcome::Unchanged { .. }) => false,
            Err(e) => {
                eprintln!("osect-sensor: rules update: {e}");
                return ExitCode::from(match e {
                    UpdateError::Usage(_) => 2,
                    UpdateError::Failed(_) => 1,
                });
            }
        },
        None => match update::rollback(&cfg.detect, &mut out) {
            Ok(_) => true,
            Err(e) => {
                eprintln!("osect-sensor: rules rollback: {e}");
                return ExitCode::from(1);
            }
        },
    };
    if !changed || no_reload {
        return ExitCode::SUCCESS;
    }
    let Some(config) = config else {
        println!("no config file: no running sensor to tell");
        return ExitCode::SUCCESS;
    };
    let done = update::reload_sensors(Path::new("/proc"), &config);
    if done.is_empty() {
        println!(
            "no running `osect-sensor run --config {}`: the rules apply at its next start",
            config.display()
        );
    }
    for r in done {
        match r {
            SensorReload::Signalled(pid) => {
                println!("sent SIGHUP to the sensor (pid {pid}): it reloads the rules")
            }
            SensorReload::NoHandler(pid) => println!(
                "the running sensor (pid {pid}) does not reload on SIGHUP (older version): \
                 restart it to use the new rules"
            ),
            SensorReload::Failed(pid, e) => {
                println!("could not signal the sensor (pid {pid}): {e}; restart it")
            }
        }
    }
    ExitCode::SUCCESS
}

/// `upload`: one round (`--once`) or the upload daemon alone.
fn upload(config: &Path, once: bool) -> ExitCode {
    let cfg = match load_config(Some(config)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let stats = Arc::new(osect_sensor::stats::Stats::default());
    let mut uploader = match osect_sensor::upload::Uploader::from_config(&cfg, stats) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("osect-sensor: config file {}: {e}", config.display());
            return ExitCode::from(2);
        }
    };
    sensor_log::init(Some(&cfg.output.sensor_log), log::LevelFilter::Info);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("osect-sensor: cannot install signal handler: {e}");
            return ExitCode::from(1);
        }
    }
    if !once {
        uploader.run(&stop, None);
        return ExitCode::SUCCESS;
    }
    let round = uploader.send_queued(&stop);
    let left = osect_sensor::spool::queue::unsent_bundles(cfg.spool_dir()).map(|q| q.len());
    match (round, left) {
        (Ok(r), Ok(0)) => {
            eprintln!(
                "osect-sensor: {} bundle(s) delivered ({} bytes), none left",
                r.delivered, r.bytes
            );
            ExitCode::SUCCESS
        }
        (Ok(r), Ok(n)) => {
            eprintln!(
                "osect-sensor: {} bundle(s) delivered, {n} still queued (stopped)",
                r.delivered
            );
            ExitCode::from(1)
        }
        (Err(e), left) => {
            log::error!("{e}");
            if let Ok(n) = left {
                eprintln!("osect-sensor: {n} bundle(s) still queued");
            }
            ExitCode::from(1)
        }
        (Ok(_), Err(e)) => {
            eprintln!("osect-sensor: {e}");
            ExitCode::from(1)
        }
    }
}

/// `support`: the folders come from the config when it parses, else from the defaults.
fn support(out: &Path, config: Option<PathBuf>) -> ExitCode {
    let cfg = match config.as_deref().map(Config::load) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            eprintln!("osect-sensor: {e} (collecting with default folders)");
            Config::default()
        }
        None => Config::default(),
    };
    let mut log_dirs = Vec::new();
    if let Some(d) = cfg.output.sensor_log.parent() {
        log_dirs.push(d.to_path_buf());
    }
    let src = osect_sensor::support::SupportSources {
        config,
        log_dirs,
        spool_dir: Some(cfg.spool_dir().to_path_buf()),
        upgrade_dir: Some(cfg.upgrade.download_dir.clone()),
        rules_dir: Some(cfg.detect.update_dir.clone()),
        root: PathBuf::from("/"),
    };
    match osect_sensor::support::write_bundle(&src, out) {
        Ok(p) => {
            println!("{}", p.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("osect-sensor: support bundle in {}: {e}", out.display());
            ExitCode::from(1)
        }
    }
}

/// The config given, else the box's own (`/etc/osect/sensor.toml`) when it exists, else the
/// built-in one: for the commands an operator runs on the gateway without naming it.
fn box_config(given: Option<PathBuf>) -> Result<(Option<PathBuf>, Config), ExitCode> {
    let path = given.or_else(|| {
        let p = PathBuf::from("/etc/osect/sensor.toml");
        p.exists().then_some(p)
    });
    let cfg = load_config(path.as_deref())?;
    Ok((path, cfg))
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
