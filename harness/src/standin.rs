//! Stand-in images for the ke2 stack. No registry can serve the images the
//! compose files name (Docker Hub's nginx, redis and rabbitmq, Kompira's
//! private image), so the lab builds test fixtures in their place
//! (`fixtures/standin-image/README.md`): one Debian root filesystem with
//! nginx, Redis and RabbitMQ from Debian's packages, made without a registry
//! like the host image, then one config-only image per service (its
//! entrypoint and command) and the Kompira stand-in binary on top. They are
//! saved once to an archive, loaded into every host's engine and tagged there
//! with the exact image names the stack file uses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bollard::Docker;
use futures_util::StreamExt;
use ke2lab::host::{Cmd, Host};
use tokio::io::AsyncWriteExt;

use crate::container_host::ContainerHost;
use crate::image::{self, ImageReport, Recipe, short_hash};

const PACKAGES: &str = include_str!("../../fixtures/standin-image/packages.txt");
const NGINX_ENTRY: &str = include_str!("../../fixtures/standin-image/nginx-entrypoint.sh");
const REDIS_ENTRY: &str = include_str!("../../fixtures/standin-image/redis-entrypoint.sh");
const RABBITMQ_ENTRY: &str = include_str!("../../fixtures/standin-image/rabbitmq-entrypoint.sh");
const RABBITMQ_DEFAULTS: &str =
    include_str!("../../fixtures/standin-image/rabbitmq-10-defaults.conf");

pub const BASE_REPO: &str = "ke2lab/standin-base";
/// Where the Kompira stand-in binary goes in its image; the role commands
/// (`kompirad`, `uwsgi`, `jobmngrd`) are links to it beside it.
pub const KOMPIRA_BIN: &str = "/usr/local/bin/ke2-standin";

/// Which stand-in serves an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Nginx,
    Redis,
    Rabbitmq,
    Kompira,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Nginx, Kind::Redis, Kind::Rabbitmq, Kind::Kompira];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Redis => "redis",
            Kind::Rabbitmq => "rabbitmq",
            Kind::Kompira => "kompira",
        }
    }

    /// The stand-in for an image reference of the stack file, by the last
    /// element of its repository path (`registry.hub.docker.com/library/nginx:1.27-alpine`
    /// is nginx; `kompira.azurecr.io/kompira-enterprise:2.0.2` is Kompira).
    pub fn for_image(image: &str) -> Option<Kind> {
        let no_digest = image.split('@').next().unwrap_or(image);
        let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
        let repo = last.split(':').next().unwrap_or(last);
        match repo {
            "nginx" => Some(Kind::Nginx),
            "redis" => Some(Kind::Redis),
            "rabbitmq" => Some(Kind::Rabbitmq),
            r if r.starts_with("kompira") => Some(Kind::Kompira),
            _ => None,
        }
    }

    /// The config-only Dockerfile on top of the base image: what the
    /// official image's entrypoint and default command are.
    fn dockerfile(self, base: &str) -> String {
        let body = match self {
            Kind::Nginx => "ENTRYPOINT [\"/usr/local/bin/ke2lab-nginx-entrypoint\"]\n\
                            CMD [\"nginx\", \"-g\", \"daemon off;\"]\n\
                            STOPSIGNAL SIGQUIT\n"
                .to_string(),
            Kind::Redis => "WORKDIR /data\n\
                            ENTRYPOINT [\"/usr/local/bin/ke2lab-redis-entrypoint\"]\n\
                            CMD [\"redis-server\"]\n"
                .to_string(),
            Kind::Rabbitmq => "ENTRYPOINT [\"/usr/local/bin/ke2lab-rabbitmq-entrypoint\"]\n\
                               CMD [\"rabbitmq-server\"]\n"
                .to_string(),
            Kind::Kompira => "CMD [\"uwsgi\"]\n".to_string(),
        };
        // A tarball given to ADD is unpacked, links included, so no RUN is
        // needed (the build runs no container).
        format!(
            "FROM {base}\nADD layer.tar /\n{body}LABEL ke2lab.standin={}\n",
            self.name()
        )
    }

    /// The files this image adds to the base: its entrypoint (and the
    /// rabbitmq defaults), or the Kompira stand-in and its links. Kept out
    /// of the base so that changing them rebuilds only this small layer.
    fn layer(self, kompira_bin: &[u8]) -> Result<Vec<u8>> {
        let file = |path: &str, body: &[u8], mode| (path.to_string(), body.to_vec(), mode);
        let files = match self {
            Kind::Nginx => vec![file(
                "usr/local/bin/ke2lab-nginx-entrypoint",
                NGINX_ENTRY.as_bytes(),
                0o755,
            )],
            Kind::Redis => vec![file(
                "usr/local/bin/ke2lab-redis-entrypoint",
                REDIS_ENTRY.as_bytes(),
                0o755,
            )],
            Kind::Rabbitmq => vec![
                file(
                    "usr/local/bin/ke2lab-rabbitmq-entrypoint",
                    RABBITMQ_ENTRY.as_bytes(),
                    0o755,
                ),
                file(
                    "etc/rabbitmq/conf.d/10-defaults.conf",
                    RABBITMQ_DEFAULTS.as_bytes(),
                    0o644,
                ),
            ],
            Kind::Kompira => return kompira_tar(kompira_bin),
        };
        image::tar_context(&files)
    }
}

