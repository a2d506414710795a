//! The registry's operations over the store. Every change is one store write (or a
//! read-modify-write retried on a revision conflict), so several registry nodes on one
//! PostgreSQL never lose an update; every change is followed by a new publication.

use crate::CentralError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use lienthong_crypto::{CryptoPolicy, Signature, Signer};
use lienthong_model::conf::{
    Anchor, ApprovedCa, ApprovedTsa, CONF_FORMAT, FederationPolicy, Gateway, GlobalConf,
    GlobalGroup, Member,
};
use lienthong_model::registry::{
    CreatedToken, NewGroup, NewMember, NewToken, Registration, RegistrationStatus, Role,
    SignedRegistration, TokenRecord,
};
use lienthong_model::{ClientId, GlobalGroupId, MemberId, SubsystemId};
use lienthong_pki::{CertificateInfo, FederationIdentity};
use lienthong_store::{ConfVersion, Store, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

const MEMBER: &str = "member";
const GATEWAY: &str = "gateway";
const GROUP: &str = "group";
const CA: &str = "ca";
const TSA: &str = "tsa";
const POLICY: &str = "policy";
const TOKEN: &str = "token";
const REGISTRATION: &str = "registration";
/// How far a registration's `signed_at` may be from the registry's clock.
const REGISTRATION_SKEW: i64 = 300;
/// Read-modify-write attempts before giving up on a busy object.
const ATTEMPTS: usize = 16;

/// The central registry.
#[derive(Debug, Clone)]
pub struct Registry {
    store: Store,
    instance: String,
    signers: Vec<Arc<dyn Signer>>,
}

impl Registry {
    /// A registry for `instance` on `store`, signing configurations with every key of
    /// `signers` (two during a key rotation).
    pub fn new(store: Store, instance: &str, signers: Vec<Arc<dyn Signer>>) -> Self {
        Self {
            store,
            instance: instance.to_owned(),
            signers,
        }
    }

    /// The federation instance.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// An anchor for this registry's signing keys.
    pub fn anchor(&self, download_urls: Vec<String>) -> Anchor {
        let keys: Vec<_> = self.signers.iter().map(|s| s.public_key()).collect();
        lienthong_conf::make_anchor(&self.instance, download_urls, &keys)
    }

    fn check_instance(&self, instance: &str) -> Result<(), CentralError> {
        if instance == self.instance {
            Ok(())
        } else {
            Err(CentralError::BadRequest(format!(
                "identifier belongs to instance {instance:?}; this registry is {:?}",
                self.instance
            )))
        }
    }

    // ----- members and subsystems -----

    /// Register a member.
    pub async fn add_member(&self, new: NewMember) -> Result<Member, CentralError> {
        self.check_instance(new.id.instance())?;
        if new.name.trim().is_empty() || new.name.len() > 512 {
            return Err(CentralError::BadRequest(
                "name must be 1 to 512 characters".into(),
            ));
        }
        let member = Member {
            id: new.id,
            name: new.name,
            subsystems: Vec::new(),
        };
        self.insert(MEMBER, &member.id.to_string(), &member).await?;
        Ok(member)
    }

    /// All members.
    pub async fn members(&self) -> Result<Vec<Member>, CentralError> {
        self.list(MEMBER).await
    }

    /// One member.
    pub async fn member(&self, id: &MemberId) -> Result<Member, CentralError> {
        self.get(MEMBER, &id.to_string()).await
    }

    /// Remove a member (its gateways and group memberships stay until removed).
    pub async fn delete_member(&self, id: &MemberId) -> Result<(), CentralError> {
        if self
            .store
            .registry()
            .delete_object(MEMBER, &id.to_string())
            .await?
        {
            Ok(())
        } else {
            Err(CentralError::NotFound(format!("member {id}")))
        }
    }

    /// Add a subsystem to a member.
    pub async fn add_subsystem(
        &self,
        member: &MemberId,
        code: &str,
    ) -> Result<Member, CentralError> {
        let subsystem = SubsystemId::new(member.clone(), code)?;
        self.modify(MEMBER, &member.to_string(), |m: &mut Member| {
            if m.subsystems.iter().any(|s| s == subsystem.subsystem()) {
                return Err(CentralError::Conflict(format!(
                    "subsystem {subsystem} already exists"
                )));
            }
            m.subsystems.push(subsystem.subsystem().to_owned());
            m.subsystems.sort();
            Ok(())
        })
        .await
    }

    async fn check_client_exists(&self, client: &ClientId) -> Result<(), CentralError> {
        let member = self
            .get::<Member>(MEMBER, &client.member().to_string())
            .await
            .map_err(|_| {
                CentralError::BadRequest(format!("member {} is not registered", client.member()))
            })?;
        if let ClientId::Subsystem(s) = client
            && !member.subsystems.iter().any(|code| code == s.subsystem())
        {
            return Err(CentralError::BadRequest(format!(
                "subsystem {s} is not registered"
            )));
        }
        Ok(())
    }

    // ----- global groups -----

    /// Create a global group.
    pub async fn add_group(&self, new: NewGroup) -> Result<GlobalGroup, CentralError> {
        self.check_instance(new.id.instance())?;
        let group = GlobalGroup {
            id: new.id,
            description: new.description,
            members: Vec::new(),
        };
        self.insert(GROUP, &group.id.to_string(), &group).await?;
        Ok(group)
    }

    /// All global groups.
    pub async fn groups(&self) -> Result<Vec<GlobalGroup>, CentralError> {
        self.list(GROUP).await
    }

    /// Add a registered member or subsystem to a group.
    pub async fn add_group_member(
        &self,
        group: &GlobalGroupId,
        client: ClientId,
    ) -> Result<GlobalGroup, CentralError> {
        self.check_client_exists(&client).await?;
        self.modify(GROUP, &group.to_string(), |g: &mut GlobalGroup| {
            if !g.members.contains(&client) {
                g.members.push(client.clone());
                g.members.sort();
            }
            Ok(())
        })
        .await
    }

    // ----- trust services -----

    /// Approve a CA: its certificate (base64 DER) must be a CA certificate.
    pub async fn add_ca(&self, ca: ApprovedCa) -> Result<ApprovedCa, CentralError> {
        let certificate = decode_certificate(&ca.certificate)?;
        certificate
            .verify_signed_by(&certificate.public_key)
            .map_err(|_| {
                CentralError::BadRequest("the CA certificate must be a self-signed root".into())
            })?;
        self.policy_check_key(&certificate).await?;
        if ca.name.trim().is_empty() || ca.name.contains('/') {
            return Err(CentralError::BadRequest(
                "name must be non-empty and contain no '/'".into(),
            ));
        }
        self.insert(CA, &ca.name, &ca).await?;
        Ok(ca)
    }

    /// Approved CAs.
    pub async fn cas(&self) -> Result<Vec<ApprovedCa>, CentralError> {
        self.list(CA).await
    }

    /// Approve a TSA.
    pub async fn add_tsa(&self, tsa: ApprovedTsa) -> Result<ApprovedTsa, CentralError> {
        let certificate = decode_certificate(&tsa.certificate)?;
        self.policy_check_key(&certificate).await?;
        if tsa.name.trim().is_empty() || tsa.name.contains('/') {
            return Err(CentralError::BadRequest(
                "name must be non-empty and contain no '/'".into(),
            ));
        }
        if !(tsa.url.starts_with("http://") || tsa.url.starts_with("https://")) {
            return Err(CentralError::BadRequest(
                "url must be http:// or https://".into(),
            ));
        }
        self.insert(TSA, &tsa.name, &tsa).await?;
        Ok(tsa)
    }

    /// Approved TSAs.
    pub async fn tsas(&self) -> Result<Vec<ApprovedTsa>, CentralError> {
        self.list(TSA).await
    }

    async fn policy_check_key(&self, certificate: &CertificateInfo) -> Result<(), CentralError> {
        let (policy, _) = self.policy().await?;
        let crypto = CryptoPolicy::by_name(&policy.crypto_policy).ok_or_else(|| {
            CentralError::Config(format!("unknown crypto policy {:?}", policy.crypto_policy))
        })?;
        crypto
            .check_key(&certificate.public_key)
            .map_err(|e| CentralError::BadRequest(e.to_string()))
    }

    // ----- policy -----

    /// The policy values and their revision (0 when never set).
    pub async fn policy(&self) -> Result<(FederationPolicy, i64), CentralError> {
        match self.store.registry().object(POLICY, "federation").await? {
            Some(object) => Ok((parse(&object.body)?, object.revision)),
            None => Ok((FederationPolicy::default(), 0)),
        }
    }

    /// Replace the policy values if they are still at `revision` (optimistic concurrency).
    pub async fn set_policy(
        &self,
        policy: FederationPolicy,
        revision: i64,
    ) -> Result<i64, CentralError> {
        if CryptoPolicy::by_name(&policy.crypto_policy).is_none() {
            return Err(CentralError::BadRequest(format!(
                "crypto_policy {:?} is unknown (use vn or international)",
                policy.crypto_policy
            )));
        }
        if policy.conf_expiry_seconds < 60 || policy.ocsp_freshness_seconds < 60 {
            return Err(CentralError::BadRequest(
                "expiry and freshness must be at least 60 seconds".into(),
            ));
        }
        let body = to_json(&policy)?;
        if revision == 0 {
            self.store
                .registry()
                .insert_object(POLICY, "federation", &body)
                .await?;
            return Ok(1);
        }
        Ok(self
            .store
            .registry()
            .update_object(POLICY, "federation", &body, revision)
            .await?)
    }

    // ----- gateways and registration -----

    /// Registered gateways.
    pub async fn gateways(&self) -> Result<Vec<Gateway>, CentralError> {
        self.list(GATEWAY).await
    }

    /// Change where a registered gateway is reached, e.g. to list every node of a cluster
    /// (`host:port,host:port`); effective in the next published configuration.
    pub async fn set_gateway_address(
        &self,
        id: &lienthong_model::ServerId,
        address: &str,
    ) -> Result<Gateway, CentralError> {
        check_address(address)?;
        self.modify(GATEWAY, &id.to_string(), |g: &mut Gateway| {
            g.address = address.to_owned();
            Ok(())
        })
        .await
    }

    /// Accept a gateway's registration request after checking its proof of possession of
    /// the auth key and that the auth certificate comes from an approved CA.
    pub async fn submit_registration(
        &self,
        signed: SignedRegistration,
        now: i64,
    ) -> Result<Registration, CentralError> {
        let request = &signed.request;
        let bad =
            |reason: String| CentralError::BadRequest(format!("registration refused: {reason}"));
        self.check_instance(request.server.owner().instance())?;
        if (now - request.signed_at).abs() > REGISTRATION_SKEW {
            return Err(bad(
                "signed_at is more than five minutes from the registry's clock".into(),
            ));
        }
        check_address(&request.address).map_err(|e| bad(e.to_string()))?;
        let certificate = decode_certificate(&request.auth_certificate)?;
        if certificate.identity != Some(FederationIdentity::Server(request.server.clone())) {
            return Err(bad(format!(
                "the auth certificate is not for gateway {}",
                request.server
            )));
        }
        if now < certificate.not_before || now > certificate.not_after {
            return Err(bad("the auth certificate is not valid now".into()));
        }
        let mut issued_by_approved_ca = false;
        for ca in self.cas().await? {
            if let Ok(ca_certificate) = decode_certificate(&ca.certificate)
                && certificate
                    .verify_signed_by(&ca_certificate.public_key)
                    .is_ok()
            {
                issued_by_approved_ca = true;
                break;
            }
        }
        if !issued_by_approved_ca {
            return Err(bad(
                "the auth certificate was not issued by an approved CA".into()
            ));
        }
        self.policy_check_key(&certificate).await?;
        let signature =
            Signature::from_text(&signed.signature).map_err(|e| bad(format!("signature: {e}")))?;
        certificate
            .public_key
            .verify(&request.signing_bytes(), &signature)
            .map_err(|_| bad("the signature does not prove possession of the auth key".into()))?;
        self.member(request.server.owner()).await.map_err(|_| {
            bad(format!(
                "owner member {} is not registered",
                request.server.owner()
            ))
        })?;
        for client in &request.clients {
            self.check_client_exists(client).await?;
        }
        let sequence = self.store.pki().reserve("registration.id", 1).await?;
        let registration = Registration {
            id: format!("{sequence:010}"),
            status: RegistrationStatus::Pending,
            request: request.clone(),
            submitted_at: now,
            decided_by: None,
        };
        self.insert(REGISTRATION, &registration.id, &registration)
            .await?;
        Ok(registration)
    }

    /// All registration requests.
    pub async fn registrations(&self) -> Result<Vec<Registration>, CentralError> {
        self.list(REGISTRATION).await
    }

    /// Approve or reject a pending registration. Approval adds (or updates) the gateway.
    pub async fn decide_registration(
        &self,
        id: &str,
        approve: bool,
        officer: &str,
    ) -> Result<Registration, CentralError> {
        let decided = self
            .modify(REGISTRATION, id, |r: &mut Registration| {
                if r.status != RegistrationStatus::Pending {
                    return Err(CentralError::Conflict(format!(
                        "registration {id} was already decided"
                    )));
                }
                r.status = if approve {
                    RegistrationStatus::Approved
                } else {
                    RegistrationStatus::Rejected
                };
                r.decided_by = Some(officer.to_owned());
                Ok(())
            })
            .await?;
        if approve {
            let request = &decided.request;
            let certificate = decode_certificate(&request.auth_certificate)?;
            let hash: String = certificate
                .sha256()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let gateway = Gateway {
                id: request.server.clone(),
                address: request.address.clone(),
                auth_certificate_hashes: vec![hash.clone()],
                clients: request.clients.clone(),
            };
            let key = gateway.id.to_string();
            match self.insert(GATEWAY, &key, &gateway).await {
                Err(CentralError::Store(StoreError::Duplicate { .. })) => {
                    self.modify(GATEWAY, &key, |g: &mut Gateway| {
                        g.address = request.address.clone();
                        if !g.auth_certificate_hashes.contains(&hash) {
                            g.auth_certificate_hashes.push(hash.clone());
                        }
                        for client in &request.clients {
                            if !g.clients.contains(client) {
                                g.clients.push(client.clone());
                            }
                        }
                        Ok(())
                    })
                    .await?;
                }
                other => {
                    other?;
                }
            }
        }
        Ok(decided)
    }

    // ----- tokens -----

    /// Create an API token; the secret is returned once and only its hash is stored.
    pub async fn create_token(
        &self,
        new: NewToken,
        now: i64,
    ) -> Result<CreatedToken, CentralError> {
        if new.name.trim().is_empty() || new.name.len() > 128 {
            return Err(CentralError::BadRequest(
                "token name must be 1 to 128 characters".into(),
            ));
        }
        let mut secret = [0u8; 32];
        lienthong_crypto::fill_random(&mut secret)
            .map_err(|e| CentralError::Config(e.to_string()))?;
        let token = format!(
            "lt_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        );
        let record = TokenRecord {
            name: new.name.clone(),
            role: new.role,
            created_at: now,
            revoked_at: None,
        };
        self.insert(TOKEN, &crate::auth::hash_token(&token), &record)
            .await?;
        Ok(CreatedToken {
            name: new.name,
            role: new.role,
            token,
        })
    }

    /// The name and role of a bearer token, if it is known and not revoked.
    pub async fn authenticate(&self, token: &str) -> Result<Option<(String, Role)>, CentralError> {
        let Some(object) = self
            .store
            .registry()
            .object(TOKEN, &crate::auth::hash_token(token))
            .await?
        else {
            return Ok(None);
        };
        let record: TokenRecord = parse(&object.body)?;
        Ok(record
            .revoked_at
            .is_none()
            .then_some((record.name, record.role)))
    }

    // ----- the global configuration -----

    /// Build, sign and store a new configuration version.
    ///
    /// The version is reserved *before* the registry is read, so the highest version
    /// always reflects every change committed before any lower version was reserved:
    /// concurrent publications by several nodes cannot hide each other's changes.
    pub async fn publish(&self, now: i64) -> Result<ConfVersion, CentralError> {
        let version = self.store.pki().reserve("globalconf.version", 1).await?;
        let (policy, _) = self.policy().await?;
        let conf = GlobalConf {
            format: CONF_FORMAT.into(),
            instance: self.instance.clone(),
            version: u64::try_from(version).unwrap_or(0),
            generated_at: now,
            expires_at: now + i64::try_from(policy.conf_expiry_seconds).unwrap_or(600),
            members: self.members().await?,
            gateways: self.gateways().await?,
            global_groups: self.groups().await?,
            certificate_authorities: self.cas().await?,
            timestamp_authorities: self.tsas().await?,
            policy,
        };
        let signers: Vec<&dyn Signer> = self
            .signers
            .iter()
            .map(|s| s.as_ref() as &dyn Signer)
            .collect();
        let envelope = lienthong_conf::sign(&conf, &signers)?;
        let stored = ConfVersion {
            version,
            generated_at: conf.generated_at,
            expires_at: conf.expires_at,
            envelope,
        };
        self.store.registry().insert_conf_version(&stored).await?;
        tracing::info!(version, "published global configuration");
        Ok(stored)
    }

    /// The newest published configuration.
    pub async fn latest(&self) -> Result<Option<ConfVersion>, CentralError> {
        Ok(self.store.registry().latest_conf_version().await?)
    }

    // ----- object helpers -----

    async fn insert<T: Serialize>(
        &self,
        kind: &str,
        id: &str,
        value: &T,
    ) -> Result<(), CentralError> {
        self.store
            .registry()
            .insert_object(kind, id, &to_json(value)?)
            .await
            .map_err(|e| match e {
                StoreError::Duplicate { .. } => CentralError::Store(StoreError::Duplicate {
                    what: format!("{kind} {id}"),
                }),
                other => other.into(),
            })
    }

    async fn get<T: DeserializeOwned>(&self, kind: &str, id: &str) -> Result<T, CentralError> {
        let object = self
            .store
            .registry()
            .object(kind, id)
            .await?
            .ok_or_else(|| CentralError::NotFound(format!("{kind} {id}")))?;
        parse(&object.body)
    }

    async fn list<T: DeserializeOwned>(&self, kind: &str) -> Result<Vec<T>, CentralError> {
        self.store
            .registry()
            .objects(kind)
            .await?
            .iter()
            .map(|o| parse(&o.body))
            .collect()
    }

    /// Read-modify-write with the revision as a guard, retried on conflict.
    async fn modify<T: Serialize + DeserializeOwned>(
        &self,
        kind: &str,
        id: &str,
        mut change: impl FnMut(&mut T) -> Result<(), CentralError>,
    ) -> Result<T, CentralError> {
        for _ in 0..ATTEMPTS {
            let object = self
                .store
                .registry()
                .object(kind, id)
                .await?
                .ok_or_else(|| CentralError::NotFound(format!("{kind} {id}")))?;
            let mut value: T = parse(&object.body)?;
            change(&mut value)?;
            match self
                .store
                .registry()
                .update_object(kind, id, &to_json(&value)?, object.revision)
                .await
            {
                Ok(_) => return Ok(value),
                Err(StoreError::Conflict { .. }) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(CentralError::Conflict(format!(
            "{kind} {id} is being changed concurrently; try again"
        )))
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String, CentralError> {
    serde_json::to_string(value).map_err(|e| CentralError::Config(format!("cannot encode: {e}")))
}

fn parse<T: DeserializeOwned>(body: &str) -> Result<T, CentralError> {
    serde_json::from_str(body)
        .map_err(|e| CentralError::Store(StoreError::Corrupt(format!("registry object: {e}"))))
}

fn decode_certificate(base64_der: &str) -> Result<CertificateInfo, CentralError> {
    let der = STANDARD
        .decode(base64_der.trim())
        .map_err(|_| CentralError::BadRequest("certificate must be base64 DER".into()))?;
    CertificateInfo::from_der(&der).map_err(|e| CentralError::BadRequest(e.to_string()))
}

/// A gateway's address: `host:port`, or one per node of a cluster, separated by commas.
fn check_address(address: &str) -> Result<(), CentralError> {
    let node_ok = |node: &str| node.contains(':') && !node.contains(char::is_whitespace);
    if address.is_empty() || address.len() > 1024 || !address.split(',').all(node_ok) {
        return Err(CentralError::BadRequest(
            "address must be host:port, or host:port,host:port,... for the nodes of a cluster"
                .into(),
        ));
    }
    Ok(())
}
