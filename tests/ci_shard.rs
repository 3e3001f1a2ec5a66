//! `ci/test`'s sharding (`KE2LAB_SHARD=k/n`, `ci/shard-args`): every
//! scenario lands in exactly one shard of two or of three, the shards together are
//! the whole tier, and a malformed shard stops `ci/test` with exit 2
//! before anything runs. Fast tier: it lists tests, it runs none.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `ci/shard-args` for `shard`: its exit code and its arguments.
fn shard_args(shard: &str) -> (i32, Vec<String>) {
    let out = Command::new(root().join("ci/shard-args"))
        .env("KE2LAB_SHARD", shard)
        .output()
        .expect("ci/shard-args runs");
    let args = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    (out.status.code().unwrap_or(-1), args)
}

/// The tests `cargo nextest list` selects for `profile` and `extra`
/// arguments, as `binary-id test-name`.
fn listed(profile: &str, extra: &[String]) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let started = std::time::Instant::now();
    let mut cmd = Command::new(cargo);
    // Cargo gives a test the package's own variables (`CARGO_MANIFEST_DIR`,
    // `CARGO_PKG_*`, ...) and nextest its `NEXTEST_*`; build scripts that
    // rerun on them (ring's do) would make this cargo rebuild the whole
    // workspace under the running tests. It sees the environment the
    // outer `cargo nextest run` saw.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if injected(&k) {
            cmd.env_remove(&k);
        }
    }
    let out = cmd
        .current_dir(root())
        .args(["nextest", "list", "--workspace", "--profile", profile])
        .args(["--message-format", "json"])
        .args(extra)
        .output()
        .expect("cargo nextest list runs");
    assert!(
        out.status.success(),
        "cargo nextest list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The outer test run built every binary: a listing that compiles
    // would replace binaries other tests are running.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("Compiling"),
        "cargo nextest list rebuilt the workspace: {err}"
    );
    eprintln!(
        "listed {profile} {extra:?} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut set = BTreeSet::new();
    for (binary, suite) in doc["rust-suites"].as_object().unwrap() {
        for (name, t) in suite["testcases"].as_object().unwrap() {
            if t["filter-match"]["status"] == "matches" {
                set.insert(format!("{binary} {name}"));
            }
        }
    }
    set
}

/// Whether `var` is one cargo or nextest sets for a test process (and
/// not one a user sets for their build).
fn injected(var: &str) -> bool {
    const USERS: [&str; 8] = [
        "CARGO_HOME",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_",
        "CARGO_TERM_",
        "CARGO_NET_",
        "CARGO_REGISTRIES_",
        "CARGO_PROFILE_",
        "CARGO_INCREMENTAL",
    ];
    if var.starts_with("CARGO_") {
        return !USERS.iter().any(|u| var.starts_with(u));
    }
    var.starts_with("NEXTEST") || var.starts_with("__NEXTEST") || var == "OUT_DIR"
}

#[test]
fn only_the_variables_cargo_and_nextest_inject_are_dropped() {
    for v in [
        "CARGO_MANIFEST_DIR",
        "CARGO_PKG_NAME",
        "CARGO_CRATE_NAME",
        "NEXTEST_RUN_ID",
        "OUT_DIR",
    ] {
        assert!(injected(v), "{v}");
    }
    for v in [
        "CARGO",
        "CARGO_HOME",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_JOBS",
        "RUSTFLAGS",
        "PATH",
    ] {
        assert!(!injected(v), "{v}");
    }
}

#[test]
fn every_cluster_test_lands_in_exactly_one_shard() {
    // The scenario tier split two and three ways (the harness tier takes
    // the same arguments).
    for (profile, filter, shards) in [("scenarios", Vec::<String>::new(), vec![2, 3])] {
        let whole = listed(profile, &filter);
        assert!(whole.len() >= 2, "{profile}: only {} test(s)", whole.len());
        for n in shards {
            let mut seen: BTreeSet<String> = BTreeSet::new();
            for k in 1..=n {
                let (code, args) = shard_args(&format!("{k}/{n}"));
                assert_eq!(code, 0);
                assert_eq!(args, ["--partition".to_string(), format!("slice:{k}/{n}")]);
                let mut extra = filter.clone();
                extra.extend(args);
                let part = listed(profile, &extra);
                assert!(!part.is_empty(), "{profile}: shard {k}/{n} is empty");
                let twice: Vec<_> = part.intersection(&seen).collect();
                assert!(
                    twice.is_empty(),
                    "{profile}: in two shards of {n}: {twice:?}"
                );
                seen.extend(part);
            }
            assert_eq!(
                seen, whole,
                "{profile}: the {n} shards are not the whole tier"
            );
        }
    }
}

#[test]
fn no_shard_is_the_whole_tier_and_a_bad_one_is_refused() {
    assert_eq!(shard_args(""), (0, vec![]));
    for bad in ["0/2", "3/2", "1/0", "a/b", "1/2/3", " 1/2", "1/", "-1/2"] {
        let (code, args) = shard_args(bad);
        assert_eq!(code, 2, "`{bad}` accepted");
        assert!(args.is_empty(), "`{bad}`: {args:?}");
    }
    // ci/test reads it before its first gate: a bad shard runs nothing.
    let out = Command::new(root().join("ci/test"))
        .env("KE2LAB_SHARD", "9/2")
        .output()
        .expect("ci/test runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`KE2LAB_SHARD`"), "{err}");
    assert!(
        !err.contains("Compiling") && !err.contains("Checking"),
        "{err}"
    );
}
