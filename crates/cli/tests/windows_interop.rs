//! Interop with the Windows build, under Wine: the Linux `ringport stress` against
//! `ringport.exe serve` (IOCP), and `ringport.exe stress` against the Linux server. Every echoed
//! byte is verified by the stress client on both sides.
//!
//! Needs what `scripts/windows.sh setup` and `scripts/windows.sh build -p ringport` make (the
//! Wine prefix and `ringport.exe`, found as the script finds them: `RINGPORT_WINDOWS_TARGET_DIR`,
//! `RINGPORT_WINE_DIR`). Without them each test says why on stderr and passes as skipped,
//! unless `CI=true` and `RINGPORT_WINDOWS_CI=1` (the Windows step of `.ci/run` is enabled):
//! then a missing Windows build fails.

#![cfg(target_os = "linux")]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::*;

/// The Windows build and its Wine prefix.
struct Wine {
    exe: PathBuf,
    prefix: PathBuf,
}

impl Wine {
    /// The set-up of `scripts/windows.sh`, or `None` (skipped) when it is missing.
    fn find() -> Option<Wine> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = |var: &str, default: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .unwrap_or_else(|| repo.join(default))
        };
        let exe = dir("RINGPORT_WINDOWS_TARGET_DIR", "target/windows")
            .join("x86_64-pc-windows-gnu/debug/ringport.exe");
        let prefix = dir("RINGPORT_WINE_DIR", "target/wine").join("prefix");
        let wine = Command::new("wine")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let missing = if !wine {
            Some("wine is not installed".to_string())
        } else if !prefix.join(".ringport-ready").exists() {
            Some(format!("no Wine prefix at {}", prefix.display()))
        } else if !exe.exists() {
            Some(format!("no {}", exe.display()))
        } else {
            None
        };
        let Some(why) = missing else {
            return Some(Wine { exe, prefix });
        };
        let enabled = std::env::var("CI").is_ok_and(|v| v == "true")
            && std::env::var("RINGPORT_WINDOWS_CI").is_ok_and(|v| v == "1");
        assert!(
            !enabled,
            "the Windows step is enabled (RINGPORT_WINDOWS_CI=1) but {why}"
        );
        eprintln!(
            "skipped: {why}; run scripts/windows.sh setup && scripts/windows.sh build -p ringport"
        );
        None
    }

    /// `wine ringport.exe ARGS` in the prefix.
    fn ringport(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("wine");
        cmd.arg(&self.exe)
            .args(args)
            .env("WINEPREFIX", &self.prefix)
            .env("WINEARCH", "win64")
            .env("WINEDEBUG", "-all");
        cmd
    }
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stress failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

const LOAD: [&str; 8] = [
    "--connections",
    "20",
    "--count",
    "50",
    "--size",
    "300",
    "--json",
    "-",
];

#[test]
fn linux_stress_against_ringport_exe_serve_under_wine() {
    let Some(wine) = Wine::find() else { return };
    let server = Server::spawn(wine.ringport(&["serve", "--port", "0"]));
    let port = server.addr.port().to_string();
    let out = bin()
        .args(["stress", "127.0.0.1", &port])
        .args(LOAD)
        .stdin(Stdio::null())
        .output()
        .expect("run ringport stress");
    let j = json_of(&out);
    assert_eq!(j["messages"], 20 * 50, "{j}");
    assert_eq!(j["bytes"], 20 * 50 * 300, "{j}");
    assert_eq!(j["errors"], 0, "{j}");
}

#[test]
fn ringport_exe_stress_under_wine_against_the_linux_server() {
    let Some(wine) = Wine::find() else { return };
    let mut serve = bin();
    serve.args(["serve", "--port", "0"]);
    let server = Server::spawn(serve);
    let port = server.addr.port().to_string();
    let out = wine
        .ringport(&["stress", "127.0.0.1", &port])
        .args(LOAD)
        .stdin(Stdio::null())
        .output()
        .expect("run wine ringport.exe stress");
    let j = json_of(&out);
    assert_eq!(j["messages"], 20 * 50, "{j}");
    assert_eq!(j["bytes"], 20 * 50 * 300, "{j}");
    assert_eq!(j["errors"], 0, "{j}");
}
