//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded into
//! the JSON object the engine stores. client-go's typed clients — so kubectl's imperative
//! commands (`create deployment`, `auth can-i`, ...) — send nothing else and do not fall
//! back to JSON, so the fake must read them as kube-apiserver does for built-in kinds.
//!
//! The body is the 4-byte magic `k8s\0` and a `runtime.Unknown` {typeMeta(1){apiVersion(1),
//! kind(2)}, raw(2), contentEncoding(3), contentType(4)} whose `raw` is the object. The
//! object is read against a schema table (`schema`: field number → JSON name and type, as in
//! upstream `generated.proto`) and turned into JSON the way the Go types marshal: value
//! fields the Go encoder always writes are dropped when zero (their JSON tags are
//! `omitempty`), pointer fields are kept as sent, maps are repeated key/value entries,
//! `bytes` become base64, `Time` an RFC 3339 string, `Quantity` its string, `IntOrString`
//! a number or a string, and embedded Go structs (`inline`) merge into their parent.

mod apis;
mod schema;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use schema::{F, Mode, Ty};

const MAGIC: &[u8] = b"k8s\0";

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// Not a Kubernetes protobuf envelope, or malformed protobuf.
    Malformed(String),
    /// Well-formed, but a kind this fake has no schema for (custom resources: always).
    UnknownKind { api_version: String, kind: String },
}

/// A decoded body: the object as JSON, and the fields the schema did not know (skipped, as
/// upstream's generated decoders skip unknown fields; logged so gaps in the table show).
#[derive(Debug)]
pub(crate) struct Decoded {
    pub object: Value,
    pub unknown: Vec<String>,
}

/// One field on the wire.
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Len(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos).ok_or_else(|| malformed("truncated varint"))?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(malformed("varint longer than 10 bytes"))
}

fn malformed(message: &str) -> DecodeError {
    DecodeError::Malformed(message.to_string())
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, len: usize) -> Result<&'a [u8], DecodeError> {
    let end = pos
        .checked_add(len)
        .ok_or_else(|| malformed("length overflow"))?;
    let bytes = buf
        .get(*pos..end)
        .ok_or_else(|| malformed("field runs past the end of its message"))?;
    *pos = end;
    Ok(bytes)
}

/// Splits a message into (field number, value), in wire order.
fn fields(buf: &[u8]) -> Result<Vec<(u32, Wire<'_>)>, DecodeError> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let tag = varint(buf, &mut pos)?;
        let number = u32::try_from(tag >> 3).map_err(|_| malformed("field number too large"))?;
        let wire = match tag & 7 {
            0 => Wire::Varint(varint(buf, &mut pos)?),
            1 => {
                let bytes = take(buf, &mut pos, 8)?;
                Wire::Fixed64(u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8])))
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?)
                    .map_err(|_| malformed("length too large"))?;
                Wire::Len(take(buf, &mut pos, len)?)
            }
            5 => {
                let bytes = take(buf, &mut pos, 4)?;
                Wire::Fixed32(u32::from_le_bytes(bytes.try_into().unwrap_or([0; 4])))
            }
            other => return Err(DecodeError::Malformed(format!("wire type {other}"))),
        };
        if number == 0 {
            return Err(malformed("field number 0"));
        }
        out.push((number, wire));
    }
    Ok(out)
}

fn string_field(buf: &[u8], number: u32) -> Result<String, DecodeError> {
    let mut text = String::new();
    for (n, wire) in fields(buf)? {
        if n == number
            && let Wire::Len(bytes) = wire
        {
            text = String::from_utf8_lossy(bytes).into_owned();
        }
    }
    Ok(text)
}

