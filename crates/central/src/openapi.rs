//! The OpenAPI 3 description of the registry's HTTP interface, served at
//! `/api/v1/openapi.json`. A test checks that every route the router has is described.

use serde_json::{Value, json};

/// (method, path, summary, request schema, protected)
const OPERATIONS: &[(&str, &str, &str, Option<&str>, bool)] = &[
    (
        "get",
        "/globalconf",
        "Download the signed global configuration (ETag / If-None-Match)",
        None,
        false,
    ),
    (
        "post",
        "/api/v1/registration-requests",
        "Submit a gateway registration signed with its auth key",
        Some("SignedRegistration"),
        false,
    ),
    ("get", "/api/v1/members", "List members", None, true),
    (
        "post",
        "/api/v1/members",
        "Register a member",
        Some("NewMember"),
        true,
    ),
    (
        "get",
        "/api/v1/members/{instance}/{class}/{code}",
        "Read a member",
        None,
        true,
    ),
    (
        "delete",
        "/api/v1/members/{instance}/{class}/{code}",
        "Remove a member",
        None,
        true,
    ),
    (
        "post",
        "/api/v1/members/{instance}/{class}/{code}/subsystems",
        "Add a subsystem",
        Some("NewSubsystem"),
        true,
    ),
    ("get", "/api/v1/gateways", "List gateways", None, true),
    ("get", "/api/v1/groups", "List global groups", None, true),
    (
        "post",
        "/api/v1/groups",
        "Create a global group",
        Some("NewGroup"),
        true,
    ),
    (
        "post",
        "/api/v1/groups/{instance}/{code}/members",
        "Add a member or subsystem to a group",
        Some("GroupMember"),
        true,
    ),
    (
        "get",
        "/api/v1/cas",
        "List approved certificate authorities",
        None,
        true,
    ),
    (
        "post",
        "/api/v1/cas",
        "Approve a certificate authority",
        Some("ApprovedCa"),
        true,
    ),
    (
        "get",
        "/api/v1/tsas",
        "List approved timestamp authorities",
        None,
        true,
    ),
    (
        "post",
        "/api/v1/tsas",
        "Approve a timestamp authority",
        Some("ApprovedTsa"),
        true,
    ),
    (
        "get",
        "/api/v1/policy",
        "Read the policy values and their revision",
        None,
        true,
    ),
    (
        "put",
        "/api/v1/policy",
        "Replace the policy values (send the revision read; 409 if changed)",
        Some("PolicyDocument"),
        true,
    ),
    (
        "get",
        "/api/v1/registrations",
        "List registration requests",
        None,
        true,
    ),
    (
        "post",
        "/api/v1/registrations/{id}/approve",
        "Approve a registration: the gateway joins the configuration",
        None,
        true,
    ),
    (
        "post",
        "/api/v1/registrations/{id}/reject",
        "Reject a registration",
        None,
        true,
    ),
    (
        "post",
        "/api/v1/tokens",
        "Create an API token (shown once; stored hashed)",
        Some("NewToken"),
        true,
    ),
    (
        "get",
        "/api/v1/audit",
        "List audit records (?after=ID&limit=N)",
        None,
        true,
    ),
    (
        "get",
        "/api/v1/globalconf/status",
        "Newest published configuration version",
        None,
        true,
    ),
    (
        "post",
        "/api/v1/globalconf/publish",
        "Publish a new configuration version now",
        None,
        true,
    ),
];

/// The OpenAPI document.
pub(crate) fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for &(method, path, summary, body, protected) in OPERATIONS {
        let mut operation = json!({
            "summary": summary,
            "responses": {
                "200": {"description": "OK"},
                "400": {"description": "Bad request", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "401": {"description": "No or unknown token"},
                "403": {"description": "Role does not allow this"},
                "413": {"description": "Body too large"}
            }
        });
        if protected {
            operation["security"] = json!([{"bearer": []}]);
        }
        if let Some(schema) = body {
            operation["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
            });
        }
        let parameters: Vec<Value> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        paths
            .entry(path.to_owned())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|item| item.insert(method.to_owned(), operation));
    }
    let string = json!({"type": "string"});
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "lienthong central registry",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Members, gateways, groups, trusted CAs and TSAs of a lienthong federation, and its signed global configuration. Every admin call is audited."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["type", "message", "detail"], "properties": {"type": string, "message": string, "detail": string}},
                "NewMember": {"type": "object", "additionalProperties": false, "required": ["id", "name"], "properties": {"id": {"type": "string", "example": "VN/GOV/000123"}, "name": string}},
                "NewSubsystem": {"type": "object", "additionalProperties": false, "required": ["code"], "properties": {"code": string}},
                "NewGroup": {"type": "object", "additionalProperties": false, "required": ["id", "description"], "properties": {"id": {"type": "string", "example": "VN/health-agencies"}, "description": string}},
                "GroupMember": {"type": "object", "additionalProperties": false, "required": ["client"], "properties": {"client": string}},
                "ApprovedCa": {"type": "object", "additionalProperties": false, "required": ["name", "certificate", "ocsp_urls"], "properties": {"name": string, "certificate": {"type": "string", "description": "base64 DER"}, "ocsp_urls": {"type": "array", "items": string}}},
                "ApprovedTsa": {"type": "object", "additionalProperties": false, "required": ["name", "url", "certificate"], "properties": {"name": string, "url": string, "certificate": {"type": "string", "description": "base64 DER"}}},
                "PolicyDocument": {"type": "object", "additionalProperties": false, "required": ["policy", "revision"], "properties": {"policy": {"type": "object"}, "revision": {"type": "integer"}}},
                "NewToken": {"type": "object", "additionalProperties": false, "required": ["name", "role"], "properties": {"name": string, "role": {"type": "string", "enum": ["registry_officer", "read_only"]}}},
                "SignedRegistration": {"type": "object", "additionalProperties": false, "required": ["request", "signature"], "properties": {"request": {"type": "object"}, "signature": string}}
            }
        }
    })
}
