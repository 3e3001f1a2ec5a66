//! The service URLs of the image's environment: `DATABASE_URL`
//! (`pgsql://user:password@host:port/dbname`), `AMQP_URL`
//! (`amqp://user:password@host:port[/vhost]`) and `CACHE_URL`
//! (`redis://[[user]:password@]host:port[/db]`).
//!
//! User, password and path are percent-decoded: the core writes the
//! password of `DATABASE_URL` percent-encoded (`%40` for `@`), as
//! django-environ, which the real image uses, expects. A URL shows itself
//! only redacted (`Display` prints `***` for the password).

use std::fmt;

/// Why a URL was refused; the caller adds the variable's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlError(pub String);

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UrlError {}

fn err(msg: impl Into<String>) -> UrlError {
    UrlError(msg.into())
}

/// The parts every scheme shares, user and password already decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Parts {
    scheme: String,
    user: Option<String>,
    password: Option<String>,
    host: String,
    port: Option<u16>,
    /// What follows the first `/` after the authority, still encoded;
    /// `None` when there is no `/` at all.
    path: Option<String>,
}

fn split(url: &str, form: &str) -> Result<Parts, UrlError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| err(format!("not a URL of the form `{form}`")))?;
    if scheme.is_empty() {
        return Err(err(format!("not a URL of the form `{form}`")));
    }
    // The query (django-environ's options) is not used by the stand-in.
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(rest[i + 1..].to_string())),
        None => (rest, None),
    };
    // The last `@` ends the user-info, so an unencoded `@` in a password
    // still parses the way a person would read it.
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(ui) => match ui.split_once(':') {
            Some((u, p)) => (Some(decode(u, "user")?), Some(decode(p, "password")?)),
            None => (Some(decode(ui, "user")?), None),
        },
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| err(format!("unclosed `[` in the host `{hostport}`")))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| err(format!("unexpected `{p}` after the host `[{h}]`")))?,
            ),
        };
        (h.to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(err(format!("no host in a URL of the form `{form}`")));
    }
    let port = match port {
        None | Some("") => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(err(format!("port `{p}` is not a number from 1 to 65535"))),
        },
    };
    Ok(Parts {
        scheme: scheme.to_ascii_lowercase(),
        user: user.filter(|u| !u.is_empty()),
        password,
        host,
        port,
        path,
    })
}

/// Percent-decoding of one URL component; `what` names it in the error.
pub fn decode(s: &str, what: &str) -> Result<String, UrlError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(v) => out.push(v),
                None => return Err(err(format!("bad percent-encoding in the {what}"))),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| err(format!("the {what} is not UTF-8 once decoded")))
}

fn check_scheme(p: &Parts, accepted: &[&str], hint: &str) -> Result<(), UrlError> {
    if accepted.contains(&p.scheme.as_str()) {
        Ok(())
    } else {
        let list: Vec<String> = accepted.iter().map(|s| format!("`{s}`")).collect();
        Err(err(format!(
            "scheme `{}` is not supported (expected {}){hint}",
            p.scheme,
            list.join(" or ")
        )))
    }
}

/// `scheme://user:***@host:port` plus the rest; the shared part of the
/// redacted forms.
fn fmt_authority(
    f: &mut fmt::Formatter<'_>,
    scheme: &str,
    user: Option<&str>,
    password: bool,
    host: &str,
    port: u16,
) -> fmt::Result {
    write!(f, "{scheme}://")?;
    match (user, password) {
        (Some(u), true) => write!(f, "{u}:***@")?,
        (Some(u), false) => write!(f, "{u}@")?,
        (None, true) => write!(f, ":***@")?,
        (None, false) => {}
    }
    if host.contains(':') {
        write!(f, "[{host}]:{port}")
    } else {
        write!(f, "{host}:{port}")
    }
}

/// `DATABASE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl {
    pub scheme: String,
    pub user: String,
    pub password: Option<String>,
    pub host: String,
    pub port: u16,
    /// `None` when the URL names none; PostgreSQL then takes the user name.
    pub dbname: Option<String>,
}

impl DbUrl {
    pub const FORM: &'static str = "pgsql://user:password@host:port/dbname";

