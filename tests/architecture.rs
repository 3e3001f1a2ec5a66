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
    // The scenarios' code lives in the harness's `scenario/` since
    // `ke2lab scenario` runs it too.
    for dir in ["scenarios", "harness/src/scenario"] {
        let bad = offenders(
            dir,
            &[
                "Command::new(\"docker\")",
                "bollard",
                "Command::new(\"sh\")",
            ],
        );
        assert!(bad.is_empty(), "{bad:#?}");
    }
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
/// are resolved once per lab handle (in `Lab::cluster`; `main.rs` for real
/// servers), the whole Pgpool-II view is read by the core, and the stack's
/// CA is read by `Cluster::stack_ca`. A new wrapper of these fails here;
/// the probes themselves are held by
/// `the_harness_and_scenarios_ask_cluster_questions_only_through_cluster`.
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
        bad.extend(offenders_except(dir, "pgpool::observe(", &[]));
        bad.extend(offenders_except(
            dir,
            "watchdog_info_cmd(",
            &["harness/src/artifacts.rs"],
        ));
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

// ---------------------------------------------------------------------------
// The harness and the scenarios ask cluster questions only through
// `ke2lab::cluster` (`Cluster`, reached as `Lab::cluster()`).
// ---------------------------------------------------------------------------

/// Which functions of a module are questions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asks {
    /// Every `pub async fn` and every `pub fn` returning a `Cmd`.
    ProbesAndCommands,
    /// Only the `pub fn`s returning a `Cmd` (a step's `pub async fn`s are
    /// its plan and apply, reached through `ke2lab::install`; the commands
    /// it builds, e.g. `steps::postgres::psql`, would ask the cluster).
    Commands,
}

/// The modules `mod_rs` (`src/probe/mod.rs`, `src/steps/mod.rs`)
/// declares public, as (path, file): a new module is covered without an
/// edit here.
fn declared(root: &Path, dir: &str, asks: Asks) -> Vec<(String, std::path::PathBuf, Asks)> {
    let text = std::fs::read_to_string(root.join(format!("src/{dir}/mod.rs"))).unwrap();
    let out: Vec<_> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod ")?.strip_suffix(';'))
        .map(|m| {
            (
                format!("ke2lab::{dir}::{m}"),
                root.join(format!("src/{dir}/{m}.rs")),
                asks,
            )
        })
        .collect();
    assert!(out.len() >= 5, "src/{dir}/mod.rs declares {out:?}");
    out
}

/// The core modules whose functions ask the cluster something: every
/// probe module, `cluster::pgpool` (`observe`, the `pcp` and `psql`
/// command builders), and the steps' command builders.
fn question_modules() -> Vec<(String, std::path::PathBuf, Asks)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = declared(root, "probe", Asks::ProbesAndCommands);
    out.push((
        "ke2lab::cluster::pgpool".into(),
        root.join("src/cluster/pgpool.rs"),
        Asks::ProbesAndCommands,
    ));
    out.extend(declared(root, "steps", Asks::Commands));
    out
}

/// The questions a module's source offers: every `pub async fn` (a probe
/// run against a host or an address) and every `pub fn` returning a `Cmd`
/// (the command that asks, which a caller could run itself), outside its
/// `#[cfg(test)]` part. Pure parsers and predicates are not questions.
fn questions_in(module: &str, source: &str, asks: Asks) -> Vec<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    let mut out = Vec::new();
    for (i, _) in code.match_indices("pub ") {
        let rest = &code[i + 4..];
        let (is_async, rest) = match rest.strip_prefix("async fn ") {
            Some(r) => (true, r),
            None => match rest.strip_prefix("fn ") {
                Some(r) => (false, r),
                None => continue,
            },
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // The signature runs to the body's opening brace.
        let signature = rest.split('{').next().unwrap_or_default();
        let returns_cmd = signature
            .split("->")
            .nth(1)
            .is_some_and(|r| r.trim() == "Cmd");
        if returns_cmd || (is_async && asks == Asks::ProbesAndCommands) {
            out.push(format!("{module}::{name}"));
        }
    }
    out
}

fn forbidden_questions() -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for (module, file, asks) in question_modules() {
        let source =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        out.extend(questions_in(&module, &source, asks));
    }
    out
}

/// Uses of a core question that are no cluster question, each with why.
/// (file suffix, full path)
const ALLOWED_QUESTIONS: &[(&str, &str)] = &[
    // The writer is the application's workload (numbered commits through
    // the VIP, every attempt kept), not a question: its `Target` carries
    // the password `writer_target` took once from the Lab's Cluster.
    ("harness/src/writer.rs", "ke2lab::probe::pgpool::connect"),
    // Evidence: the artifacts keep each host's own words as they are (raw
    // `pcp_watchdog_info` output beside the snapshot's typed view).
    (
        "harness/src/artifacts.rs",
        "ke2lab::probe::pgpool::watchdog_info_cmd",
    ),
];

