//! The lab host image, built here without any registry. Its tag is a hash of
//! the recipe (package list, boot script, suite), so an unchanged recipe is
//! never rebuilt. Two backends: debootstrap + `docker import` (works with no
//! base image at all), or `docker build` from `debian:trixie-slim` when that
//! base is present locally (a normal developer machine).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::query_parameters::{BuildImageOptionsBuilder, CreateImageOptionsBuilder};
use futures_util::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tokio::process::Command;

pub const PACKAGES: &str = include_str!("../../fixtures/image/packages.txt");
pub const BOOT_SCRIPT: &str = include_str!("../../fixtures/image/boot.sh");
pub const SUITE: &str = "trixie";
pub const REPO: &str = "ke2lab/host";
pub const SLIM_BASE: &str = "debian:trixie-slim";
const BOOT_PATH: &str = "/usr/local/sbin/ke2lab-boot";

/// Which way the image is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Debootstrap,
    DockerBuild,
}

/// A file the recipe puts into the image's root filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipeFile {
    /// Absolute path inside the image.
    pub path: String,
    pub body: String,
    pub mode: u32,
}

/// The recipe: everything that determines the image's content.
#[derive(Clone, Debug)]
pub struct Recipe {
    /// Repository part of the tag (`ke2lab/host`).
    pub repo: String,
    pub suite: String,
    pub packages: Vec<String>,
    pub files: Vec<RecipeFile>,
    /// `ENTRYPOINT` as a JSON array, if any.
    pub entrypoint: Option<String>,
    /// Documentation, man pages and translations left out (the stand-in
    /// images are loaded into every host, so their size is paid three times).
    pub slim: bool,
}

