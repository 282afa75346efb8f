//! Browser tests: the console and the simulator page in headless Debian chromium, driven by
//! Playwright (`tests/browser/console.mjs`). This test starts the gateway and runs the
//! script against it. It installs what it needs when missing (npm packages; chromium through
//! apt-get when running as root), so `cargo test` also runs on a fresh machine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::common::{TestApp, repo_root};

fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(p);
    }
    let default = PathBuf::from("/usr/bin/chromium");
    if !default.exists() {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"));
        assert!(
            root,
            "Debian's chromium is required for the browser tests: apt-get install chromium (.ci/run does)"
        );
        let ok = Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "chromium"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "installing chromium with apt-get failed");
    }
    default
}

fn node_modules(dir: &Path) {
    if dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return;
    }
    let ok = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "npm ci in tests/browser failed (Node.js and npm are required; .ci/run installs them)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_and_simulator_in_a_real_browser() {
    let dir = repo_root().join("tests/browser");
    let browser = chromium();
    node_modules(&dir);
    let app = TestApp::start().await;
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg("console.mjs")
        .current_dir(&dir)
        .env("BASE_URL", &app.base)
        .env("CHROMIUM", &browser)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(240), cmd.output())
        .await
        .expect("the browser test finishes in time")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all browser checks passed"), "{stdout}");
}
