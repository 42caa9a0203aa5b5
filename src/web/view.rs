//! What every console template shares: the page frame ([`Layout`]: who is signed in, their
//! organizations for the navigation, the CSRF token, the flash), the state of a submitted
//! form ([`FormState`]: values kept and errors next to their fields), and formatting helpers
//! templates call by path (`crate::web::view::cpu(..)`).

use crate::domain::{OrgId, Outcome, Quota, TokenScope, WorkspaceState};
use crate::ops::users::MyOrg;
use crate::web::flash::Flash;

/// The frame around a signed-in page.
pub struct Layout {
    pub title: String,
    pub name: String,
    pub email: String,
    pub platform_admin: bool,
    pub orgs: Vec<MyOrg>,
    pub csrf: String,
    pub flash: Option<Flash>,
    /// Which navigation entry is current: `dashboard`, `account`, `admin`, or an org id.
    pub section: String,
    pub v: &'static str,
}

impl Layout {
    pub fn is_current_org(&self, id: &OrgId) -> bool {
        self.section == id.to_string()
    }
}

/// The frame around a page shown before sign-in (setup, login, invitation, errors).
pub struct Bare {
    pub title: String,
    pub flash: Option<Flash>,
    pub v: &'static str,
}

impl Bare {
    pub fn new(title: impl Into<String>, flash: Option<Flash>) -> Bare {
        Bare {
            title: title.into(),
            flash,
            v: crate::web::assets::version(),
        }
    }
}

/// A submitted form, re-shown after a refusal: the values typed (never passwords) and the
/// errors, each next to its field; an error about no field of this form is shown on top.
#[derive(Default)]
pub struct FormState {
    /// Which form on the page this is (a page may hold several).
    pub id: &'static str,
    values: Vec<(&'static str, String)>,
    errors: Vec<(&'static str, String)>,
    general: Option<String>,
}

impl FormState {
    pub fn new(id: &'static str) -> FormState {
        FormState {
            id,
            ..Default::default()
        }
    }

    /// Registers a field with the value to show again.
    pub fn keep(mut self, field: &'static str, value: impl Into<String>) -> FormState {
        let value = value.into();
        match self.values.iter_mut().find(|(f, _)| *f == field) {
            Some(slot) => slot.1 = value,
            None => self.values.push((field, value)),
        }
        self
    }

    /// Registers a field whose value is not shown again (passwords).
    pub fn secret(self, field: &'static str) -> FormState {
        self.keep(field, "")
    }

    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        let message = message.into();
        match self.values.iter().find(|(f, _)| *f == field) {
            Some((f, _)) => self.errors.push((f, message)),
            None => self.general = Some(message),
        }
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty() || self.general.is_some()
    }

    pub fn fail(mut self, message: impl Into<String>) -> FormState {
        self.general = Some(message.into());
        self
    }

    /// The value to put back in `field` of form `form`.
    pub fn v(&self, form: &str, field: &str) -> &str {
        if self.id != form {
            return "";
        }
        self.values
            .iter()
            .find(|(f, _)| *f == field)
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn e(&self, form: &str, field: &str) -> Option<&str> {
        if self.id != form {
            return None;
        }
        self.errors
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
    }

    pub fn general(&self, form: &str) -> Option<&str> {
        (self.id == form)
            .then_some(self.general.as_deref())
            .flatten()
    }

    /// Whether this form was the one submitted (to open its `<details>`).
    pub fn is(&self, form: &str) -> bool {
        self.id == form
    }
}

/// The id of a field's input: `form-field`, or just `field` on a page with one form.
pub fn field_id(form: &str, field: &str) -> String {
    if form.is_empty() {
        field.to_string()
    } else {
        format!("{form}-{field}")
    }
}

/// The CSS class of a workspace state: the same colour everywhere.
pub fn state_class(s: &WorkspaceState) -> &'static str {
    match s {
        WorkspaceState::Pending => "st-pending",
        WorkspaceState::Provisioning | WorkspaceState::Updating => "st-busy",
        WorkspaceState::Ready => "st-ready",
        WorkspaceState::Error => "st-error",
        WorkspaceState::Deleting => "st-deleting",
    }
}

/// Whether a state will change on its own (the page then polls).
pub fn settling(s: &WorkspaceState) -> bool {
    !matches!(s, WorkspaceState::Ready)
}

pub fn cpu(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        format!("{} CPU", millis / 1000)
    } else {
        format!("{:.2} CPU", millis as f64 / 1000.0)
    }
}

pub fn mem(mib: u64) -> String {
    if mib >= 1024 && mib.is_multiple_of(1024) {
        format!("{} GiB", mib / 1024)
    } else if mib >= 1024 {
        format!("{:.1} GiB", mib as f64 / 1024.0)
    } else {
        format!("{mib} MiB")
    }
}

