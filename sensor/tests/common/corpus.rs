//! The Zeek corpus (`shared/corpus/zeek`) and replays of its captures, shared by the
//! conn/dns/http conformance tests.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest one replay may take.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// Mismatch examples printed per worst case by default.
pub const EXAMPLES_PER_CASE: usize = 6;

/// Mismatch examples printed per worst case (`ZEEK_EXAMPLES=N` to see more).
pub fn examples_per_case() -> usize {
    std::env::var("ZEEK_EXAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(EXAMPLES_PER_CASE)
}

pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/zeek")
}

/// True if case.json's `zeek_flags` array mentions `-C`. A tiny scan instead of a JSON parser
/// (no JSON crate among the dev-dependencies); anything unexpected reads as "no -C".
pub fn zeek_flags_ignore_checksums(case_json: &str) -> bool {
    let Some(start) = case_json.find("\"zeek_flags\"") else {
        return false;
    };
    let rest = &case_json[start..];
    let (Some(open), Some(close)) = (rest.find('['), rest.find(']')) else {
        return false;
    };
    open < close
        && rest[open..close]
            .split('"')
            .any(|s| s == "-C" || s.starts_with("-C "))
}

pub struct Run {
    pub out_dir: PathBuf,
    pub status: String,
}

/// Replays one trace into `tmp/out`, with a config equivalent to Zeek's defaults for conn.log.
pub fn run_sensor(trace: &Path, tmp: &Path, ignore_checksums: bool) -> Run {
    let out_dir = tmp.join("out");
    let config = tmp.join("zeek.toml");
    let toml = format!(
        "# Zeek >= 6 semantics for local_orig/local_resp\n[conn]\nlocal_nets = [\"private\"]\n\n[decode]\nverify_checksums = {}\n",
        !ignore_checksums
    );
    if let Err(e) = fs::write(&config, toml) {
        return Run {
            out_dir,
            status: format!("cannot write config: {e}"),
        };
    }
    let stderr_path = tmp.join("stderr.txt");
    let stderr = match fs::File::create(&stderr_path) {
        Ok(f) => f,
        Err(e) => {
            return Run {
                out_dir,
                status: format!("cannot create {}: {e}", stderr_path.display()),
            }
        }
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_osect-sensor"));
    cmd.arg("replay")
        .arg(trace)
        .arg("--out")
        .arg(&out_dir)
        .args(["--seed", "1"])
        .arg("--config")
        .arg(&config);
    // stderr goes to a file, not a pipe: a chatty sensor must not block on a full pipe.
    let mut child = match cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return Run {
                out_dir,
                status: format!("spawn failed: {e}"),
            }
        }
    };
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => break "ok".to_string(),
            Ok(Some(st)) => {
                break format!(
                    "exit {}",
                    st.code().map_or("signal".to_string(), |c| c.to_string())
                )
            }
            Ok(None) if started.elapsed() > RUN_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                break format!("timeout after {}s", RUN_TIMEOUT.as_secs());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => break format!("wait failed: {e}"),
        }
    };
    let status = if status == "ok" {
        status
    } else {
        let err = fs::read(&stderr_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let first = err
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        format!("{status}: {}", first.chars().take(100).collect::<String>())
    };
    Run { out_dir, status }
}

pub fn read_text(path: &Path) -> Option<String> {
    fs::read(path)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// The corpus cases to run, sorted by name: every folder of `cases/`, or only `ZEEK_CASE`
/// when that is set. Panics with a clear message when the corpus is missing.
pub fn case_dirs() -> Vec<(String, PathBuf)> {
    let cases_dir = corpus_dir().join("cases");
    assert!(
        cases_dir.is_dir(),
        "Zeek conformance corpus not found: expected {} (the shared corpus next to the repository, \
         i.e. <repo>/../shared/corpus/zeek/cases). Check out the shared corpus there.",
        cases_dir.display()
    );
    let only = std::env::var("ZEEK_CASE").ok().filter(|s| !s.is_empty());
    let mut dirs: Vec<(String, PathBuf)> = fs::read_dir(&cases_dir)
        .expect("read corpus cases dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .map(|p| {
            let case = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (case, p)
        })
        .filter(|(case, _)| only.as_deref().is_none_or(|o| o == case))
        .collect();
    dirs.sort();
    dirs
}

/// Appends the first mismatches of one scored log (`ZEEK_EXAMPLES=N` for more).
pub fn write_mismatches(r: &mut String, s: &super::zeeklog::LogScore) {
    use std::fmt::Write as _;
    let n = examples_per_case();
    for m in s.mismatches.iter().take(n) {
        let _ = writeln!(
            r,
            "    [{}] {} {}: expected {:?} | actual {:?}",
            s.name, m.row, m.field, m.expected, m.actual
        );
    }
    if s.mismatches.len() > n {
        let _ = writeln!(
            r,
            "    ... {} more mismatching fields",
            s.mismatches.len() - n
        );
    }
}
