//! The console's two-step flows (setup then sign in, accept an invitation then sign in) and
//! its deletions confirmed by typing the name.

use crate::domain::*;
use crate::ops::auth::LoginInput;
use crate::ops::invitations::AcceptInvitation;
use crate::ops::mfa::SignIn;
use crate::ops::setup::SetupInput;
use crate::ops::workspaces::WorkspaceView;
use crate::ops::{Actor, Ops, OpsError, OpsResult, Origin};
use crate::store::records;

impl Ops {
    /// First run from the browser: creates the administrator, then signs them in.
    pub async fn setup_and_sign_in(&self, input: SetupInput, origin: &Origin) -> OpsResult<SignIn> {
        let password = input.password.clone();
        let user = self.complete_setup(input, origin).await?;
        self.login(
            LoginInput {
                email: user.email,
                password,
            },
            origin,
        )
        .await
    }

    /// Accepts an invitation for someone not signed in: with the password of the invited
    /// address's existing account, or creating that account; then signs them in.
    pub async fn accept_invitation_and_sign_in(
        &self,
        input: AcceptInvitation,
        origin: &Origin,
    ) -> OpsResult<(OrgId, SignIn)> {
        let info = self.invitation_info(&input.token)?;
        let org = self.org_id_by_name(&info.org_name)?;
        let password = input.password.clone().unwrap_or_default();
        if info.account_exists {
            // Prove the account first; the invitation is used only once that succeeds.
            let step = self
                .login(
                    LoginInput {
                        email: info.email.clone(),
                        password,
                    },
                    origin,
                )
                .await
                .map_err(|e| match e {
                    OpsError::Unauthenticated(m) => crate::ops::invalid("password", m),
                    other => other,
                })?;
            let done = match step {
                SignIn::Done(done) => *done,
                // The invitation is used by a signed-in account; this one needs its second
                // factor first, which the invitation page does not ask for.
                SignIn::SecondFactor(_) => {
                    return Err(OpsError::Conflict(
                        "your account uses two-step sign-in: sign in first, then open this \
                         invitation link again"
                            .into(),
                    ));
                }
            };
            let actor = Actor {
                user_id: done.user.id,
                email: done.user.email.clone(),
                platform_admin: done.user.platform_admin,
                via: crate::ops::AuthVia::Session(done.session.id),
                source: origin.ip.to_string(),
            };
            if let Err(e) = self.accept_as(&actor, &input.token, origin).await {
                // Do not leave a session behind that no browser holds.
                let _ = self.revoke_session(&actor, done.session.id);
                return Err(e);
            }
            return Ok((org, SignIn::Done(Box::new(done))));
        }
        let user = self.accept_invitation(None, input, origin).await?;
        let done = self
            .login(
                LoginInput {
                    email: user.email,
                    password,
                },
                origin,
            )
            .await?;
        Ok((org, done))
    }

    /// Accepts an invitation as the signed-in caller; returns the organization joined.
    pub async fn accept_invitation_signed_in(
        &self,
        actor: &Actor,
        token: &str,
        origin: &Origin,
    ) -> OpsResult<OrgId> {
        let info = self.invitation_info(token)?;
        let org = self.org_id_by_name(&info.org_name)?;
        self.accept_as(actor, token, origin).await?;
        Ok(org)
    }

    async fn accept_as(&self, actor: &Actor, token: &str, origin: &Origin) -> OpsResult<()> {
        let input = AcceptInvitation {
            token: token.to_string(),
            name: None,
            password: None,
        };
        self.accept_invitation(Some(actor), input, origin)
            .await
            .map(|_| ())
    }

    /// Deletes a workspace once its name has been typed to confirm.
    pub fn console_delete_workspace(
        &self,
        actor: &Actor,
        id: WorkspaceId,
        typed_name: &str,
    ) -> OpsResult<WorkspaceView> {
        let name = self.get_workspace(actor, id)?.workspace.name;
        if typed_name != name {
            return Err(crate::ops::invalid(
                "confirm",
                format!("type {name} exactly to confirm"),
            ));
        }
        self.delete_workspace(actor, id)
    }

    /// Deletes an organization once its name has been typed to confirm (it must hold no
    /// workspaces any more; `delete_org` says so otherwise).
    pub fn console_delete_org(&self, actor: &Actor, id: OrgId, typed_name: &str) -> OpsResult<()> {
        let name = self.get_org(actor, id)?.org.name;
        if typed_name != name {
            return Err(crate::ops::invalid(
                "confirm",
                format!("type {name} exactly to confirm"),
            ));
        }
        self.delete_org(actor, id)
    }

    /// Deletes a project (its namespace and everything in it) once its name has been typed
    /// to confirm; returns the project as it was, for the page to go back to its workspace.
    pub fn console_delete_project(
        &self,
        actor: &Actor,
        id: ProjectId,
        typed_name: &str,
    ) -> OpsResult<Project> {
        let project = self.get_project(actor, id)?;
        if typed_name != project.name {
            return Err(crate::ops::invalid(
                "confirm",
                format!("type {} exactly to confirm", project.name),
            ));
        }
        self.delete_project(actor, id)?;
        Ok(project)
    }

    fn org_id_by_name(&self, name: &str) -> OpsResult<OrgId> {
        records::org_by_name(&self.store.read()?, name)?
            .map(|o| o.id)
            .ok_or(OpsError::NotFound("organization"))
    }
}
