//! The role a process plays (from argv) and what it reads from the
//! environment, with the real image's variables and defaults.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::log::Level;
use crate::url::{AmqpUrl, DbUrl, RedisUrl, UrlError};

/// The commands the compose files give the Kompira image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Service `kengine`: the Kompira engine.
    Kompirad,
    /// Service `kompira`: the web application behind nginx.
    Uwsgi,
    /// Service `jobmngrd`: the job manager, which talks only to RabbitMQ.
    Jobmngrd,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Kompirad, Role::Uwsgi, Role::Jobmngrd];

    pub fn name(self) -> &'static str {
        match self {
            Role::Kompirad => "kompirad",
            Role::Uwsgi => "uwsgi",
            Role::Jobmngrd => "jobmngrd",
        }
    }

    pub fn from_name(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }

    /// kompirad and uwsgi use the database, the cache and the secret key;
    /// jobmngrd's service gets only `AMQP_URL`.
    pub fn uses_database(self) -> bool {
        !matches!(self, Role::Jobmngrd)
    }
}

/// What the command line asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invocation {
    Run(Role),
    Version,
    Help,
}

pub const USAGE: &str = "usage: ke2-standin <kompirad|uwsgi|jobmngrd> | --version | --help
(or run it through a link named kompirad, uwsgi or jobmngrd)";

/// The role from argv[0]'s file name (the image links `kompirad`, `uwsgi`
/// and `jobmngrd` to the binary), else from the first argument.
pub fn parse_args(args: &[OsString]) -> Result<Invocation, String> {
    let argv0 = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let rest: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let flag = |a: &str| match a {
        "--version" | "-V" => Some(Invocation::Version),
        "--help" | "-h" => Some(Invocation::Help),
        _ => None,
    };
    let (role, rest) = match Role::from_name(argv0) {
        Some(r) => (r, &rest[..]),
        None => match rest.first().map(String::as_str) {
            None => return Err("no role given".into()),
            Some(a) => match (flag(a), Role::from_name(a)) {
                (Some(inv), _) if rest.len() == 1 => return Ok(inv),
                (_, Some(r)) => (r, &rest[1..]),
                _ => return Err(format!("unknown role `{a}`")),
            },
        },
    };
    match rest {
        [] => Ok(Invocation::Run(role)),
        [a] if flag(a).is_some() => Ok(flag(a).unwrap_or(Invocation::Help)),
        [a, ..] => Err(format!("unexpected argument `{a}` for `{}`", role.name())),
    }
}

/// A variable that is missing or does not parse; the process exits with
/// code 2 and this on stderr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvError {
    pub var: &'static str,
    pub message: String,
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.var, self.message)
    }
}

impl std::error::Error for EnvError {}

pub const DEFAULT_SECRET_KEY_FILE: &str = "/var/opt/kompira/.secret_key";
pub const DEFAULT_LOGGING_DIR: &str = "/var/log/kompira";
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8000";

#[derive(Clone, Debug)]
pub struct Config {
    pub role: Role,
    /// kompirad and uwsgi only.
    pub database: Option<DbUrl>,
    pub amqp: AmqpUrl,
    /// kompirad and uwsgi only.
    pub cache: Option<RedisUrl>,
    /// kompirad and uwsgi only.
    pub secret_key_file: Option<PathBuf>,
    pub logging_dir: PathBuf,
    pub logging_name: String,
    pub logging_stream: bool,
    pub logging_level: Level,
    /// Where uwsgi listens (`STANDIN_LISTEN`, default `0.0.0.0:8000`).
    pub listen: SocketAddr,
    /// How often a dependency that is up is checked again.
    pub check_interval: Duration,
    /// The limit of one check (connect and round trip).
    pub check_timeout: Duration,
}

impl Config {
    /// Reads the environment through `get`, so tests need not touch the
    /// process's own. An empty value counts as unset, as in the compose
    /// files' `${VAR:-default}`.
    pub fn from_env(role: Role, get: &dyn Fn(&str) -> Option<String>) -> Result<Config, EnvError> {
        let opt = |var: &str| get(var).filter(|v| !v.trim().is_empty());
        let required = |var: &'static str| {
            opt(var).ok_or_else(|| EnvError {
                var,
                message: format!("is not set (`{}` needs it)", role.name()),
            })
        };
        let url_err = |var: &'static str| move |e: UrlError| EnvError { var, message: e.0 };

        let (database, cache, secret_key_file) = if role.uses_database() {
            let db = DbUrl::parse(&required("DATABASE_URL")?).map_err(url_err("DATABASE_URL"))?;
            let cache = RedisUrl::parse(&required("CACHE_URL")?).map_err(url_err("CACHE_URL"))?;
            let key =
                opt("KOMPIRA_SECRET_KEY_FILE").unwrap_or_else(|| DEFAULT_SECRET_KEY_FILE.into());
            (Some(db), Some(cache), Some(PathBuf::from(key)))
        } else {
            (None, None, None)
        };
        let amqp = AmqpUrl::parse(&required("AMQP_URL")?).map_err(url_err("AMQP_URL"))?;

