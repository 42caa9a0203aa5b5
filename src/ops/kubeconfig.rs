//! Tenant kubeconfigs: a short-lived client certificate for the caller, signed by the
//! workspace's virtual-cluster client CA, with CN = their e-mail and, for display, groups
//! from their current roles (roles are bound to the CN, never to the groups). The
//! signing happens in `host` behind [`KubeconfigMinter`] (ops never talks to Kubernetes);
//! issuance is audited with the certificate's serial and expiry. Certificates cannot be
//! revoked, so lifetimes are capped by configuration.

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

/// Signs certificates for a workspace's virtual cluster (implemented by `host`).
pub trait KubeconfigMinter: Send + Sync {
    fn mint<'a>(
        &'a self,
        ws: WorkspaceId,
        user: &'a str,
        groups: Vec<String>,
        lifetime: Duration,
    ) -> BoxFuture<'a, Result<MintedKubeconfig, String>>;
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeconfigRequest {
    /// Hours until the certificate expires; default and maximum come from configuration.
    #[serde(default)]
    pub lifetime_hours: Option<u32>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssuedKubeconfig {
    /// The kubeconfig file (YAML); save it and use `kubectl --kubeconfig FILE`.
    pub kubeconfig: String,
    pub server: String,
    /// The certificate's user (CN) and groups (O).
    pub user: String,
    pub groups: Vec<String>,
    pub serial: String,
    pub expires_at: Timestamp,
}

impl Ops {
    /// Connects the host side that signs certificates (at start, once a host is configured).
    pub fn set_minter(&self, minter: Arc<dyn KubeconfigMinter>) {
        let _ = self.minter.set(minter);
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
            server: minted.server,
            user: actor.email.clone(),
            groups,
            serial: minted.serial,
            expires_at: minted.expires_at,
        })
    }
}
