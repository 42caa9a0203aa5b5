//! People: the caller's own profile, and user administration for platform administrators
//! (create, disable, grant or remove the administrator flag, reset a password) — also used
//! by `kaas user` from the shell.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{PasswordChanged, end_credentials};
use super::authz::require_platform_admin;
use super::cluster_access::{self, Lost, RemainingAccess};
use super::secrets::hash_password;
use super::{Actor, Ops, OpsError, OpsResult, Page, invalid, page};
use crate::domain::names::{check_display_name, normalize_email};
use crate::domain::password::check_password;
use crate::domain::*;
use crate::store::{Reader, records};

/// A user as shown in the API (never the password hash).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub platform_admin: bool,
    pub disabled: bool,
    pub created_at: Timestamp,
    pub last_login_at: Option<Timestamp>,
    /// How the account was made (`null`: before kaas recorded it). `invitation` means
    /// whoever held the invitation link chose the password: an organization administrator
    /// who invited an unregistered address could have made it themselves.
    pub created_via: Option<CreatedVia>,
    /// Signs in through an identity provider only: password sign-in (console, API,
    /// `kaas login`) and password resets are refused.
    pub sso_only: bool,
    /// The identity provider (its id) the account is linked to, once it signed in through
    /// one: needed before `sso_only` can be set.
    pub sso_provider: Option<String>,
    /// Only in the answer to disabling the account: until when the cluster access already
    /// issued to them remains valid (granting nothing once their roles are out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_access: Option<RemainingAccess>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id,
            email: u.email.clone(),
            name: u.name.clone(),
            platform_admin: u.platform_admin,
            disabled: u.disabled,
            created_at: u.created_at,
            last_login_at: u.last_login_at,
            created_via: u.created_via,
            sso_only: u.sso.as_ref().is_some_and(|l| l.sso_only),
            sso_provider: u.sso.as_ref().map(|l| l.provider.clone()),
            remaining_access: None,
        }
    }
}

impl UserView {
    /// Made by accepting an invitation (flagged in the console's user list).
    pub fn invited(&self) -> bool {
        self.created_via == Some(CreatedVia::Invitation)
    }
}

/// `GET /me`: who I am and where I belong.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MeView {
    #[serde(flatten)]
    pub user: UserView,
    pub organizations: Vec<MyOrg>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MyOrg {
    pub id: OrgId,
    pub name: String,
    pub role: OrgRole,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    #[schema(pattern = r"^\s*[^@\s]+@[^@\s]+\s*$")]
    pub email: String,
    #[schema(min_length = 1, pattern = r"\S")]
    pub name: String,
    pub password: String,
    #[serde(default)]
    pub platform_admin: bool,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[schema(min_length = 1, pattern = r"\S")]
    pub name: Option<String>,
    pub disabled: Option<bool>,
    pub platform_admin: Option<bool>,
    /// Restricts the user to single sign-on (true; they must be linked to an identity
    /// provider) or allows password sign-in again (false; with the password they had).
    pub sso_only: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    #[schema(min_length = 1, pattern = r"\S")]
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    pub password: String,
}

fn count_active_admins(r: &impl Reader) -> OpsResult<usize> {
    Ok(records::list_users(r, None, usize::MAX)?
        .iter()
        .filter(|u| u.platform_admin && !u.disabled)
        .count())
}

impl Ops {
    pub fn me(&self, actor: &Actor) -> OpsResult<MeView> {
        let r = self.store.read()?;
        let user = records::get_user(&r, actor.user_id)?.ok_or(OpsError::NotFound("user"))?;
        let mut organizations = Vec::new();
        for org_id in records::scopes_of_user::<OrgId>(&r, user.id)? {
            let (Some(org), Some(m)) = (
                records::get_org(&r, org_id)?,
                records::get_member(&r, org_id, user.id)?,
            ) else {
                continue;
            };
            organizations.push(MyOrg {
                id: org.id,
                name: org.name,
                role: m.role,
            });
        }
        organizations.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(MeView {
            user: UserView::from(&user),
            organizations,
        })
    }