        let logging_dir =
            PathBuf::from(opt("LOGGING_DIR").unwrap_or_else(|| DEFAULT_LOGGING_DIR.into()));
        let logging_name = opt("LOGGING_NAME").unwrap_or_else(|| role.name().into());
        if logging_name.contains('/') {
            return Err(EnvError {
                var: "LOGGING_NAME",
                message: format!("`{logging_name}` is a file name and may not contain `/`"),
            });
        }
        let logging_stream = match opt("LOGGING_STREAM") {
            None => false,
            Some(v) => parse_bool(&v).ok_or_else(|| EnvError {
                var: "LOGGING_STREAM",
                message: format!("`{v}` is not a boolean (true or false)"),
            })?,
        };
        let logging_level = match opt("LOGGING_LEVEL") {
            None => Level::Info,
            Some(v) => Level::parse(&v).ok_or_else(|| EnvError {
                var: "LOGGING_LEVEL",
                message: format!("`{v}` is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
            })?,
        };
        let listen_s = opt("STANDIN_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen = listen_s.parse().map_err(|_| EnvError {
            var: "STANDIN_LISTEN",
            message: format!("`{listen_s}` is not an address:port"),
        })?;
        let seconds = |var: &'static str, default: f64| -> Result<Duration, EnvError> {
            match opt(var) {
                None => Ok(Duration::from_secs_f64(default)),
                Some(v) => match v.trim().parse::<f64>() {
                    Ok(s) if s > 0.0 && s < 86_400.0 => Ok(Duration::from_secs_f64(s)),
                    _ => Err(EnvError {
                        var,
                        message: format!("`{v}` is not a number of seconds above 0"),
                    }),
                },
            }
        };
        Ok(Config {
            role,
            database,
            amqp,
            cache,
            secret_key_file,
            logging_dir,
            logging_name,
            logging_stream,
            logging_level,
            listen,
            check_interval: seconds("STANDIN_CHECK_INTERVAL", 10.0)?,
            check_timeout: seconds("STANDIN_CHECK_TIMEOUT", 5.0)?,
        })
    }

    /// The passwords of the URLs, for the logger's second guard.
    pub fn secrets(&self) -> Vec<String> {
        let mut out = vec![self.amqp.password.clone()];
        if let Some(p) = self.database.as_ref().and_then(|d| d.password.clone()) {
            out.push(p);
        }
        if let Some(p) = self.cache.as_ref().and_then(|c| c.password.clone()) {
            out.push(p);
        }
        // A password equal to its user name would blank the user name in
        // every line and hide nothing: the name is shown anyway.
        out.retain(|p| p != &self.amqp.user && self.database.as_ref().is_none_or(|d| p != &d.user));
        out
    }
}

