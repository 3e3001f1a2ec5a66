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