/// `text` with comments removed and the contents of string and character
/// literals blanked (newlines kept, so line numbers stay): only code is
/// judged, never a message or a doc comment that names a probe.
fn code_only(text: &str) -> String {
    #[derive(PartialEq)]
    enum S {
        Code,
        Str,
        LineComment,
        BlockComment,
    }
    let mut out = String::with_capacity(text.len());
    let mut state = S::Code;
    let cs: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        let next = cs.get(i + 1).copied();
        match state {
            S::Code => {
                if c == '/' && next == Some('/') {
                    state = S::LineComment;
                    i += 2;
                    continue;
                }
                if c == '/' && next == Some('*') {
                    state = S::BlockComment;
                    i += 2;
                    continue;
                }
                if c == '"' {
                    state = S::Str;
                    out.push(' ');
                    i += 1;
                    continue;
                }
                // A character literal ('x', '\n', '"'); a lifetime has no
                // closing quote two or three characters on.
                if c == '\'' {
                    let close = if next == Some('\\') { 3 } else { 2 };
                    if cs.get(i + close) == Some(&'\'') {
                        out.extend(std::iter::repeat_n(' ', close + 1));
                        i += close + 1;
                        continue;
                    }
                }
                out.push(c);
            }
            S::Str => {
                if c == '\\' {
                    out.push(' ');
                    if next == Some('\n') {
                        out.push('\n');
                    } else if next.is_some() {
                        out.push(' ');
                    }
                    i += 2;
                    continue;
                }
                if c == '"' {
                    state = S::Code;
                }
                out.push(if c == '\n' { '\n' } else { ' ' });
            }
            S::LineComment => {
                if c == '\n' {
                    state = S::Code;
                    out.push('\n');
                }
            }
            S::BlockComment => {
                if c == '*' && next == Some('/') {
                    state = S::Code;
                    i += 2;
                    continue;
                }
                if c == '\n' {
                    out.push('\n');
                }
            }
        }
        i += 1;
    }
    out
}

