//! Dedicated node assignments and the intervals each workspace held a node (for billing).

use super::*;

// ---- dedicated nodes ----------------------------------------------------------------------

pub fn node_assignment(r: &impl Reader, node: &str) -> Res<Option<NodeAssignment>> {
    match r.table(NODE_ASSIGNMENTS)?.get(node)? {
        Some(v) => Ok(Some(decode(v.value(), NODE_ASSIGNMENTS.name(), &node)?)),
        None => Ok(None),
    }
}

pub fn all_node_assignments(r: &impl Reader) -> Res<Vec<NodeAssignment>> {
    let t = r.table(NODE_ASSIGNMENTS)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        out.push(decode(v.value(), NODE_ASSIGNMENTS.name(), &k.value())?);
    }
    Ok(out)
}

/// Records an assignment and opens its billing interval.
pub fn put_node_assignment(
    tx: &WriteTransaction,
    a: &NodeAssignment,
    interval: &NodeInterval,
) -> Res<()> {
    tx.open_table(NODE_ASSIGNMENTS)?
        .insert(a.node.as_str(), encode(a)?.as_slice())?;
    put_by_id(tx, NODE_INTERVALS, interval.id.0, interval)?;
    tx.open_table(NODE_INTERVALS_BY_WS)?
        .insert((interval.workspace_id.0, interval.id.0), ())?;
    Ok(())
}

/// Ends an assignment and closes its billing interval at `until`.
pub fn end_node_assignment(
    tx: &WriteTransaction,
    a: &NodeAssignment,
    until: jiff::Timestamp,
) -> Res<()> {
    tx.open_table(NODE_ASSIGNMENTS)?.remove(a.node.as_str())?;
    if let Some(mut i) = get_by_id::<NodeInterval>(tx, NODE_INTERVALS, a.interval_id.0)? {
        i.until = Some(until);
        put_by_id(tx, NODE_INTERVALS, i.id.0, &i)?;
    }
    Ok(())
}

/// A workspace's node intervals, oldest first.
pub fn node_intervals(r: &impl Reader, ws: WorkspaceId) -> Res<Vec<NodeInterval>> {
    let ids = index_seconds(r, NODE_INTERVALS_BY_WS, ws.0)?;
    load_all(r, NODE_INTERVALS, ids)
}