/// Reads the `k8s\0` envelope: (apiVersion, kind, raw object bytes).
fn envelope(body: &[u8]) -> Result<(String, String, &[u8]), DecodeError> {
    let unknown = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| malformed("missing the k8s protobuf magic number"))?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, wire) in fields(unknown)? {
        match (n, wire) {
            (1, Wire::Len(type_meta)) => {
                api_version = string_field(type_meta, 1)?;
                kind = string_field(type_meta, 2)?;
            }
            (2, Wire::Len(bytes)) => raw = bytes,
            (3 | 4, _) => {}
            (n, _) => {
                return Err(DecodeError::Malformed(format!(
                    "unexpected runtime.Unknown field {n}"
                )));
            }
        }
    }
    Ok((api_version, kind, raw))
}

/// Decodes a protobuf body. `fallback` is the (apiVersion, kind) of the endpoint, used when
/// the envelope carries no type (client-go always sets it).
pub(crate) fn decode(body: &[u8], fallback: (&str, &str)) -> Result<Decoded, DecodeError> {
    let (mut api_version, mut kind, raw) = envelope(body)?;
    if kind.is_empty() {
        api_version = fallback.0.to_string();
        kind = fallback.1.to_string();
    }
    let Some(fields) = apis::kind_schema(&api_version, &kind) else {
        return Err(DecodeError::UnknownKind { api_version, kind });
    };
    let mut unknown = Vec::new();
    let mut object = Map::new();
    object.insert("apiVersion".into(), json!(api_version));
    object.insert("kind".into(), json!(kind));
    message(raw, fields, "", &mut object, &mut unknown)?;
    Ok(Decoded {
        object: Value::Object(object),
        unknown,
    })
}