/// The recipe of the shared root filesystem.
pub fn base_recipe() -> Recipe {
    Recipe {
        repo: BASE_REPO.into(),
        suite: image::SUITE.into(),
        packages: image::package_list(PACKAGES),
        files: Vec::new(),
        entrypoint: None,
        slim: true,
    }
}

/// The stand-in images, built (or found) in the machine's engine and saved
/// to one archive.
#[derive(Clone, Debug)]
pub struct Standins {
    pub base: ImageReport,
    /// The stand-in's own tag per kind (`ke2lab/standin-nginx:<hash>`).
    pub tags: BTreeMap<Kind, String>,
    /// Image size per kind as the engine reports it (the base is shared).
    pub sizes: BTreeMap<Kind, u64>,
    pub archive: PathBuf,
    pub archive_bytes: u64,
    pub elapsed: Duration,
}

/// Builds what is missing: the base (debootstrap or `docker build`), the
/// four service images, the archive. Everything is keyed by content hashes,
/// so an unchanged recipe and binary cost nothing.
pub async fn ensure(docker: &Docker, work: &Path, kompira_bin: &Path) -> Result<Standins> {
    let start = Instant::now();
    // The base may be cached while the work directory is new (a fresh
    // checkout on a machine that built it before).
    std::fs::create_dir_all(work)
        .with_context(|| format!("cannot create the work directory `{}`", work.display()))?;
    let base = image::ensure(docker, &base_recipe(), work).await?;
    let bin = std::fs::read(kompira_bin).with_context(|| {
        format!(
            "cannot read the Kompira stand-in `{}`",
            kompira_bin.display()
        )
    })?;
    let mut tags = BTreeMap::new();
    let mut sizes = BTreeMap::new();
    for kind in Kind::ALL {
        let dockerfile = kind.dockerfile(&base.tag);
        let layer = kind.layer(&bin)?;
        let layer_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&layer));
        let tag = format!(
            "ke2lab/standin-{}:{}",
            kind.name(),
            short_hash(&format!("{dockerfile}\0{layer_hash}"))
        );
        if docker.inspect_image(&tag).await.is_err() {
            let ctx = vec![
                ("Dockerfile".to_string(), dockerfile.into_bytes(), 0o644),
                ("layer.tar".into(), layer, 0o644),
            ];
            image::build_context(docker, &tag, image::tar_context(&ctx)?).await?;
        }
        let img = docker
            .inspect_image(&tag)
            .await
            .with_context(|| format!("stand-in image `{tag}` is missing right after its build"))?;
        sizes.insert(kind, img.size.unwrap_or(0) as u64);
        tags.insert(kind, tag);
    }
    let all: Vec<&str> = tags.values().map(String::as_str).collect();
    let archive = work.join(format!("standins-{}.tar", short_hash(&all.join("\n"))));
    if !archive.is_file() {
        save(docker, &all, &archive).await?;
        // Archives of earlier stand-ins (~200 MB each) are never used again.
        for e in std::fs::read_dir(work)?.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with("standins-") && name.ends_with(".tar") && e.path() != archive {
                std::fs::remove_file(e.path()).ok();
            }
        }
    }
    let archive_bytes = std::fs::metadata(&archive)?.len();
    Ok(Standins {
        base,
        tags,
        sizes,
        archive,
        archive_bytes,
        elapsed: start.elapsed(),
    })
}