/// A `use` tree (`a::{self, b, c::{d as e}, f::*}`) as (path, alias)
/// pairs; a glob's alias is `*`.
fn expand_use(tree: &str) -> Vec<(String, String)> {
    let tokens: Vec<String> = {
        let mut t = Vec::new();
        let mut cur = String::new();
        let s = tree.replace("::", " :: ");
        for c in s.chars() {
            if c.is_alphanumeric() || c == '_' || c == ':' {
                cur.push(c);
            } else {
                if !cur.is_empty() {
                    t.push(std::mem::take(&mut cur));
                }
                if "{},*".contains(c) {
                    t.push(c.to_string());
                }
            }
        }
        if !cur.is_empty() {
            t.push(cur);
        }
        t
    };
    fn tree_at(
        tokens: &[String],
        i: &mut usize,
        prefix: &[String],
        out: &mut Vec<(String, String)>,
    ) {
        let mut path = prefix.to_vec();
        loop {
            match tokens.get(*i).map(String::as_str) {
                Some("{") => {
                    *i += 1;
                    loop {
                        match tokens.get(*i).map(String::as_str) {
                            Some("}") => {
                                *i += 1;
                                return;
                            }
                            Some(",") => *i += 1,
                            None => return,
                            _ => tree_at(tokens, i, &path, out),
                        }
                    }
                }
                Some("*") => {
                    *i += 1;
                    out.push((path.join("::"), "*".into()));
                    return;
                }
                Some("::") => *i += 1,
                Some(seg) if seg != "," && seg != "}" => {
                    *i += 1;
                    if seg == "as" {
                        let alias = tokens.get(*i).cloned().unwrap_or_default();
                        *i += 1;
                        if let Some(last) = out.last_mut() {
                            last.1 = alias;
                        }
                        return;
                    }
                    if seg == "self" {
                        let alias = path.last().cloned().unwrap_or_default();
                        out.push((path.join("::"), alias));
                    } else {
                        path.push(seg.to_string());
                        // A leaf unless a `::` follows.
                        if tokens.get(*i).map(String::as_str) != Some("::") {
                            out.push((path.join("::"), seg.to_string()));
                            if tokens.get(*i).map(String::as_str) == Some("as") {
                                continue;
                            }
                            return;
                        }
                    }
                }
                _ => return,
            }
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    tree_at(&tokens, &mut i, &[], &mut out);
    out
}

/// Every use in `text` (a file called `label`) of a core question outside
/// the core, as `label:line: ...`: imported (also by a glob of a question
/// module), or named by a path that resolves to one through the file's
/// imports or from `ke2lab::` itself.
fn question_uses(
    label: &str,
    text: &str,
    forbidden: &std::collections::BTreeSet<String>,
    allowed: &[(&str, &str)],
) -> Vec<String> {
    let code = code_only(text);
    let allowed_here = |path: &str| {
        allowed
            .iter()
            .any(|(file, p)| label.ends_with(file) && *p == path)
    };
    let modules: std::collections::BTreeSet<String> = forbidden
        .iter()
        .filter_map(|p| p.rsplit_once("::").map(|(m, _)| m.to_string()))
        .collect();
    let mut out = Vec::new();
    let mut aliases: std::collections::BTreeMap<String, String> = Default::default();
    let mut in_use = vec![false; code.lines().count() + 1];

    // `use` statements: each from its keyword to its `;`.
    let lines: Vec<&str> = code.lines().collect();
    let mut n = 0;
    while n < lines.len() {
        let t = lines[n].trim_start();
        let body = t
            .strip_prefix("use ")
            .or_else(|| t.strip_prefix("pub use "))
            .or_else(|| t.strip_prefix("pub(crate) use "));
        let Some(first) = body else {
            n += 1;
            continue;
        };
        let start = n;
        let mut stmt = first.to_string();
        while !stmt.contains(';') && n + 1 < lines.len() {
            n += 1;
            in_use[n] = true;
            stmt.push(' ');
            stmt.push_str(lines[n]);
        }
        in_use[start] = true;
        let stmt = stmt.split(';').next().unwrap_or_default();
        for (path, alias) in expand_use(stmt) {
            let glob_of_questions =
                alias == "*" && (modules.contains(&path) || path == "ke2lab::probe");
            if (forbidden.contains(&path) || glob_of_questions) && !allowed_here(&path) {
                out.push(format!(
                    "{label}:{}: imports `{path}{}`",
                    start + 1,
                    if alias == "*" { "::*" } else { "" }
                ));
            }
            if alias != "*" {
                aliases.insert(alias, path);
            }
        }
        n += 1;
    }

    // Paths in the code: `a::b::c` not after a `.` (a method) resolved
    // through the aliases, or absolute from `ke2lab`.
    for (n, line) in lines.iter().enumerate() {
        if in_use[n] {
            continue;
        }
        let cs: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < cs.len() {
            let ident = |c: char| c.is_alphanumeric() || c == '_';
            if !ident(cs[i]) || (i > 0 && (ident(cs[i - 1]) || cs[i - 1] == '.')) {
                i += 1;
                continue;
            }
            let mut j = i;
            while j < cs.len() && (ident(cs[j]) || (cs[j] == ':' && cs.get(j + 1) == Some(&':'))) {
                j += if cs[j] == ':' { 2 } else { 1 };
            }
            let token: String = cs[i..j].iter().collect();
            i = j;
            let mut segs = token.split("::").filter(|s| !s.is_empty());
            let Some(head) = segs.next() else { continue };
            let base = if head == "ke2lab" {
                "ke2lab".to_string()
            } else if let Some(p) = aliases.get(head) {
                p.clone()
            } else {
                continue;
            };
            let path = std::iter::once(base)
                .chain(segs.map(str::to_string))
                .collect::<Vec<_>>()
                .join("::");
            if forbidden.contains(&path) && !allowed_here(&path) {
                out.push(format!("{label}:{}: calls `{path}`", n + 1));
            }
        }
    }
    out
}

#[test]
fn the_harness_and_scenarios_ask_cluster_questions_only_through_cluster() {
    let forbidden = forbidden_questions();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut bad = Vec::new();
    for dir in ["harness/src", "scenarios/src", "scenarios/tests"] {
        let mut files = Vec::new();
        rust_files(&root.join(dir), &mut files);
        assert!(!files.is_empty(), "no sources under {dir}");
        for f in files {
            let label = f.strip_prefix(root).unwrap().display().to_string();
            let text = std::fs::read_to_string(&f).unwrap();
            bad.extend(question_uses(&label, &text, &forbidden, ALLOWED_QUESTIONS));
        }
    }
    assert!(
        bad.is_empty(),
        "cluster questions asked around `ke2lab::cluster::Cluster` (add the question to \
         Cluster, or an allowlist entry with why it is none):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_question_list_comes_from_the_probe_sources() {
    let f = forbidden_questions();
    for want in [
        "ke2lab::probe::swarm::nodes",
        "ke2lab::probe::swarm::info",
        "ke2lab::probe::gluster::heal_info",
        "ke2lab::probe::pgpool::show_pool_nodes",
        "ke2lab::probe::pgpool::watchdog_info_cmd",
        "ke2lab::probe::net::links",
        "ke2lab::probe::stack::endpoint_spec",
        "ke2lab::probe::http::https_get",
        "ke2lab::cluster::pgpool::observe",
        "ke2lab::cluster::pgpool::psql",
        "ke2lab::steps::postgres::psql",
    ] {
        assert!(f.contains(want), "`{want}` missing from {f:#?}");
    }
    // Parsers and predicates are not questions.
    for pure in [
        "ke2lab::probe::swarm::parse_node_ls",
        "ke2lab::probe::net::holds",
        "ke2lab::cluster::pgpool::decide",
        "ke2lab::steps::shared_dir::layout",
    ] {
        assert!(!f.contains(pure), "`{pure}` is no question");
    }
    // A probe added tomorrow is covered without an edit here.
    let src = "pub fn parse_x(t: &str) -> X {}\n\
               pub async fn brand_new(host: &dyn Host) -> Result<X, ProbeError> {}\n\
               pub fn brand_new_cmd(\n    a: u16,\n) -> Cmd {}\n\
               #[cfg(test)]\nmod tests { pub async fn helper() {} }\n";
    assert_eq!(
        questions_in("ke2lab::probe::x", src, Asks::ProbesAndCommands),
        [
            "ke2lab::probe::x::brand_new",
            "ke2lab::probe::x::brand_new_cmd"
        ]
    );
    assert_eq!(
        questions_in("ke2lab::steps::x", src, Asks::Commands),
        ["ke2lab::steps::x::brand_new_cmd"]
    );
}

#[test]
fn the_question_checker_catches_planted_violations() {
    let forbidden = forbidden_questions();
    let planted = r#"use ke2lab::probe::swarm::{self, SwarmSummary};
use ke2lab::probe::{gluster::{heal_info as hi, HealInfo}, net};
use ke2lab::probe::stack::*;
async fn f(lab: &Lab, h: &dyn Host) {
    let n = swarm::nodes(h).await;
    let l = net::links(h).await;
    let v = ke2lab::cluster::pgpool::observe(&lab.topology, &lab.hosts()).await;
    let c = ke2lab::probe::pgpool::connect(a, 1, "u", "p", "d", T).await;
    let r = ke2lab::steps::postgres::psql(l, 5432, "postgres", "SELECT 1").check(h).await;
}
"#;
    let found = question_uses(
        "scenarios/tests/planted.rs",
        planted,
        &forbidden,
        ALLOWED_QUESTIONS,
    );
    let want = [
        "scenarios/tests/planted.rs:2: imports `ke2lab::probe::gluster::heal_info`",
        "scenarios/tests/planted.rs:3: imports `ke2lab::probe::stack::*`",
        "scenarios/tests/planted.rs:5: calls `ke2lab::probe::swarm::nodes`",
        "scenarios/tests/planted.rs:6: calls `ke2lab::probe::net::links`",
        "scenarios/tests/planted.rs:7: calls `ke2lab::cluster::pgpool::observe`",
        "scenarios/tests/planted.rs:8: calls `ke2lab::probe::pgpool::connect`",
        "scenarios/tests/planted.rs:9: calls `ke2lab::steps::postgres::psql`",
    ];
    assert_eq!(found, want);

    // What is fine: the Cluster's questions, probe types, comments and
    // messages that name a probe, methods of the same name, and the
    // allowlist in its own file only.
    let clean = r#"use ke2lab::probe::swarm::{ManagerStatus, SwarmSummary};
use ke2lab::probe::pgpool::connect;
// swarm::nodes(h) used to be called here
async fn g(lab: &Lab) {
    let n = lab.cluster().swarm_nodes_from("a").await;
    let s = "swarm::nodes( in a message";
    let q = '"';
    x.nodes(h);
    let c = connect(a, 1, "u", "p", "d", T).await;
}
"#;
    assert_eq!(
        question_uses(
            "harness/src/writer.rs",
            clean,
            &forbidden,
            ALLOWED_QUESTIONS
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        question_uses(
            "scenarios/tests/other.rs",
            clean,
            &forbidden,
            ALLOWED_QUESTIONS
        ),
        [
            "scenarios/tests/other.rs:2: imports `ke2lab::probe::pgpool::connect`",
            "scenarios/tests/other.rs:9: calls `ke2lab::probe::pgpool::connect`",
        ]
    );
}
