//! Step 5, PostgreSQL part (items 1-5 and 13 of `setup_pgpool.sh`): packages,
//! node id check, archive and socket directories, the KE2 blocks of
//! `postgresql.conf` and `pg_hba.conf`, and on the primary: initdb, start,
//! roles, passwords, `GRANT pg_monitor`, database and the `pgpool_recovery`
//! extension in template1.
//!
//! Debian keeps PostgreSQL's configuration in `/etc`, outside PGDATA, so
//! `pg_basebackup` does not carry it to the standbys: there every host gets
//! the configuration blocks (any of them may become primary). On rhel9 the
//! configuration lives in PGDATA and travels with the base backup.

use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::files::{Act, want_block, want_dir};
use super::{Cx, Plan, Planned, Step, StepError, each_host, plan_hosts};
use crate::host::{Cmd, Host};
use crate::layout::Layout;
use crate::render::pg::{PgParams, pg_hba, postgresql_conf};
use crate::topology::{Credentials, Platform};

/// The roles the procedure creates, with their attributes.
pub const ROLES: [(&str, &str); 3] = [
    ("pgpool", "LOGIN"),
    ("repl", "LOGIN REPLICATION"),
    ("kompira", "LOGIN CREATEDB"),
];

/// A psql command as postgres over the local socket, failing on the first
/// SQL error, printing unaligned tuples only.
pub fn psql(layout: &Layout, port: u16, db: &str, sql: &str) -> Cmd {
    Cmd::new(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(layout.socket_dir)
        .arg("-p")
        .arg(port.to_string())
        .arg("-d")
        .arg(db)
        .arg("-c")
        .arg(sql)
        .user("postgres")
}

/// SQL from standard input (used for passwords, which must not be argv).
pub fn psql_stdin(layout: &Layout, port: u16, db: &str, sql: String) -> Cmd {
    Cmd::new(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(layout.socket_dir)
        .arg("-p")
        .arg(port.to_string())
        .arg("-d")
        .arg(db)
        .arg("-f")
        .arg("-")
        .user("postgres")
        .secret_stdin(sql.into_bytes())
}

const STATE_SQL: &str = "SELECT json_build_object(\
'in_recovery', pg_is_in_recovery(), \
'roles', (SELECT coalesce(json_object_agg(rolname, json_build_object('password', rolpassword, 'replication', rolreplication, 'createdb', rolcreatedb)), '{}'::json) FROM pg_authid WHERE rolname IN ('postgres','pgpool','repl','kompira')), \
'monitor', (SELECT coalesce(bool_or(pg_has_role('pgpool', 'pg_monitor', 'member')), false) FROM pg_roles WHERE rolname = 'pgpool'), \
'databases', (SELECT json_agg(datname) FROM pg_database))";

/// What the primary's catalog says, parsed from one JSON row.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct DbState {
    pub in_recovery: bool,
    pub roles: BTreeMap<String, RoleState>,
    pub monitor: bool,
    pub databases: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct RoleState {
    pub password: Option<String>,
    pub replication: bool,
    pub createdb: bool,
}

pub fn parse_db_state(text: &str) -> Result<DbState, StepError> {
    serde_json::from_str(text.trim()).map_err(|e| {
        StepError::Probe(crate::probe::ProbeError::Parse {
            what: "pg_authid/pg_database state".into(),
            detail: e.to_string(),
        })
    })
}

/// Whether a stored `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`
/// verifier was made from `password` (RFC 5802/7677), so passwords are only
/// set when they differ and a re-run changes nothing.
pub fn scram_matches(verifier: &str, password: &str) -> bool {
    let Some(rest) = verifier.strip_prefix("SCRAM-SHA-256$") else {
        return false;
    };
    let Some((iter_salt, keys)) = rest.split_once('$') else {
        return false;
    };
    let (Some((iter, salt)), Some((stored, _server))) =
        (iter_salt.split_once(':'), keys.split_once(':'))
    else {
        return false;
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let (Ok(iter), Ok(salt), Ok(stored)) =
        (iter.parse::<u32>(), b64.decode(salt), b64.decode(stored))
    else {
        return false;
    };
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iter, &mut salted);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&salted).expect("any key length");
    mac.update(b"Client Key");
    let client_key = mac.finalize().into_bytes();
    Sha256::digest(client_key).as_slice() == stored.as_slice()
}

/// The verifier PostgreSQL stores for `password` with this salt and
/// iteration count (what `scram_matches` checks against; tests script
/// catalogs with it).
pub fn scram_verifier(password: &str, salt: &[u8], iter: u32) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iter, &mut salted);
    let hmac = |key: &[u8], msg: &[u8]| {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
        m.update(msg);
        m.finalize().into_bytes()
    };
    let stored = Sha256::digest(hmac(&salted, b"Client Key"));
    let server = hmac(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${iter}:{}${}:{}",
        b64.encode(salt),
        b64.encode(stored),
        b64.encode(server)
    )
}

fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The password each role must have.
fn wanted_passwords(c: &Credentials) -> [(&'static str, &str); 4] {
    [
        ("postgres", c.postgres.expose()),
        ("pgpool", c.pgpool.expose()),
        ("repl", c.repl.expose()),
        ("kompira", c.kompira.expose()),
    ]
}

/// How many standbys stream from host `i`'s PostgreSQL (0 when it is not
/// a primary or does not answer).
async fn streaming_from(cx: &Cx<'_>, i: usize) -> usize {
    let l = Layout::of(cx.topology.hosts[i].platform);
    let sql = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'";
    match psql(l, cx.topology.ports.postgres, "postgres", sql)
        .deadline(crate::cluster::pgpool::PROBE_DEADLINE)
        .check(cx.host(i))
        .await
    {
        Ok(o) => o.stdout_lossy().trim().parse().unwrap_or(0),
        Err(_) => 0,
    }
}

/// Pgpool-II's primary `claimed`, unless PostgreSQL shows it false: after a
/// partition heals, the watchdog's split-brain resolution may pick the
/// isolated old leader, and every member then copies its backend status,
/// naming the isolated old primary (which no standby follows) primary
/// again. A rebuild from it would throw away what the majority's primary
/// acknowledged, so when `claimed` has no streaming standby and another
/// host's primary has some, that one is the primary (Pgpool-II's
/// `detach_false_primary` applies the same rule to its own view).
async fn true_primary(cx: &Cx<'_>, claimed: usize) -> Result<usize, StepError> {
    if cx.hosts.len() < 2 || streaming_from(cx, claimed).await > 0 {
        return Ok(claimed);
    }
    for other in (0..cx.hosts.len()).filter(|o| *o != claimed) {
        let followers = streaming_from(cx, other).await;
        if followers > 0 {
            tracing::warn!(
                "Pgpool-II names `{}` primary, but no standby follows it and {} follow `{}`: `{}` is the primary",
                cx.name(claimed),
                followers,
                cx.name(other),
                cx.name(other)
            );
            return Ok(other);
        }
    }
    Ok(claimed)
}

/// Which host is the primary now. Pgpool-II's view wins when it runs (it
/// knows which node it promoted, also when an old primary came back by
/// itself); otherwise the first host whose PostgreSQL runs and is not in
/// recovery; the topology's first host when none runs (a fresh install).
/// After a failover this is not host 0, and the steps must not treat host 0
/// as the primary again.
pub async fn current_primary(cx: &Cx<'_>) -> Result<usize, StepError> {
    for i in 0..cx.hosts.len() {
        let h = cx.host(i);
        let l = Layout::of(cx.topology.hosts[i].platform);
        if !h.run(&l.pgpool_running()).await?.success() {
            continue;
        }
        let pass = l.in_home(".pcppass");
        for id in 0..cx.hosts.len() {
            match crate::probe::pgpool::node_info(h, cx.topology.ports.pcp, &pass, id).await {
                Ok(n) if n.role == "primary" && n.is_up() => return true_primary(cx, id).await,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        break;
    }
    let answers = each_host(cx, |i, h| async move {
        let l = Layout::of(cx.topology.hosts[i].platform);
        let out = h
            .run(&psql(
                l,
                cx.topology.ports.postgres,
                "postgres",
                "SELECT pg_is_in_recovery()",
            ))
            .await?;
        Ok(out.success().then(|| out.stdout_lossy().trim() == "f"))
    })
    .await?;
    Ok(answers.iter().position(|a| *a == Some(true)).unwrap_or(0))
}

/// Packages and the node-id check (items 1-2).
pub struct PgPackages;

#[async_trait]
impl Step for PgPackages {
    type Action = Vec<Cmd>;

    fn name(&self) -> &'static str {
        "pg-packages"
    }

    /// Installs packages.
    fn host_wide(&self) -> bool {
        true
    }

    async fn plan(&self, cx: &Cx<'_>) -> Result<Plan<Vec<Cmd>>, StepError> {
        let states = each_host(cx, |i, h| async move {
            let l = Layout::of(cx.topology.hosts[i].platform);
            let name = Cmd::new(["hostname", "-s"]).check(h).await?.stdout_lossy();
            let present = h
                .run(
                    &Cmd::sh("test -x \"$1\" && command -v pgpool >/dev/null && command -v pg_enc >/dev/null")
                        .arg(l.pg_tool("postgres")),
                )
                .await?
                .success();
            Ok((name.trim().to_string(), present))
        })
        .await?;
        let mut plan = Plan::default();
        for (i, (name, present)) in states.into_iter().enumerate() {
            let want = &cx.topology.hosts[i].name;
            let short = want.split('.').next().unwrap_or(want);
            // An empty answer comes from a scripted host; real hosts always
            // have a name.
            if !name.is_empty() && !name.eq_ignore_ascii_case(short) {
                return Err(StepError::State {
                    step: "pg-packages",
                    host: want.clone(),
                    message: format!(
                        "the host calls itself `{name}`, which is not in the topology's host list; \
                         Pgpool-II node ids come from that list"
                    ),
                });
            }
            if !present {
                let l = Layout::of(cx.topology.hosts[i].platform);
                plan.push(
                    i,
                    format!("install PostgreSQL {} and Pgpool-II", l.pg_version),
                    l.pg_install(),
                );
            }
        }
        Ok(plan)
    }

    async fn apply(&self, cx: &Cx<'_>, item: &Planned<Vec<Cmd>>) -> Result<(), StepError> {
        for c in &item.action {
            c.check(cx.host(item.host)).await?;
        }
        Ok(())
    }
}

/// What the PostgreSQL step does on one host.
#[derive(Clone, Debug)]
pub enum PgAction {
    Act(Act),
    /// Primary: the catalog part (roles, passwords, grant, database,
    /// extension), each checked again at apply time.
    Catalog,
}

/// Items 3-5 and the primary's catalog.
pub struct Postgres;

fn pg_params<'a>(cx: &'a Cx<'_>, i: usize) -> PgParams<'a> {
    PgParams {
        topology: cx.topology,
        layout: Layout::of(cx.topology.hosts[i].platform),
        // The interface does not appear in PostgreSQL's files.
        interface: "",
        prefix: 0,
        node: i,
    }
}

#[async_trait]
impl Step for Postgres {
    type Action = PgAction;

    fn name(&self) -> &'static str {
        "postgres"
    }

    fn hosts_independent(&self) -> bool {
        true
    }

    async fn plan(&self, cx: &Cx<'_>) -> Result<Plan<PgAction>, StepError> {
        let creds = cx.creds("postgres")?;
        let primary = current_primary(cx).await?;
        plan_hosts(cx, |i| async move {
            let mut plan = Plan::default();
            let h = cx.host(i);
            let l = Layout::of(cx.topology.hosts[i].platform);
            let is_primary = i == primary;
            let carries_config = is_primary || l.platform == Platform::Debian;
            let mut config_changed = false;

            if is_primary {
                let has_data = h
                    .run(&Cmd::new(["test", "-s"]).arg(l.in_pgdata("PG_VERSION")))
                    .await?
                    .success();
                if !has_data {
                    plan.push(
                        i,
                        "initialise the database cluster",
                        PgAction::Act(Act::Run(vec![l.pg_initdb()])),
                    );
                }
            }
            for (dir, mode, why) in [
                (cx.topology.postgres.archive_dir.as_str(), 0o700, "archive"),
                (l.socket_dir, 0o2775, "socket"),
            ] {
                if let Some(a) = want_dir(h, dir, "postgres:postgres", mode).await? {
                    plan.push(
                        i,
                        format!("create the {why} directory `{dir}`"),
                        PgAction::Act(a),
                    );
                }
            }
            if carries_config {
                let p = pg_params(cx, i);
                if let Some(a) =
                    want_block(h, l.pg_conf, &postgresql_conf(&p), 0o644, "postgres").await?
                {
                    plan.push(
                        i,
                        format!("set the KE2 block of `{}`", l.pg_conf),
                        PgAction::Act(a),
                    );
                    config_changed = true;
                }
                if let Some(a) = want_block(h, l.pg_hba, &pg_hba(&p), 0o640, "postgres").await? {
                    plan.push(
                        i,
                        format!("set the KE2 block of `{}`", l.pg_hba),
                        PgAction::Act(a),
                    );
                    config_changed = true;
                }
            }
            if !is_primary {
                // A standby's data comes from online recovery. A PostgreSQL
                // that runs here as a primary (the package's own cluster on
                // a fresh Debian host) would be a second primary: stop it.
                let out = h
                    .run(&psql(l, cx.topology.ports.postgres, "postgres", "SELECT pg_is_in_recovery()"))
                    .await?;
                if out.success() && out.stdout_lossy().trim() == "f" {
                    plan.push(
                        i,
                        "stop the stray primary PostgreSQL (this host is rebuilt by online recovery)",
                        PgAction::Act(Act::Run(vec![l.pg_stop()])),
                    );
                }
                return Ok(plan);
            }
            let running = h.run(&l.pg_isready(cx.topology.ports.postgres)).await?.success();
            if !running {
                plan.push(
                    i,
                    "start PostgreSQL",
                    PgAction::Act(Act::Run(vec![l.pg_start()])),
                );
                plan.push(
                    i,
                    "create roles, passwords, database and extension",
                    PgAction::Catalog,
                );
                return Ok(plan);
            }
            if config_changed {
                plan.push(
                    i,
                    "restart PostgreSQL for the new configuration",
                    PgAction::Act(Act::Run(vec![l.pg_restart()])),
                );
            }
            if !catalog_ok(h, l, cx, creds).await? {
                plan.push(
                    i,
                    "create roles, passwords, database and extension",
                    PgAction::Catalog,
                );
            }
            Ok(plan)
        })
        .await
    }

    async fn apply(&self, cx: &Cx<'_>, item: &Planned<PgAction>) -> Result<(), StepError> {
        let h = cx.host(item.host);
        match &item.action {
            PgAction::Act(a) => a.apply(h).await,
            PgAction::Catalog => {
                let l = Layout::of(cx.topology.hosts[item.host].platform);
                wait_ready(h, l, cx.topology.ports.postgres).await?;
                ensure_catalog(h, l, cx, cx.creds("postgres")?).await
            }
        }
    }
}

/// Synchronous replication (topology `postgres.synchronous`), set on the
/// primary with `ALTER SYSTEM` once the standbys stream: it lives in
/// `postgresql.auto.conf`, which base backups and pg_rewind carry, so a
/// promoted standby keeps it. Turning the option off resets it.
pub struct PgSync;

#[async_trait]
impl Step for PgSync {
    type Action = String;

    fn name(&self) -> &'static str {
        "pg-sync"
    }

    async fn plan(&self, cx: &Cx<'_>) -> Result<Plan<String>, StepError> {
        let primary = current_primary(cx).await?;
        let h = cx.host(primary);
        let l = Layout::of(cx.topology.hosts[primary].platform);
        let want = if cx.topology.postgres.synchronous {
            crate::render::pg::synchronous_standby_names(cx.topology)
        } else {
            String::new()
        };
        let have = psql(
            l,
            cx.topology.ports.postgres,
            "postgres",
            "SHOW synchronous_standby_names",
        )
        .check(h)
        .await?
        .stdout_lossy()
        .trim()
        .to_string();
        let mut plan = Plan::default();
        if have != want {
            let summary = if want.is_empty() {
                "turn synchronous replication off".to_string()
            } else {
                format!("make replication synchronous (`{want}`)")
            };
            plan.push(primary, summary, want);
        }
        Ok(plan)
    }

    async fn apply(&self, cx: &Cx<'_>, item: &Planned<String>) -> Result<(), StepError> {
        let h = cx.host(item.host);
        let l = Layout::of(cx.topology.hosts[item.host].platform);
        let sql = if item.action.is_empty() {
            "ALTER SYSTEM RESET synchronous_standby_names".to_string()
        } else {
            format!(
                "ALTER SYSTEM SET synchronous_standby_names = {}",
                sql_literal(&item.action)
            )
        };
        psql(l, cx.topology.ports.postgres, "postgres", &sql)
            .check(h)
            .await?;
        psql(
            l,
            cx.topology.ports.postgres,
            "postgres",
            "SELECT pg_reload_conf()",
        )
        .check(h)
        .await?;
        Ok(())
    }
}

