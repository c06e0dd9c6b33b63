//! Build facts for `claimcheck_build_info`: the git revision (when built from a checkout; the
//! `CLAIMCHECK_REVISION` environment variable wins, for builds from a tarball) and the rustc
//! version. Neither is ever fatal: outside git the revision is `unknown`.

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=CLAIMCHECK_REVISION");
    let revision = std::env::var("CLAIMCHECK_REVISION")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| output("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // Rebuild when HEAD moves (a commit, a checkout); worktrees keep HEAD in their own git dir.
    if let Some(dir) = output("git", &["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        // A missing file would rerun this on every build: name the ref only when it exists.
        if let Some(r) = output("git", &["symbolic-ref", "-q", "HEAD"])
            && let Some(common) = output("git", &["rev-parse", "--git-common-dir"])
            && std::path::Path::new(&format!("{common}/{r}")).exists()
        {
            println!("cargo:rerun-if-changed={common}/{r}");
        }
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CLAIMCHECK_REVISION={revision}");
    println!("cargo:rustc-env=CLAIMCHECK_RUSTC={rustc_version}");
}
