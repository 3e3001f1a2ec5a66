//! How host containers get the powers a host needs (nested engine, FUSE,
//! VIPs, iptables). `--privileged` is the plain way; on engines that refuse
//! it (Docker 20.10 where root lacks CAP_SYS_RESOURCE in its bounding set:
//! "unable to apply caps"), an explicit set of capabilities and unconfined
//! profiles does the same job. The engine is probed, not assumed.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, DeviceMapping, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};

use crate::RUN_LABEL;

/// The isolation the host containers run with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Isolation {
    Privileged,
    /// `--privileged` failed with this error; explicit capabilities instead.
    Capabilities {
        refused: String,
    },
}

impl Isolation {
    /// The part of the host configuration that grants the powers.
    pub fn host_config(&self) -> HostConfig {
        match self {
            Isolation::Privileged => HostConfig {
                privileged: Some(true),
                ..Default::default()
            },
            Isolation::Capabilities { .. } => HostConfig {
                cap_add: Some(vec!["ALL".into()]),
                // The capability the engine cannot grant; nothing in a lab
                // host needs to raise resource limits beyond the machine's.
                cap_drop: Some(vec!["SYS_RESOURCE".into()]),
                security_opt: Some(vec![
                    "seccomp=unconfined".into(),
                    "apparmor=unconfined".into(),
                ]),
                // What the CLI's `--security-opt systempaths=unconfined` means
                // in the API: no masked and no read-only /proc paths.
                masked_paths: Some(vec![]),
                readonly_paths: Some(vec![]),
                devices: Some(vec![DeviceMapping {
                    path_on_host: Some("/dev/fuse".into()),
                    path_in_container: Some("/dev/fuse".into()),
                    cgroup_permissions: Some("rwm".into()),
                }]),
                device_cgroup_rules: Some(vec!["a *:* rwm".into()]),
                ..Default::default()
            },
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Isolation::Privileged => "privileged".into(),
            Isolation::Capabilities { .. } => {
                "capabilities ALL minus SYS_RESOURCE (engine refused --privileged)".into()
            }
        }
    }
}

/// Tries a privileged container from `image` once per engine (the answer is
/// cached in `cache_dir` under the engine's id, version and default runtime);
/// falls back to explicit capabilities when the engine refuses, saying so in
/// one line.
pub async fn isolation(
    docker: &Docker,
    image: &str,
    run: &str,
    cache_dir: &Path,
) -> Result<Isolation> {
    if std::env::var("KE2LAB_ISOLATION").as_deref() == Ok("capabilities") {
        return Ok(Isolation::Capabilities {
            refused: "KE2LAB_ISOLATION=capabilities".into(),
        });
    }
    let info = docker
        .info()
        .await
        .context("cannot read the engine's info")?;
    let key = format!(
        "{}|{}|{}",
        info.id.unwrap_or_default(),
        info.server_version.unwrap_or_default(),
        info.default_runtime.unwrap_or_default()
    );
    let cache = cache_dir.join(format!("isolation-{}.txt", crate::image::short_hash(&key)));
    if let Ok(text) = std::fs::read_to_string(&cache) {
        if text == "privileged" {
            return Ok(Isolation::Privileged);
        }
        if let Some(refused) = text.strip_prefix("refused:") {
            say_refused(refused, true);
            return Ok(Isolation::Capabilities {
                refused: refused.to_string(),
            });
        }
    }
    let found = probe(docker, image, run).await?;
    std::fs::create_dir_all(cache_dir).ok();
    let text = match &found {
        Isolation::Privileged => "privileged".to_string(),
        Isolation::Capabilities { refused } => format!("refused:{refused}"),
    };
    std::fs::write(&cache, text).ok();
    Ok(found)
}

fn say_refused(refused: &str, cached: bool) {
    let why = refused
        .rsplit("unable to start container process: ")
        .next()
        .unwrap_or(refused)
        .trim();
    eprintln!(
        "engine refuses --privileged (`{why}`{}); using explicit capabilities \
         (ALL minus SYS_RESOURCE, unconfined seccomp/apparmor/systempaths, all devices)",
        if cached { ", probed earlier" } else { "" }
    );
}

async fn probe(docker: &Docker, image: &str, run: &str) -> Result<Isolation> {
    let name = format!("ke2lab-{run}-privileged-probe");
    docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(&name).build()),
            ContainerCreateBody {
                image: Some(image.into()),
                entrypoint: Some(vec!["/bin/true".into()]),
                labels: Some(HashMap::from([(RUN_LABEL.to_string(), run.to_string())])),
                host_config: Some(Isolation::Privileged.host_config()),
                ..Default::default()
            },
        )
        .await
        .context("cannot create the privileged probe container")?;
    let started = docker.start_container(&name, None).await;
    docker
        .remove_container(
            &name,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await
        .ok();
    Ok(match started {
        Ok(()) => Isolation::Privileged,
        Err(e) => {
            let refused = e.to_string();
            say_refused(&refused, false);
            Isolation::Capabilities { refused }
        }
    })
}
