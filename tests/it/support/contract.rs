//! Contract checks against OpenAPI 3.0 documents, shared by `tests/it/video_contract.rs` (the
//! vendor's Digital Samba document), `tests/it/openapi.rs` (rollcall's own `protocol/openapi.yaml`)
//! and the lobby tests (the vendor's PlayFlow `Lobby` schema, through `tests/it/support/lobby.rs`).
//!
//! [`Doc`] loads a document (YAML or JSON; YAML map keys such as unquoted `200:` become strings),
//! finds operations, documented statuses and schemas (following local `$ref`s), and checks a
//! JSON value against a schema: `type` (string, integer, number, boolean, array, object),
//! `nullable`, `required`, `properties`, `additionalProperties`, `items`, `enum`,
//! `minLength`/`maxLength`, `minimum`/`maximum`, `minItems`/`maxItems`, `allOf`/`oneOf`/`anyOf`
//! and the formats `uuid` and `date-time`, recursively. A schema naming a type OpenAPI does not
//! have is itself reported, never skipped.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Map, Value};

/// The HTTP methods an OpenAPI path item may hold, in the document's lower case.
pub const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// A YAML value as JSON; non-string map keys (`200:`) become their text.
pub fn yaml_to_json(y: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match y {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64().map_or(Value::Null, Value::from)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let key = match yaml_to_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(t) => yaml_to_json(t.value),
    }
}

/// An OpenAPI document.
pub struct Doc(pub Value);

/// The folder that holds the vendors' OpenAPI documents: `ROLLCALL_VENDOR_DIR`, or
/// `../shared/vendor` beside the repository (where this project's CI lays it).
pub fn vendor_dir() -> std::path::PathBuf {
    match std::env::var_os("ROLLCALL_VENDOR_DIR") {
        Some(dir) if !dir.is_empty() => dir.into(),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vendor"),
    }
}

/// The vendor document `file` from [`vendor_dir`], or `None` when it is not there: a fresh clone
/// has nothing beside it, so the contract checks that need the file are skipped with a
/// `SKIPPED:` line naming `test`, the file and how to get it. `ROLLCALL_REQUIRE_VENDOR=1` (CI)
/// turns the skip into a failure.
pub fn vendor_doc(test: &str, file: &str) -> Option<Doc> {
    let path = vendor_dir().join(file);
    if path.is_file() {
        return Some(Doc::load(&path));
    }
    let why = format!(
        "{} is missing; point ROLLCALL_VENDOR_DIR at a folder holding the vendor's {file} \
         (this project's shared/vendor/)",
        path.display()
    );
    if std::env::var("ROLLCALL_REQUIRE_VENDOR").as_deref() == Ok("1") {
        panic!("ROLLCALL_REQUIRE_VENDOR=1 but {why}");
    }
    // Straight to stderr, not `eprintln!`: the test harness captures the macros of passing tests,
    // and a skip must be seen.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {test}: the vendor contract checks: {why} \
         (set ROLLCALL_REQUIRE_VENDOR=1 to fail instead)"
    ); // nowhere to report a failed write to stderr
    None
}

impl Doc {
    /// Loads a `.yaml`/`.yml` or `.json` document.
    pub fn load(path: &Path) -> Self {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let is_json = path.extension().is_some_and(|e| e == "json");
        Doc(if is_json {
            serde_json::from_str(&text).expect("the document is JSON")
        } else {
            yaml_to_json(serde_yaml::from_str(&text).expect("the document is YAML"))
        })
    }