/// `usr/local/bin/ke2-standin` and the three role links to it.
fn kompira_tar(bin: &[u8]) -> Result<Vec<u8>> {
    let mut t = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(bin.len() as u64);
    h.set_mode(0o755);
    h.set_cksum();
    t.append_data(&mut h, KOMPIRA_BIN.trim_start_matches('/'), bin)?;
    for role in ["kompirad", "uwsgi", "jobmngrd"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        t.append_link(&mut h, format!("usr/local/bin/{role}"), "ke2-standin")?;
    }
    Ok(t.into_inner()?)
}

/// `docker save` of the stand-ins into `dest` (written aside, then renamed,
/// so a killed run never leaves a truncated archive under the final name).
async fn save(docker: &Docker, tags: &[&str], dest: &Path) -> Result<()> {
    let tmp = dest.with_extension(format!("tmp{}", std::process::id()));
    let mut f = tokio::fs::File::create(&tmp)
        .await
        .with_context(|| format!("cannot write the stand-in archive `{}`", tmp.display()))?;
    let mut stream = docker.export_images(tags);
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.context("`docker save` of the stand-in images failed")?;
        f.write_all(&chunk).await?;
        written += chunk.len() as u64;
        crate::console::bytes(written, None);
    }
    f.flush().await?;
    drop(f);
    tokio::fs::rename(&tmp, dest).await?;
    Ok(())
}

/// Where the Kompira stand-in binary comes from ([`standin_source`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StandinSource {
    /// `KE2LAB_STANDIN_BIN`.
    Given(PathBuf),
    /// Built in this ke2lab checkout (`cargo build --release -p
    /// ke2-standin`, a no-op when it is fresh).
    Build(PathBuf),
    /// A `ke2-standin` installed beside the running binary.
    Beside(PathBuf),
}

/// Where the stand-in comes from, decided at run time (no compile-time
/// path): `KE2LAB_STANDIN_BIN` (`given`) when set; else, when the running
/// binary `exe` lies in a ke2lab checkout (`target/<profile>/`, or a test
/// binary in `deps/`), built there, so the image never carries a stale
/// binary; else a `ke2-standin` beside `exe` (binaries installed side by
/// side); else built in the checkout the current directory `cwd` lies in;
/// else an error naming `KE2LAB_STANDIN_BIN` and how to build it.
pub fn standin_source(
    given: Option<PathBuf>,
    exe: Option<&Path>,
    cwd: Option<&Path>,
) -> Result<StandinSource> {
    if let Some(p) = given.filter(|p| !p.as_os_str().is_empty()) {
        if !p.is_file() {
            bail!("`KE2LAB_STANDIN_BIN`: `{}` is not a file", p.display());
        }
        return Ok(StandinSource::Given(p));
    }
    if let Some(ws) = exe.and_then(crate::paths::find_checkout) {
        return Ok(StandinSource::Build(ws));
    }
    let beside = exe
        .and_then(Path::parent)
        .map(|d| d.join("ke2-standin"))
        .filter(|p| p.is_file());
    if let Some(p) = beside {
        return Ok(StandinSource::Beside(p));
    }
    if let Some(ws) = cwd.and_then(crate::paths::find_checkout) {
        return Ok(StandinSource::Build(ws));
    }
    bail!(
        "the Kompira stand-in binary `ke2-standin` was not found: `{}` is not in a ke2lab \
         checkout and has no `ke2-standin` beside it, nor is the current directory in a \
         checkout; build it in a ke2lab checkout (`cargo build --release -p ke2-standin`) \
         and set `KE2LAB_STANDIN_BIN` to `target/release/ke2-standin`, or install it beside \
         `ke2lab`",
        exe.map_or_else(|| "ke2lab".into(), |e| e.display().to_string())
    )
}

