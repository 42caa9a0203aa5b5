//! The plan form: every field as typed ([`PlanForm`], [`PriceForm`]), a plan shown as that
//! form ([`form_of`]) and the form read back into a plan with an error beside each field
//! that does not parse ([`parse`]).

use serde::Deserialize;

use super::view::FormState;
use super::{number, required};
use crate::domain::billing::{Currency, PlanPrices, Rate};
use crate::domain::plan::ServiceQuota;
use crate::domain::{Expose, K3kMode, LimitDefaults, Plan, PodResources, Quota};

/// The fields of one per-unit price: the error key `ops` uses for the rate, the two inputs,
/// and their labels.
pub struct RateField {
    pub key: &'static str,
    pub price: &'static str,
    pub included: &'static str,
    pub price_label: &'static str,
    pub included_label: &'static str,
}

pub const RATES: [RateField; 4] = [
    RateField {
        key: "prices.cpu_core_hour",
        price: "prices.cpu_core_hour.unit_price",
        included: "prices.cpu_core_hour.included",
        price_label: "CPU, per core-hour",
        included_label: "Core-hours included",
    },
    RateField {
        key: "prices.memory_gib_hour",
        price: "prices.memory_gib_hour.unit_price",
        included: "prices.memory_gib_hour.included",
        price_label: "Memory, per GiB-hour",
        included_label: "Memory GiB-hours included",
    },
    RateField {
        key: "prices.storage_gib_hour",
        price: "prices.storage_gib_hour.unit_price",
        included: "prices.storage_gib_hour.included",
        price_label: "Storage, per GiB-hour",
        included_label: "Storage GiB-hours included",
    },
    RateField {
        key: "prices.node_hour",
        price: "prices.node_hour.unit_price",
        included: "prices.node_hour.included",
        price_label: "Dedicated node, per node-hour",
        included_label: "Node-hours included",
    },
];

/// Every field of the plan form, as typed.
#[derive(Deserialize)]
pub struct PlanForm {
    #[serde(default)]
    id: String,
    display_name: String,
    #[serde(default)]
    description: String,
    k3k_mode: K3kMode,
    servers: String,
    agents: String,
    storage_gib: String,
    cpu: String,
    memory: String,
    storage: String,
    pods: String,
    #[serde(rename = "limits.default_cpu_millis")]
    default_cpu_millis: String,
    #[serde(rename = "limits.default_memory_mib")]
    default_memory_mib: String,
    #[serde(rename = "limits.default_request_cpu_millis")]
    default_request_cpu_millis: String,
    #[serde(rename = "limits.default_request_memory_mib")]
    default_request_memory_mib: String,
    max_dedicated_nodes: String,
    max_projects: String,
    max_members: String,
    /// Blank: the default for a small cluster.
    #[serde(rename = "server_resources.cpu_millis", default)]
    server_cpu_millis: String,
    #[serde(rename = "server_resources.memory_mib", default)]
    server_memory_mib: String,
    #[serde(rename = "agent_resources.cpu_millis", default)]
    agent_cpu_millis: String,
    #[serde(rename = "agent_resources.memory_mib", default)]
    agent_memory_mib: String,
    /// Blank: the default service quota.
    #[serde(rename = "services.node_ports", default)]
    node_ports: String,
    #[serde(rename = "services.load_balancers", default)]
    load_balancers: String,
    /// Absent (an older form): nodeport.
    #[serde(default)]
    expose: Expose,
    #[serde(default)]
    k3s_version: String,
    #[serde(default)]
    retired: Option<String>,
    #[serde(flatten)]
    prices: PriceForm,
}

