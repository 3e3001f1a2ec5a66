//! Step 8, up to the deploy: the certificates (`create-cert.sh`) and the
//! stack's files (`setup_stack.sh`), prepared on one manager host in the
//! ke2-docker checkout there. Deploying the stack is another step's.
//!
//! The rules of `setup_stack.sh` are split into pure parts
//! ([`StackOptions`], [`database_url`], [`compose_env`], and
//! [`crate::render::stack`]) and the host work of [`SetupStack`]: checking
//! the directories, copying `ssl/`, running the real `docker compose config`
//! on the manager and writing `docker-swarm.yml` and `rabbitmq-cluster.conf`.

use std::time::SystemTime;

use async_trait::async_trait;

use super::files::{Act, want_file};
use super::{Cx, Plan, Planned, Step, StepError};
use crate::host::{Cmd, Host, HostError, tail};
use crate::probe::swarm;
use crate::render::cert::{self, CertParams, Existing};
use crate::render::stack as render;
use crate::topology::{NginxPortMode, Secret, Topology};

/// The default of `DATABASE_HOST`: the Docker host itself, where Pgpool-II
/// listens (the services map it with `extra_hosts: host-gateway`).
pub const DEFAULT_DATABASE_HOST: &str = "host.docker.internal";

/// The file `setup_stack.sh` writes for `docker stack deploy`.
pub const STACK_FILE: &str = "docker-swarm.yml";
/// The rabbitmq cluster config the override file names (`./rabbitmq-cluster.conf`).
pub const RABBITMQ_CONF: &str = "rabbitmq-cluster.conf";

/// The environment of `setup_stack.sh`, with its defaults, plus where the
/// ke2-docker checkout is on the manager host.
#[derive(Clone, Debug)]
pub struct StackOptions {
    /// The ke2-docker checkout on the manager (its `ke2/cluster/swarm`,
    /// `ssl/` and `configs/` are used).
    pub checkout: String,
    /// `SHARED_DIR` (required).
    pub shared_dir: String,
    /// `KOMPIRA_LOG_DIR`; `None`: `$SHARED_DIR/log`.
    pub log_dir: Option<String>,
    /// `KOMPIRA_VAR_DIR`; `None`: `$SHARED_DIR/var`.
    pub var_dir: Option<String>,
    /// `KOMPIRA_SSL_DIR`; `None`: `$SHARED_DIR/ssl`.
    pub ssl_dir: Option<String>,
    /// `DATABASE_URL`; a secret, since it carries a password.
    pub database_url: Option<Secret>,
    /// `DATABASE_HOST` (default [`DEFAULT_DATABASE_HOST`]); used only when
    /// `DATABASE_URL` is empty.
    pub database_host: String,
    /// Pgpool-II's port in the derived URL (the document's 9999).
    pub database_port: u16,
    /// The database in the derived URL.
    pub database_name: String,
    /// `NGINX_PORT_MODE`.
    pub nginx_port_mode: NginxPortMode,
    /// `SWARM_REPLICAS`.
    pub swarm_replicas: u32,
    /// Index of the manager host that prepares the files.
    pub manager: usize,
}

fn join(base: &str, rel: &str) -> String {
    format!("{}/{rel}", base.trim_end_matches('/'))
}

/// Errors of the options themselves, before any host is asked.
#[derive(Debug, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct OptionsError {
    pub field: &'static str,
    pub message: String,
}

impl StackOptions {
    /// The script's defaults for a checkout and a shared directory.
    pub fn new(checkout: impl Into<String>, shared_dir: impl Into<String>) -> Self {
        StackOptions {
            checkout: checkout.into(),
            shared_dir: shared_dir.into(),
            log_dir: None,
            var_dir: None,
            ssl_dir: None,
            database_url: None,
            database_host: DEFAULT_DATABASE_HOST.to_string(),
            database_port: 9999,
            database_name: "kompira".to_string(),
            nginx_port_mode: NginxPortMode::Ingress,
            swarm_replicas: 3,
            manager: 0,
        }
    }