/// The Kompira stand-in binary, from [`standin_source`] for this process.
pub async fn kompira_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().ok();
    let cwd = std::env::current_dir().ok();
    let ws = match standin_source(
        std::env::var_os("KE2LAB_STANDIN_BIN").map(PathBuf::from),
        exe.as_deref(),
        cwd.as_deref(),
    )? {
        StandinSource::Given(p) | StandinSource::Beside(p) => return Ok(p),
        StandinSource::Build(ws) => ws,
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = tokio::process::Command::new(&cargo)
        .args(["build", "--quiet", "--release", "-p", "ke2-standin"])
        .current_dir(&ws)
        .stdin(Stdio::null())
        .status()
        .await
        .with_context(|| {
            format!(
                "cannot run `{cargo}` to build the Kompira stand-in in `{}`; build it and set \
                 `KE2LAB_STANDIN_BIN`",
                ws.display()
            )
        })?;
    if !st.success() {
        bail!(
            "`cargo build --release -p ke2-standin` failed in `{}` ({st})",
            ws.display()
        );
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| ws.join(t))
        .unwrap_or_else(|_| ws.join("target"));
    let bin = target.join("release/ke2-standin");
    if !bin.is_file() {
        bail!(
            "the Kompira stand-in is not at `{}` after its build",
            bin.display()
        );
    }
    Ok(bin)
}

/// What loading did on one host.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub host: String,
    /// False when the host's engine had the stand-ins already.
    pub loaded: bool,
    pub elapsed: Duration,
}