/// The price fields of the plan form, as typed.
#[derive(Deserialize)]
pub struct PriceForm {
    #[serde(rename = "prices.currency", default)]
    currency: String,
    #[serde(rename = "prices.base_monthly", default)]
    base_monthly: String,
    #[serde(rename = "prices.cpu_core_hour.unit_price", default)]
    cpu_price: String,
    #[serde(rename = "prices.cpu_core_hour.included", default)]
    cpu_included: String,
    #[serde(rename = "prices.memory_gib_hour.unit_price", default)]
    memory_price: String,
    #[serde(rename = "prices.memory_gib_hour.included", default)]
    memory_included: String,
    #[serde(rename = "prices.storage_gib_hour.unit_price", default)]
    storage_price: String,
    #[serde(rename = "prices.storage_gib_hour.included", default)]
    storage_included: String,
    #[serde(rename = "prices.node_hour.unit_price", default)]
    node_price: String,
    #[serde(rename = "prices.node_hour.included", default)]
    node_included: String,
}

impl PriceForm {
    /// (unit price, included) as typed, in the order of [`RATES`].
    fn rates(&self) -> [(&str, &str); 4] {
        [
            (&self.cpu_price, &self.cpu_included),
            (&self.memory_price, &self.memory_included),
            (&self.storage_price, &self.storage_included),
            (&self.node_price, &self.node_included),
        ]
    }
}

/// Registers the price fields with what to show in them. The rate keys and
/// `prices.base_monthly_minor` hold no value: they catch `ops`' errors about a whole rate.
pub(super) fn keep_prices(
    mut form: FormState,
    currency: &str,
    base: &str,
    rates: [(&str, &str); 4],
) -> FormState {
    form = form
        .keep("prices.currency", currency)
        .keep("prices.base_monthly", base)
        .keep("prices.base_monthly_minor", "");
    for (f, (price, included)) in RATES.iter().zip(rates) {
        form = form
            .keep(f.key, "")
            .keep(f.price, price)
            .keep(f.included, included);
    }
    form
}

/// The typed prices; a field that does not parse gets its error.
pub(super) fn parse_prices(form: &mut FormState, f: &PriceForm) -> PlanPrices {
    let mut prices = PlanPrices::default();
    let currency = if f.currency.trim().is_empty() {
        form.error("prices.currency", "Required");
        None
    } else {
        Currency::parse(&f.currency)
            .map_err(|m| form.error("prices.currency", super::error::capitalise(&m)))
            .ok()
    };
    if let Some(c) = currency {
        if f.base_monthly.trim().is_empty() {
            form.error("prices.base_monthly", "Required");
        } else {
            match c.parse_amount(&f.base_monthly) {
                Ok(v) => prices.base_monthly_minor = v,
                Err(m) => form.error("prices.base_monthly", super::error::capitalise(&m)),
            }
        }
        prices.currency = c;
    }
    let mut rates = [Rate::default(); 4];
    for ((field, (price, included)), rate) in RATES.iter().zip(f.rates()).zip(rates.iter_mut()) {
        // Blank means not charged / nothing included.
        if !price.trim().is_empty() {
            match Currency::parse_unit_price(price) {
                Ok(v) => rate.unit_price_micros = v,
                Err(m) => form.error(field.price, super::error::capitalise(&m)),
            }
        }
        rate.included = number(form, field.included, included).unwrap_or(0);
    }
    [
        prices.cpu_core_hour,
        prices.memory_gib_hour,
        prices.storage_gib_hour,
        prices.node_hour,
    ] = rates;
    prices
}