/// The non-comment lines of a package list.
pub fn package_list(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

impl Default for Recipe {
    /// The lab host image. tini is PID 1 so that the boot script's children
    /// are reaped.
    fn default() -> Self {
        Recipe {
            repo: REPO.into(),
            suite: SUITE.into(),
            packages: package_list(PACKAGES),
            files: vec![RecipeFile {
                path: BOOT_PATH.into(),
                body: BOOT_SCRIPT.into(),
                mode: 0o755,
            }],
            entrypoint: Some(format!(r#"["/usr/bin/tini","--","{BOOT_PATH}"]"#)),
            slim: false,
        }
    }
}

impl Recipe {
    /// 12 hex digits of SHA-256 over the recipe; the image tag.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"ke2lab-recipe-v2\0");
        for part in [&self.repo, &self.suite] {
            h.update(part.as_bytes());
            h.update(b"\0");
        }
        for p in &self.packages {
            h.update(p.as_bytes());
            h.update(b"\n");
        }
        h.update(b"\0");
        for f in &self.files {
            h.update(format!("{}\0{:o}\0{}\0", f.path, f.mode, f.body.len()).as_bytes());
            h.update(f.body.as_bytes());
        }
        h.update(format!("\0{:?}\0{}", self.entrypoint, self.slim).as_bytes());
        hex::encode(h.finalize())[..12].to_string()
    }

    pub fn tag(&self) -> String {
        format!("{}:{}", self.repo, self.hash())
    }

    /// What `docker import`/`docker build` set beside the filesystem.
    fn changes(&self) -> Vec<String> {
        let mut c = vec![format!("LABEL ke2lab.recipe={}", self.hash())];
        if let Some(e) = &self.entrypoint {
            c.push(format!("ENTRYPOINT {e}"));
        }
        c
    }

    /// The Dockerfile of the `docker build` backend; the files are in the
    /// context under `files/<index>`.
    pub fn dockerfile(&self) -> String {
        let slim = if self.slim {
            " \\\n && rm -rf /usr/share/doc/* /usr/share/man/* /usr/share/locale/* /usr/share/info/*"
        } else {
            ""
        };
        let mut d = format!(
            "FROM {SLIM_BASE}\n\
             RUN apt-get update \\\n && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {} \\\n && rm -rf /var/lib/apt/lists/* \\\n && rm -f /etc/ssh/ssh_host_* && : > /etc/machine-id{slim}\n",
            self.packages.join(" "),
        );
        for (i, f) in self.files.iter().enumerate() {
            d.push_str(&format!("COPY files/{i} {}\n", f.path));
        }
        for c in self.changes() {
            d.push_str(&c);
            d.push('\n');
        }
        d
    }
}

/// What `ensure` did.
#[derive(Clone, Debug)]
pub struct ImageReport {
    pub tag: String,
    /// `None` when the image already existed.
    pub built_with: Option<Backend>,
    pub elapsed: Duration,
    pub size_bytes: u64,
}

/// Makes sure the recipe's image exists, building it when absent.
pub async fn ensure(docker: &Docker, recipe: &Recipe, work: &Path) -> Result<ImageReport> {
    let start = Instant::now();
    let tag = recipe.tag();
    if let Ok(img) = docker.inspect_image(&tag).await {
        return Ok(ImageReport {
            tag,
            built_with: None,
            elapsed: start.elapsed(),
            size_bytes: img.size.unwrap_or(0) as u64,
        });
    }
    let backend = if docker.inspect_image(SLIM_BASE).await.is_ok() {
        Backend::DockerBuild
    } else {
        Backend::Debootstrap
    };
    crate::console::note(&format!(
        "image: building `{tag}` with {backend:?} (first run or recipe changed; a few minutes)"
    ));
    match backend {
        Backend::DockerBuild => build_with_docker(docker, recipe, &tag).await?,
        Backend::Debootstrap => build_with_debootstrap(docker, recipe, &tag, work).await?,
    }
    let img = docker
        .inspect_image(&tag)
        .await
        .with_context(|| format!("image `{tag}` is missing right after its build"))?;
    Ok(ImageReport {
        tag,
        built_with: Some(backend),
        elapsed: start.elapsed(),
        size_bytes: img.size.unwrap_or(0) as u64,
    })
}

async fn build_with_docker(docker: &Docker, recipe: &Recipe, tag: &str) -> Result<()> {
    let mut entries = vec![(
        "Dockerfile".to_string(),
        recipe.dockerfile().into_bytes(),
        0o644,
    )];
    for (i, f) in recipe.files.iter().enumerate() {
        entries.push((format!("files/{i}"), f.body.clone().into_bytes(), f.mode));
    }
    build_context(docker, tag, tar_context(&entries)?).await
}

/// `docker build -t tag` of a context tarball with a `Dockerfile` at its
/// top; a build error in the stream fails it.
pub async fn build_context(docker: &Docker, tag: &str, ctx: Vec<u8>) -> Result<()> {
    let opts = BuildImageOptionsBuilder::new()
        .dockerfile("Dockerfile")
        .t(tag)
        .rm(true)
        .build();
    let mut stream = docker.build_image(opts, None, Some(bollard::body_full(ctx.into())));
    while let Some(info) = stream.next().await {
        let info = info.with_context(|| format!("docker build of `{tag}` failed"))?;
        if let Some(e) = info.error_detail.and_then(|d| d.message) {
            bail!("docker build of `{tag}` failed: {e}");
        }
        if let Some(s) = info.stream {
            let line = s.trim_end();
            if !line.is_empty() {
                crate::console::activity(line);
            }
            tracing::debug!("build: {line}");
        }
    }
    Ok(())
}

async fn build_with_debootstrap(
    docker: &Docker,
    recipe: &Recipe,
    tag: &str,
    work: &Path,
) -> Result<()> {
    if which("debootstrap").is_none() {
        bail!(
            "cannot build the host image: neither `debootstrap` nor a local `{SLIM_BASE}` \
             image is available; `ci/install-deps` (as root) installs what a fresh machine lacks"
        );
    }
    let root = work.join(format!("rootfs-{}-{}", recipe.hash(), std::process::id()));
    if root.exists() {
        std::fs::remove_dir_all(&root).ok();
    }
    std::fs::create_dir_all(work)?;
    let mirror = std::env::var("KE2LAB_DEBIAN_MIRROR")
        .unwrap_or_else(|_| "http://deb.debian.org/debian".into());
    let log = work.join("debootstrap.log");
    let mut child = Command::new("debootstrap")
        .arg("--variant=minbase")
        .arg(format!("--include={}", recipe.packages.join(",")))
        .arg(&recipe.suite)
        .arg(&root)
        .arg(&mirror)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot run `debootstrap`")?;
    // Both streams into the log; the latest line is the spinner's text.
    let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let file = tokio::sync::Mutex::new(tokio::fs::File::create(&log).await?);
    let (_, _, status) = tokio::join!(
        follow_lines(out, &file),
        follow_lines(err, &file),
        child.wait()
    );
    let status = status.context("cannot run `debootstrap`")?;
    if !status.success() {
        std::fs::remove_dir_all(&root).ok();
        bail!(
            "`debootstrap` failed ({status}); its log is `{}`",
            log.display()
        );
    }
    let result = finish_and_import(docker, recipe, tag, &root).await;
    // The root filesystem is about 1.3 GB; it is only an intermediate.
    std::fs::remove_dir_all(&root).ok();
    result
}

/// Copies `from`'s lines into `log` and shows each as the running phase's
/// activity.
async fn follow_lines(
    from: impl tokio::io::AsyncRead + Unpin,
    log: &tokio::sync::Mutex<tokio::fs::File>,
) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut lines = BufReader::new(from).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        crate::console::activity(&format!("debootstrap: {line}"));
        let mut f = log.lock().await;
        let _ = f.write_all(format!("{line}\n").as_bytes()).await;
    }
}