    pub fn parse(url: &str) -> Result<DbUrl, UrlError> {
        let p = split(url, Self::FORM)?;
        // django-environ's names for PostgreSQL; the compose files use pgsql.
        check_scheme(&p, &["pgsql", "postgres", "postgresql"], "")?;
        let user = p
            .user
            .clone()
            .ok_or_else(|| err(format!("no user in a URL of the form `{}`", Self::FORM)))?;
        let dbname = match &p.path {
            None => None,
            Some(s) if s.is_empty() => None,
            Some(s) => Some(decode(s, "database name")?),
        };
        Ok(DbUrl {
            scheme: p.scheme,
            user,
            password: p.password,
            host: p.host,
            port: p.port.unwrap_or(5432),
            dbname,
        })
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_authority(
            f,
            &self.scheme,
            Some(&self.user),
            self.password.is_some(),
            &self.host,
            self.port,
        )?;
        match &self.dbname {
            Some(d) => write!(f, "/{d}"),
            None => Ok(()),
        }
    }
}

// Debug is the redacted form too: a `{:?}` anywhere must not leak.
impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({self})")
    }
}

/// `AMQP_URL`.
#[derive(Clone, PartialEq, Eq)]
pub struct AmqpUrl {
    pub user: String,
    pub password: String,
    pub host: String,
    pub port: u16,
    pub vhost: String,
}

impl AmqpUrl {
    pub const FORM: &'static str = "amqp://user:password@host:port[/vhost]";

    pub fn parse(url: &str) -> Result<AmqpUrl, UrlError> {
        let p = split(url, Self::FORM)?;
        check_scheme(
            &p,
            &["amqp"],
            if p.scheme == "amqps" {
                " (the stand-in speaks no TLS)"
            } else {
                ""
            },
        )?;
        // RabbitMQ's URI spec: no path, or an empty one, is the default
        // vhost `/`; otherwise the decoded path is the vhost (`%2F` = `/`).
        let vhost = match &p.path {
            None => "/".to_string(),
            Some(s) if s.is_empty() => "/".to_string(),
            Some(s) => decode(s, "vhost")?,
        };
        // The spec's defaults, which the product's `guest:guest` spells out.
        Ok(AmqpUrl {
            user: p.user.unwrap_or_else(|| "guest".into()),
            password: p.password.unwrap_or_else(|| "guest".into()),
            host: p.host,
            port: p.port.unwrap_or(5672),
            vhost,
        })
    }
}

impl fmt::Display for AmqpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_authority(f, "amqp", Some(&self.user), true, &self.host, self.port)?;
        if self.vhost == "/" {
            Ok(())
        } else {
            write!(f, "/{}", self.vhost.replace('/', "%2F"))
        }
    }
}

impl fmt::Debug for AmqpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AmqpUrl({self})")
    }
}

/// `CACHE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: String,
    pub port: u16,
    pub db: u32,
}

impl RedisUrl {
    pub const FORM: &'static str = "redis://host:port[/db]";

