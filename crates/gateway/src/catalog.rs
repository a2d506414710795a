//! The provider side's catalog: the services this gateway publishes, the access rights on
//! them and the local groups those rights may name.
//!
//! The catalog lives in the store (objects of kinds `gw.service`, `gw.grant` and
//! `gw.localgroup`) and, for the exchange path, in memory as an immutable snapshot
//! behind an `Arc`: a request clones the `Arc` and never touches the store. Every change is
//! written to the store first and then the snapshot is rebuilt from the store, so memory
//! never holds something the store does not. Gateways sharing a PostgreSQL store pick up
//! each other's changes with [`ServiceCatalog::reload`].
//!
//! Access is denied by default: a request is allowed only when a grant names its service,
//! its subject contains the client, and its endpoint (if any) matches the request; see
//! [`glob`] for how endpoint patterns match.

pub mod glob;
mod openapi;

use lienthong_model::conf::GlobalConf;
use lienthong_model::gateway::ValidationError;
use lienthong_model::gateway::{Endpoint, Grant, GrantSubject, LocalGroup, Service};
use lienthong_model::{ClientId, SubsystemId};
use lienthong_store::{Store, StoreError, StoredObject};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

#[cfg(test)]
pub(crate) use openapi::HIDDEN_SERVER;
pub(crate) use openapi::{anonymise as anonymise_openapi, parse as parse_openapi};

/// Store kind of services; id `PROVIDER/CODE`.
pub const SERVICE_KIND: &str = "gw.service";
/// Store kind of grants; id `SERVICE SUBJECT-KIND SUBJECT[ METHOD PATH]`.
pub const GRANT_KIND: &str = "gw.grant";
/// Store kind of local groups; id `OWNER/CODE`.
pub const LOCAL_GROUP_KIND: &str = "gw.localgroup";
/// Read-modify-write attempts before giving up on a busy object.
const ATTEMPTS: usize = 16;

/// A catalog operation failed. [`CatalogError::is_client_error`] says whose fault it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// A field breaks a rule.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The request is wrong in another way (a reserved code, an unusable OpenAPI document, a
    /// grant on a service or local group that does not exist).
    #[error("{0}")]
    BadRequest(String),
    /// The object does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The object already exists, or kept changing under us.
    #[error("{0}")]
    Conflict(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A value could not be encoded for the store.
    #[error("cannot encode a catalog object: {0}")]
    Encode(#[from] serde_json::Error),
}

impl CatalogError {
    /// True when the caller's request is at fault (not the gateway).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Self::Store(_) | Self::Encode(_))
    }
}

/// The catalog. Cheap to clone; clones share the snapshot.
#[derive(Debug, Clone)]
pub struct ServiceCatalog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Serialises rebuilds so that an older rebuild can never replace a newer one.
    rebuild: tokio::sync::Mutex<()>,
}

/// The catalog at one moment, immutable.
#[derive(Debug, Default)]
struct Snapshot {
    /// Provider → service code → service and its grants.
    services: HashMap<SubsystemId, BTreeMap<String, Entry>>,
    /// Owner → code → local group.
    local_groups: HashMap<SubsystemId, BTreeMap<String, Arc<LocalGroup>>>,
}

#[derive(Debug)]
struct Entry {
    service: Arc<Service>,
    grants: Vec<Grant>,
}

impl ServiceCatalog {
    /// Load the catalog from `store`.
    pub async fn load(store: Store) -> Result<Self, CatalogError> {
        let catalog = Self {
            inner: Arc::new(Inner {
                store,
                snapshot: RwLock::new(Arc::default()),
                rebuild: tokio::sync::Mutex::new(()),
            }),
        };
        catalog.reload().await?;
        Ok(catalog)
    }

    /// Rebuild the snapshot from the store (after a change, or to pick up another gateway
    /// node's changes).
    pub async fn reload(&self) -> Result<(), CatalogError> {
        let _rebuilding = self.inner.rebuild.lock().await;
        let registry = self.inner.store.registry();
        let services = registry.objects(SERVICE_KIND).await?;
        let grants = registry.objects(GRANT_KIND).await?;
        let groups = registry.objects(LOCAL_GROUP_KIND).await?;
        let snapshot = Snapshot::build(&services, &grants, &groups);
        *self
            .inner
            .snapshot
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(snapshot);
        Ok(())
    }

