//! Adding a workspace's kubeconfig to the user's own (`kaas kubeconfig WS --merge`), as
//! `k3kcli kubeconfig generate` does: the downloaded file's cluster, user and context are
//! renamed after the workspace and added to `~/.kube/config` (or `$KUBECONFIG`'s first
//! file), replacing entries of the same names; everything else in the file is kept. The
//! file stays 0600 (it holds credentials).

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use serde_yaml::{Mapping, Value};

/// The file `--merge` writes: `$KUBECONFIG`'s first entry, else `~/.kube/config`.
pub fn target_from(
    kubeconfig_env: Option<String>,
    home: Option<String>,
) -> anyhow::Result<PathBuf> {
    if let Some(first) = kubeconfig_env
        .as_deref()
        .and_then(|k| k.split(':').find(|p| !p.is_empty()))
    {
        return Ok(PathBuf::from(first));
    }
    match home.filter(|h| !h.is_empty()) {
        Some(h) => Ok(Path::new(&h).join(".kube/config")),
        None => bail!("HOME is not set; pass --out FILE instead of --merge"),
    }
}

fn first_named(doc: &Value, list: &str) -> anyhow::Result<Value> {
    doc.get(list)
        .and_then(Value::as_sequence)
        .and_then(|s| s.first())
        .cloned()
        .ok_or_else(|| anyhow!("the kubeconfig from the server has no {list}"))
}

/// Puts `entry` (a `{name, <kind>: …}` item) into `doc[list]`, replacing one of the same name.
fn upsert(doc: &mut Mapping, list: &str, entry: Value) -> anyhow::Result<()> {
    let name = entry.get("name").cloned();
    let seq = doc
        .entry(Value::from(list))
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if seq.is_null() {
        *seq = Value::Sequence(Vec::new());
    }
    let seq = seq
        .as_sequence_mut()
        .ok_or_else(|| anyhow!("{list} in the kubeconfig is not a list"))?;
    match seq.iter_mut().find(|e| e.get("name") == name.as_ref()) {
        Some(existing) => *existing = entry,
        None => seq.push(entry),
    }
    Ok(())
}

fn renamed(mut entry: Value, name: &str) -> anyhow::Result<Value> {
    entry
        .as_mapping_mut()
        .ok_or_else(|| anyhow!("the kubeconfig from the server is malformed"))?
        .insert(Value::from("name"), Value::from(name));
    Ok(entry)
}

/// `existing` (a kubeconfig's text, or empty) with the downloaded kubeconfig's cluster, user
/// and context added under `name`. The current context is set only if there was none.
pub fn merge(existing: &str, downloaded: &str, name: &str) -> anyhow::Result<String> {
    let new: Value =
        serde_yaml::from_str(downloaded).context("the kubeconfig from the server is not YAML")?;
    let cluster = renamed(first_named(&new, "clusters")?, name)?;
    let user = renamed(first_named(&new, "users")?, name)?;
    let mut context = renamed(first_named(&new, "contexts")?, name)?;
    if let Some(c) = context.get_mut("context").and_then(Value::as_mapping_mut) {
        c.insert(Value::from("cluster"), Value::from(name));
        c.insert(Value::from("user"), Value::from(name));
    }
    let mut doc: Mapping = if existing.trim().is_empty() {
        Mapping::new()
    } else {
        serde_yaml::from_str(existing).context("the existing kubeconfig is not valid YAML")?
    };
    doc.entry(Value::from("apiVersion"))
        .or_insert_with(|| Value::from("v1"));
    doc.entry(Value::from("kind"))
        .or_insert_with(|| Value::from("Config"));
    upsert(&mut doc, "clusters", cluster)?;
    upsert(&mut doc, "users", user)?;
    upsert(&mut doc, "contexts", context)?;
    let current = doc
        .get("current-context")
        .and_then(Value::as_str)
        .unwrap_or("");
    if current.is_empty() {
        doc.insert(Value::from("current-context"), Value::from(name));
    }
    Ok(serde_yaml::to_string(&doc)?)
}

/// Merges into the file at `path` (created, with its directory, if missing).
pub fn merge_into(path: &Path, downloaded: &str, name: &str) -> anyhow::Result<()> {
    let existing = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let merged = merge(&existing, downloaded, name)
        .with_context(|| format!("cannot merge into {}", path.display()))?;
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    super::creds::write_private(path, merged.as_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DOWNLOADED: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: k3k\n  cluster:\n    server: https://127.0.0.1:30001\nusers:\n- name: alice\n  user:\n    token: t1\ncontexts:\n- name: k3k\n  context:\n    cluster: k3k\n    user: alice\ncurrent-context: k3k\n";

    #[test]
    fn a_workspace_is_added_under_its_name_and_replaced_on_the_next_merge() {
        let existing = "apiVersion: v1\nkind: Config\nclusters:\n- name: home\n  cluster:\n    server: https://h\nusers:\n- name: home\n  user: {}\ncontexts:\n- name: home\n  context:\n    cluster: home\n    user: home\ncurrent-context: home\n";
        let once = merge(existing, DOWNLOADED, "dev").unwrap();
        let doc: Value = serde_yaml::from_str(&once).unwrap();
        assert_eq!(doc["current-context"], Value::from("home"));
        assert_eq!(doc["clusters"].as_sequence().unwrap().len(), 2);
        assert_eq!(doc["contexts"][1]["context"]["cluster"], Value::from("dev"));
        assert_eq!(doc["contexts"][1]["context"]["user"], Value::from("dev"));
        let twice = merge(&once, &DOWNLOADED.replace("t1", "t2"), "dev").unwrap();
        let doc: Value = serde_yaml::from_str(&twice).unwrap();
        assert_eq!(doc["users"].as_sequence().unwrap().len(), 2);
        assert_eq!(doc["users"][1]["user"]["token"], Value::from("t2"));
        // An empty file gets the workspace as its current context.
        let fresh: Value = serde_yaml::from_str(&merge("", DOWNLOADED, "dev").unwrap()).unwrap();
        assert_eq!(fresh["current-context"], Value::from("dev"));
    }

    #[test]
    fn the_target_is_kubeconfigs_first_file_else_home() {
        assert_eq!(
            target_from(Some(":/a:/b".into()), Some("/h".into())).unwrap(),
            PathBuf::from("/a")
        );
        assert_eq!(
            target_from(None, Some("/h".into())).unwrap(),
            PathBuf::from("/h/.kube/config")
        );
    }
}
