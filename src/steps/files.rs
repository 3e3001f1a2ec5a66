//! Building blocks shared by the database steps: desired files, KE2 blocks,
//! directories with owner and mode, and commands, each planned only when the
//! host differs from what is wanted.

use crate::host::{Cmd, Host};
use crate::render::replace_block;

use super::StepError;

/// One change on a host.
#[derive(Clone, Debug)]
pub enum Act {
    Write {
        path: String,
        body: Vec<u8>,
        mode: u32,
        owner: String,
    },
    Run(Vec<Cmd>),
}

impl Act {
    pub async fn apply(&self, host: &dyn Host) -> Result<(), StepError> {
        match self {
            Act::Write {
                path,
                body,
                mode,
                owner,
            } => host.write_file(path, body, *mode, owner).await?,
            Act::Run(cmds) => {
                for c in cmds {
                    c.check(host).await?;
                }
            }
        }
        Ok(())
    }
}

/// A whole file with this exact content, mode and owner.
pub async fn want_file(
    host: &dyn Host,
    path: &str,
    body: &[u8],
    mode: u32,
    owner: &str,
) -> Result<Option<Act>, StepError> {
    if let Some((current, meta)) = host.read_file_meta(path).await?
        && current == body
        && meta_matches(meta.as_deref(), mode, owner)
    {
        return Ok(None);
    }
    Ok(Some(Act::Write {
        path: path.to_string(),
        body: body.to_vec(),
        mode,
        owner: owner.to_string(),
    }))
}

/// The file with its KE2 block set to `body`; the rest of it untouched.
/// A missing file is created with just the block.
pub async fn want_block(
    host: &dyn Host,
    path: &str,
    body: &str,
    mode: u32,
    owner: &str,
) -> Result<Option<Act>, StepError> {
    want_derived(host, path, mode, owner, |text| replace_block(text, body)).await
}

/// The file with every `(key, line)` present once: a line whose key (the
/// text before the last `:`-separated field, for .pgpass-like files) matches
/// is replaced, others are appended. Lines of other keys are kept.
pub async fn want_lines(
    host: &dyn Host,
    path: &str,
    lines: &[(String, String)],
    mode: u32,
    owner: &str,
) -> Result<Option<Act>, StepError> {
    want_derived(host, path, mode, owner, |text| merge_lines(text, lines)).await
}

/// The file as `derive` makes it from its current text (empty when absent),
/// with this mode and owner.
async fn want_derived(
    host: &dyn Host,
    path: &str,
    mode: u32,
    owner: &str,
    derive: impl FnOnce(&str) -> String,
) -> Result<Option<Act>, StepError> {
    let current = host.read_file_meta(path).await?;
    let text = current
        .as_ref()
        .map(|(b, _)| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let wanted = derive(&text);
    if let Some((_, meta)) = &current
        && wanted == text
        && meta_matches(meta.as_deref(), mode, owner)
    {
        return Ok(None);
    }
    Ok(Some(Act::Write {
        path: path.to_string(),
        body: wanted.into_bytes(),
        mode,
        owner: owner.to_string(),
    }))
}

/// Pure part of [`want_lines`].
pub fn merge_lines(text: &str, lines: &[(String, String)]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut placed = vec![false; lines.len()];
    for l in text.lines() {
        match lines.iter().position(|(k, _)| l.starts_with(k.as_str())) {
            Some(i) if !placed[i] => {
                out.push(lines[i].1.clone());
                placed[i] = true;
            }
            // A second line with the same key is a duplicate: dropped.
            Some(_) => {}
            None => out.push(l.to_string()),
        }
    }
    for (i, (_, line)) in lines.iter().enumerate() {
        if !placed[i] {
            out.push(line.clone());
        }
    }
    let mut s = out.join("\n");
    if !s.is_empty() {
        s.push('\n');
    }
    s
}

/// A directory with owner (`user:group`) and mode.
pub async fn want_dir(
    host: &dyn Host,
    path: &str,
    owner: &str,
    mode: u32,
) -> Result<Option<Act>, StepError> {
    let out = host
        .run(&Cmd::new(["stat", "-c", "%U:%G %a %F"]).arg(path))
        .await?;
    let want = format!("{owner} {mode:o} directory");
    if out.success() && out.stdout_lossy().trim() == want {
        return Ok(None);
    }
    let (u, g) = owner.split_once(':').unwrap_or((owner, owner));
    Ok(Some(Act::Run(vec![
        Cmd::new(["install", "-d", "-o", u, "-g", g, "-m"])
            .arg(format!("{mode:o}"))
            .arg(path),
        // install -d leaves an existing directory's mode and owner as they
        // were; set them explicitly.
        Cmd::new(["chown", owner, path]),
        Cmd::new(["chmod".to_string(), format!("{mode:o}"), path.to_string()]),
    ])))
}

/// Whether `stat`'s `user mode` is the wanted owner's user and mode. A
/// transport that keeps no metadata (`None`) leaves the content to decide.
fn meta_matches(seen: Option<&str>, mode: u32, owner: &str) -> bool {
    let user = owner.split(':').next().unwrap_or(owner);
    seen.is_none_or(|seen| seen == format!("{user} {mode:o}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_must_name_the_user_and_mode() {
        assert!(meta_matches(
            Some("postgres 600"),
            0o600,
            "postgres:postgres"
        ));
        assert!(!meta_matches(
            Some("postgres 644"),
            0o600,
            "postgres:postgres"
        ));
        assert!(!meta_matches(Some("root 600"), 0o600, "postgres"));
        assert!(!meta_matches(Some(""), 0o600, "postgres"));
        assert!(meta_matches(None, 0o600, "postgres"));
    }

    #[test]
    fn merge_replaces_by_key_and_keeps_others() {
        let text = "a:1:x\nother\na:1:x\n";
        let lines = vec![
            ("a:1:".to_string(), "a:1:y".to_string()),
            ("b:".to_string(), "b:z".to_string()),
        ];
        assert_eq!(merge_lines(text, &lines), "a:1:y\nother\nb:z\n");
        let again = merge_lines(&merge_lines(text, &lines), &lines);
        assert_eq!(again, "a:1:y\nother\nb:z\n");
        assert_eq!(merge_lines("", &lines), "a:1:y\nb:z\n");
    }
}