    /// The options a topology implies: its shared path, Pgpool-II port,
    /// database, nginx port mode, replicas and stack directories.
    pub fn from_topology(t: &Topology, checkout: impl Into<String>) -> Self {
        StackOptions {
            log_dir: t.stack.log_dir.as_ref().map(|_| t.kompira_log_dir()),
            var_dir: t.stack.var_dir.as_ref().map(|_| t.kompira_var_dir()),
            ssl_dir: t.stack.ssl_dir.as_ref().map(|_| t.kompira_ssl_dir()),
            database_port: t.ports.pgpool,
            database_name: t.postgres.database.clone(),
            nginx_port_mode: t.stack.nginx_port_mode,
            swarm_replicas: t.stack.swarm_replicas,
            ..StackOptions::new(checkout, t.shared_dir.path.clone())
        }
    }

    pub fn log_dir(&self) -> String {
        self.log_dir
            .clone()
            .unwrap_or_else(|| join(&self.shared_dir, "log"))
    }

    pub fn var_dir(&self) -> String {
        self.var_dir
            .clone()
            .unwrap_or_else(|| join(&self.shared_dir, "var"))
    }

    pub fn ssl_dir(&self) -> String {
        self.ssl_dir
            .clone()
            .unwrap_or_else(|| join(&self.shared_dir, "ssl"))
    }

    /// The three directories that must be writable, with their variables.
    pub fn dirs(&self) -> [(&'static str, String); 3] {
        [
            ("KOMPIRA_LOG_DIR", self.log_dir()),
            ("KOMPIRA_VAR_DIR", self.var_dir()),
            ("KOMPIRA_SSL_DIR", self.ssl_dir()),
        ]
    }

    /// `ke2/cluster/swarm` of the checkout: where compose runs and the
    /// stack's files are written.
    pub fn swarm_dir(&self) -> String {
        join(&self.checkout, "ke2/cluster/swarm")
    }

    /// The checkout's `ssl/`, where the certificates are made.
    pub fn checkout_ssl(&self) -> String {
        join(&self.checkout, "ssl")
    }

    /// The base rabbitmq cluster config of the checkout.
    pub fn base_rabbitmq_conf(&self) -> String {
        join(&self.checkout, "configs/rabbitmq-cluster.conf")
    }

    /// Checks what needs no host.
    pub fn validate(&self) -> Result<(), OptionsError> {
        let err = |field, message: &str| {
            Err(OptionsError {
                field,
                message: message.to_string(),
            })
        };
        if self.shared_dir.trim().is_empty() {
            return err("SHARED_DIR", "is required");
        }
        if self.checkout.trim().is_empty() {
            return err("checkout", "the ke2-docker checkout's path is required");
        }
        if self.swarm_replicas == 0 {
            return err("SWARM_REPLICAS", "must be at least 1");
        }
        Ok(())
    }
}

/// Percent-encodes a URL's user-info part: everything but RFC 3986's
/// unreserved characters, so a password with `@`, `:` or `/` stays one.
fn encode_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `DATABASE_URL`: the given one, or, when it is empty,
/// `pgsql://kompira:<password>@$DATABASE_HOST:9999/kompira`; an error when
/// `DATABASE_HOST` is empty too. The password is the credentials' `kompira`
/// one when the caller has credentials, else the document's `kompira`.
pub fn database_url(
    opts: &StackOptions,
    password: Option<&Secret>,
) -> Result<Secret, OptionsError> {
    if let Some(url) = opts
        .database_url
        .as_ref()
        .filter(|u| !u.expose().is_empty())
    {
        return Ok(url.clone());
    }
    if opts.database_host.trim().is_empty() {
        return Err(OptionsError {
            field: "DATABASE_URL",
            message: "is empty and so is `DATABASE_HOST`: one of them is required".into(),
        });
    }
    let password = password.map_or("kompira", Secret::expose);
    Ok(Secret::new(format!(
        "pgsql://kompira:{}@{}:{}/{}",
        encode_userinfo(password),
        opts.database_host.trim(),
        opts.database_port,
        opts.database_name
    )))
}

/// The password inside a URL's user-info (`scheme://user:password@host`),
/// so that it can be redacted on its own when a tool echoes only part of
/// the URL.
pub fn url_password(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let userinfo = &rest[..rest.find('@')?];
    userinfo
        .split_once(':')
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty())
}