/// Python-style truth values, as the image's settings read them.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The path of the log file these settings write.
pub fn log_file(cfg: &Config) -> PathBuf {
    cfg.logging_dir.join(format!("{}.log", cfg.logging_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn role_from_argv0_or_first_argument() {
        assert_eq!(
            parse_args(&args(&["/usr/local/bin/uwsgi"])),
            Ok(Invocation::Run(Role::Uwsgi))
        );
        assert_eq!(
            parse_args(&args(&["kompirad"])),
            Ok(Invocation::Run(Role::Kompirad))
        );
        assert_eq!(
            parse_args(&args(&["ke2-standin", "jobmngrd"])),
            Ok(Invocation::Run(Role::Jobmngrd))
        );
        assert_eq!(
            parse_args(&args(&["ke2-standin", "--version"])),
            Ok(Invocation::Version)
        );
        assert_eq!(
            parse_args(&args(&["/usr/local/bin/uwsgi", "--version"])),
            Ok(Invocation::Version)
        );
        assert_eq!(
            parse_args(&args(&["ke2-standin", "-h"])),
            Ok(Invocation::Help)
        );
        assert_eq!(
            parse_args(&args(&["ke2-standin"])),
            Err("no role given".into())
        );
        assert_eq!(
            parse_args(&args(&["ke2-standin", "nginx"])),
            Err("unknown role `nginx`".into())
        );
        assert_eq!(
            parse_args(&args(&["uwsgi", "--ini", "x"])),
            Err("unexpected argument `--ini` for `uwsgi`".into())
        );
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    const FULL: &[(&str, &str)] = &[
        (
            "DATABASE_URL",
            "pgsql://kompira:kompira@host.docker.internal:9999/kompira",
        ),
        ("AMQP_URL", "amqp://guest:guest@mq-ke2-server1:5672"),
        ("CACHE_URL", "redis://redis:6379"),
        ("LOGGING_NAME", "kompira"),
        ("LOGGING_STREAM", "true"),
        ("LOGGING_LEVEL", "INFO"),
        ("LOGGING_DIR", "/var/log/kompira"),
    ];

    #[test]
    fn the_compose_environment_reads() {
        let c = Config::from_env(Role::Uwsgi, &env(FULL)).unwrap();
        assert_eq!(c.database.as_ref().unwrap().port, 9999);
        assert_eq!(c.amqp.host, "mq-ke2-server1");
        assert_eq!(c.cache.as_ref().unwrap().host, "redis");
        assert_eq!(
            c.secret_key_file.as_deref(),
            Some(Path::new("/var/opt/kompira/.secret_key"))
        );
        assert_eq!(log_file(&c), Path::new("/var/log/kompira/kompira.log"));
        assert!(c.logging_stream);
        assert_eq!(c.listen, "0.0.0.0:8000".parse().unwrap());
        assert_eq!(c.check_interval, Duration::from_secs(10));
    }

    #[test]
    fn defaults_for_logging_and_jobmngrd_needs_only_amqp() {
        let c = Config::from_env(Role::Jobmngrd, &env(&[("AMQP_URL", "amqp://mq")])).unwrap();
        assert!(c.database.is_none() && c.cache.is_none() && c.secret_key_file.is_none());
        assert_eq!(log_file(&c), Path::new("/var/log/kompira/jobmngrd.log"));
        assert!(!c.logging_stream);
        assert_eq!(c.logging_level, Level::Info);
    }

    #[test]
    fn missing_and_bad_variables_are_named() {
        let e = |role, vars: &[(&str, &str)]| {
            Config::from_env(role, &env(vars)).unwrap_err().to_string()
        };
        assert_eq!(
            e(
                Role::Uwsgi,
                &[("AMQP_URL", "amqp://mq"), ("CACHE_URL", "redis://r")]
            ),
            "`DATABASE_URL`: is not set (`uwsgi` needs it)"
        );
        assert_eq!(
            e(
                Role::Kompirad,
                &[("DATABASE_URL", ""), ("AMQP_URL", "amqp://mq")]
            ),
            "`DATABASE_URL`: is not set (`kompirad` needs it)"
        );
        assert_eq!(
            e(Role::Jobmngrd, &[]),
            "`AMQP_URL`: is not set (`jobmngrd` needs it)"
        );
        let with = |k: &'static str, v: &'static str| {
            let mut vars: Vec<(&str, &str)> =
                FULL.iter().filter(|(n, _)| *n != k).copied().collect();
            vars.push((k, v));
            Config::from_env(Role::Uwsgi, &env(&vars))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            with("DATABASE_URL", "mysql://u:p@h/d"),
            "`DATABASE_URL`: scheme `mysql` is not supported (expected `pgsql` or `postgres` or `postgresql`)"
        );
        assert_eq!(
            with("AMQP_URL", "http://mq"),
            "`AMQP_URL`: scheme `http` is not supported (expected `amqp`)"
        );
        assert_eq!(
            with("CACHE_URL", "memcached://c:11211"),
            "`CACHE_URL`: scheme `memcached` is not supported (expected `redis`)"
        );
        assert_eq!(
            with("LOGGING_STREAM", "maybe"),
            "`LOGGING_STREAM`: `maybe` is not a boolean (true or false)"
        );
        assert_eq!(
            with("LOGGING_LEVEL", "LOUD"),
            "`LOGGING_LEVEL`: `LOUD` is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
        );
        assert_eq!(
            with("STANDIN_LISTEN", "8000"),
            "`STANDIN_LISTEN`: `8000` is not an address:port"
        );
        assert_eq!(
            with("STANDIN_CHECK_INTERVAL", "-1"),
            "`STANDIN_CHECK_INTERVAL`: `-1` is not a number of seconds above 0"
        );
    }

    #[test]
    fn secrets_leave_out_passwords_equal_to_user_names() {
        let c = Config::from_env(Role::Uwsgi, &env(FULL)).unwrap();
        assert!(c.secrets().is_empty());
        let vars = [
            ("DATABASE_URL", "pgsql://kompira:db-pw@h/k"),
            ("AMQP_URL", "amqp://guest:mq-pw@mq"),
            ("CACHE_URL", "redis://:re-pw@r"),
        ];
        let c = Config::from_env(Role::Uwsgi, &env(&vars)).unwrap();
        assert_eq!(c.secrets(), ["mq-pw", "db-pw", "re-pw"]);
    }
}