pub fn quota_line(q: &Quota) -> String {
    format!(
        "{} · {} memory · {} GiB storage · {} pods",
        cpu(q.cpu_millis),
        mem(q.memory_mib),
        q.storage_gib,
        q.pods
    )
}

/// A usage bar: the CSS width class (in 5 % steps, no inline style under the CSP) and
/// whether it is nearly full.
pub struct Bar {
    pub label: String,
    pub used: String,
    pub cap: String,
    pub width: u64,
    pub level: &'static str,
}

pub fn bar(label: impl Into<String>, used: u64, cap: u64, fmt: fn(u64) -> String) -> Bar {
    let pct = match used.saturating_mul(100).checked_div(cap) {
        Some(p) => p.min(100),
        None if used == 0 => 0,
        None => 100,
    };
    Bar {
        label: label.into(),
        used: fmt(used),
        cap: fmt(cap),
        width: pct.div_ceil(5) * 5,
        level: if pct >= 100 {
            "full"
        } else if pct >= 80 {
            "high"
        } else {
            "ok"
        },
    }
}

pub fn count(n: u64) -> String {
    n.to_string()
}

pub fn gib(n: u64) -> String {
    format!("{n} GiB")
}

/// The four bars of a quota against a cap.
pub fn quota_bars(used: &Quota, cap: &Quota) -> Vec<Bar> {
    vec![
        bar("CPU", used.cpu_millis, cap.cpu_millis, cpu),
        bar("Memory", used.memory_mib, cap.memory_mib, mem),
        bar("Storage", used.storage_gib, cap.storage_gib, gib),
        bar("Pods", used.pods, cap.pods, count),
    ]
}

pub fn scope(s: &TokenScope) -> &'static str {
    match s {
        TokenScope::ReadOnly => "read-only",
        TokenScope::ReadWrite => "read-write",
    }
}

pub fn outcome(o: &Outcome) -> &'static str {
    match o {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
        Outcome::Denied => "denied",
    }
}

/// Plans as people compare them: by size (CPU, then memory), then name.
pub fn sort_plans(plans: &mut [crate::domain::Plan]) {
    plans.sort_by(|a, b| {
        (a.quota.cpu_millis, a.quota.memory_mib, &a.id).cmp(&(
            b.quota.cpu_millis,
            b.quota.memory_mib,
            &b.id,
        ))
    });
}

/// A node resource as Kubernetes states it (`4`, `16Gi`), or a dash when not reported.
pub fn resource<'a>(m: &'a std::collections::BTreeMap<String, String>, key: &str) -> &'a str {
    m.get(key).map_or("—", String::as_str)
}

/// A kubeconfig's file name, `<org>-<workspace>.kubeconfig` (both DNS labels already;
/// anything else is dropped, so a `Content-Disposition` header cannot be bent).
pub fn kubeconfig_file(org: &str, ws: &str) -> String {
    let clean = |s: &str| {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect::<String>()
    };
    format!("{}-{}.kubeconfig", clean(org), clean(ws))
}

/// Kubeconfig lifetimes as people say them: `1 hour`, `8 hours`, `7 days`.
pub fn hours(h: &u32) -> String {
    match *h {
        1 => "1 hour".into(),
        h if h >= 48 && h.is_multiple_of(24) => format!("{} days", h / 24),
        24 => "24 hours".into(),
        h => format!("{h} hours"),
    }
}

/// Timestamps as people read them on this box: UTC, to the minute.
pub fn when(t: &jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

pub fn when_opt(t: &Option<jiff::Timestamp>) -> String {
    t.as_ref().map_or_else(|| "never".into(), when)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_round_up_to_steps_and_cap_at_full() {
        assert_eq!(bar("x", 1, 10, count).width, 10);
        assert_eq!(bar("x", 0, 10, count).width, 0);
        assert_eq!(bar("x", 12, 10, count).width, 100);
        assert_eq!(bar("x", 12, 10, count).level, "full");
        assert_eq!(bar("x", 1, 0, count).width, 100);
    }

    #[test]
    fn units_read_naturally() {
        assert_eq!(cpu(2000), "2 CPU");
        assert_eq!(cpu(500), "0.50 CPU");
        assert_eq!(mem(4096), "4 GiB");
        assert_eq!(mem(512), "512 MiB");
    }

    #[test]
    fn form_errors_land_next_to_known_fields_only() {
        let mut f = FormState::new("ws").keep("name", "Bad Name");
        f.error("name", "must be lower-case");
        f.error("plan", "no such plan");
        assert_eq!(f.e("ws", "name"), Some("must be lower-case"));
        assert_eq!(f.v("ws", "name"), "Bad Name");
        assert_eq!(f.general("ws"), Some("no such plan"));
        assert_eq!(f.v("other", "name"), "");
    }
}