/// One variable of compose's environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvVar {
    pub name: &'static str,
    pub value: Secret,
    /// Shown as `***` wherever the command is shown.
    pub secret: bool,
}

/// Whether `hostname` is a fully qualified name; RabbitMQ then needs long
/// node names (`RABBITMQ_USE_LONGNAME=true`).
pub fn is_fqdn(hostname: &str) -> bool {
    hostname.trim_end_matches('.').contains('.')
}

/// The environment `docker compose config` runs with: what the script
/// exports, what its caller may set, and `HOSTNAME`, which the service
/// files require (`${HOSTNAME:?}`) although the override replaces it.
pub fn compose_env(opts: &StackOptions, hostname: &str, database_url: &Secret) -> Vec<EnvVar> {
    let plain = |name, value: String| EnvVar {
        name,
        value: Secret::new(value),
        secret: false,
    };
    vec![
        plain("HOSTNAME", hostname.to_string()),
        plain("SHARED_DIR", opts.shared_dir.clone()),
        plain("KOMPIRA_LOG_DIR", opts.log_dir()),
        plain("KOMPIRA_VAR_DIR", opts.var_dir()),
        plain("KOMPIRA_SSL_DIR", opts.ssl_dir()),
        EnvVar {
            name: "DATABASE_URL",
            value: database_url.clone(),
            secret: true,
        },
        plain("NGINX_PORT_MODE", opts.nginx_port_mode.as_str().to_string()),
        plain("SWARM_REPLICAS", opts.swarm_replicas.to_string()),
        plain("RABBITMQ_USE_LONGNAME", is_fqdn(hostname).to_string()),
    ]
}

/// `docker compose config` in `dir` with `env`: `env -C` sets the
/// directory and the plain variables without a shell, one argument each;
/// the secret ones (`DATABASE_URL`) are read by the shell from standard
/// input (`set -a; . /dev/stdin`), so they never appear in an argument
/// vector (`/proc/*/cmdline`, the exec API) and the transcript shows `***`.
pub fn compose_config_cmd(dir: &str, env: &[EnvVar]) -> Cmd {
    let mut cmd =
        Cmd::sh("set -a; . /dev/stdin; set +a; exec \"$@\"").args_from(["env", "-C", dir]);
    let mut secret = String::new();
    for v in env {
        if v.secret {
            secret.push_str(&format!(
                "{}={}\n",
                v.name,
                crate::host::shell_quote(v.value.expose())
            ));
        } else {
            cmd = cmd.arg(format!("{}={}", v.name, v.value.expose()));
        }
    }
    cmd.args_from(["docker", "compose", "config"])
        .secret_stdin(secret.into_bytes())
}

pub(crate) fn state(cx: &Cx<'_>, step: &'static str, i: usize, message: String) -> StepError {
    StepError::State {
        step,
        host: cx.name(i).to_string(),
        message,
    }
}

/// The host's name as `hostname` prints it (what the scripts use).
async fn hostname_of(host: &dyn Host) -> Result<String, StepError> {
    let out = Cmd::new(["hostname"]).check(host).await?;
    Ok(out.stdout_lossy().trim().to_string())
}

/// Runs `cmd` and turns a failure into an error with every secret of
/// `secrets` (a password inside a URL, too) replaced by `***`, since a tool
/// may echo a value it was given.
async fn check_redacted(host: &dyn Host, cmd: &Cmd, secrets: &[&str]) -> Result<String, StepError> {
    let out = host.run(cmd).await?;
    if out.success() {
        return Ok(out.stdout_lossy());
    }
    let mut stderr = cmd.redact(&tail(&out.stderr_lossy(), 600));
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        stderr = stderr.replace(s, "***");
    }
    Err(HostError::Failed {
        host: host.name().to_string(),
        command: cmd.to_string(),
        code: out.status,
        stderr,
    }
    .into())
}

// ---------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------

/// The certificates of `create-cert.sh`, made in Rust and written into the
/// checkout's `ssl/` on the manager. An existing server certificate is kept
/// (a warning says so); an existing CA signs a new server certificate.
pub struct Certs {
    pub checkout: String,
    pub manager: usize,
    /// `None`: the script's defaults for the manager's `hostname`.
    pub params: Option<CertParams>,
}

