//! Consistency of the BR2_EXTERNAL tree (`buildroot/`): a full Buildroot build needs the
//! internet and an hour, so this checks what can go stale without one: every path the
//! defconfigs, Config.in files and scripts name exists, the package's .mk is well-formed for
//! Buildroot's cargo infrastructure, and the boards' boot script, RAUC slots, fstab, U-Boot
//! environment file and genimage layouts agree with each other.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn tree() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../buildroot")
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `$(BR2_EXTERNAL_OSECT_PATH)` / `$BR2_EXTERNAL_OSECT_PATH` → the tree.
fn expand(s: &str) -> String {
    let t = tree().to_string_lossy().into_owned();
    s.replace("$(BR2_EXTERNAL_OSECT_PATH)", &t)
        .replace("$BR2_EXTERNAL_OSECT_PATH", &t)
}

/// `KEY=value` lines of a defconfig or board.env (quotes removed).
fn assignments(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

fn defconfigs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(tree().join("configs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("_defconfig"))
        .collect();
    v.sort();
    assert!(v.len() >= 2, "expected the qemu and a real board defconfig");
    v
}

fn shell_syntax_ok(p: &Path) {
    let out = Command::new("sh").arg("-n").arg(p).output().unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        p.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p)
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[test]
fn external_tree_skeleton() {
    let desc = read(&tree().join("external.desc"));
    assert!(desc.lines().any(|l| l == "name: OSECT"), "{desc}");
    let mk = read(&tree().join("external.mk"));
    assert!(
        mk.contains("$(BR2_EXTERNAL_OSECT_PATH)/package/*/*.mk"),
        "{mk}"
    );
    // Every `source` in every Config.in resolves, and every package is sourced.
    let mut sourced = Vec::new();
    let mut pending = vec![tree().join("Config.in")];
    while let Some(cfg) = pending.pop() {
        for l in read(&cfg).lines() {
            if let Some(rest) = l.trim().strip_prefix("source ") {
                let p = PathBuf::from(expand(rest.trim().trim_matches('"')));
                assert!(
                    p.is_file(),
                    "{}: source {} missing",
                    cfg.display(),
                    p.display()
                );
                sourced.push(p.clone());
                pending.push(p);
            }
        }
    }
    for e in fs::read_dir(tree().join("package")).unwrap() {
        let dir = e.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            sourced.contains(&dir.join("Config.in")),
            "package {name} is not sourced from Config.in"
        );
        assert!(
            dir.join(format!("{name}.mk")).is_file(),
            "{name}.mk missing"
        );
    }
}

#[test]
fn sensor_package_is_a_wellformed_cargo_package() {
    let dir = tree().join("package/osect-sensor");
    let mk = read(&dir.join("osect-sensor.mk"));
    let cfg = read(&dir.join("Config.in"));
    assert!(cfg.contains("config BR2_PACKAGE_OSECT_SENSOR"), "{cfg}");
    assert!(cfg.contains("select BR2_PACKAGE_HOST_RUSTC"), "{cfg}");
    assert!(cfg.contains("select BR2_PACKAGE_LIBPCAP"), "{cfg}");
    assert!(cfg.contains("depends on BR2_PACKAGE_HOST_RUSTC_TARGET_ARCH_SUPPORTS"));

    // Every variable the .mk assigns belongs to the package (a typo'd prefix is silently
    // ignored by Buildroot).
    let mut vars = BTreeMap::new();
    for l in mk.lines() {
        if l.starts_with('#') || l.starts_with('\t') || l.starts_with(' ') {
            continue;
        }
        if let Some((k, v)) = l.split_once(" = ").or_else(|| l.split_once(" += ")) {
            vars.insert(k.trim().to_string(), v.trim().to_string());
        } else if let Some(name) = l.strip_prefix("define ") {
            vars.insert(name.trim().to_string(), String::new());
        }
    }
    for k in vars.keys() {
        assert!(
            k.starts_with("OSECT_SENSOR_"),
            "variable {k} lacks the package prefix"
        );
    }
    for k in [
        "OSECT_SENSOR_VERSION",
        "OSECT_SENSOR_SITE",
        "OSECT_SENSOR_SITE_METHOD",
        "OSECT_SENSOR_LICENSE",
        "OSECT_SENSOR_DEPENDENCIES",
        "OSECT_SENSOR_CARGO_ENV",
    ] {
        assert!(vars.contains_key(k), "{k} missing");
    }
    assert_eq!(vars["OSECT_SENSOR_SITE_METHOD"], "local");
    assert!(vars["OSECT_SENSOR_DEPENDENCIES"]
        .split_whitespace()
        .any(|d| d == "libpcap"));
    assert!(
        mk.contains("LIBPCAP_VER=$(LIBPCAP_VERSION)"),
        "LIBPCAP_VER not pinned"
    );
    assert_eq!(
        mk.lines().rfind(|l| !l.trim().is_empty()),
        Some("$(eval $(cargo-package))")
    );
    // The local site is this checkout: the workspace with its lock file.
    let site = PathBuf::from(expand(&vars["OSECT_SENSOR_SITE"]));
    assert!(site.join("Cargo.lock").is_file(), "{}", site.display());
    let manifest = read(&site.join("sensor/Cargo.toml"));
    let version = assignments(&manifest)["version"].clone();
    assert_eq!(
        vars["OSECT_SENSOR_VERSION"], version,
        "package version vs sensor/Cargo.toml"
    );
    // Hooks named in the .mk are defined there.
    for l in mk.lines() {
        if let Some(h) = l.split_once("_HOOKS += ").map(|(_, h)| h.trim()) {
            assert!(
                mk.contains(&format!("define {h}\n")),
                "hook {h} not defined"
            );
        }
    }
}

#[test]
fn defconfigs_reference_what_exists() {
    let boot_cmd = read(&tree().join("board/osect/common/boot.cmd.in"));
    for dc in defconfigs() {
        let name = dc.file_name().unwrap().to_string_lossy().into_owned();
        let text = read(&dc);
        let a = assignments(&text);
        assert_eq!(
            a.get("BR2_PACKAGE_OSECT_SENSOR").map(String::as_str),
            Some("y"),
            "{name}"
        );
        // Every path inside the tree that the defconfig names exists.
        for v in a.values().filter(|v| v.contains("BR2_EXTERNAL_OSECT_PATH")) {
            for p in expand(v).split_whitespace() {
                assert!(Path::new(p).exists(), "{name}: {p} missing");
            }
        }
        for key in [
            "BR2_ROOTFS_POST_BUILD_SCRIPT",
            "BR2_ROOTFS_POST_IMAGE_SCRIPT",
        ] {
            let p = PathBuf::from(expand(&a[key]));
            assert!(is_executable(&p), "{name}: {} not executable", p.display());
            shell_syntax_ok(&p);
        }
        // The board folder passed to the scripts has what they read.
        let board = PathBuf::from(expand(&a["BR2_ROOTFS_POST_SCRIPT_ARGS"]));
        for f in ["board.env", "genimage.cfg", "uboot-env.txt"] {
            assert!(
                board.join(f).is_file(),
                "{name}: {}/{f} missing",
                board.display()
            );
        }
        let env = assignments(&read(&board.join("board.env")));
        assert_eq!(
            a.get("BR2_TARGET_GENERIC_GETTY_PORT"),
            env.get("CONSOLE"),
            "{name}: getty port vs board.env CONSOLE"
        );
        for placeholder in ["CONSOLE", "ROOT_PREFIX", "FDT"] {
            assert!(boot_cmd.contains(&format!("@{placeholder}@")));
            assert!(
                env.contains_key(placeholder),
                "{name}: board.env lacks {placeholder}"
            );
        }
        // Read-only root with the kernel in each slot (U-Boot loads /boot/Image).
        assert!(
            text.contains("# BR2_TARGET_GENERIC_REMOUNT_ROOTFS_RW is not set"),
            "{name}"
        );
        assert_eq!(
            a.get("BR2_LINUX_KERNEL_INSTALL_TARGET").map(String::as_str),
            Some("y")
        );
        assert!(boot_cmd.contains("/boot/Image"));
        // What the overlay's service scripts call must be built.
        for needed in [
            "BR2_PACKAGE_UTIL_LINUX_SETPRIV",
            "BR2_PACKAGE_UBOOT_TOOLS_FWPRINTENV",
            "BR2_PACKAGE_RAUC",
            "BR2_PACKAGE_HOST_GENIMAGE",
            "BR2_PACKAGE_HOST_UBOOT_TOOLS",
            "BR2_PACKAGE_HOST_MTOOLS",
            "BR2_PACKAGE_HOST_DOSFSTOOLS",
            "BR2_TARGET_ROOTFS_EXT2_4",
        ] {
            assert_eq!(
                a.get(needed).map(String::as_str),
                Some("y"),
                "{name}: {needed}"
            );
        }

        // RAUC's slots are the partitions boot.cmd boots (2 = A, 3 = B).
        let overlay_conf = board.join("rootfs-overlay/etc/rauc/system.conf");
        let conf = read(&overlay_conf);
        for (dev, slot) in [("2", "A"), ("3", "B")] {
            let want = format!(
                "device={}{dev}\ntype=ext4\nbootname={slot}",
                env["ROOT_PREFIX"]
            );
            assert!(
                conf.contains(&want),
                "{}: no {want:?}",
                overlay_conf.display()
            );
            assert!(boot_cmd.contains(&format!(
                "setenv rauc_slot {slot}\n            setenv rootpart {dev}"
            )));
        }
        assert!(conf.contains("bootloader=uboot"));

        // genimage: every image a partition uses is defined in the file or made by the build
        // (Buildroot's rootfs.ext4, post-image's data.ext4); four partitions, A/B identical.
        let g = read(&board.join("genimage.cfg"));
        let defined: Vec<&str> = g
            .lines()
            .filter_map(|l| l.trim().strip_prefix("image "))
            .map(|l| l.trim_end_matches('{').trim())
            .collect();
        let parts: Vec<&str> = g
            .lines()
            .filter_map(|l| l.trim().strip_prefix("partition "))
            .map(|l| l.trim_end_matches('{').trim())
            .collect();
        assert_eq!(parts, ["boot", "rootfs-a", "rootfs-b", "data"], "{name}");
        for img in g
            .lines()
            .filter_map(|l| l.trim().strip_prefix("image = "))
            .map(|l| l.trim_matches('"'))
        {
            assert!(
                defined.contains(&img)
                    || ["rootfs.ext4", "data.ext4", "rpi-config.txt"].contains(&img),
                "{name}: genimage image {img} is made by nobody"
            );
        }
        for f in ["\"boot.scr\"", "\"uboot.env\""] {
            assert!(g.contains(f), "{name}: boot partition lacks {f}");
        }
    }
}

#[test]
fn overlay_scripts_and_mounts_agree() {
    let ov = tree().join("board/osect/common/rootfs-overlay");
    let inittab = read(&ov.join("etc/inittab"));
    for l in inittab
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let cmd = l
            .splitn(4, ':')
            .nth(3)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        if cmd.starts_with("/etc/") || cmd.starts_with("/usr/libexec/") {
            let p = ov.join(cmd.trim_start_matches('/'));
            assert!(
                is_executable(&p),
                "inittab runs {cmd}, not in the overlay or not executable"
            );
        }
    }
    for dir in ["etc/init.d", "usr/libexec/osect"] {
        for e in fs::read_dir(ov.join(dir)).unwrap() {
            let p = e.unwrap().path();
            assert!(is_executable(&p), "{} not executable", p.display());
            shell_syntax_ok(&p);
        }
    }
    shell_syntax_ok(&tree().join("board/osect/common/post-build.sh"));
    // The sensor keeps only the capabilities capture needs and is not root.
    let svc = read(&ov.join("usr/libexec/osect/sensor-service"));
    assert!(svc.contains("CAPS=-all,+net_raw,+net_admin"), "{svc}");
    assert!(svc.contains("--reuid=osect") && svc.contains("--bounding-set=\"$CAPS\""));
    // The slot state file: fw_env.config, fstab's boot mount, boot.cmd and genimage agree.
    let fw = read(&ov.join("etc/fw_env.config"));
    let fw_line = fw.lines().find(|l| !l.starts_with('#')).unwrap();
    let fw_file = fw_line.split_whitespace().next().unwrap();
    let fstab = read(&ov.join("etc/fstab"));
    let mounts: BTreeMap<&str, Vec<&str>> = fstab
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4).then(|| (f[1], f))
        })
        .collect();
    let (mnt, file) = fw_file.rsplit_once('/').unwrap();
    assert_eq!(
        mounts[mnt][2], "vfat",
        "{fw_file} must be on the boot partition"
    );
    let boot_cmd = read(&tree().join("board/osect/common/boot.cmd.in"));
    assert!(
        boot_cmd.contains(&format!(" {file} 0x4000")),
        "boot.cmd does not write {file}"
    );
    assert!(fw_line.ends_with("0x4000"));
    // Read-only root, data read-write, data dir and the config link in place.
    assert!(mounts["/"][3].split(',').any(|o| o == "ro"));
    assert!(mounts["/data"][3].split(',').any(|o| o == "rw"));
    let link = fs::read_link(ov.join("etc/osect/sensor.toml")).unwrap();
    assert!(link.starts_with("/data/"), "{}", link.display());
    assert!(ov.join("usr/share/osect/sensor.toml").is_file());
    // The shipped default config is valid for the sensor.
    osect_sensor::config::Config::load(&ov.join("usr/share/osect/sensor.toml")).unwrap();
}
