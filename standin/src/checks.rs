//! Checks of the three dependencies, each a fresh connection, and the
//! watchers that repeat them: with backoff while a dependency is down
//! (services of a swarm start in any order), at a steady interval once it
//! is up, logging every failed attempt and every change.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::config::Config;
use crate::log::{Logger, human, utc_rfc3339};
use crate::{amqp, pg, resp};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dep {
    Database,
    Amqp,
    Cache,
}

impl Dep {
    pub fn name(self) -> &'static str {
        match self {
            Dep::Database => "database",
            Dep::Amqp => "amqp",
            Dep::Cache => "cache",
        }
    }
}

/// One check's result: a summary for the log line and the object the
/// status page shows.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub dep: Dep,
    pub ok: bool,
    /// The redacted URL.
    pub url: String,
    /// What the dependency said (ok) or the error (failed), one line.
    pub summary: String,
    pub json: Value,
    pub elapsed: Duration,
    pub at: SystemTime,
}

impl Outcome {
    fn new(
        dep: Dep,
        url: String,
        started: Instant,
        result: Result<(String, Value), String>,
    ) -> Outcome {
        let elapsed = started.elapsed();
        let at = SystemTime::now();
        let (ok, summary, mut json) = match result {
            Ok((summary, mut fields)) => {
                fields["ok"] = json!(true);
                (true, summary, fields)
            }
            Err(e) => (false, e.clone(), json!({"ok": false, "error": e})),
        };
        json["url"] = json!(url);
        json["elapsed_ms"] = json!(elapsed.as_millis() as u64);
        json["checked_at"] = json!(utc_rfc3339(at));
        Outcome {
            dep,
            ok,
            url,
            summary,
            json,
            elapsed,
            at,
        }
    }

    /// `amqp amqp://guest:***@mq:5672: ok in 3 ms (RabbitMQ 3.13.7)`
    pub fn line(&self) -> String {
        let ms = self.elapsed.as_millis();
        if self.ok {
            format!(
                "{} {}: ok in {ms} ms ({})",
                self.dep.name(),
                self.url,
                self.summary
            )
        } else {
            format!(
                "{} {}: failed in {ms} ms: {}",
                self.dep.name(),
                self.url,
                self.summary
            )
        }
    }
}

/// Runs checks for one process: its URLs, and the name it gives itself
/// towards PostgreSQL and RabbitMQ.
pub struct Checker {
    pub cfg: Config,
    pub client_name: String,
}

impl Checker {
    pub fn new(cfg: Config, hostname: &str) -> Checker {
        let client_name = format!("ke2-standin {}@{hostname}", cfg.role.name());
        Checker { cfg, client_name }
    }

    /// The dependencies of this role.
    pub fn deps(&self) -> Vec<Dep> {
        let mut out = Vec::new();
        if self.cfg.database.is_some() {
            out.push(Dep::Database);
        }
        out.push(Dep::Amqp);
        if self.cfg.cache.is_some() {
            out.push(Dep::Cache);
        }
        out
    }

    pub async fn check(&self, dep: Dep) -> Outcome {
        let t = self.cfg.check_timeout;
        let started = Instant::now();
        match dep {
            Dep::Database => {
                let Some(url) = &self.cfg.database else {
                    return Outcome::new(dep, String::new(), started, Err("not configured".into()));
                };
                let r = pg::check(url, &self.client_name, t).await.map(|s| {
                    let role = if s.in_recovery { "standby" } else { "primary" };
                    let addr = match (&s.server_addr, s.server_port) {
                        (Some(a), Some(p)) => format!("{a}:{p}"),
                        (Some(a), None) => a.clone(),
                        _ => "local socket".into(),
                    };
                    (
                        format!("server {addr}, {role}"),
                        json!({
                            "server_addr": s.server_addr,
                            "server_port": s.server_port,
                            "in_recovery": s.in_recovery,
                            "now": s.now,
                        }),
                    )
                });
                Outcome::new(dep, url.to_string(), started, r)
            }
            Dep::Amqp => {
                let url = &self.cfg.amqp;
                let r = amqp::check(url, &self.client_name, t)
                    .await
                    .map(|i| {
                        let who = format!(
                            "{} {}",
                            i.product.as_deref().unwrap_or("unknown server"),
                            i.version.as_deref().unwrap_or("")
                        );
                        (
                            format!("{}, vhost `{}`", who.trim(), url.vhost),
                            json!({
                                "vhost": url.vhost,
                                "product": i.product,
                                "version": i.version,
                                "cluster_name": i.cluster_name,
                            }),
                        )
                    })
                    .map_err(|e| e.to_string());
                Outcome::new(dep, url.to_string(), started, r)
            }
            Dep::Cache => {
                let Some(url) = &self.cfg.cache else {
                    return Outcome::new(dep, String::new(), started, Err("not configured".into()));
                };
                let r = resp::ping(url, t)
                    .await
                    .map(|()| ("PONG".to_string(), json!({"db": url.db, "reply": "PONG"})))
                    .map_err(|e| e.to_string());
                Outcome::new(dep, url.to_string(), started, r)
            }
        }
    }
}

/// The latest outcome of a watcher, for the status page.
pub type Slot = Arc<Mutex<Option<Outcome>>>;

/// Retry delays while a dependency is down: `first`, doubling to `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

/// Checks `dep` for ever. The first result is logged; while it fails,
/// every attempt is logged with the delay to the next; once up, only a
/// change is. Never returns: a dependency that is down is waited for.
pub async fn watch(
    checker: Arc<Checker>,
    dep: Dep,
    slot: Slot,
    log: Arc<Logger>,
    interval: Duration,
    backoff: Backoff,
) {
    let mut delay = backoff.first;
    let mut failures: u32 = 0;
    let mut was_ok: Option<bool> = None;
    loop {
        let o = checker.check(dep).await;
        let line = o.line();
        let ok = o.ok;
        if let Ok(mut s) = slot.lock() {
            *s = Some(o);
        }
        if ok {
            if was_ok != Some(true) {
                if failures > 0 {
                    log.info(&format!("{line}; up after {failures} failed attempts"));
                } else {
                    log.info(&line);
                }
            }
            failures = 0;
            delay = backoff.first;
            was_ok = Some(true);
            tokio::time::sleep(interval).await;
        } else {
            failures += 1;
            let lost = if was_ok == Some(true) {
                " (was up)"
            } else {
                ""
            };
            log.warn(&format!(
                "{line}{lost}; attempt {failures}, next in {}",
                human(delay)
            ));
            was_ok = Some(false);
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(backoff.max);
        }
    }
}