    /// `v`, or what its local `$ref` (`#/a/b`) points to, followed to the end.
    pub fn deref<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        for _ in 0..32 {
            let Some(r) = v.get("$ref").and_then(Value::as_str) else {
                return v;
            };
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("only local $refs are supported: {r}"));
            v = self
                .0
                .pointer(pointer)
                .unwrap_or_else(|| panic!("unresolved $ref {r}"));
        }
        panic!("a $ref cycle");
    }

    /// Every operation as (`METHOD`, path template), in document order.
    pub fn operations(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (path, item) in self.0["paths"].as_object().expect("paths") {
            for m in METHODS {
                if item.get(m).is_some() {
                    out.push((m.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    /// The operation `method path`; panics if the document lacks it.
    pub fn operation(&self, method: &str, path: &str) -> &Value {
        self.0["paths"]
            .get(path)
            .and_then(|item| item.get(method.to_lowercase()))
            .unwrap_or_else(|| panic!("the document has no {method} {path}"))
    }

    /// The statuses an operation documents (`"200"`, `"default"`, `"4XX"` ...).
    pub fn statuses(&self, method: &str, path: &str) -> Vec<String> {
        self.operation(method, path)["responses"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The response object documented for `status` (exact, then `NXX`, then `default`).
    pub fn response(&self, method: &str, path: &str, status: u16) -> Option<&Value> {
        let responses = &self.operation(method, path)["responses"];
        let range = format!("{}XX", status / 100);
        [status.to_string(), range, "default".into()]
            .iter()
            .find_map(|k| responses.get(k))
            .map(|r| self.deref(r))
    }

    /// The media types a response documents.
    pub fn media_types(&self, response: &Value) -> Vec<String> {
        response["content"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The `application/json` schema of the response documented for `status`.
    pub fn json_schema(&self, method: &str, path: &str, status: u16) -> Option<&Value> {
        let r = self.response(method, path, status)?;
        r["content"]
            .get("application/json")
            .and_then(|c| c.get("schema"))
            .map(|s| self.deref(s))
    }

    /// The `application/json` schema of the request body.
    pub fn request_schema(&self, method: &str, path: &str) -> Option<&Value> {
        let body = self.deref(self.operation(method, path).get("requestBody")?);
        body["content"]
            .get("application/json")
            .and_then(|c| c.get("schema"))
            .map(|s| self.deref(s))
    }

    /// What in `value` breaks `schema` (empty when it conforms), each with its JSON path.
    pub fn violations(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut out = Vec::new();
        self.check(schema, value, "$", &mut out);
        out
    }

    fn check(&self, schema: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
        let schema = self.deref(schema);
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.check(s, v, at, out);
            }
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(alts) = schema.get(key).and_then(Value::as_array) {
                if !alts.iter().any(|s| self.violations(s, v).is_empty()) {
                    out.push(format!("{at}: matches none of its {key} schemas: {v}"));
                }
            }
        }
        let ty = schema.get("type").and_then(Value::as_str);
        if v.is_null() {
            if ty.is_some() && schema["nullable"] != true {
                out.push(format!("{at}: null, but the schema is not nullable"));
            }
            return;
        }
        let ok = match ty {
            None => true,
            Some("string") => v.is_string(),
            Some("integer") => v.is_i64() || v.is_u64(),
            Some("number") => v.is_number(),
            Some("boolean") => v.is_boolean(),
            Some("array") => v.is_array(),
            Some("object") => v.is_object(),
            Some(other) => {
                out.push(format!(
                    "{at}: the schema's type {other:?} is not an OpenAPI type"
                ));
                return;
            }
        };
        if !ok {
            out.push(format!("{at}: expected {}, got {v}", ty.unwrap_or("?")));
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(v) {
                out.push(format!(
                    "{at}: {v} is not one of {}",
                    Value::from(allowed.clone())
                ));
            }
        }
        match v {
            Value::String(s) => self.check_string(schema, s, at, out),
            Value::Number(n) => {
                let n = n.as_f64().unwrap_or(f64::NAN);
                if schema["minimum"].as_f64().is_some_and(|m| n < m)
                    || schema["maximum"].as_f64().is_some_and(|m| n > m)
                {
                    out.push(format!("{at}: {n} is out of range"));
                }
            }
            Value::Array(items) => {
                let n = items.len() as u64;
                if schema["minItems"].as_u64().is_some_and(|m| n < m)
                    || schema["maxItems"].as_u64().is_some_and(|m| n > m)
                {
                    out.push(format!("{at}: {n} items is out of range"));
                }
                if let Some(item) = schema.get("items") {
                    for (i, x) in items.iter().enumerate() {
                        self.check(item, x, &format!("{at}[{i}]"), out);
                    }
                }
            }
            Value::Object(obj) => self.check_object(schema, obj, at, out),
            Value::Bool(_) | Value::Null => {}
        }
    }

    fn check_string(&self, schema: &Value, s: &str, at: &str, out: &mut Vec<String>) {
        let n = s.chars().count() as u64;
        if schema["minLength"].as_u64().is_some_and(|m| n < m) {
            out.push(format!("{at}: shorter than {}", schema["minLength"]));
        }
        if schema["maxLength"].as_u64().is_some_and(|m| n > m) {
            out.push(format!("{at}: longer than {}", schema["maxLength"]));
        }
        match schema["format"].as_str() {
            Some("uuid") if uuid::Uuid::try_parse(s).is_err() || s.len() != 36 => {
                out.push(format!("{at}: {s:?} is not a UUID"))
            }
            Some("date-time") if chrono::DateTime::parse_from_rfc3339(s).is_err() => {
                out.push(format!("{at}: {s:?} is not an RFC 3339 date-time"))
            }
            _ => {}
        }
    }

    fn check_object(
        &self,
        schema: &Value,
        obj: &Map<String, Value>,
        at: &str,
        out: &mut Vec<String>,
    ) {
        let props = schema.get("properties").and_then(Value::as_object);
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().expect("required names are strings");
            if !obj.contains_key(name) {
                out.push(format!("{at}.{name}: missing (required)"));
            }
        }
        for (k, x) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(p) => self.check(p, x, &format!("{at}.{k}"), out),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => out.push(format!(
                        "{at}.{k}: not allowed (additionalProperties: false)"
                    )),
                    Some(extra @ Value::Object(_)) => {
                        self.check(extra, x, &format!("{at}.{k}"), out)
                    }
                    _ => {}
                },
            }
        }
    }

    /// The properties `value` holds that `schema` does not list (paths like `$.data[].topic`),
    /// recursively through listed properties and array items; objects whose schema lists no
    /// properties are free-form and not looked into.
    pub fn undocumented(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut out = BTreeSet::new();
        self.extra(schema, value, "$", &mut out);
        out.into_iter().collect()
    }

    fn extra(&self, schema: &Value, v: &Value, at: &str, out: &mut BTreeSet<String>) {
        let schema = self.deref(schema);
        match v {
            Value::Object(obj) => {
                let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                    return;
                };
                for (k, x) in obj {
                    match props.get(k) {
                        Some(p) => self.extra(p, x, &format!("{at}.{k}"), out),
                        None => {
                            out.insert(format!("{at}.{k}"));
                        }
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item) = schema.get("items") {
                    for x in items {
                        self.extra(item, x, &format!("{at}[]"), out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Asserts `value` conforms to `schema`, naming `what` on failure.
pub fn assert_conforms(doc: &Doc, schema: &Value, value: &Value, what: &str) {
    let v = doc.violations(schema, value);
    assert!(v.is_empty(), "{what}: contract violations {v:?} in {value}");
}
