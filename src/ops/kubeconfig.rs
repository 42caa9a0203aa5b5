//! Tenant kubeconfigs, of two kinds. By default (where the virtual clusters trust kaas's
//! OIDC issuer) an exec-plugin kubeconfig: kubectl runs `kaas credential`, which fetches a
//! short-lived token (`ops::issuer`) on demand, so access ends minutes after the role does.
//! As a fallback for machines without kaas, a short-lived client certificate for the caller,
//! signed by the workspace's virtual-cluster client CA, with CN = their e-mail and, for
//! display, groups from their current roles (roles are bound to the CN, never to the
//! groups). The signing happens in `host` behind [`KubeconfigMinter`] (ops never talks to
//! Kubernetes); issuance is audited with the certificate's serial and expiry. Certificates
//! cannot be revoked, so lifetimes are capped by configuration.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::authz::workspace_and_standing;
use super::{Actor, Ops, OpsError, OpsResult, invalid};
use crate::domain::policy::Action;
use crate::domain::*;
use crate::store::records;

/// What the host hands back for one certificate.
#[derive(Debug, Clone)]
pub struct MintedKubeconfig {
    pub yaml: String,
    pub server: String,
    pub serial: String,
    pub expires_at: Timestamp,
}

/// How kubectl authenticates with the kubeconfig: an exec plugin kubeconfig for kubectl
/// itself, with the exec plugin's settings.
#[derive(Debug, Clone)]
pub struct ExecPlugin {
    /// kaas's base URL (`kaas credential --server`).
    pub kaas_url: String,
    pub workspace: WorkspaceId,
}

/// Signs certificates for a workspace's virtual cluster (implemented by `host`).
pub trait KubeconfigMinter: Send + Sync {
    fn mint<'a>(
        &'a self,
        ws: WorkspaceId,
        user: &'a str,
        groups: Vec<String>,
        lifetime: Duration,
    ) -> BoxFuture<'a, Result<MintedKubeconfig, String>>;

    /// A kubeconfig whose user runs `kaas credential` (no certificate, nothing secret).
    fn exec<'a>(
        &'a self,
        ws: WorkspaceId,
        user: &'a str,
        plugin: ExecPlugin,
    ) -> BoxFuture<'a, Result<MintedKubeconfig, String>>;
}

