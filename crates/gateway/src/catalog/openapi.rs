//! OpenAPI 3 documents (JSON): the endpoints a document describes, and the copy shown to
//! clients by `getOpenAPI`, with the backend's addresses removed.

use super::CatalogError;
use lienthong_model::gateway::Endpoint;
use serde_json::{Map, Value};

/// What clients see instead of the backend's address (as X-Road does for WSDL, pr-meta 4).
pub(crate) const HIDDEN_SERVER: &str = "http://example.org/xroad-endpoint";

/// Operations of an OpenAPI 3 path item.
const OPERATIONS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Parse a document and check that it is OpenAPI 3.
pub(crate) fn parse(text: &str) -> Result<Map<String, Value>, CatalogError> {
    let bad = |why: String| CatalogError::BadRequest(format!("openapi: {why}"));
    let value: Value =
        serde_json::from_str(text).map_err(|e| bad(format!("not a JSON document: {e}")))?;
    let Value::Object(document) = value else {
        return Err(bad("must be a JSON object".into()));
    };
    match document.get("openapi").and_then(Value::as_str) {
        Some(version) if version.starts_with("3.") => Ok(document),
        _ => Err(bad(
            "only OpenAPI 3 documents are accepted (an \"openapi\": \"3.x.y\" field)".into(),
        )),
    }
}

/// The endpoints of a document: each operation of each path, with `{parameter}` path
/// templates turned into `*` (one segment); ordered by path, then get, put, post, delete,
/// options, head, patch, trace.
pub(crate) fn endpoints(document: &Map<String, Value>) -> Result<Vec<Endpoint>, CatalogError> {
    let Some(paths) = document.get("paths") else {
        return Ok(Vec::new());
    };
    let paths = paths
        .as_object()
        .ok_or_else(|| CatalogError::BadRequest("openapi: \"paths\" must be an object".into()))?;
    let mut endpoints = Vec::new();
    for (template, item) in paths {
        let path = untemplate(template);
        let Some(item) = item.as_object() else {
            continue;
        };
        for operation in OPERATIONS {
            if item.contains_key(operation) {
                let endpoint = Endpoint::new(&operation.to_ascii_uppercase(), &path)
                    .map_err(|e| CatalogError::BadRequest(format!("openapi: {e}")))?;
                endpoints.push(endpoint);
            }
        }
    }
    Ok(endpoints)
}

/// The document for clients: every `servers` list (top level, path items, operations)
/// replaced by one placeholder server, so the backend's address never leaves the gateway.
pub(crate) fn anonymise(mut document: Map<String, Value>) -> Map<String, Value> {
    let hidden = || serde_json::json!([{ "url": HIDDEN_SERVER }]);
    document.insert("servers".into(), hidden());
    if let Some(Value::Object(paths)) = document.get_mut("paths") {
        for item in paths.values_mut() {
            let Value::Object(item) = item else { continue };
            if item.contains_key("servers") {
                item.insert("servers".into(), hidden());
            }
            for operation in OPERATIONS {
                if let Some(Value::Object(op)) = item.get_mut(operation)
                    && op.contains_key("servers")
                {
                    op.insert("servers".into(), hidden());
                }
            }
        }
    }
    document
}

/// `/persons/{id}/address` → `/persons/*/address`.
fn untemplate(template: &str) -> String {
    let mut path = String::with_capacity(template.len());
    let mut in_parameter = false;
    for c in template.chars() {
        match c {
            '{' if !in_parameter => {
                in_parameter = true;
                path.push('*');
            }
            '}' if in_parameter => in_parameter = false,
            _ if in_parameter => {}
            _ => path.push(c),
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn document() -> Map<String, Value> {
        parse(
            &json!({
                "openapi": "3.0.3",
                "info": {"title": "Persons", "version": "1"},
                "servers": [{"url": "https://backend.internal:8443"}],
                "paths": {
                    "/persons": {"get": {}, "post": {}, "summary": "x", "parameters": []},
                    "/persons/{id}": {"get": {}, "delete": {"servers": [{"url": "https://other"}]}},
                    "/persons/{id}/files/{name}.json": {"get": {}}
                }
            })
            .to_string(),
        )
        .expect("parse")
    }

    #[test]
    fn endpoints_come_from_paths() {
        let found: Vec<(String, String)> = endpoints(&document())
            .expect("endpoints")
            .into_iter()
            .map(|e| (e.method, e.path))
            .collect();
        let expected = [
            ("GET", "/persons"),
            ("POST", "/persons"),
            ("GET", "/persons/*"),
            ("DELETE", "/persons/*"),
            ("GET", "/persons/*/files/*.json"),
        ];
        assert_eq!(found.len(), expected.len());
        for (method, path) in expected {
            assert!(
                found.contains(&(method.to_owned(), path.to_owned())),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn only_openapi_3_json() {
        assert!(parse("openapi: 3.0.0").is_err());
        assert!(parse(r#"{"swagger": "2.0"}"#).is_err());
        assert!(parse("[]").is_err());
        let no_paths = parse(r#"{"openapi": "3.1.0"}"#).expect("minimal");
        assert!(endpoints(&no_paths).expect("none").is_empty());
        let relative =
            parse(r#"{"openapi": "3.1.0", "paths": {"persons": {"get": {}}}}"#).expect("parse");
        assert!(endpoints(&relative).is_err());
    }

    #[test]
    fn servers_are_hidden() {
        let text = Value::Object(anonymise(document())).to_string();
        assert!(!text.contains("backend.internal"), "{text}");
        assert!(!text.contains("https://other"), "{text}");
        assert!(text.contains(HIDDEN_SERVER));
    }
}
