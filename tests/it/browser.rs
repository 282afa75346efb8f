//! Browser tests: the console and the simulator page in headless Debian chromium, driven by
//! Playwright (`tests/browser/console.mjs`). This test starts the gateway and runs the
//! script against it. It installs nothing itself: `.ci/run` installs chromium, Node.js and
//! the npm packages, and the test fails with a clear message when one is missing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::common::{TestApp, repo_root};

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "Debian's chromium is required for the browser test: apt-get install chromium \
         (.ci/run installs it), or set CHROMIUM to its path"
    );
    path
}

fn require_node_modules(dir: &Path) {
    assert!(
        dir.join("node_modules/playwright-core/package.json")
            .exists(),
        "tests/browser has no node_modules: run `npm ci` there (.ci/run does)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_and_simulator_in_a_real_browser() {
    let dir = repo_root().join("tests/browser");
    let browser = chromium();
    require_node_modules(&dir);
    // The admin part edits the FAQ: on copies, never the repository's files.
    let files = tempfile::tempdir().expect("tempdir");
    super::common::copy_dir(&repo_root().join("kb"), &files.path().join("kb"));
    super::common::copy_dir(
        &repo_root().join("bot-scripts"),
        &files.path().join("bot-scripts"),
    );
    let kb = files.path().join("kb").display().to_string();
    let scripts = files.path().join("bot-scripts").display().to_string();
    let app = TestApp::start_with(&[
        ("HELPDESK__PATHS__KB_DIR", &kb),
        ("HELPDESK__PATHS__SCRIPTS_DIR", &scripts),
    ])
    .await;
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