/// Which kubeconfig to issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KubeconfigKind {
    /// kubectl runs `kaas credential`, which fetches short-lived tokens: access ends within
    /// minutes of the role. The default where the virtual clusters trust kaas's issuer.
    Exec,
    /// A client certificate, for machines without kaas; it cannot be revoked.
    Certificate,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeconfigRequest {
    /// Hours until the certificate expires; default and maximum come from configuration.
    /// Certificates only.
    #[serde(default)]
    pub lifetime_hours: Option<u32>,
    /// `exec` (default where the virtual clusters trust kaas's issuer) or `certificate`
    /// (the default elsewhere).
    #[serde(default)]
    pub kind: Option<KubeconfigKind>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssuedKubeconfig {
    /// The kubeconfig file (YAML); save it and use `kubectl --kubeconfig FILE`.
    pub kubeconfig: String,
    pub kind: KubeconfigKind,
    pub server: String,
    /// The user (certificate CN, or the token's username) and groups.
    pub user: String,
    pub groups: Vec<String>,
    /// The certificate's serial; null for an exec kubeconfig.
    pub serial: Option<String>,
    /// When the certificate expires; null for an exec kubeconfig (its tokens expire each
    /// after minutes and are fetched again as needed).
    pub expires_at: Option<Timestamp>,
}

impl Ops {
    /// Connects the host side that signs certificates (at start, once a host is configured).
    pub fn set_minter(&self, minter: Arc<dyn KubeconfigMinter>) {
        let _ = self.minter.set(minter);
    }

    /// Makes exec-plugin kubeconfigs the default: the virtual clusters trust the issuer.
    pub fn set_exec_kubeconfigs(&self, on: bool) {
        let _ = self.exec_kubeconfigs.set(on);
    }

    /// Whether a kubeconfig is an exec-plugin one unless the caller asks otherwise.
    pub fn exec_default(&self) -> bool {
        self.exec_kubeconfigs.get().copied().unwrap_or(false) && self.issuer.get().is_some()
    }

    pub async fn issue_kubeconfig(
        &self,
        actor: &Actor,
        id: WorkspaceId,
        req: KubeconfigRequest,
    ) -> OpsResult<IssuedKubeconfig> {
        let (ws, standing) = {
            let r = self.store.read()?;
            workspace_and_standing(&r, actor, id, Action::KubeconfigIssue)?
        };
        let kind = match req.kind {
            Some(k) => k,
            None if self.exec_default() => KubeconfigKind::Exec,
            None => KubeconfigKind::Certificate,
        };
        if kind == KubeconfigKind::Exec && req.lifetime_hours.is_some() {
            return Err(invalid(
                "lifetime_hours",
                "applies to certificates only (kind \"certificate\")",
            ));
        }
        if kind == KubeconfigKind::Exec && !self.exec_default() {
            return Err(invalid(
                "kind",
                "this kaas has no HTTPS issuer the virtual clusters trust: use \"certificate\"",
            ));
        }
        let max_hours = (self.settings.kubeconfig_max_lifetime.as_secs() / 3600).max(1);
        let lifetime = match req.lifetime_hours {
            None => self.settings.kubeconfig_lifetime,
            Some(h) if h >= 1 && u64::from(h) <= max_hours => {
                Duration::from_secs(u64::from(h) * 3600)
            }
            Some(_) => {
                return Err(invalid(
                    "lifetime_hours",
                    format!("must be between 1 and {max_hours}"),
                ));
            }
        };
        if !matches!(ws.state, WorkspaceState::Ready | WorkspaceState::Updating) {
            return Err(OpsError::Conflict(format!(
                "the workspace is not ready yet (state {}): try again when it is Ready",
                ws.state.as_str()
            )));
        }
        let minter = self.minter.get().ok_or_else(|| {
            OpsError::Unavailable("kaas is not connected to a host cluster".into())
        })?;
        let groups = crate::domain::groups::groups_for(ws.id, &standing);
        if kind == KubeconfigKind::Exec {
            return self
                .issue_exec_kubeconfig(actor, &ws, minter.as_ref(), groups)
                .await;
        }
        let minted = minter
            .mint(ws.id, &actor.email, groups.clone(), lifetime)
            .await
            .map_err(|e| {
                OpsError::Unavailable(format!("could not reach the virtual cluster: {e}"))
            })?;
        let tx = self.store.write()?;
        let mut ev = self.event(actor, "kubeconfig.issue", ws.id, Some(ws.org_id));
        ev.detail = format!(
            "serial={} expires={} groups={}",
            minted.serial,
            minted.expires_at,
            groups.join(",")
        );
        records::append_audit(&tx, &ev)?;
        // Remembered so that whoever removes them later learns until when this certificate
        // still authenticates (it cannot be revoked; its roles can).
        if let Some(mut u) = records::get_user(&tx, actor.user_id)?
            && u.kubeconfigs_valid_until < Some(minted.expires_at)
        {
            u.kubeconfigs_valid_until = Some(minted.expires_at);
            records::update_user(&tx, &u)?;
        }
        self.commit(tx, &[])?;
        Ok(IssuedKubeconfig {
            kubeconfig: minted.yaml,
            kind,
            server: minted.server,
            user: actor.email.clone(),
            groups,
            serial: Some(minted.serial),
            expires_at: Some(minted.expires_at),
        })
    }

    async fn issue_exec_kubeconfig(
        &self,
        actor: &Actor,
        ws: &Workspace,
        minter: &dyn KubeconfigMinter,
        groups: Vec<String>,
    ) -> OpsResult<IssuedKubeconfig> {
        let plugin = ExecPlugin {
            kaas_url: self.issuer()?.url().to_string(),
            workspace: ws.id,
        };
        let minted = minter
            .exec(ws.id, &actor.email, plugin)
            .await
            .map_err(|e| {
                OpsError::Unavailable(format!("could not reach the virtual cluster: {e}"))
            })?;
        let tx = self.store.write()?;
        let mut ev = self.event(actor, "kubeconfig.issue", ws.id, Some(ws.org_id));
        ev.detail = "kind=exec".into();
        records::append_audit(&tx, &ev)?;
        self.commit(tx, &[])?;
        Ok(IssuedKubeconfig {
            kubeconfig: minted.yaml,
            kind: KubeconfigKind::Exec,
            server: minted.server,
            user: actor.email.clone(),
            groups,
            serial: None,
            expires_at: None,
        })
    }
}
