//! Where ke2lab keeps its state, found at run time: the binary carries no
//! compile-time path, so it runs from any directory.
//!
//! The state directory (`home`) is `$KE2LAB_HOME` when set; else, run from
//! inside a ke2lab checkout (found by walking up from the current
//! directory), the checkout's `target/ke2lab`; else `$XDG_STATE_HOME/ke2lab`,
//! else `$HOME/.local/state/ke2lab`. Created with mode 0700, with a marker
//! file ([`MARKER`]) that lets a later run, resolving another home (`up`
//! inside the checkout, `down` from `/tmp`), recognise a run directory of
//! this one before deleting it ([`state_dir_to_remove`]).

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::lab::is_run_id;

/// The file that marks a directory as a ke2lab state directory. Only a run
/// directory under `runs/` of the current home or of a marked one is ever
/// deleted.
pub const MARKER: &str = ".ke2lab-home";

/// What the state directory's resolution reads from the process: the
/// environment and the current directory ([`resolve_home`] reads nothing
/// else but the checkout's `Cargo.toml` files).
#[derive(Clone, Debug, Default)]
pub struct HomeInputs {
    /// `$KE2LAB_HOME`.
    pub ke2lab_home: Option<OsString>,
    /// `$XDG_STATE_HOME`.
    pub xdg_state_home: Option<OsString>,
    /// The user's home directory (`$HOME`, else the password database).
    pub user_home: Option<PathBuf>,
    /// The current directory.
    pub cwd: Option<PathBuf>,
}

impl HomeInputs {
    /// This process's values.
    pub fn from_process() -> HomeInputs {
        HomeInputs {
            ke2lab_home: std::env::var_os("KE2LAB_HOME"),
            xdg_state_home: std::env::var_os("XDG_STATE_HOME"),
            user_home: std::env::home_dir(),
            cwd: std::env::current_dir().ok(),
        }
    }
}

/// No state directory could be chosen.
#[derive(Debug, PartialEq, Eq)]
pub struct NoHome;

impl std::fmt::Display for NoHome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "no state directory: `KE2LAB_HOME`, `XDG_STATE_HOME` and `HOME` are unset \
             (or not absolute) and the current directory is not in a ke2lab checkout; \
             set `KE2LAB_HOME` to a directory for ke2lab's state",
        )
    }
}

impl std::error::Error for NoHome {}

/// The state directory for `inputs`: `KE2LAB_HOME` (relative to the current
/// directory when relative); else `<checkout>/target/ke2lab` when the current
/// directory lies in a ke2lab checkout ([`find_checkout`]); else
/// `$XDG_STATE_HOME/ke2lab` (an absolute value only, as the XDG base
/// directory specification says); else `<user home>/.local/state/ke2lab`.
/// Empty values count as unset.
pub fn resolve_home(inputs: &HomeInputs) -> Result<PathBuf, NoHome> {
    let set = |v: &Option<OsString>| v.clone().filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(h) = set(&inputs.ke2lab_home) {
        if h.is_absolute() {
            return Ok(h);
        }
        return inputs.cwd.as_ref().map(|c| c.join(h)).ok_or(NoHome);
    }
    if let Some(checkout) = inputs.cwd.as_deref().and_then(find_checkout) {
        return Ok(checkout.join("target").join("ke2lab"));
    }
    if let Some(x) = set(&inputs.xdg_state_home).filter(|x| x.is_absolute()) {
        return Ok(x.join("ke2lab"));
    }
    inputs
        .user_home
        .clone()
        .filter(|h| h.is_absolute())
        .map(|h| h.join(".local").join("state").join("ke2lab"))
        .ok_or(NoHome)
}

/// The ke2lab checkout `start` lies in: the nearest of `start` and its
/// ancestors whose `Cargo.toml` declares a `[workspace]` and whose
/// `harness/Cargo.toml` is the package `ke2lab-harness`.
pub fn find_checkout(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|d| is_checkout(d))
        .map(Path::to_path_buf)
}

