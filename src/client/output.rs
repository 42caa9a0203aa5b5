//! How the shell client prints what the API gave: `-o table` (aligned columns chosen per
//! kind of object), `-o json` (the API's JSON, pretty) or `-o yaml` (the same as YAML).

use serde_json::Value;

/// The `-o` choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Yaml,
}

/// A field of a JSON object, or `null`: `Value`'s own indexing does the same, but reads as
/// if it could panic.
pub trait Field {
    fn f(&self, key: &str) -> &Value;
}

static NULL: Value = Value::Null;

impl Field for Value {
    fn f(&self, key: &str) -> &Value {
        self.get(key).unwrap_or(&NULL)
    }
}

/// A column: its heading and how to read it from one object.
pub type Column = (&'static str, fn(&Value) -> String);

/// A string field, or `-` when absent.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Null => "-".into(),
        Value::String(_) => "-".into(),
        other => other.to_string(),
    }
}

/// Aligned columns with a heading row; each cell on one line.
pub fn table(rows: &[Value], columns: &[Column]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|(_, f)| f(r).replace(['\n', '\r', '\t'], " "))
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = columns.iter().map(|(h, _)| h.chars().count()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |row: Vec<String>| -> String {
        let n = row.len();
        let mut out = String::new();
        for (i, (c, w)) in row.into_iter().zip(&widths).enumerate() {
            out.push_str(&c);
            if i + 1 < n {
                out.push_str(&" ".repeat(w - c.chars().count() + 2));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(columns.iter().map(|(h, _)| (*h).to_string()).collect());
    for row in cells {
        out.push_str(&line(row));
    }
    out
}

/// Renders `value` (one object or a list) in `format`; a table uses `columns`.
pub fn render(format: Format, value: &Value, columns: &[Column]) -> anyhow::Result<String> {
    Ok(match format {
        Format::Json => format!("{}\n", serde_json::to_string_pretty(value)?),
        Format::Yaml => serde_yaml::to_string(value)?,
        Format::Table => match value {
            Value::Array(rows) => table(rows, columns),
            one => table(std::slice::from_ref(one), columns),
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_and_json_and_yaml_keep_the_api_fields() {
        let rows = json!([{"id": "ws_1", "name": "dev"}, {"id": "ws_22", "name": null}]);
        let cols: &[Column] = &[("ID", |v| text(&v["id"])), ("NAME", |v| text(&v["name"]))];
        assert_eq!(
            render(Format::Table, &rows, cols).unwrap(),
            "ID     NAME\nws_1   dev\nws_22  -\n"
        );
        let back: Value =
            serde_json::from_str(&render(Format::Json, &rows, cols).unwrap()).unwrap();
        assert_eq!(back, rows);
        let back: Value =
            serde_yaml::from_str(&render(Format::Yaml, &rows, cols).unwrap()).unwrap();
        assert_eq!(back, rows);
    }
}