/// Waits for PostgreSQL to accept connections after a start.
async fn wait_ready(h: &dyn Host, l: &Layout, port: u16) -> Result<(), StepError> {
    let name = h.name().to_string();
    crate::wait::wait_for(
        &format!("PostgreSQL on `{name}` to accept connections"),
        std::time::Duration::from_secs(60),
        || async {
            match h.run(&l.pg_isready(port)).await {
                Ok(o) if o.success() => crate::wait::Poll::Ready(()),
                Ok(o) => crate::wait::Poll::NotYet(format!("pg_isready exit {}", o.status)),
                Err(e) => crate::wait::Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    Ok(())
}

async fn db_state(h: &dyn Host, l: &Layout, port: u16) -> Result<DbState, StepError> {
    let out = psql(l, port, "postgres", STATE_SQL).check(h).await?;
    parse_db_state(&out.stdout_lossy())
}

async fn has_extension(h: &dyn Host, l: &Layout, port: u16) -> Result<bool, StepError> {
    let out = psql(
        l,
        port,
        "template1",
        "SELECT count(*) FROM pg_extension WHERE extname = 'pgpool_recovery'",
    )
    .check(h)
    .await?;
    Ok(out.stdout_lossy().trim() == "1")
}

async fn catalog_ok(
    h: &dyn Host,
    l: &Layout,
    cx: &Cx<'_>,
    creds: &Credentials,
) -> Result<bool, StepError> {
    let st = db_state(h, l, cx.topology.ports.postgres).await?;
    let roles_ok = ROLES.iter().all(|(r, _)| st.roles.contains_key(*r))
        && st.roles.get("repl").is_some_and(|r| r.replication)
        && st.roles.get("kompira").is_some_and(|r| r.createdb);
    let pw_ok = wanted_passwords(creds).iter().all(|(role, pw)| {
        st.roles
            .get(*role)
            .and_then(|r| r.password.as_deref())
            .is_some_and(|v| scram_matches(v, pw))
    });
    let db_ok = st.databases.contains(&cx.topology.postgres.database);
    Ok(roles_ok
        && pw_ok
        && st.monitor
        && db_ok
        && has_extension(h, l, cx.topology.ports.postgres).await?)
}

/// Brings the catalog to the wanted state; each part only when it differs.
async fn ensure_catalog(
    h: &dyn Host,
    l: &Layout,
    cx: &Cx<'_>,
    creds: &Credentials,
) -> Result<(), StepError> {
    let st = db_state(h, l, cx.topology.ports.postgres).await?;
    for (role, attrs) in ROLES {
        match st.roles.get(role) {
            None => {
                psql(
                    l,
                    cx.topology.ports.postgres,
                    "postgres",
                    &format!("CREATE ROLE {role} {attrs}"),
                )
                .check(h)
                .await?;
            }
            Some(r) if (role == "repl" && !r.replication) || (role == "kompira" && !r.createdb) => {
                psql(
                    l,
                    cx.topology.ports.postgres,
                    "postgres",
                    &format!("ALTER ROLE {role} {attrs}"),
                )
                .check(h)
                .await?;
            }
            Some(_) => {}
        }
    }
    let mut sql = String::new();
    for (role, pw) in wanted_passwords(creds) {
        let ok = st
            .roles
            .get(role)
            .and_then(|r| r.password.as_deref())
            .is_some_and(|v| scram_matches(v, pw));
        if !ok {
            sql.push_str(&format!(
                "ALTER ROLE {role} PASSWORD {};\n",
                sql_literal(pw)
            ));
        }
    }
    if !sql.is_empty() {
        // Through stdin and marked secret: never in argv, logs or transcripts.
        psql_stdin(l, cx.topology.ports.postgres, "postgres", sql)
            .check(h)
            .await?;
    }
    if !st.monitor {
        psql(
            l,
            cx.topology.ports.postgres,
            "postgres",
            "GRANT pg_monitor TO pgpool",
        )
        .check(h)
        .await?;
    }
    let db = &cx.topology.postgres.database;
    if !st.databases.contains(db) {
        psql(
            l,
            cx.topology.ports.postgres,
            "postgres",
            &format!("CREATE DATABASE {db} OWNER kompira ENCODING 'UTF8' TEMPLATE template0"),
        )
        .check(h)
        .await?;
    }
    if !has_extension(h, l, cx.topology.ports.postgres).await? {
        psql(
            l,
            cx.topology.ports.postgres,
            "template1",
            "CREATE EXTENSION IF NOT EXISTS pgpool_recovery",
        )
        .check(h)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made by PostgreSQL 17 on a lab host for the password `pgpool`
    // (`SELECT rolpassword FROM pg_authid` after `CREATE ROLE ... PASSWORD`).
    const VERIFIER: &str = "SCRAM-SHA-256$4096:B+kWyxH36HozJ//ONwQpZw==$mNwksy3UPz5J+uCD4Uvh7q9zB/SRS7M3c0w638X29Ek=:gbsqhWy+FK64F5wo2BLt0Q2ZssxTntOD6jBGhVkZFZw=";

    #[test]
    fn scram_verifier_checks_the_password() {
        assert!(scram_matches(VERIFIER, "pgpool"));
        assert!(!scram_matches(VERIFIER, "pgpool2"));
        assert!(!scram_matches("md5abc", "pgpool"));
        assert!(!scram_matches("SCRAM-SHA-256$x", "pgpool"));
    }

    #[test]
    fn verifier_round_trips_and_matches_postgres() {
        let v = scram_verifier("secret", b"0123456789abcdef", 4096);
        assert!(scram_matches(&v, "secret") && !scram_matches(&v, "other"));
        // Same salt and count as PostgreSQL's verifier above: same text.
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = b64.decode("B+kWyxH36HozJ//ONwQpZw==").unwrap();
        assert_eq!(scram_verifier("pgpool", &salt, 4096), VERIFIER);
    }

    #[test]
    fn db_state_parses_the_catalog_row() {
        let s = parse_db_state(r#"{"in_recovery" : false, "roles" : {"postgres" : {"password" : null, "replication" : true, "createdb" : true}}, "monitor" : false, "databases" : ["postgres","template1","template0"]}"#).unwrap();
        assert!(!s.in_recovery && !s.monitor);
        assert_eq!(s.roles["postgres"].password, None);
    }
}
