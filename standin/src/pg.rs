//! The database round trip through `DATABASE_URL` (Pgpool-II's port in the
//! cluster): a fresh connection and one query per check.

use std::time::Duration;

use tokio_postgres::SimpleQueryMessage;

use crate::url::DbUrl;

/// What the server that answered says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbStatus {
    /// `inet_server_addr()`: the backend's address, so a test sees which
    /// PostgreSQL Pgpool-II chose; `None` over a Unix socket.
    pub server_addr: Option<String>,
    pub server_port: Option<u16>,
    pub in_recovery: bool,
    pub now: String,
}

/// One query, sent with the simple protocol (one round trip). It calls
/// `pg_is_in_recovery()`, a volatile function, which Pgpool-II does not
/// load-balance: the answer comes from the primary, as a write would.
pub const QUERY: &str = "SELECT host(inet_server_addr()), inet_server_port(), \
     pg_is_in_recovery(), now()::text";

/// Connects, queries, disconnects, all within `timeout`. The error is one
/// line without the password (tokio-postgres never includes it).
pub async fn check(
    url: &DbUrl,
    application_name: &str,
    timeout: Duration,
) -> Result<DbStatus, String> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&url.host)
        .port(url.port)
        .user(&url.user)
        .dbname(url.dbname.as_deref().unwrap_or(&url.user))
        .application_name(application_name)
        .connect_timeout(timeout);
    if let Some(pw) = &url.password {
        cfg.password(pw);
    }
    let work = async {
        let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.map_err(describe)?;
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let rows = client.simple_query(QUERY).await.map_err(describe);
        drop(client);
        let _ = conn.await;
        parse(rows?)
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("no answer within {}", crate::log::human(timeout)))?
}

fn describe(e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        // tokio-postgres's own text is the kind ("error connecting to
        // server"); the cause (refused, no route, reset) is its source.
        None => {
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            text
        }
    }
}

fn parse(msgs: Vec<SimpleQueryMessage>) -> Result<DbStatus, String> {
    let row = msgs
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .ok_or("the status query returned no row")?;
    let col = |i: usize| row.get(i).map(str::to_string);
    Ok(DbStatus {
        server_addr: col(0),
        server_port: col(1).and_then(|p| p.parse().ok()),
        in_recovery: col(2).as_deref() == Some("t"),
        now: col(3).unwrap_or_default(),
    })
}
