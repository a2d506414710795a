//! X-Road's metaservices as pure functions: `listClients` (pr-meta 2, XML by default, JSON on
//! request), and the REST metaservices of a provider subsystem, `listMethods`,
//! `allowedMethods` and `getOpenAPI` (pr-mrest 4 and 5). The HTTP layer picks the function
//! and sends the [`MetaResponse`]; errors carry their X-Road type and HTTP status.

use crate::catalog::{ServiceCatalog, anonymise_openapi, parse_openapi};
use axum::http::StatusCode;
use lienthong_model::conf::GlobalConf;
use lienthong_model::gateway::{
    ClientEntry, ClientList, Endpoint, RestServiceDetails, RestServiceList, Service,
    XRoadIdentifier,
};
use lienthong_model::registry::ApiError;
use lienthong_model::{ClientId, SubsystemId};
use quick_xml::escape::escape;
use serde::Serialize;
use std::fmt::Write as _;

/// The REST metaservices a provider's gateway answers itself (as service codes under
/// `/r1/{provider subsystem}/`). `listClients` is not among them: it is called outside `/r1`.
pub const METASERVICES: [&str; 3] = ["listMethods", "allowedMethods", "getOpenAPI"];

/// `application/json`.
pub const JSON: &str = "application/json";
/// The content type of `listClients` in XML (pr-meta 2: `text/xml`).
pub const XML: &str = "text/xml; charset=utf-8";

const XROAD_NS: &str = "http://x-road.eu/xsd/xroad.xsd";
const IDENTIFIERS_NS: &str = "http://x-road.eu/xsd/identifiers";

/// A metaservice answer: content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaResponse {
    /// The `Content-Type` to send.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

/// A metaservice request the gateway cannot answer; the client's fault, so HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    /// `getOpenAPI` without `?serviceCode=`.
    #[error("missing serviceCode: call getOpenAPI?serviceCode=CODE")]
    MissingServiceCode,
    /// No such service at this provider.
    #[error("unknown service {0}")]
    UnknownService(String),
    /// The service has no OpenAPI description (a plain REST service).
    #[error("service {0} is not described by an OpenAPI document")]
    NoDescription(String),
}

impl MetaError {
    /// The X-Road error type, as X-Road's provider side reports it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MissingServiceCode => "Server.ServerProxy.InvalidRequest",
            Self::UnknownService(_) => "Server.ServerProxy.UnknownService",
            Self::NoDescription(_) => "Server.ServerProxy.InvalidServiceType",
        }
    }

    /// The HTTP status: always 400 (the request names something that is not there).
    pub fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }

    /// The X-Road REST error body `{type, message, detail}`.
    pub fn body(&self) -> ApiError {
        ApiError {
            kind: self.kind().to_owned(),
            message: self.to_string(),
            detail: String::new(),
        }
    }
}

/// Does an `Accept` header ask for JSON? (pr-meta 2: JSON when it is `application/json`.)
pub fn wants_json(accept: Option<&str>) -> bool {
    accept.is_some_and(|accept| {
        accept.split(',').any(|range| {
            range
                .split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case(JSON))
        })
    })
}

/// The members and subsystems of `instance` (default: the configuration's own), each member
/// followed by its subsystems, in identifier order.
pub fn client_list(conf: &GlobalConf, instance: Option<&str>) -> ClientList {
    let instance = instance.unwrap_or(&conf.instance);
    let mut member = Vec::new();
    for m in conf.members.iter().filter(|m| m.id.instance() == instance) {
        let entry = |client: &ClientId| ClientEntry {
            id: XRoadIdentifier::from(client),
            name: m.name.clone(),
        };
        member.push(entry(&ClientId::Member(m.id.clone())));
        for code in &m.subsystems {
            match SubsystemId::new(m.id.clone(), code) {
                Ok(subsystem) => member.push(entry(&ClientId::Subsystem(subsystem))),
                Err(error) => tracing::warn!(%error, "skipping a malformed subsystem code"),
            }
        }
    }
    ClientList { member }
}