    pub fn update_profile(&self, actor: &Actor, input: ProfilePatch) -> OpsResult<UserView> {
        check_display_name(&input.name).map_err(|p| invalid("name", p.0))?;
        let tx = self.store.write()?;
        let mut u = records::get_user(&tx, actor.user_id)?.ok_or(OpsError::NotFound("user"))?;
        u.name = input.name.trim().to_string();
        records::update_user(&tx, &u)?;
        records::append_audit(&tx, &self.event(actor, "user.profile.update", u.id, None))?;
        self.commit(tx, &[])?;
        Ok(UserView::from(&u))
    }

    pub fn list_users(
        &self,
        actor: &Actor,
        after: Option<UserId>,
        limit: usize,
    ) -> OpsResult<Page<UserView>> {
        require_platform_admin(actor)?;
        let r = self.store.read()?;
        let rows = records::list_users(&r, after, limit + 1)?;
        let views = rows.iter().map(UserView::from).collect();
        Ok(page(views, limit, |u: &UserView| u.id.to_string()))
    }

    pub fn get_user(&self, actor: &Actor, id: UserId) -> OpsResult<UserView> {
        require_platform_admin(actor)?;
        let r = self.store.read()?;
        let u = records::get_user(&r, id)?.ok_or(OpsError::NotFound("user"))?;
        Ok(UserView::from(&u))
    }

    /// Creates a user (platform administrators; the shell acts as one).
    pub async fn create_user(&self, actor: &Actor, input: NewUser) -> OpsResult<UserView> {
        require_platform_admin(actor)?;
        let email = normalize_email(&input.email).map_err(|p| invalid("email", p.0))?;
        check_display_name(&input.name).map_err(|p| invalid("name", p.0))?;
        check_password(&input.password, &email, self.settings.password_min_length)
            .map_err(|p| invalid("password", p.to_string()))?;
        if records::user_by_email(&self.store.read()?, &email)?.is_some() {
            return Err(OpsError::Conflict(format!(
                "a user with e-mail {email} already exists"
            )));
        }
        let hash = hash_password(input.password, self.fast_hashing).await?;
        let now = self.now();
        let user = User::new(
            email,
            &input.name,
            hash,
            input.platform_admin,
            now,
            CreatedVia::Admin,
        );
        let tx = self.store.write()?;
        records::insert_user(&tx, &user).map_err(conflict_as_409)?;
        let mut ev = self.event(actor, "user.create", &user.email, None);
        let mut changes = Vec::new();
        if user.platform_admin {
            ev.detail = "platform administrator".into();
            // Platform administrators hold workspace-admin in every virtual cluster.
            changes = cluster_access::all_workspaces(&tx)?;
        }
        records::append_audit(&tx, &ev)?;
        self.commit(tx, &changes)?;
        Ok(UserView::from(&user))
    }