impl Certs {
    pub fn new(opts: &StackOptions) -> Self {
        Certs {
            checkout: opts.checkout.clone(),
            manager: opts.manager,
            params: None,
        }
    }
}

#[async_trait]
impl Step for Certs {
    type Action = Act;

    fn name(&self) -> &'static str {
        "certs"
    }

    async fn plan(&self, cx: &Cx<'_>) -> Result<Plan<Act>, StepError> {
        let m = self.manager;
        let host = cx.host(m);
        let params = match &self.params {
            Some(p) => p.clone(),
            None => CertParams::for_host(join(&self.checkout, "ssl"), &hostname_of(host).await?),
        };
        let server_cert = host.read_file(&params.server_cert_path()).await?.is_some();
        let mut existing = Existing {
            server_cert,
            ..Existing::default()
        };
        if !server_cert {
            existing.ca_cert = host
                .read_file(&params.ca_cert_path())
                .await?
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            if existing.ca_cert.is_some() {
                existing.ca_key = host
                    .read_file(&params.ca_key_path())
                    .await?
                    .map(|b| Secret::new(String::from_utf8_lossy(&b).into_owned()));
            }
        }
        let set = cert::generate(&params, &existing, SystemTime::now())
            .map_err(|e| state(cx, "certs", m, e.to_string()))?;
        let mut plan = Plan {
            warnings: set.warnings,
            ..Plan::default()
        };
        for (what, pem, crt, key) in [
            (
                "local CA",
                set.ca,
                params.ca_cert_path(),
                params.ca_key_path(),
            ),
            (
                "server certificate",
                set.server,
                params.server_cert_path(),
                params.server_key_path(),
            ),
        ] {
            let Some(pem) = pem else { continue };
            // The key first: a certificate without its key would be taken
            // for complete by the next run.
            plan.push(
                m,
                format!("create the {what} key `{key}`"),
                Act::Write {
                    path: key,
                    body: pem.key.expose().as_bytes().to_vec(),
                    mode: 0o600,
                    owner: "root".into(),
                },
            );
            plan.push(
                m,
                format!("create the {what} `{crt}`"),
                Act::Write {
                    path: crt,
                    body: pem.cert.into_bytes(),
                    mode: 0o644,
                    owner: "root".into(),
                },
            );
        }
        Ok(plan)
    }

    async fn apply(&self, cx: &Cx<'_>, item: &Planned<Act>) -> Result<(), StepError> {
        item.action.apply(cx.host(item.host)).await
    }
}

// ---------------------------------------------------------------------------
// setup_stack.sh
// ---------------------------------------------------------------------------

/// `setup_stack.sh` on the manager: directories writable, `DATABASE_URL`,
/// `ssl/` copied into `KOMPIRA_SSL_DIR`, `docker-swarm.yml` from the real
/// `docker compose config`, `rabbitmq-cluster.conf` from the swarm's nodes.
pub struct SetupStack {
    pub opts: StackOptions,
}

impl SetupStack {
    pub fn new(opts: StackOptions) -> Self {
        SetupStack { opts }
    }
}

const STEP: &str = "stack";

/// Whether every file under `src` is in `dst` with the same bytes (files
/// only in `dst` do not matter: `cp -T` leaves them).
fn ssl_copied_cmd(src: &str, dst: &str) -> Cmd {
    Cmd::sh(
        "cd \"$1\" || exit 2; find . -type f | while IFS= read -r f; do \
         cmp -s \"$f\" \"$2/$f\" || exit 1; done",
    )
    .arg(src)
    .arg(dst)
}

#[async_trait]
impl Step for SetupStack {
    type Action = Act;