/// A build context (or any small tarball) of `(path, body, mode)` entries.
pub fn tar_context(entries: &[(String, Vec<u8>, u32)]) -> Result<Vec<u8>> {
    let mut ctx = tar::Builder::new(Vec::new());
    for (name, body, mode) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(*mode);
        h.set_cksum();
        ctx.append_data(&mut h, name, body.as_slice())?;
    }
    Ok(ctx.into_inner()?)
}

/// Puts the recipe's files in, strips per-host identity and caches, then
/// streams the tree into `docker import` (never the whole tarball in memory).
async fn finish_and_import(docker: &Docker, recipe: &Recipe, tag: &str, root: &Path) -> Result<()> {
    for f in &recipe.files {
        let p = root.join(f.path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap())?;
        std::fs::write(&p, &f.body)?;
        set_mode(&p, f.mode)?;
    }
    if recipe.slim {
        for dir in [
            "usr/share/doc",
            "usr/share/man",
            "usr/share/locale",
            "usr/share/info",
        ] {
            let d = root.join(dir);
            if d.is_dir() {
                std::fs::remove_dir_all(&d).ok();
                std::fs::create_dir_all(&d)?;
            }
        }
    }
    for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        let d = root.join(dir);
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                if e.path().is_file() {
                    std::fs::remove_file(e.path()).ok();
                }
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(root.join("etc/ssh")) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("ssh_host_") {
                std::fs::remove_file(e.path()).ok();
            }
        }
    }
    std::fs::write(root.join("etc/machine-id"), b"")?;

    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(root)
        .args(["--numeric-owner", "-c", "."])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot run `tar`")?;
    let stdout = tar.stdout.take().unwrap();
    // The bytes streamed so far are the spinner's text (the total is not
    // known before `tar` has walked the tree).
    let mut sent = 0u64;
    let body = bollard::body_try_stream(tokio_util::io::ReaderStream::new(stdout).inspect(
        move |chunk| {
            if let Ok(c) = chunk {
                sent += c.len() as u64;
                crate::console::bytes(sent, None);
            }
        },
    ));
    let (repo, tagname) = tag.split_once(':').unwrap();
    let opts = CreateImageOptionsBuilder::new()
        .from_src("-")
        .repo(repo)
        .tag(tagname)
        .changes(recipe.changes())
        .build();
    docker
        .create_image(Some(opts), Some(body), None)
        .try_for_each(|_| async { Ok(()) })
        .await
        .with_context(|| format!("`docker import` of `{tag}` failed"))?;
    let st = tar.wait().await?;
    if !st.success() {
        bail!("`tar` of the root filesystem failed ({st})");
    }
    Ok(())
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// 12 hex digits of SHA-256 of `s`.
pub fn short_hash(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))[..12].to_string()
}

/// Finds a program on PATH (plus the sbin directories root usually has).
pub fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(prog))
        .find(|p| p.is_file())
}

/// Labels the harness puts on what it creates, by run.
pub fn run_labels(run: &str) -> HashMap<String, String> {
    HashMap::from([(crate::RUN_LABEL.to_string(), run.to_string())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_and_sensitive() {
        let a = Recipe::default();
        assert_eq!(a.hash(), Recipe::default().hash());
        assert_eq!(a.hash().len(), 12);
        let mut b = a.clone();
        b.packages.push("vim".into());
        assert_ne!(a.hash(), b.hash());
        let mut c = a.clone();
        c.files[0].body.push('\n');
        assert_ne!(a.hash(), c.hash());
        let mut d = a.clone();
        d.repo = "ke2lab/other".into();
        assert_ne!(a.hash(), d.hash());
    }

    #[test]
    fn recipe_lists_the_environment_packages() {
        let r = Recipe::default();
        for p in [
            "docker.io",
            "docker-cli",
            "glusterfs-server",
            "pgpool2",
            "tini",
            "nftables",
        ] {
            assert!(r.packages.iter().any(|x| x == p), "{p} missing");
        }
        assert!(r.dockerfile().contains("FROM debian:trixie-slim"));
        assert!(r.dockerfile().contains(&r.hash()));
        assert!(
            r.dockerfile()
                .contains("COPY files/0 /usr/local/sbin/ke2lab-boot")
        );
        assert!(
            r.dockerfile()
                .contains(r#"ENTRYPOINT ["/usr/bin/tini","--","/usr/local/sbin/ke2lab-boot"]"#)
        );
    }
}