pub(super) fn form_of(p: &Plan) -> FormState {
    let q = &p.quota;
    let l = &p.limits;
    let form = FormState::new("plan")
        .keep("id", &p.id)
        .keep("display_name", &p.display_name)
        .keep("description", &p.description)
        .keep("k3k_mode", p.k3k_mode.as_str())
        .keep("expose", p.expose.as_str())
        .keep("servers", p.servers.to_string())
        .keep("agents", p.agents.to_string())
        .keep("storage_gib", p.storage_gib.to_string())
        .keep("quota", "")
        .keep("cpu", q.cpu_millis.to_string())
        .keep("memory", q.memory_mib.to_string())
        .keep("storage", q.storage_gib.to_string())
        .keep("pods", q.pods.to_string())
        .keep("limits", "")
        .keep(
            "limits.default_cpu_millis",
            l.default_cpu_millis.to_string(),
        )
        .keep(
            "limits.default_memory_mib",
            l.default_memory_mib.to_string(),
        )
        .keep(
            "limits.default_request_cpu_millis",
            l.default_request_cpu_millis.to_string(),
        )
        .keep(
            "limits.default_request_memory_mib",
            l.default_request_memory_mib.to_string(),
        )
        .keep("max_dedicated_nodes", p.max_dedicated_nodes.to_string())
        .keep("max_projects", p.max_projects.to_string())
        .keep("max_members", p.max_members.to_string())
        .keep("server_resources", "")
        .keep(
            "server_resources.cpu_millis",
            p.server_resources.cpu_millis.to_string(),
        )
        .keep(
            "server_resources.memory_mib",
            p.server_resources.memory_mib.to_string(),
        )
        .keep("agent_resources", "")
        .keep(
            "agent_resources.cpu_millis",
            p.agent_resources.cpu_millis.to_string(),
        )
        .keep(
            "agent_resources.memory_mib",
            p.agent_resources.memory_mib.to_string(),
        )
        .keep("services", "")
        .keep("services.node_ports", p.services.node_ports.to_string())
        .keep(
            "services.load_balancers",
            p.services.load_balancers.to_string(),
        )
        .keep("k3s_version", p.k3s_version.clone().unwrap_or_default())
        .keep("retired", if p.retired { "on" } else { "" });
    let c = &p.prices.currency;
    let text = |r: &Rate| {
        (
            c.format_unit_price(r.unit_price_micros),
            r.included.to_string(),
        )
    };
    let r = [
        text(&p.prices.cpu_core_hour),
        text(&p.prices.memory_gib_hour),
        text(&p.prices.storage_gib_hour),
        text(&p.prices.node_hour),
    ];
    keep_prices(
        form,
        c.code(),
        &c.format(p.prices.base_monthly_minor),
        [
            (&r[0].0, &r[0].1),
            (&r[1].0, &r[1].1),
            (&r[2].0, &r[2].1),
            (&r[3].0, &r[3].1),
        ],
    )
}