    pub fn parse(url: &str) -> Result<RedisUrl, UrlError> {
        let p = split(url, Self::FORM)?;
        check_scheme(
            &p,
            &["redis"],
            if p.scheme == "rediss" {
                " (the stand-in speaks no TLS)"
            } else {
                ""
            },
        )?;
        let db = match &p.path {
            None => 0,
            Some(s) if s.is_empty() => 0,
            Some(s) => s
                .parse::<u32>()
                .map_err(|_| err(format!("database `{s}` is not a number")))?,
        };
        Ok(RedisUrl {
            user: p.user,
            password: p.password.filter(|p| !p.is_empty()),
            host: p.host,
            port: p.port.unwrap_or(6379),
            db,
        })
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_authority(
            f,
            "redis",
            self.user.as_deref(),
            self.password.is_some(),
            &self.host,
            self.port,
        )?;
        write!(f, "/{}", self.db)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compose_defaults_parse() {
        let db = DbUrl::parse("pgsql://kompira:kompira@host.docker.internal:9999/kompira").unwrap();
        assert_eq!(db.user, "kompira");
        assert_eq!(db.password.as_deref(), Some("kompira"));
        assert_eq!(db.host, "host.docker.internal");
        assert_eq!(db.port, 9999);
        assert_eq!(db.dbname.as_deref(), Some("kompira"));

        let mq = AmqpUrl::parse("amqp://guest:guest@mq-ke2-server1:5672").unwrap();
        assert_eq!((mq.user.as_str(), mq.password.as_str()), ("guest", "guest"));
        assert_eq!((mq.host.as_str(), mq.port), ("mq-ke2-server1", 5672));
        assert_eq!(mq.vhost, "/");

        let re = RedisUrl::parse("redis://redis:6379").unwrap();
        assert_eq!((re.host.as_str(), re.port, re.db), ("redis", 6379, 0));
        assert_eq!(re.password, None);
    }

    #[test]
    fn defaults_ports_and_vhosts() {
        assert_eq!(DbUrl::parse("pgsql://u:p@db/x").unwrap().port, 5432);
        assert_eq!(DbUrl::parse("postgresql://u@db").unwrap().dbname, None);
        assert_eq!(AmqpUrl::parse("amqp://u:p@mq/").unwrap().vhost, "/");
        assert_eq!(
            AmqpUrl::parse("amqp://u:p@mq/kompira").unwrap().vhost,
            "kompira"
        );
        assert_eq!(AmqpUrl::parse("amqp://u:p@mq/%2F").unwrap().vhost, "/");
        assert_eq!(AmqpUrl::parse("amqp://mq").unwrap().user, "guest");
        assert_eq!(RedisUrl::parse("redis://re/3").unwrap().db, 3);
        assert_eq!(RedisUrl::parse("redis://re").unwrap().port, 6379);
    }

    #[test]
    fn percent_encoded_passwords_are_decoded() {
        let db = DbUrl::parse("pgsql://kompira:a%40b%3Ac%2Fd@h:1/k").unwrap();
        assert_eq!(db.password.as_deref(), Some("a@b:c/d"));
        // An unencoded `@` in the password: the last `@` ends the user-info.
        let db = DbUrl::parse("pgsql://kompira:a@b@h:1/k").unwrap();
        assert_eq!(db.password.as_deref(), Some("a@b"));
        assert_eq!(db.host, "h");
    }

    #[test]
    fn ipv6_hosts() {
        let re = RedisUrl::parse("redis://[::1]:7000/2").unwrap();
        assert_eq!((re.host.as_str(), re.port, re.db), ("::1", 7000, 2));
        assert_eq!(re.to_string(), "redis://[::1]:7000/2");
    }

    #[test]
    fn display_and_debug_redact_the_password() {
        let db = DbUrl::parse("pgsql://kompira:hunter2@h:9999/kompira").unwrap();
        assert_eq!(db.to_string(), "pgsql://kompira:***@h:9999/kompira");
        assert!(!format!("{db:?}").contains("hunter2"));
        let mq = AmqpUrl::parse("amqp://guest:hunter2@mq:5672/v%2Fh").unwrap();
        assert_eq!(mq.to_string(), "amqp://guest:***@mq:5672/v%2Fh");
        assert!(!format!("{mq:?}").contains("hunter2"));
        let re = RedisUrl::parse("redis://:hunter2@re:6379/1").unwrap();
        assert_eq!(re.to_string(), "redis://:***@re:6379/1");
        assert!(!format!("{re:?}").contains("hunter2"));
    }

    #[test]
    fn refusals_say_why() {
        let e = |r: Result<DbUrl, UrlError>| r.unwrap_err().0;
        assert_eq!(
            e(DbUrl::parse("mysql://u:p@h/d")),
            "scheme `mysql` is not supported (expected `pgsql` or `postgres` or `postgresql`)"
        );
        assert_eq!(
            e(DbUrl::parse("kompira")),
            "not a URL of the form `pgsql://user:password@host:port/dbname`"
        );
        assert_eq!(
            e(DbUrl::parse("pgsql://u:p@h:99999/d")),
            "port `99999` is not a number from 1 to 65535"
        );
        assert_eq!(
            e(DbUrl::parse("pgsql://u:p@:5432/d")),
            "no host in a URL of the form `pgsql://user:password@host:port/dbname`"
        );
        assert_eq!(
            e(DbUrl::parse("pgsql://h:5432/d")),
            "no user in a URL of the form `pgsql://user:password@host:port/dbname`"
        );
        assert_eq!(
            e(DbUrl::parse("pgsql://u:p%4@h/d")),
            "bad percent-encoding in the password"
        );
        assert_eq!(
            AmqpUrl::parse("amqps://u:p@mq").unwrap_err().0,
            "scheme `amqps` is not supported (expected `amqp`) (the stand-in speaks no TLS)"
        );
        assert_eq!(
            RedisUrl::parse("redis://re/x").unwrap_err().0,
            "database `x` is not a number"
        );
    }
}