fn is_checkout(dir: &Path) -> bool {
    let table = |p: PathBuf| -> Option<toml::Table> {
        toml::from_str(&std::fs::read_to_string(p).ok()?).ok()
    };
    let Some(root) = table(dir.join("Cargo.toml")) else {
        return false;
    };
    if !root.get("workspace").is_some_and(toml::Value::is_table) {
        return false;
    }
    table(dir.join("harness").join("Cargo.toml")).is_some_and(|h| {
        h.get("package")
            .and_then(|p| p.get("name"))
            .and_then(toml::Value::as_str)
            == Some("ke2lab-harness")
    })
}

/// Where the harness keeps per-run state (topology as remapped, secrets, ssh
/// key), build scratch space and artifacts: [`resolve_home`] for this
/// process, resolved once. The directory is made on first use (mode 0700,
/// with its [`MARKER`]).
///
/// Exits with the bad-input code (2) when no directory can be chosen
/// ([`NoHome`]: no `KE2LAB_HOME`, `XDG_STATE_HOME` nor `HOME`, and not in a
/// checkout), which no caller could act on otherwise.
pub fn home() -> PathBuf {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        let home = match resolve_home(&HomeInputs::from_process()) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
        };
        if let Err(e) = ensure_home(&home) {
            eprintln!(
                "warning: cannot make the state directory `{}`: {e}",
                home.display()
            );
        }
        home
    })
    .clone()
}

/// Makes `home` (and any missing parent) with mode 0700 when missing, and
/// writes its [`MARKER`] when absent. An existing directory keeps its mode.
pub fn ensure_home(home: &Path) -> std::io::Result<()> {
    if !home.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(home)?;
    }
    let marker = home.join(MARKER);
    if marker.symlink_metadata().is_err() {
        std::fs::write(
            &marker,
            "This directory holds ke2lab's state (runs/, build/, artifacts/).\n",
        )?;
    }
    Ok(())
}

/// Whether `dir` holds a ke2lab [`MARKER`] (a regular file, not a symlink).
fn is_marked_home(dir: &Path) -> bool {
    dir.join(MARKER)
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_file())
}

/// The directory to delete for `candidate`, the state directory of run
/// `run`, if it is one: `run` is a run id; once canonicalised (symlinks and
/// `..` resolved) `candidate` is a directory named `run` directly in the
/// `runs/` of either `home` (the current state directory, itself
/// canonicalised) or of a directory carrying ke2lab's [`MARKER`] (the home of
/// a run made from elsewhere: its label says where). Anything else, such as
/// `/`, a path outside, a symlink under `runs/` pointing outside, `runs/`
/// itself, another run's directory, an empty or missing path, is `None`: the
/// paths come from container labels, which anyone with the engine can set,
/// and from the command line.
pub fn state_dir_to_remove(home: &Path, candidate: &Path, run: &str) -> Option<PathBuf> {
    if candidate.as_os_str().is_empty() || !is_run_id(run) {
        return None;
    }
    let dir = candidate.canonicalize().ok()?;
    if !dir.is_dir() || dir.file_name() != Some(OsStr::new(run)) {
        return None;
    }
    let runs = dir.parent()?;
    if runs.file_name() != Some(OsStr::new("runs")) {
        return None;
    }
    let current = home.join("runs").canonicalize().ok();
    let in_current = current.as_deref() == Some(runs);
    let in_marked = runs.parent().is_some_and(is_marked_home);
    (in_current || in_marked).then_some(dir)
}

