//! The invariants of ARCHITECTURE.md that a text check can hold: the core
//! never names Docker's API crate, scenarios never start `docker` themselves.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn offenders(dir: &str, needles: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(!files.is_empty(), "no sources under {dir}");
    files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            needles
                .iter()
                .find(|n| text.contains(*n))
                .map(|n| format!("{} contains `{n}`", f.display()))
        })
        .collect()
}

#[test]
fn the_core_never_imports_bollard_or_the_harness() {
    let bad = offenders("src", &["bollard", "ke2lab_harness", "testcontainers"]);
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn scenarios_never_shell_out_to_docker() {
    let bad = offenders(
        "scenarios",
        &[
            "Command::new(\"docker\")",
            "bollard",
            "Command::new(\"sh\")",
        ],
    );
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Files under `dir` containing `needle`, except those whose path ends
/// with one of `allowed`.
fn offenders_except(dir: &str, needle: &str, allowed: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files
        .iter()
        .filter(|f| !allowed.iter().any(|a| f.ends_with(a)))
        .filter(|f| std::fs::read_to_string(f).unwrap().contains(needle))
        .map(|f| format!("{} contains `{needle}`", f.display()))
        .collect()
}

/// The harness and the scenarios ask cluster questions through
/// `ke2lab::cluster` (`Cluster`, reached as `Lab::cluster`): credentials
/// are resolved once per lab handle (`Lab::credentials`; `main.rs` for real
/// servers), the whole Pgpool-II view is read by the core, and the stack's
/// CA is read by `Cluster::stack_ca`. A new wrapper of these fails here.
#[test]
fn the_harness_and_scenarios_ask_the_cluster_through_the_core() {
    let mut bad = Vec::new();
    for dir in ["harness", "scenarios"] {
        bad.extend(offenders_except(
            dir,
            "resolve_kept(",
            &["harness/src/lab.rs", "harness/src/main.rs"],
        ));
        bad.extend(offenders_except(dir, "local-ca.crt", &[]));
        bad.extend(offenders_except(
            dir,
            "pgpool::observe(",
            &["harness/src/lab.rs"],
        ));
        bad.extend(offenders_except(
            dir,
            "watchdog_info_cmd(",
            &["harness/src/artifacts.rs"],
        ));
    }
    assert!(bad.is_empty(), "{bad:#?}");
}