/// `GET /listClients[?xRoadInstance=X]`: XML (`clientList` of pr-meta annex A) unless
/// `json`, then `{"member": [{"id": {...}, "name": ...}]}`.
pub fn list_clients(conf: &GlobalConf, instance_filter: Option<&str>, json: bool) -> MetaResponse {
    let list = client_list(conf, instance_filter);
    if json {
        return json_response(&list);
    }
    let mut xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><ns2:clientList xmlns:ns1="{IDENTIFIERS_NS}" xmlns:ns2="{XROAD_NS}">"#
    );
    for entry in &list.member {
        let id = &entry.id;
        // `write!` to a String cannot fail.
        let _ = write!(
            xml,
            r#"<ns2:member><ns2:id ns1:objectType="{}"><ns1:xRoadInstance>{}</ns1:xRoadInstance><ns1:memberClass>{}</ns1:memberClass><ns1:memberCode>{}</ns1:memberCode>"#,
            escape(id.object_type.as_str()),
            escape(id.xroad_instance.as_str()),
            escape(id.member_class.as_str()),
            escape(id.member_code.as_str()),
        );
        if let Some(subsystem) = &id.subsystem_code {
            let _ = write!(
                xml,
                "<ns1:subsystemCode>{}</ns1:subsystemCode>",
                escape(subsystem.as_str())
            );
        }
        let _ = write!(
            xml,
            "</ns2:id><ns2:name>{}</ns2:name></ns2:member>",
            escape(entry.name.as_str())
        );
    }
    xml.push_str("</ns2:clientList>");
    MetaResponse {
        content_type: XML,
        body: xml.into_bytes(),
    }
}

/// `listMethods` (JSON, [`RestServiceList`]): every service of `provider` with all its
/// endpoints (`* /**` for a service that declares none).
pub fn list_methods(catalog: &ServiceCatalog, provider: &SubsystemId) -> MetaResponse {
    let service = catalog
        .services_of(provider)
        .iter()
        .map(|s| {
            let endpoints = if s.endpoints.is_empty() {
                vec![any_endpoint()]
            } else {
                s.endpoints.clone()
            };
            details(s, endpoints)
        })
        .collect();
    json_response(&RestServiceList { service })
}

/// `allowedMethods` (JSON, [`RestServiceList`]): the services of `provider` that `client` may call, with the endpoints
/// open to it (see [`ServiceCatalog::allowed_endpoints`]).
pub fn allowed_methods(
    catalog: &ServiceCatalog,
    provider: &SubsystemId,
    client: &ClientId,
    conf: &GlobalConf,
) -> MetaResponse {
    let service = catalog
        .allowed_endpoints(client, provider, conf)
        .into_iter()
        .map(|(s, endpoints)| details(&s, endpoints))
        .collect();
    json_response(&RestServiceList { service })
}

/// `getOpenAPI?serviceCode=X`: the service's OpenAPI document with every `servers` entry
/// replaced by a placeholder, so the backend's address stays private. JSON.
pub fn get_openapi(
    catalog: &ServiceCatalog,
    provider: &SubsystemId,
    service_code: Option<&str>,
) -> Result<MetaResponse, MetaError> {
    let code = service_code
        .filter(|code| !code.is_empty())
        .ok_or(MetaError::MissingServiceCode)?;
    let name = || format!("{provider}/{}", code.chars().take(255).collect::<String>());
    let service = catalog
        .service(provider, code)
        .ok_or_else(|| MetaError::UnknownService(name()))?;
    // Stored documents were parsed when the service was added; one that no longer parses is
    // reported as undescribed rather than sent half-anonymised.
    let document = service
        .openapi
        .as_deref()
        .and_then(|text| parse_openapi(text).ok())
        .ok_or_else(|| MetaError::NoDescription(name()))?;
    let document = serde_json::Value::Object(anonymise_openapi(document));
    Ok(MetaResponse {
        content_type: JSON,
        body: document.to_string().into_bytes(),
    })
}

fn any_endpoint() -> Endpoint {
    Endpoint {
        method: "*".into(),
        path: "/**".into(),
    }
}

fn details(service: &Service, endpoint_list: Vec<Endpoint>) -> RestServiceDetails {
    let member = service.provider.member();
    RestServiceDetails {
        object_type: "SERVICE".into(),
        xroad_instance: member.instance().into(),
        member_class: member.class().into(),
        member_code: member.code().into(),
        subsystem_code: service.provider.subsystem().into(),
        service_code: service.code.clone(),
        service_type: if service.openapi.is_some() {
            "OPENAPI"
        } else {
            "REST"
        }
        .into(),
        endpoint_list,
    }
}

fn json_response<T: Serialize>(value: &T) -> MetaResponse {
    MetaResponse {
        content_type: JSON,
        // Plain structs of strings: encoding cannot fail.
        body: serde_json::to_vec(value).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests;