/// Removes run `run`'s state directory through [`state_dir_to_remove`]; a
/// refused one stays and is warned about, unless it is simply a run's
/// directory that is gone already (a run's label and its id name the same
/// directory, so the second removal finds nothing). Returns what it removed.
pub fn remove_state_dir(home: &Path, candidate: &Path, run: &str) -> Option<PathBuf> {
    match state_dir_to_remove(home, candidate, run) {
        Some(dir) => match std::fs::remove_dir_all(&dir) {
            Ok(()) => Some(dir),
            Err(e) => {
                eprintln!("warning: cannot remove `{}`: {e}", dir.display());
                None
            }
        },
        None => {
            let lexically_a_run = is_run_id(run)
                && candidate.file_name() == Some(OsStr::new(run))
                && candidate
                    .parent()
                    .is_some_and(|p| p.file_name() == Some(OsStr::new("runs")));
            let gone = candidate.symlink_metadata().is_err();
            if !(lexically_a_run && gone) {
                eprintln!(
                    "warning: not removing `{}`: not the state directory of run `{}` under \
                     `{}` or another ke2lab state directory's `runs/`",
                    ke2lab::topology::shown(&candidate.to_string_lossy()),
                    ke2lab::topology::shown(run),
                    home.join("runs").display()
                );
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// A directory laid out as a ke2lab checkout (the two manifests the
    /// discovery reads), with a subdirectory to run from.
    fn fake_checkout() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("Cargo.toml"),
            "[package]\nname = \"ke2lab\"\n\n[workspace]\nmembers = [\".\", \"harness\"]\n",
        )
        .unwrap();
        std::fs::create_dir_all(d.path().join("harness/src")).unwrap();
        std::fs::write(
            d.path().join("harness/Cargo.toml"),
            "[package]\nname = \"ke2lab-harness\"\nversion = \"0.1.0\"\n",
        )
        .unwrap();
        d
    }

    fn inputs(cwd: &Path) -> HomeInputs {
        HomeInputs {
            ke2lab_home: None,
            xdg_state_home: Some("/xdg/state".into()),
            user_home: Some("/home/u".into()),
            cwd: Some(cwd.to_path_buf()),
        }
    }

    #[test]
    fn inside_a_checkout_the_home_is_its_target_ke2lab() {
        let c = fake_checkout();
        for cwd in [c.path().to_path_buf(), c.path().join("harness/src")] {
            assert_eq!(
                resolve_home(&inputs(&cwd)),
                Ok(c.path().join("target/ke2lab")),
                "{cwd:?}"
            );
        }
    }

    #[test]
    fn outside_a_checkout_xdg_state_home_then_home() {
        let outside = tempfile::tempdir().unwrap();
        let mut i = inputs(outside.path());
        assert_eq!(resolve_home(&i), Ok(PathBuf::from("/xdg/state/ke2lab")));
        for xdg in [None, Some(""), Some("relative/state")] {
            i.xdg_state_home = xdg.map(OsString::from);
            assert_eq!(
                resolve_home(&i),
                Ok(PathBuf::from("/home/u/.local/state/ke2lab")),
                "XDG_STATE_HOME {xdg:?}"
            );
        }
        i.user_home = None;
        assert_eq!(resolve_home(&i), Err(NoHome));
        i.cwd = None;
        assert_eq!(resolve_home(&i), Err(NoHome));
        assert!(NoHome.to_string().contains("set `KE2LAB_HOME`"));
    }

    #[test]
    fn ke2lab_home_wins_everywhere() {
        let c = fake_checkout();
        let outside = tempfile::tempdir().unwrap();
        for cwd in [c.path(), outside.path()] {
            let mut i = inputs(cwd);
            i.ke2lab_home = Some("/srv/labs".into());
            assert_eq!(resolve_home(&i), Ok(PathBuf::from("/srv/labs")));
            i.ke2lab_home = Some("rel".into());
            assert_eq!(resolve_home(&i), Ok(cwd.join("rel")), "relative to the cwd");
            i.ke2lab_home = Some("".into());
            assert_ne!(resolve_home(&i), Ok(cwd.join("")), "empty is unset");
        }
    }

    #[test]
    fn a_look_alike_is_not_a_checkout() {
        let c = fake_checkout();
        // Another workspace's harness.
        std::fs::write(
            c.path().join("harness/Cargo.toml"),
            "[package]\nname = \"other-harness\"\n",
        )
        .unwrap();
        assert_eq!(find_checkout(&c.path().join("harness/src")), None);
        // The package without a workspace.
        let c = fake_checkout();
        std::fs::write(
            c.path().join("Cargo.toml"),
            "[package]\nname = \"ke2lab\"\n",
        )
        .unwrap();
        assert_eq!(find_checkout(c.path()), None);
        assert_eq!(find_checkout(Path::new("/")), None);
    }

    #[test]
    fn this_checkout_is_found_from_its_crates() {
        // Test code may know where it was compiled; the binary never does.
        let harness = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert_eq!(find_checkout(harness).as_deref(), harness.parent());
    }

    #[test]
    fn ensure_home_makes_it_private_and_marked() {
        let d = tempfile::tempdir().unwrap();
        let home = d.path().join("state/ke2lab");
        ensure_home(&home).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&home), 0o700);
        assert_eq!(mode(&d.path().join("state")), 0o700);
        assert!(is_marked_home(&home));
        // Again: nothing changes, the marker stays.
        ensure_home(&home).unwrap();
        assert!(is_marked_home(&home));
    }

    /// A run id for `candidate`: its own last component when that is one,
    /// so each refusal below comes from the path, not from the run.
    fn run_of(candidate: &Path) -> &str {
        candidate
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| is_run_id(n))
            .unwrap_or("r0a0b0c")
    }

    /// Only a run's own directory under `home/runs/` is ever deleted:
    /// sentinels outside it, reached through `..`, `/`, an absolute path, a
    /// symlink under `runs/` or an empty label, survive.
    #[test]
    fn only_run_state_directories_under_runs_are_removed() {
        let home = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let runs = home.path().join("runs");
        let run = runs.join("r0a0b0c");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("topology.toml"), "x").unwrap();
        let beside = home.path().join("build");
        std::fs::create_dir_all(&beside).unwrap();
        let sentinels = [
            beside.join("sentinel"),
            home.path().join("sentinel"),
            elsewhere.path().join("sentinel"),
            runs.join("sentinel"),
        ];
        for s in &sentinels {
            std::fs::write(s, "keep").unwrap();
        }
        let not_a_run = runs.join("notarun");
        std::fs::create_dir_all(&not_a_run).unwrap();
        let link = runs.join("r0d0e0f");
        symlink(elsewhere.path(), &link).unwrap();

        let refused: Vec<PathBuf> = vec![
            PathBuf::from("../x"),
            PathBuf::from("/"),
            PathBuf::new(),
            elsewhere.path().to_path_buf(),
            home.path().to_path_buf(),
            beside.clone(),
            runs.clone(),
            runs.join("."),
            runs.join("r0a0b0c/.."),
            runs.join("..").join("build"),
            runs.join("r0a0b0c/../../build"),
            link.clone(),
            not_a_run.clone(),
            runs.join("sentinel"),
        ];
        for candidate in &refused {
            let r = run_of(candidate);
            assert_eq!(
                state_dir_to_remove(home.path(), candidate, r),
                None,
                "{candidate:?}"
            );
            assert_eq!(
                remove_state_dir(home.path(), candidate, r),
                None,
                "{candidate:?}"
            );
        }
        // A run directory, but not the run's: another id, or no id at all.
        for r in ["r111111", "notarun", "", "../r0a0b0c"] {
            assert_eq!(state_dir_to_remove(home.path(), &run, r), None, "{r:?}");
            assert_eq!(remove_state_dir(home.path(), &run, r), None, "{r:?}");
        }
        for s in &sentinels {
            assert_eq!(std::fs::read_to_string(s).unwrap(), "keep", "{s:?}");
        }
        assert!(not_a_run.is_dir());
        assert!(link.symlink_metadata().is_ok(), "the symlink itself stays");
        assert!(run.is_dir(), "nothing refused touched the run");

        let canonical = run.canonicalize().unwrap();
        let removed = remove_state_dir(home.path(), &run, "r0a0b0c").expect("the run's directory");
        assert_eq!(removed, canonical);
        assert!(!run.exists());
        // Gone already: nothing to do, and nothing else removed.
        assert_eq!(remove_state_dir(home.path(), &run, "r0a0b0c"), None);
        for s in &sentinels {
            assert_eq!(std::fs::read_to_string(s).unwrap(), "keep", "{s:?}");
        }
    }

    /// `up` in the checkout, `down` from elsewhere: the label names a run
    /// directory of another home. It goes only when that home carries the
    /// marker (a regular file); an unmarked look-alike, a symlinked marker,
    /// or a symlink from the current home's `runs/` into an unmarked
    /// directory stays, with everything around it.
    #[test]
    fn a_run_of_another_marked_home_is_removed_and_nothing_else() {
        let current = tempfile::tempdir().unwrap();
        ensure_home(current.path()).unwrap();
        std::fs::create_dir_all(current.path().join("runs")).unwrap();

        let other = tempfile::tempdir().unwrap();
        let other_home = other.path().join("target/ke2lab");
        ensure_home(&other_home).unwrap();
        let run = other_home.join("runs/r1b2c3d");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("secrets.toml"), "x").unwrap();
        let sentinel = other_home.join("runs/sentinel");
        std::fs::write(&sentinel, "keep").unwrap();

        // Unmarked directories laid out like homes.
        let plain = tempfile::tempdir().unwrap();
        let plain_run = plain.path().join("ke2lab/runs/r2b2c2d");
        std::fs::create_dir_all(&plain_run).unwrap();
        std::fs::write(plain_run.join("data"), "keep").unwrap();
        let fake = tempfile::tempdir().unwrap();
        let fake_home = fake.path().join("home");
        let fake_run = fake_home.join("runs/r3b3c3d");
        std::fs::create_dir_all(&fake_run).unwrap();
        std::fs::write(fake_run.join("data"), "keep").unwrap();
        symlink(other_home.join(MARKER), fake_home.join(MARKER)).unwrap();
        let dir_marker = tempfile::tempdir().unwrap();
        let dir_marker_run = dir_marker.path().join("runs/r4b4c4d");
        std::fs::create_dir_all(&dir_marker_run).unwrap();
        std::fs::create_dir(dir_marker.path().join(MARKER)).unwrap();
        // A symlink in the current home's runs/ to an unmarked run directory.
        let escape = current.path().join("runs/r2b2c2d");
        symlink(&plain_run, &escape).unwrap();

        for (candidate, r) in [
            (&plain_run, "r2b2c2d"),
            (&escape, "r2b2c2d"),
            (&fake_run, "r3b3c3d"),
            (&dir_marker_run, "r4b4c4d"),
            (&run, "r9b9c9d"),
            (&other_home.join("runs"), "r1b2c3d"),
            (&other_home, "r1b2c3d"),
        ] {
            assert_eq!(
                remove_state_dir(current.path(), candidate, r),
                None,
                "{candidate:?} {r}"
            );
        }
        assert_eq!(
            std::fs::read_to_string(plain_run.join("data")).unwrap(),
            "keep"
        );
        assert_eq!(
            std::fs::read_to_string(fake_run.join("data")).unwrap(),
            "keep"
        );
        assert!(dir_marker_run.is_dir());
        assert!(escape.symlink_metadata().is_ok());

        let removed = remove_state_dir(current.path(), &run, "r1b2c3d").expect("removed");
        assert_eq!(
            removed,
            other_home.canonicalize().unwrap().join("runs/r1b2c3d")
        );
        assert!(!run.exists());
        assert_eq!(std::fs::read_to_string(&sentinel).unwrap(), "keep");
        assert!(is_marked_home(&other_home));
    }
}