    /// Changes a user's name, disabled flag or administrator flag. Disabling ends every
    /// session and takes the user out of every role binding inside the virtual clusters at
    /// the next tenant sync (enabling puts them back); the last active administrator cannot
    /// be disabled or demoted.
    pub fn update_user(&self, actor: &Actor, id: UserId, patch: UserPatch) -> OpsResult<UserView> {
        require_platform_admin(actor)?;
        if let Some(n) = &patch.name {
            check_display_name(n).map_err(|p| invalid("name", p.0))?;
        }
        let tx = self.store.write()?;
        let mut u = records::get_user(&tx, id)?.ok_or(OpsError::NotFound("user"))?;
        let was = u.clone();
        let losing_admin = u.platform_admin
            && !u.disabled
            && (patch.disabled == Some(true) || patch.platform_admin == Some(false));
        if losing_admin && count_active_admins(&tx)? <= 1 {
            return Err(OpsError::Conflict(
                "this is the last active platform administrator; make someone else one first"
                    .into(),
            ));
        }
        if let Some(n) = patch.name {
            u.name = n.trim().to_string();
        }
        if let Some(d) = patch.disabled {
            u.disabled = d;
            if d {
                for s in records::list_user_sessions(&tx, u.id)? {
                    records::delete_session(&tx, &s)?;
                }
            }
        }
        if let Some(a) = patch.platform_admin {
            u.platform_admin = a;
        }
        if let Some(only) = patch.sso_only {
            let Some(link) = u.sso.as_mut() else {
                return Err(invalid(
                    "sso_only",
                    format!(
                        "{} is not linked to an identity provider: they must sign in through \
                         one once before password sign-in can be turned off",
                        u.email
                    ),
                ));
            };
            // NB: the password hash is kept, so clearing the flag gives back the password
            // they had (an account made by single sign-on has none: set one then).
            link.sso_only = only;
        }
        let touches_clusters = patch.disabled.is_some_and(|d| d != was.disabled)
            || patch
                .platform_admin
                .is_some_and(|a| a != was.platform_admin);
        records::update_user(&tx, &u)?;
        let mut ev = self.event(actor, "user.update", &u.email, None);
        ev.detail = format!(
            "disabled={} platform_admin={}",
            u.disabled, u.platform_admin
        );
        if let Some(only) = patch.sso_only {
            ev.detail.push_str(&format!(" sso_only={only}"));
        }
        records::append_audit(&tx, &ev)?;
        // Their role bindings are in every workspace they (or an administrator) belong to;
        // syncing all workspaces is simpler than finding those and cheap when in sync.
        let changes = if touches_clusters {
            cluster_access::all_workspaces(&tx)?
        } else {
            Vec::new()
        };
        self.commit(tx, &changes)?;
        let mut view = UserView::from(&u);
        if u.disabled && !was.disabled {
            view.remaining_access = Some(RemainingAccess::of(
                &u.email,
                Some(&u),
                self.now(),
                self.cluster_token_lifetime(),
                Lost::Account,
            ));
        }
        Ok(view)
    }

    /// Sets a new password for someone (platform administrators), ends their sessions and
    /// revokes their API tokens.
    pub async fn reset_password(
        &self,
        actor: &Actor,
        id: UserId,
        input: PasswordReset,
    ) -> OpsResult<PasswordChanged> {
        require_platform_admin(actor)?;
        let email = {
            let r = self.store.read()?;
            let u = records::get_user(&r, id)?.ok_or(OpsError::NotFound("user"))?;
            if let Some(why) = self.sso_only_refusal(&u) {
                return Err(invalid("password", why));
            }
            u.email
        };
        check_password(&input.password, &email, self.settings.password_min_length)
            .map_err(|p| invalid("password", p.to_string()))?;
        let hash = hash_password(input.password, self.fast_hashing).await?;
        let tx = self.store.write()?;
        let mut u = records::get_user(&tx, id)?.ok_or(OpsError::NotFound("user"))?;
        u.password_hash = hash;
        u.password_changed_at = Some(self.now());
        records::update_user(&tx, &u)?;
        let done = end_credentials(&tx, u.id, None)?;
        let mut ev = self.event(actor, "user.password.reset", &u.email, None);
        ev.detail = done.to_string();
        records::append_audit(&tx, &ev)?;
        self.commit(tx, &[])?;
        Ok(done)
    }

    /// The id of the user with this e-mail, for the shell commands.
    pub fn user_id_by_email(&self, email: &str) -> OpsResult<Option<UserId>> {
        let email = normalize_email(email).map_err(|p| invalid("email", p.0))?;
        Ok(records::user_by_email(&self.store.read()?, &email)?.map(|u| u.id))
    }
}

/// A uniqueness clash found by the store is the caller's 409, not a server fault.
pub(crate) fn conflict_as_409(e: crate::store::StoreError) -> OpsError {
    match e {
        crate::store::StoreError::Conflict(what) => {
            OpsError::Conflict(format!("{what} already exists"))
        }
        other => OpsError::Store(other),
    }
}