/// Loads the archive into `host`'s engine unless it has every stand-in, then
/// tags each stand-in with the stack's image names (`images`: name → kind).
/// `sent` counts the archive's bytes streamed to the host, or the whole
/// archive at once when the host has the images already (the console's
/// progress, out of the archive's size times the hosts).
pub async fn load_into(
    host: &ContainerHost,
    standins: &Standins,
    images: &BTreeMap<String, Kind>,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Result<Loaded> {
    let start = Instant::now();
    let mut inspect = vec!["docker".to_string(), "image".into(), "inspect".into()];
    inspect.extend(standins.tags.values().cloned());
    let present = host.run(&Cmd::new(inspect)).await?.status == 0;
    if present {
        sent.fetch_add(standins.archive_bytes, std::sync::atomic::Ordering::Relaxed);
    } else {
        host.feed_file(&["docker", "load", "--quiet"], &standins.archive, sent)
            .await
            .with_context(|| format!("host `{}`: cannot load the stand-in images", host.name()))?;
    }
    for (name, kind) in images {
        let own = &standins.tags[kind];
        Cmd::new(["docker", "tag", own.as_str(), name.as_str()])
            .check(host)
            .await
            .with_context(|| format!("host `{}`: cannot tag `{own}` as `{name}`", host.name()))?;
    }
    Ok(Loaded {
        host: host.name().to_string(),
        loaded: !present,
        elapsed: start.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_of_the_pinned_stack_map_to_stand_ins() {
        for (image, kind) in [
            (
                "registry.hub.docker.com/library/nginx:1.27-alpine",
                Some(Kind::Nginx),
            ),
            (
                "registry.hub.docker.com/library/redis:7.2-alpine",
                Some(Kind::Redis),
            ),
            (
                "registry.hub.docker.com/library/rabbitmq:3.13-alpine",
                Some(Kind::Rabbitmq),
            ),
            (
                "kompira.azurecr.io/kompira-enterprise:2.0.2",
                Some(Kind::Kompira),
            ),
            (
                "kompira.azurecr.io/kompira-enterprise@sha256:abc",
                Some(Kind::Kompira),
            ),
            ("nginx", Some(Kind::Nginx)),
            ("localhost:5000/redis:7", Some(Kind::Redis)),
            ("fluent/fluentd:v1.16", None),
            ("postgres:16", None),
        ] {
            assert_eq!(Kind::for_image(image), kind, "{image}");
        }
    }

    #[test]
    fn service_images_differ_only_in_their_config() {
        let base = "ke2lab/standin-base:0123456789ab";
        for kind in Kind::ALL {
            let d = kind.dockerfile(base);
            assert!(d.starts_with(&format!("FROM {base}\n")), "{d}");
            assert!(!d.contains("RUN "), "no container runs in the build: {d}");
        }
        assert!(Kind::Nginx.dockerfile(base).contains("daemon off;"));
        assert!(
            Kind::Redis
                .dockerfile(base)
                .contains(r#"CMD ["redis-server"]"#)
        );
    }

    #[test]
    fn base_recipe_has_the_servers() {
        let r = base_recipe();
        for p in ["nginx", "gettext-base", "redis-server", "rabbitmq-server"] {
            assert!(r.packages.iter().any(|x| x == p), "{p} missing");
        }
        assert!(r.slim);
        assert!(r.entrypoint.is_none());
        assert!(r.files.is_empty(), "entrypoints are in the service layers");
        assert!(r.tag().starts_with("ke2lab/standin-base:"));
    }

    #[test]
    fn each_layer_has_its_entrypoint() {
        for (kind, path) in [
            (Kind::Nginx, "usr/local/bin/ke2lab-nginx-entrypoint"),
            (Kind::Redis, "usr/local/bin/ke2lab-redis-entrypoint"),
            (Kind::Rabbitmq, "etc/rabbitmq/conf.d/10-defaults.conf"),
        ] {
            let t = kind.layer(b"").unwrap();
            let mut a = tar::Archive::new(t.as_slice());
            let names: Vec<String> = a
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().display().to_string())
                .collect();
            assert!(names.iter().any(|n| n == path), "{kind:?}: {names:?}");
            assert!(kind.dockerfile("b").contains("ADD layer.tar /"));
        }
    }

    #[test]
    fn kompira_tar_links_the_roles_to_the_binary() {
        let t = kompira_tar(b"\x7fELF").unwrap();
        let mut a = tar::Archive::new(t.as_slice());
        let mut seen = Vec::new();
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            let path = e.path().unwrap().display().to_string();
            let link = e.link_name().unwrap().map(|l| l.display().to_string());
            seen.push((path, link));
        }
        assert_eq!(
            seen,
            vec![
                ("usr/local/bin/ke2-standin".to_string(), None),
                ("usr/local/bin/kompirad".into(), Some("ke2-standin".into())),
                ("usr/local/bin/uwsgi".into(), Some("ke2-standin".into())),
                ("usr/local/bin/jobmngrd".into(), Some("ke2-standin".into())),
            ]
        );
    }

    /// A directory laid out as a ke2lab checkout (what `find_checkout` reads).
    fn fake_checkout() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("Cargo.toml"), "[workspace]\n").unwrap();
        std::fs::create_dir_all(d.path().join("harness")).unwrap();
        std::fs::write(
            d.path().join("harness/Cargo.toml"),
            "[package]\nname = \"ke2lab-harness\"\n",
        )
        .unwrap();
        std::fs::create_dir_all(d.path().join("target/release/deps")).unwrap();
        d
    }

    #[test]
    fn the_standin_is_found_without_compile_time_paths() {
        let checkout = fake_checkout();
        let exe_in = checkout.path().join("target/release/ke2lab");
        let test_exe_in = checkout.path().join("target/release/deps/stack-0123");
        let installed = tempfile::tempdir().unwrap();
        let exe_out = installed.path().join("ke2lab");
        let beside = installed.path().join("ke2-standin");
        let given = installed.path().join("given");
        std::fs::write(&given, "bin").unwrap();
        let nowhere = tempfile::tempdir().unwrap();
        let src = |g: Option<&Path>, exe: &Path, cwd: &Path| {
            standin_source(g.map(Path::to_path_buf), Some(exe), Some(cwd))
        };
        let build = StandinSource::Build(checkout.path().to_path_buf());

        // KE2LAB_STANDIN_BIN wins, and must be a file.
        assert_eq!(
            src(Some(&given), &exe_in, checkout.path()).unwrap(),
            StandinSource::Given(given.clone())
        );
        let e = src(
            Some(&installed.path().join("missing")),
            &exe_in,
            nowhere.path(),
        );
        assert!(
            format!("{:#}", e.unwrap_err()).contains("`KE2LAB_STANDIN_BIN`"),
            "names the variable"
        );
        // A binary of the checkout builds it there (never a stale copy).
        assert_eq!(src(None, &exe_in, nowhere.path()).unwrap(), build);
        assert_eq!(src(None, &test_exe_in, nowhere.path()).unwrap(), build);
        // An installed binary: not beside it yet, so the cwd's checkout;
        // then the one beside it.
        assert_eq!(src(None, &exe_out, checkout.path()).unwrap(), build);
        std::fs::write(&beside, "bin").unwrap();
        assert_eq!(
            src(None, &exe_out, checkout.path()).unwrap(),
            StandinSource::Beside(beside.clone())
        );
        std::fs::remove_file(&beside).unwrap();
        // Nothing anywhere: the error says what to do.
        let e = format!("{:#}", src(None, &exe_out, nowhere.path()).unwrap_err());
        for want in ["KE2LAB_STANDIN_BIN", "cargo build --release -p ke2-standin"] {
            assert!(e.contains(want), "no `{want}` in: {e}");
        }
    }
}