/// Reads one message into `out` (a fresh map for nested messages, the parent's for inline
/// ones), then drops the zero values of value-typed fields, as `omitempty` does.
fn message(
    buf: &[u8],
    schema: &[F],
    path: &str,
    out: &mut Map<String, Value>,
    unknown: &mut Vec<String>,
) -> Result<(), DecodeError> {
    for (number, wire) in fields(buf)? {
        let Some(field) = schema.iter().find(|f| f.n == number) else {
            unknown.push(format!("{path}#{number}"));
            continue;
        };
        let child = format!("{path}.{}", field.name);
        match (field.ty, &wire) {
            (Ty::Skip, _) => {}
            (Ty::Inline(inner), Wire::Len(bytes)) => {
                let mut merged = Map::new();
                message(bytes, inner, path, &mut merged, unknown)?;
                out.extend(merged);
            }
            (Ty::MapStr | Ty::MapBytes | Ty::MapQty, Wire::Len(bytes)) => {
                let (key, value) = map_entry(bytes, field.ty, &child)?;
                let map = out
                    .entry(field.name)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = map {
                    map.insert(key, value);
                }
            }
            _ if field.mode == Mode::Rep => {
                let values = repeated(field.ty, &wire, &child, unknown)?;
                let list = out.entry(field.name).or_insert_with(|| json!([]));
                if let Value::Array(list) = list {
                    list.extend(values);
                }
            }
            _ => {
                let value = scalar(field.ty, &wire, &child, unknown)?;
                out.insert(field.name.to_string(), value);
            }
        }
    }
    for field in schema.iter().filter(|f| f.mode == Mode::Val) {
        if out.get(field.name).is_some_and(is_zero) {
            out.remove(field.name);
        }
    }
    Ok(())
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn wrong_wire(path: &str) -> DecodeError {
    DecodeError::Malformed(format!("wrong wire type for {path}"))
}

/// A repeated field: one element per occurrence, or several from a packed scalar list.
fn repeated(
    ty: Ty,
    wire: &Wire<'_>,
    path: &str,
    unknown: &mut Vec<String>,
) -> Result<Vec<Value>, DecodeError> {
    match (ty, wire) {
        (Ty::Int | Ty::Bool, Wire::Len(bytes)) => {
            let mut pos = 0;
            let mut values = Vec::new();
            while pos < bytes.len() {
                values.push(scalar(
                    ty,
                    &Wire::Varint(varint(bytes, &mut pos)?),
                    path,
                    unknown,
                )?);
            }
            Ok(values)
        }
        _ => Ok(vec![scalar(ty, wire, path, unknown)?]),
    }
}

fn scalar(
    ty: Ty,
    wire: &Wire<'_>,
    path: &str,
    unknown: &mut Vec<String>,
) -> Result<Value, DecodeError> {
    Ok(match (ty, wire) {
        // int32 and int64 alike: negative values are sign-extended to 64 bits.
        (Ty::Int, Wire::Varint(v)) => json!(*v as i64),
        (Ty::Int, Wire::Fixed64(v)) => json!(*v as i64),
        (Ty::Int, Wire::Fixed32(v)) => json!(*v as i32),
        (Ty::Bool, Wire::Varint(v)) => json!(*v != 0),
        (Ty::Str, Wire::Len(bytes)) => json!(String::from_utf8_lossy(bytes)),
        (Ty::Quantity, Wire::Len(bytes)) => json!(string_field(bytes, 1)?),
        (Ty::Time, Wire::Len(bytes)) => time(bytes)?,
        (Ty::IntOrStr, Wire::Len(bytes)) => int_or_string(bytes)?,
        (Ty::Raw, Wire::Len(bytes)) => raw_json(bytes)?,
        (Ty::Msg(inner), Wire::Len(bytes)) => {
            let mut map = Map::new();
            message(bytes, inner, path, &mut map, unknown)?;
            Value::Object(map)
        }
        _ => return Err(wrong_wire(path)),
    })
}

/// A map entry message: key(1) string, value(2).
fn map_entry(bytes: &[u8], ty: Ty, path: &str) -> Result<(String, Value), DecodeError> {
    let (mut key, mut value) = (String::new(), None);
    for (n, wire) in fields(bytes)? {
        match (n, wire) {
            (1, Wire::Len(k)) => key = String::from_utf8_lossy(k).into_owned(),
            (2, Wire::Len(v)) => {
                value = Some(match ty {
                    Ty::MapBytes => json!(STANDARD.encode(v)),
                    Ty::MapQty => json!(string_field(v, 1)?),
                    _ => json!(String::from_utf8_lossy(v)),
                });
            }
            _ => return Err(wrong_wire(path)),
        }
    }
    // A missing value is the type's zero value, as in Go.
    Ok((key, value.unwrap_or_else(|| json!(""))))
}

/// `metav1.Time` {seconds(1), nanos(2)}: JSON has second precision; an empty message is the
/// zero time, which marshals as null.
fn time(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut seconds = 0i64;
    let mut empty = true;
    for (n, wire) in fields(bytes)? {
        if let (1, Wire::Varint(v)) = (n, wire) {
            seconds = v as i64;
        }
        empty = false;
    }
    if empty {
        return Ok(Value::Null);
    }
    let timestamp = jiff::Timestamp::from_second(seconds)
        .map_err(|e| DecodeError::Malformed(format!("time: {e}")))?;
    Ok(json!(timestamp.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

/// `intstr.IntOrString` {type(1): 0 int / 1 string, intVal(2), strVal(3)}.
fn int_or_string(bytes: &[u8]) -> Result<Value, DecodeError> {
    let (mut is_string, mut int, mut text) = (false, 0i64, String::new());
    for (n, wire) in fields(bytes)? {
        match (n, wire) {
            (1, Wire::Varint(v)) => is_string = v == 1,
            (2, Wire::Varint(v)) => int = i64::from(v as i32),
            (3, Wire::Len(s)) => text = String::from_utf8_lossy(s).into_owned(),
            _ => return Err(malformed("bad IntOrString")),
        }
    }
    Ok(if is_string { json!(text) } else { json!(int) })
}

/// `runtime.RawExtension` / `FieldsV1` {raw(1)}: JSON bytes, embedded as JSON.
fn raw_json(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut raw: &[u8] = &[];
    for (n, wire) in fields(bytes)? {
        if let (1, Wire::Len(r)) = (n, wire) {
            raw = r;
        }
    }
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(raw).map_err(|e| DecodeError::Malformed(format!("raw JSON: {e}")))
}

#[cfg(test)]
mod tests;
