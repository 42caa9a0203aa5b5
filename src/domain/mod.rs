//! Pure types and rules of the tenancy model: ids, names, roles, plans, the authorization
//! policy, password and login-throttling rules. Nothing here does I/O or knows about HTTP,
//! redb or Kubernetes, so every rule is tested with plain unit tests.

pub mod audit;
pub mod billing;
pub mod device;
pub mod groups;
pub mod ids;
pub mod membership;
pub mod mfa;
pub mod model;
pub mod names;
pub mod netaddr;
pub mod oidc;
pub mod overhead;
pub mod password;
pub mod plan;
pub mod policy;
pub mod roles;
pub mod sso;
pub mod throttle;

pub use ids::*;
pub use model::*;
pub use plan::{Expose, K3kMode, LimitDefaults, Plan, PodResources, Quota};
pub use roles::{OrgRole, ProjectRole, WorkspaceRole};