    /// The current snapshot (one `Arc` clone).
    fn snapshot(&self) -> Arc<Snapshot> {
        // The lock only guards the swap of an `Arc`; a panic elsewhere cannot leave it torn.
        self.inner
            .snapshot
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The store the catalog lives in.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// One service.
    pub fn service(&self, provider: &SubsystemId, code: &str) -> Option<Arc<Service>> {
        self.snapshot()
            .entry(provider, code)
            .map(|e| e.service.clone())
    }

    /// The services of a provider, by code.
    pub fn services_of(&self, provider: &SubsystemId) -> Vec<Arc<Service>> {
        self.snapshot()
            .services
            .get(provider)
            .map(|codes| codes.values().map(|e| e.service.clone()).collect())
            .unwrap_or_default()
    }

    /// Every service, by provider and code.
    pub fn services(&self) -> Vec<Arc<Service>> {
        let snapshot = self.snapshot();
        let mut services: Vec<_> = snapshot
            .services
            .values()
            .flat_map(|codes| codes.values().map(|e| e.service.clone()))
            .collect();
        services.sort_by(|a, b| (&a.provider, &a.code).cmp(&(&b.provider, &b.code)));
        services
    }

    /// Every grant, by service.
    pub fn grants(&self) -> Vec<Grant> {
        let snapshot = self.snapshot();
        let mut grants: Vec<Grant> = snapshot
            .services
            .values()
            .flat_map(|codes| codes.values().flat_map(|e| e.grants.iter().cloned()))
            .collect();
        grants.sort_by_key(grant_key);
        grants
    }

    /// Every local group, by owner and code.
    pub fn local_groups(&self) -> Vec<Arc<LocalGroup>> {
        let snapshot = self.snapshot();
        let mut groups: Vec<_> = snapshot
            .local_groups
            .values()
            .flat_map(|codes| codes.values().cloned())
            .collect();
        groups.sort_by(|a, b| (&a.owner, &a.code).cmp(&(&b.owner, &b.code)));
        groups
    }

    /// May `client` call `method path` on `service`? Denied unless a grant on the service
    /// names the client (directly, through a global group of `conf`, or through a local group
    /// of the provider) and its endpoint is absent (whole service) or matches.
    pub fn is_allowed(
        &self,
        client: &ClientId,
        service: &Service,
        method: &str,
        path: &str,
        conf: &GlobalConf,
    ) -> bool {
        let snapshot = self.snapshot();
        let Some(entry) = snapshot.entry(&service.provider, &service.code) else {
            return false;
        };
        entry.grants.iter().any(|grant| {
            grant
                .endpoint
                .as_ref()
                .is_none_or(|e| glob::endpoint_matches(e, method, path))
                && snapshot.subject_contains(&grant.subject, &service.provider, client, conf)
        })
    }

    /// The services of `provider` that `client` may call, each with the endpoints open to it:
    /// the service's endpoints for a whole-service grant (`* /**` when it declares none),
    /// otherwise the granted endpoint patterns. Services with no grant for the client are
    /// left out. This is `allowedMethods`.
    pub fn allowed_endpoints(
        &self,
        client: &ClientId,
        provider: &SubsystemId,
        conf: &GlobalConf,
    ) -> Vec<(Arc<Service>, Vec<Endpoint>)> {
        let snapshot = self.snapshot();
        let Some(codes) = snapshot.services.get(provider) else {
            return Vec::new();
        };
        let mut allowed = Vec::new();
        for entry in codes.values() {
            let mut whole = false;
            let mut endpoints = Vec::new();
            for grant in &entry.grants {
                if !snapshot.subject_contains(&grant.subject, provider, client, conf) {
                    continue;
                }
                match &grant.endpoint {
                    None => whole = true,
                    Some(endpoint) => endpoints.push(endpoint.clone()),
                }
            }
            if whole {
                endpoints = declared_or_any(&entry.service);
            } else {
                endpoints.sort_by(|a, b| (&a.path, &a.method).cmp(&(&b.path, &b.method)));
                endpoints.dedup();
            }
            if whole || !endpoints.is_empty() {
                allowed.push((entry.service.clone(), endpoints));
            }
        }
        allowed
    }

    /// Publish a service. With an OpenAPI document, its endpoints are derived from the
    /// document's paths (`{parameter}` → `*`); `endpoints` must then be empty or the same.
    pub async fn add_service(&self, mut service: Service) -> Result<Arc<Service>, CatalogError> {
        if crate::meta::METASERVICES.contains(&service.code.as_str())
            || service.code == "listClients"
        {
            return Err(CatalogError::BadRequest(format!(
                "service code {:?} is reserved for a metaservice",
                service.code
            )));
        }
        if let Some(text) = &service.openapi {
            let derived = openapi::endpoints(&openapi::parse(text)?)?;
            if !service.endpoints.is_empty() && !same_set(&service.endpoints, &derived) {
                return Err(CatalogError::BadRequest(
                    "endpoints come from the OpenAPI document: omit \"endpoints\"".into(),
                ));
            }
            service.endpoints = derived;
        }
        service.validate()?;
        let id = service_key(&service.provider, &service.code);
        // Grants left behind by a removed service of the same id must not come back to life.
        self.delete_grants_of(&id).await?;
        self.insert(SERVICE_KIND, &id, &service, "service").await?;
        self.reload().await?;
        Ok(Arc::new(service))
    }

    /// Withdraw a service and every grant on it.
    pub async fn remove_service(
        &self,
        provider: &SubsystemId,
        code: &str,
    ) -> Result<(), CatalogError> {
        let id = service_key(provider, code);
        let existed = self
            .inner
            .store
            .registry()
            .delete_object(SERVICE_KIND, &id)
            .await?;
        self.delete_grants_of(&id).await?;
        self.reload().await?;
        if existed {
            Ok(())
        } else {
            Err(CatalogError::NotFound(format!("service {id}")))
        }
    }

    /// Add an access right; false if it already existed. The service (and a named local
    /// group) must exist.
    pub async fn grant(&self, grant: Grant) -> Result<bool, CatalogError> {
        grant.validate()?;
        let registry = self.inner.store.registry();
        let service = grant.service.to_string();
        if registry.object(SERVICE_KIND, &service).await?.is_none() {
            return Err(CatalogError::BadRequest(format!(
                "service {service} does not exist"
            )));
        }
        if let GrantSubject::LocalGroup(code) = &grant.subject {
            let group = format!("{}/{code}", grant.service.provider());
            if registry.object(LOCAL_GROUP_KIND, &group).await?.is_none() {
                return Err(CatalogError::BadRequest(format!(
                    "local group {group} does not exist"
                )));
            }
        }
        let added = match registry
            .insert_object(GRANT_KIND, &grant_key(&grant), &to_json(&grant)?)
            .await
        {
            Ok(()) => true,
            Err(StoreError::Duplicate { .. }) => false,
            Err(other) => return Err(other.into()),
        };
        self.reload().await?;
        Ok(added)
    }

    /// Remove an access right; false if there was no such grant.
    pub async fn revoke(&self, grant: &Grant) -> Result<bool, CatalogError> {
        let removed = self
            .inner
            .store
            .registry()
            .delete_object(GRANT_KIND, &grant_key(grant))
            .await?;
        self.reload().await?;
        Ok(removed)
    }

    /// Create a local group (members are sorted and deduplicated).
    pub async fn add_local_group(
        &self,
        mut group: LocalGroup,
    ) -> Result<Arc<LocalGroup>, CatalogError> {
        group.validate()?;
        group.members.sort();
        group.members.dedup();
        let id = format!("{}/{}", group.owner, group.code);
        self.insert(LOCAL_GROUP_KIND, &id, &group, "local group")
            .await?;
        self.reload().await?;
        Ok(Arc::new(group))
    }

    /// Add a client to a local group (no change if it is already a member).
    pub async fn add_local_group_member(
        &self,
        owner: &SubsystemId,
        code: &str,
        client: ClientId,
    ) -> Result<Arc<LocalGroup>, CatalogError> {
        let id = format!("{owner}/{code}");
        let registry = self.inner.store.registry();
        for _ in 0..ATTEMPTS {
            let object = registry
                .object(LOCAL_GROUP_KIND, &id)
                .await?
                .ok_or_else(|| CatalogError::NotFound(format!("local group {id}")))?;
            let mut group: LocalGroup = parse(&object)?;
            if let Err(position) = group.members.binary_search(&client) {
                group.members.insert(position, client.clone());
            }
            match registry
                .update_object(LOCAL_GROUP_KIND, &id, &to_json(&group)?, object.revision)
                .await
            {
                Ok(_) => {
                    self.reload().await?;
                    return Ok(Arc::new(group));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(CatalogError::Conflict(format!(
            "local group {id} is being changed concurrently; try again"
        )))
    }

    async fn insert<T: Serialize>(
        &self,
        kind: &str,
        id: &str,
        value: &T,
        what: &str,
    ) -> Result<(), CatalogError> {
        match self
            .inner
            .store
            .registry()
            .insert_object(kind, id, &to_json(value)?)
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::Duplicate { .. }) => Err(CatalogError::Conflict(format!(
                "{what} {id} already exists"
            ))),
            Err(other) => Err(other.into()),
        }
    }

    async fn delete_grants_of(&self, service: &str) -> Result<(), CatalogError> {
        let registry = self.inner.store.registry();
        let prefix = format!("{service} ");
        for object in registry.objects(GRANT_KIND).await? {
            if object.id.starts_with(&prefix) {
                registry.delete_object(GRANT_KIND, &object.id).await?;
            }
        }
        Ok(())
    }
}

impl Snapshot {
    /// Build from stored objects. An object that does not parse or validate is left out and
    /// logged: leaving out a service, grant or group can only deny more, never allow more.
    fn build(services: &[StoredObject], grants: &[StoredObject], groups: &[StoredObject]) -> Self {
        let mut snapshot = Self::default();
        for service in services.iter().filter_map(valid::<Service>) {
            snapshot
                .services
                .entry(service.provider.clone())
                .or_default()
                .insert(
                    service.code.clone(),
                    Entry {
                        service: Arc::new(service),
                        grants: Vec::new(),
                    },
                );
        }
        for grant in grants.iter().filter_map(valid::<Grant>) {
            let service = &grant.service;
            match snapshot
                .services
                .get_mut(service.provider())
                .and_then(|codes| codes.get_mut(service.code()))
            {
                Some(entry) => entry.grants.push(grant),
                None => {
                    tracing::warn!(%service, "ignoring a grant on a service that does not exist")
                }
            }
        }
        for group in groups.iter().filter_map(valid::<LocalGroup>) {
            snapshot
                .local_groups
                .entry(group.owner.clone())
                .or_default()
                .insert(group.code.clone(), Arc::new(group));
        }
        snapshot
    }

    fn entry(&self, provider: &SubsystemId, code: &str) -> Option<&Entry> {
        self.services.get(provider)?.get(code)
    }

    /// Is `client` the subject, or in it? Members and subsystems are distinct clients: a
    /// grant to a member does not cover its subsystems.
    fn subject_contains(
        &self,
        subject: &GrantSubject,
        provider: &SubsystemId,
        client: &ClientId,
        conf: &GlobalConf,
    ) -> bool {
        match (subject, client) {
            (GrantSubject::Subsystem(s), ClientId::Subsystem(c)) => s == c,
            (GrantSubject::Member(m), ClientId::Member(c)) => m == c,
            (GrantSubject::Subsystem(_) | GrantSubject::Member(_), _) => false,
            (GrantSubject::GlobalGroup(id), _) => conf
                .global_groups
                .iter()
                .any(|g| &g.id == id && g.members.contains(client)),
            (GrantSubject::LocalGroup(code), _) => self
                .local_groups
                .get(provider)
                .and_then(|groups| groups.get(code))
                .is_some_and(|g| g.members.contains(client)),
        }
    }
}

/// Parse and validate a stored object; log and skip it when it is not usable.
fn valid<T: DeserializeOwned + Validate>(object: &StoredObject) -> Option<T> {
    match parse::<T>(object) {
        Ok(value) => match value.check() {
            Ok(()) => Some(value),
            Err(error) => {
                tracing::error!(kind = %object.kind, id = %object.id, %error, "ignoring an invalid stored object");
                None
            }
        },
        Err(error) => {
            tracing::error!(%error, "ignoring an unreadable stored object");
            None
        }
    }
}

trait Validate {
    fn check(&self) -> Result<(), ValidationError>;
}

impl Validate for Service {
    fn check(&self) -> Result<(), ValidationError> {
        self.validate()
    }
}

impl Validate for Grant {
    fn check(&self) -> Result<(), ValidationError> {
        self.validate()
    }
}

impl Validate for LocalGroup {
    fn check(&self) -> Result<(), ValidationError> {
        self.validate()
    }
}

fn parse<T: DeserializeOwned>(object: &StoredObject) -> Result<T, StoreError> {
    serde_json::from_str(&object.body)
        .map_err(|e| StoreError::Corrupt(format!("{} {}: {e}", object.kind, object.id)))
}

fn to_json<T: Serialize>(value: &T) -> Result<String, CatalogError> {
    Ok(serde_json::to_string(value)?)
}

fn service_key(provider: &SubsystemId, code: &str) -> String {
    format!("{provider}/{code}")
}

/// The store id of a grant: readable, and equal for equal grants (no part has a space).
fn grant_key(grant: &Grant) -> String {
    match &grant.endpoint {
        None => format!("{} {}", grant.service, grant.subject),
        Some(e) => format!(
            "{} {} {} {}",
            grant.service, grant.subject, e.method, e.path
        ),
    }
}

fn declared_or_any(service: &Service) -> Vec<Endpoint> {
    if service.endpoints.is_empty() {
        vec![Endpoint {
            method: "*".into(),
            path: "/**".into(),
        }]
    } else {
        service.endpoints.clone()
    }
}

fn same_set(a: &[Endpoint], b: &[Endpoint]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    a.dedup();
    b.sort();
    b.dedup();
    a == b
}