/// The typed form as a plan, and the form to show again (with errors for numbers that
/// are not numbers).
pub(super) fn parse(f: PlanForm) -> (Plan, FormState) {
    let form = FormState::new("plan")
        .keep("id", &f.id)
        .keep("display_name", &f.display_name)
        .keep("description", &f.description)
        .keep("k3k_mode", f.k3k_mode.as_str())
        .keep("expose", f.expose.as_str())
        .keep("servers", &f.servers)
        .keep("agents", &f.agents)
        .keep("storage_gib", &f.storage_gib)
        .keep("quota", "")
        .keep("cpu", &f.cpu)
        .keep("memory", &f.memory)
        .keep("storage", &f.storage)
        .keep("pods", &f.pods)
        .keep("limits", "")
        .keep("limits.default_cpu_millis", &f.default_cpu_millis)
        .keep("limits.default_memory_mib", &f.default_memory_mib)
        .keep(
            "limits.default_request_cpu_millis",
            &f.default_request_cpu_millis,
        )
        .keep(
            "limits.default_request_memory_mib",
            &f.default_request_memory_mib,
        )
        .keep("max_dedicated_nodes", &f.max_dedicated_nodes)
        .keep("max_projects", &f.max_projects)
        .keep("max_members", &f.max_members)
        .keep("server_resources", "")
        .keep("server_resources.cpu_millis", &f.server_cpu_millis)
        .keep("server_resources.memory_mib", &f.server_memory_mib)
        .keep("agent_resources", "")
        .keep("agent_resources.cpu_millis", &f.agent_cpu_millis)
        .keep("agent_resources.memory_mib", &f.agent_memory_mib)
        .keep("services", "")
        .keep("services.node_ports", &f.node_ports)
        .keep("services.load_balancers", &f.load_balancers)
        .keep("k3s_version", &f.k3s_version)
        .keep("retired", if f.retired.is_some() { "on" } else { "" });
    let mut form = keep_prices(
        form,
        &f.prices.currency,
        &f.prices.base_monthly,
        f.prices.rates(),
    );
    let prices = parse_prices(&mut form, &f.prices);
    // Blank resource fields take the defaults of a small cluster.
    let mut or_default = |field: &'static str, raw: &str, default: u64| -> u64 {
        if raw.trim().is_empty() {
            default
        } else {
            number(&mut form, field, raw).unwrap_or(0)
        }
    };
    let server_resources = PodResources {
        cpu_millis: or_default(
            "server_resources.cpu_millis",
            &f.server_cpu_millis,
            PodResources::SMALL_SERVER.cpu_millis,
        ),
        memory_mib: or_default(
            "server_resources.memory_mib",
            &f.server_memory_mib,
            PodResources::SMALL_SERVER.memory_mib,
        ),
    };
    let agent_resources = PodResources {
        cpu_millis: or_default(
            "agent_resources.cpu_millis",
            &f.agent_cpu_millis,
            PodResources::AGENT.cpu_millis,
        ),
        memory_mib: or_default(
            "agent_resources.memory_mib",
            &f.agent_memory_mib,
            PodResources::AGENT.memory_mib,
        ),
    };
    let defaults = ServiceQuota::default();
    let services = ServiceQuota {
        node_ports: u32::try_from(or_default(
            "services.node_ports",
            &f.node_ports,
            u64::from(defaults.node_ports),
        ))
        .unwrap_or(u32::MAX),
        load_balancers: u32::try_from(or_default(
            "services.load_balancers",
            &f.load_balancers,
            u64::from(defaults.load_balancers),
        ))
        .unwrap_or(u32::MAX),
    };
    let plan = Plan {
        id: f.id.trim().to_string(),
        display_name: f.display_name.trim().to_string(),
        description: f.description.trim().to_string(),
        k3k_mode: f.k3k_mode,
        expose: f.expose,
        servers: required(&mut form, "servers", &f.servers),
        agents: required(&mut form, "agents", &f.agents),
        storage_gib: required(&mut form, "storage_gib", &f.storage_gib),
        server_resources,
        agent_resources,
        quota: Quota {
            cpu_millis: required(&mut form, "cpu", &f.cpu),
            memory_mib: required(&mut form, "memory", &f.memory),
            storage_gib: required(&mut form, "storage", &f.storage),
            pods: required(&mut form, "pods", &f.pods),
        },
        limits: LimitDefaults {
            default_cpu_millis: required(
                &mut form,
                "limits.default_cpu_millis",
                &f.default_cpu_millis,
            ),
            default_memory_mib: required(
                &mut form,
                "limits.default_memory_mib",
                &f.default_memory_mib,
            ),
            default_request_cpu_millis: required(
                &mut form,
                "limits.default_request_cpu_millis",
                &f.default_request_cpu_millis,
            ),
            default_request_memory_mib: required(
                &mut form,
                "limits.default_request_memory_mib",
                &f.default_request_memory_mib,
            ),
        },
        services,
        max_dedicated_nodes: required(&mut form, "max_dedicated_nodes", &f.max_dedicated_nodes),
        max_projects: required(&mut form, "max_projects", &f.max_projects),
        max_members: required(&mut form, "max_members", &f.max_members),
        k3s_version: Some(f.k3s_version.trim().to_string()).filter(|v| !v.is_empty()),
        retired: f.retired.is_some(),
        prices,
        revision: 0,
    };
    (plan, form)
}
