//! Records the commit the binary is built from for `ke2lab version`
//! (`KE2LAB_COMMIT`; absent outside a git checkout). A commit id, never a
//! path: the binary must not carry where it was built.

use std::process::Command;

fn main() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if let Some(commit) = git(&["rev-parse", "--short=12", "HEAD"]) {
        // No "-dirty" mark: the script reruns only when HEAD moves, so it
        // would go stale with the working tree.
        println!("cargo:rustc-env=KE2LAB_COMMIT={commit}");
    }
    // A new commit or a checkout changes HEAD or the ref it points at.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/refs/heads");
    }
}