    fn name(&self) -> &'static str {
        STEP
    }

    async fn plan(&self, cx: &Cx<'_>) -> Result<Plan<Act>, StepError> {
        let o = &self.opts;
        let m = o.manager;
        let host = cx.host(m);
        o.validate()
            .map_err(|e| state(cx, STEP, m, e.to_string()))?;

        // 1. Each directory writable.
        for (var, dir) in o.dirs() {
            let out = host.run(&Cmd::new(["test", "-w"]).arg(dir.clone())).await?;
            if !out.success() {
                return Err(state(
                    cx,
                    STEP,
                    m,
                    format!("`{var}` (`{dir}`) is not writable"),
                ));
            }
        }

        // 2. DATABASE_URL.
        let password = cx.credentials.map(|c| &c.kompira);
        let url = database_url(o, password).map_err(|e| state(cx, STEP, m, e.to_string()))?;

        let mut plan = Plan::default();

        // 3. The checkout's ssl/ into KOMPIRA_SSL_DIR.
        let (src, dst) = (o.checkout_ssl(), o.ssl_dir());
        let copied = host.run(&ssl_copied_cmd(&src, &dst)).await?;
        match copied.status {
            0 => {}
            2 => {
                return Err(state(
                    cx,
                    STEP,
                    m,
                    format!("the checkout's `{src}` does not exist: make the certificates first"),
                ));
            }
            _ => plan.push(
                m,
                format!("copy `{src}` into `{dst}`"),
                Act::Run(vec![
                    Cmd::new(["cp", "-f", "-a", "-r", "-T"]).arg(src).arg(dst),
                ]),
            ),
        }

        // 4. and 5. compose config with the environment, normalised.
        let hostname = hostname_of(host).await?;
        let env = compose_env(o, &hostname, &url);
        let password = password.map_or("", Secret::expose);
        let in_url = url_password(url.expose()).unwrap_or("");
        let raw = check_redacted(
            host,
            &compose_config_cmd(&o.swarm_dir(), &env),
            &[url.expose(), password, in_url],
        )
        .await?;
        let stack = render::normalise(&raw).map_err(|e| state(cx, STEP, m, e.to_string()))?;
        let stack_path = join(&o.swarm_dir(), STACK_FILE);
        // 0600: the stack holds DATABASE_URL with its password.
        if let Some(act) = want_file(host, &stack_path, stack.as_bytes(), 0o600, "root").await? {
            plan.push(m, format!("write `{stack_path}`"), act);
        }

        // 6. rabbitmq-cluster.conf from the swarm's nodes.
        let template = render::rabbitmq_hostname_template(&stack)
            .map_err(|e| state(cx, STEP, m, e.to_string()))?;
        let nodes: Vec<String> = swarm::nodes(host)
            .await?
            .into_iter()
            .map(|n| n.hostname)
            .collect();
        let base_path = o.base_rabbitmq_conf();
        let base = host.read_file(&base_path).await?.ok_or_else(|| {
            state(
                cx,
                STEP,
                m,
                format!("the base config `{base_path}` does not exist"),
            )
        })?;
        let conf =
            render::rabbitmq_cluster_conf(&String::from_utf8_lossy(&base), &template, &nodes)
                .map_err(|e| state(cx, STEP, m, e.to_string()))?;
        let conf_path = join(&o.swarm_dir(), RABBITMQ_CONF);
        if let Some(act) = want_file(host, &conf_path, conf.as_bytes(), 0o644, "root").await? {
            plan.push(m, format!("write `{conf_path}`"), act);
        }
        Ok(plan)
    }

    async fn apply(&self, cx: &Cx<'_>, item: &Planned<Act>) -> Result<(), StepError> {
        item.action.apply(cx.host(item.host)).await
    }

    async fn verify(&self, cx: &Cx<'_>) -> Result<(), StepError> {
        let o = &self.opts;
        let host = cx.host(o.manager);
        for f in [STACK_FILE, RABBITMQ_CONF] {
            let path = join(&o.swarm_dir(), f);
            let out = host
                .run(&Cmd::new(["test", "-s"]).arg(path.clone()))
                .await?;
            if !out.success() {
                return Err(state(
                    cx,
                    STEP,
                    o.manager,
                    format!("`{path}` was not written"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_script() {
        let o = StackOptions::new("/opt/ke2-docker", "/mnt/gluster/");
        assert_eq!(o.log_dir(), "/mnt/gluster/log");
        assert_eq!(o.var_dir(), "/mnt/gluster/var");
        assert_eq!(o.ssl_dir(), "/mnt/gluster/ssl");
        assert_eq!(o.swarm_dir(), "/opt/ke2-docker/ke2/cluster/swarm");
        assert_eq!(o.database_host, "host.docker.internal");
        assert_eq!(o.swarm_replicas, 3);
        assert_eq!(
            database_url(&o, None).unwrap().expose(),
            "pgsql://kompira:kompira@host.docker.internal:9999/kompira"
        );
    }

    #[test]
    fn database_url_rules() {
        let mut o = StackOptions::new("/c", "/s");
        let pw = Secret::new("p@ss:w/rd");
        assert_eq!(
            database_url(&o, Some(&pw)).unwrap().expose(),
            "pgsql://kompira:p%40ss%3Aw%2Frd@host.docker.internal:9999/kompira"
        );
        o.database_url = Some(Secret::new("pgsql://u:x@db:5432/k"));
        o.database_host = String::new();
        assert_eq!(
            database_url(&o, Some(&pw)).unwrap().expose(),
            "pgsql://u:x@db:5432/k"
        );
        o.database_url = Some(Secret::new(""));
        let e = database_url(&o, Some(&pw)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`DATABASE_URL`: is empty and so is `DATABASE_HOST`: one of them is required"
        );
        o.database_url = None;
        assert!(database_url(&o, None).is_err());
    }

    #[test]
    fn compose_env_hides_the_url_and_sets_longnames() {
        let o = StackOptions::new("/c", "/mnt/gluster");
        let url = database_url(&o, Some(&Secret::new("s3cret"))).unwrap();
        let env = compose_env(&o, "ke2-server1.example.com", &url);
        let cmd = compose_config_cmd(&o.swarm_dir(), &env);
        let shown = cmd.to_string();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(
            shown,
            "sh -c 'set -a; . /dev/stdin; set +a; exec \"$@\"' sh env -C /c/ke2/cluster/swarm \
             HOSTNAME=ke2-server1.example.com SHARED_DIR=/mnt/gluster \
             KOMPIRA_LOG_DIR=/mnt/gluster/log KOMPIRA_VAR_DIR=/mnt/gluster/var \
             KOMPIRA_SSL_DIR=/mnt/gluster/ssl NGINX_PORT_MODE=ingress SWARM_REPLICAS=3 \
             RABBITMQ_USE_LONGNAME=true docker compose config"
        );
        // The URL is nowhere in the argument vector, only on stdin.
        assert!(!cmd.shell_line().contains("s3cret"));
        assert!(cmd.stdin_is_secret());
        let stdin = String::from_utf8_lossy(cmd.stdin_bytes().unwrap()).into_owned();
        assert_eq!(
            stdin,
            format!("DATABASE_URL={}\n", crate::host::shell_quote(url.expose()))
        );
        // A value the shell would split or expand is quoted.
        let odd = Secret::new("pgsql://k:a b$c'd@h/k");
        let env = compose_env(&o, "ke2-server1", &odd);
        let cmd = compose_config_cmd(&o.swarm_dir(), &env);
        assert_eq!(
            String::from_utf8_lossy(cmd.stdin_bytes().unwrap()),
            "DATABASE_URL='pgsql://k:a b$c'\\''d@h/k'\n"
        );
        let short = compose_env(&o, "ke2-server1", &url);
        assert_eq!(short.last().unwrap().value.expose(), "false");
    }

    #[test]
    fn password_of_a_url() {
        assert_eq!(url_password("pgsql://u:p%40w@h:1/d"), Some("p%40w"));
        assert_eq!(url_password("pgsql://u@h/d"), None);
        assert_eq!(url_password("pgsql://h/d"), None);
        assert_eq!(url_password("not a url"), None);
    }

    #[test]
    fn options_are_validated() {
        let o = StackOptions::new("/c", " ");
        assert_eq!(
            o.validate().unwrap_err().to_string(),
            "`SHARED_DIR`: is required"
        );
        let mut o = StackOptions::new("/c", "/s");
        o.swarm_replicas = 0;
        assert_eq!(
            o.validate().unwrap_err().to_string(),
            "`SWARM_REPLICAS`: must be at least 1"
        );
    }
}
