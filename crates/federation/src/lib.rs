//! A whole federation on loopback, set up through the real code paths — PKI (CA, OCSP,
//! TSA), central registry, a client agency's gateway and a provider agency's gateway (keys,
//! CSRs, certificates, signed registration, approval, configuration download), a sample
//! citizen-registry service, its registration and an access grant. `lienthong demo` runs
//! it; the end-to-end tests start it in process and reach into its parts.

use anyhow::{Context as _, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use lienthong_central::Registry;
use lienthong_crypto::{KeyStore, Signer, Suite};
use lienthong_model::registry::{NewToken, RegistrationRequest, Role, SignedRegistration};
use lienthong_pki::Profile;
use lienthong_store::Store;
use lienthong_trust::server::TrustServices;
use lienthong_trust::{Authority, InitOptions, IssueOptions};
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub const INSTANCE: &str = "VN";
pub const CLIENT_MEMBER: &str = "VN/GOV/000101";
pub const CLIENT_SUBSYSTEM: &str = "VN/GOV/000101/case-management";
pub const UNAUTHORIZED_SUBSYSTEM: &str = "VN/GOV/000101/unauthorized-app";
/// A local client that must connect over mutual TLS with its registered certificate.
pub const MTLS_SUBSYSTEM: &str = "VN/GOV/000101/secure-app";
pub const PROVIDER_MEMBER: &str = "VN/GOV/000202";
pub const PROVIDER_SUBSYSTEM: &str = "VN/GOV/000202/citizen-registry";
pub const SERVICE_CODE: &str = "persons";
const MARKER: &str = ".lienthong-demo";

/// The identifiers the federation uses.
pub mod ids {
    pub use super::{
        CLIENT_MEMBER, CLIENT_SUBSYSTEM, MTLS_SUBSYSTEM, PROVIDER_MEMBER, PROVIDER_SUBSYSTEM,
        SERVICE_CODE, UNAUTHORIZED_SUBSYSTEM,
    };
}

/// How to start.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Directory for everything the federation creates (recreated if it holds a demo).
    pub dir: PathBuf,
    /// Use ports N, N+1, ... instead of free ones.
    pub port_base: Option<u16>,
    /// The key passphrase; generated (and written to DIR/passphrase.txt) if `None`.
    pub passphrase: Option<Vec<u8>>,
    /// DANGEROUS: encrypt keys with a cheap KDF (tests only).
    pub dangerous_fast_kdf: bool,
}

/// A running federation.
pub struct Federation {
    /// The directory.
    pub dir: PathBuf,
    /// The key passphrase.
    pub passphrase: Vec<u8>,
    /// `endpoints.json` as written.
    pub endpoints: serde_json::Value,
    /// The PKI directory (revoke certificates here).
    pub authority: Authority,
    /// The central registry.
    pub registry: Arc<Registry>,
    /// The two gateways: client agency's, provider agency's.
    pub gateways: Vec<Arc<lienthong_gateway::Gateway>>,
    /// Requests the sample provider system has answered.
    pub served: lienthong_sample::Counter,
    stop: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Federation {
    /// A string from endpoints.json.
    pub fn endpoint(&self, key: &str) -> String {
        self.endpoints[key].as_str().unwrap_or_default().to_owned()
    }

    /// Stop every server (in-flight exchanges finish).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

struct Ports {
    pki: TcpListener,
    central: TcpListener,
    sample: TcpListener,
    client_gw: [TcpListener; 3],
    client_gw_tls: TcpListener,
    provider_gw: [TcpListener; 3],
}

async fn listen(base: Option<u16>, offset: u16) -> anyhow::Result<TcpListener> {
    let port = base.map_or(0, |b| b + offset);
    TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("listen on 127.0.0.1:{port}"))
}

fn address(listener: &TcpListener) -> anyhow::Result<SocketAddr> {
    Ok(listener.local_addr()?)
}

/// Start the federation.
pub async fn start(options: Options) -> anyhow::Result<Federation> {
    start_inner(options, true).await
}

/// Start everything but the two gateways: trust services, registry, sample provider. Both
/// gateways are set up (keys, certificates, registration, `DIR/*/gateway.toml`) but left
/// for the caller to run, e.g. as separate `lienthong gateway serve` processes; their
/// ports are released for them. Once the provider's gateway runs, register the services
/// with [`register_services`]. `endpoints.json` lists the same URLs as [`start`].
pub async fn start_without_gateways(options: Options) -> anyhow::Result<Federation> {
    start_inner(options, false).await
}

async fn start_inner(options: Options, with_gateways: bool) -> anyhow::Result<Federation> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = prepare(&options.dir)?;
    let passphrase = match options.passphrase.clone() {
        Some(p) if !p.is_empty() => p,
        _ => {
            let mut bytes = [0u8; 24];
            lienthong_crypto::fill_random(&mut bytes)?;
            let generated = STANDARD.encode(bytes);
            write_private(&dir.join("passphrase.txt"), generated.as_bytes())?;
            generated.into_bytes()
        }
    };
    let b = options.port_base;
    let kdf = if options.dangerous_fast_kdf {
        lienthong_crypto::KdfParams::DANGEROUS_FAST_FOR_TESTS
    } else {
        lienthong_crypto::KdfParams::default()
    };
    let ports = Ports {
        pki: listen(b, 0).await?,
        central: listen(b, 1).await?,
        sample: listen(b, 2).await?,
        client_gw: [
            listen(b, 3).await?,
            listen(b, 4).await?,
            listen(b, 5).await?,
        ],
        provider_gw: [
            listen(b, 6).await?,
            listen(b, 7).await?,
            listen(b, 8).await?,
        ],
        client_gw_tls: listen(b, 9).await?,
    };
    let pki_url = format!("http://{}", address(&ports.pki)?);
    let client_tls_url = format!("https://{}", address(&ports.client_gw_tls)?);
    let central_url = format!("http://{}", address(&ports.central)?);
    let sample_url = format!("http://{}", address(&ports.sample)?);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };

    // 1. Trust services.
    println!("[1/7] PKI: root CA, OCSP responder and timestamp authority");
    let authority = Authority::init(
        &dir.join("pki"),
        &InitOptions {
            organisation: "Lien thong demo federation".into(),
            ocsp_url: Some(format!("{pki_url}/ocsp")),
            kdf,
            ..InitOptions::default()
        },
        &passphrase,
    )
    .await?;
    let trust_services = Arc::new(TrustServices::load(&authority, &passphrase).await?);
    tokio::spawn(lienthong_trust::server::run(
        ports.pki,
        trust_services,
        until_stopped(),
    ));
    let ca = authority.unlock_ca(&passphrase)?;

    // 2. Central registry.
    println!("[2/7] central registry on the embedded store");
    let central_dir = dir.join("central");
    let conf_key: Arc<dyn Signer> = Arc::new(
        KeyStore::new(central_dir.join("keys"))
            .with_kdf(kdf)
            .generate("conf-1", Suite::EcdsaP256Sha256, &passphrase)?,
    );
    let store = Store::open(&format!(
        "sqlite://{}",
        central_dir.join("registry.db").display()
    ))
    .await?;
    let registry = Arc::new(Registry::new(store, INSTANCE, vec![conf_key]));
    let officer = registry
        .create_token(
            NewToken {
                name: "demo-officer".into(),
                role: Role::RegistryOfficer,
            },
            unix_now(),
        )
        .await?
        .token;
    tokio::spawn(lienthong_central::run(
        ports.central,
        registry.clone(),
        Duration::from_secs(120),
        until_stopped(),
    ));
    let http = reqwest::Client::new();
    let api = |method: reqwest::Method, path: &str, body: serde_json::Value| {
        let request = http
            .request(method, format!("{central_url}{path}"))
            .bearer_auth(&officer)
            .json(&body);
        async move {
            let response = request.send().await.context("call the registry")?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            ensure!(status.is_success(), "registry answered {status}: {text}");
            Ok::<serde_json::Value, anyhow::Error>(
                serde_json::from_str(&text).unwrap_or(json!(null)),
            )
        }
    };
    let root = authority.certificate(&authority.files().root_pem())?;
    let tsa = authority.certificate(&authority.files().tsa_pem())?;
    api(reqwest::Method::POST, "/api/v1/cas", json!({"name": "demo-root", "certificate": STANDARD.encode(&root.der), "ocsp_urls": [format!("{pki_url}/ocsp")]})).await?;
    api(reqwest::Method::POST, "/api/v1/tsas", json!({"name": "demo-tsa", "url": format!("{pki_url}/tsa"), "certificate": STANDARD.encode(&tsa.der)})).await?;
    for (id, name) in [
        (
            CLIENT_MEMBER,
            "Provincial People's Committee (client agency)",
        ),
        (
            PROVIDER_MEMBER,
            "Civil Registry Department (provider agency)",
        ),
    ] {
        api(
            reqwest::Method::POST,
            "/api/v1/members",
            json!({"id": id, "name": name}),
        )
        .await?;
    }
    for subsystem in [
        CLIENT_SUBSYSTEM,
        UNAUTHORIZED_SUBSYSTEM,
        MTLS_SUBSYSTEM,
        PROVIDER_SUBSYSTEM,
    ] {
        let (member, code) = subsystem.rsplit_once('/').context("subsystem id")?;
        api(
            reqwest::Method::POST,
            &format!("/api/v1/members/{member}/subsystems"),
            json!({"code": code}),
        )
        .await?;
    }

    // 3. Gateways: keys, CSRs, certificates, signed registration, approval.
    println!("[3/7] gateways: keys, CSRs, certificates, registration and approval");
    let mut admin_secret = [0u8; 24];
    lienthong_crypto::fill_random(&mut admin_secret)?;
    let admin_token = format!(
        "demo_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(admin_secret)
    );
    let admin_hash = lienthong_central::hash_token(&admin_token);
    let mut gateways = Vec::new();
    for (name, member, clients, listeners) in [
        (
            "gw-client",
            CLIENT_MEMBER,
            vec![CLIENT_SUBSYSTEM, UNAUTHORIZED_SUBSYSTEM, MTLS_SUBSYSTEM],
            ports.client_gw,
        ),
        (
            "gw-provider",
            PROVIDER_MEMBER,
            vec![PROVIDER_SUBSYSTEM],
            ports.provider_gw,
        ),
    ] {
        let gw_dir = dir.join(name);
        let keys = KeyStore::new(gw_dir.join("keys")).with_kdf(kdf);
        let server_id = format!("{member}/gw1");
        let auth_key = keys.generate("auth", Suite::EcdsaP256Sha256, &passphrase)?;
        let sign_key = keys.generate("sign", Suite::EcdsaP256Sha256, &passphrase)?;
        let auth_csr = lienthong_pki::create_csr(&auth_key, "demo gateway")?;
        let sign_csr = lienthong_pki::create_csr(&sign_key, "demo member")?;
        let auth = authority
            .issue(
                &ca,
                auth_csr.as_bytes(),
                Profile::Auth,
                &server_id,
                &IssueOptions::default(),
            )
            .await?;
        let sign = authority
            .issue(
                &ca,
                sign_csr.as_bytes(),
                Profile::Sign,
                member,
                &IssueOptions::default(),
            )
            .await?;
        std::fs::write(
            gw_dir.join("auth.pem"),
            lienthong_pki::pem_encode_certificate(&auth.der),
        )?;
        std::fs::write(
            gw_dir.join("sign.pem"),
            lienthong_pki::pem_encode_certificate(&sign.der),
        )?;
        let peer_address = address(&listeners[1])?;
        let request = RegistrationRequest {
            server: server_id.parse()?,
            address: peer_address.to_string(),
            auth_certificate: STANDARD.encode(&auth.der),
            clients: clients
                .iter()
                .map(|c| c.parse())
                .collect::<Result<_, _>>()?,
            signed_at: unix_now(),
        };
        let signature = auth_key.sign(&request.signing_bytes())?.to_text();
        let submitted = http
            .post(format!("{central_url}/api/v1/registration-requests"))
            .json(&SignedRegistration { request, signature })
            .send()
            .await?;
        let status = submitted.status();
        let registration: serde_json::Value = submitted.json().await.unwrap_or(json!(null));
        ensure!(
            status.is_success(),
            "registration of {server_id} refused: {registration}"
        );
        let id = registration["id"]
            .as_str()
            .context("registration id")?
            .to_owned();
        api(
            reqwest::Method::POST,
            &format!("/api/v1/registrations/{id}/approve"),
            json!(null),
        )
        .await?;
        let tls_listen = if name == "gw-client" {
            format!(
                "client_tls_listen = \"{}\"\n",
                address(&ports.client_gw_tls)?
            )
        } else {
            String::new()
        };
        let local_tls = if name == "gw-client" {
            let certificate_hash = local_client_certificate(&gw_dir.join("local-client"))?;
            format!(
                "\n[[subsystem]]\nid = \"{MTLS_SUBSYSTEM}\"\nconnection = \"mtls\"\nclient_certificates = [\"{certificate_hash}\"]\n"
            )
        } else {
            String::new()
        };
        let config_text = format!(
            "server_id = \"{server_id}\"\nanchor = \"../anchor.json\"\nstate_dir = \"state\"\ndatabase_url = \"sqlite://state/gateway.db\"\nkeystore = \"keys\"\nauth_key = \"auth\"\nauth_certificate = \"auth.pem\"\nclient_listen = \"{}\"\npeer_listen = \"{}\"\nadmin_listen = \"{}\"\nadmin_token_sha256 = [\"{admin_hash}\"]\nconf_poll_seconds = 10\n{tls_listen}\n[[member]]\nid = \"{member}\"\nsign_key = \"sign\"\nsign_certificate = \"sign.pem\"\n{local_tls}",
            address(&listeners[0])?,
            peer_address,
            address(&listeners[2])?,
        );
        std::fs::write(gw_dir.join("gateway.toml"), config_text)?;
        gateways.push((gw_dir, listeners));
    }
    let anchor = registry.anchor(vec![format!("{central_url}/globalconf")]);
    std::fs::write(dir.join("anchor.json"), serde_json::to_vec_pretty(&anchor)?)?;
    registry.publish(unix_now()).await?;

    // 4. Start both gateways from their configuration files.
    let mut admin_urls = Vec::new();
    let mut client_urls = Vec::new();
    let mut running = Vec::new();
    let gateways = if with_gateways {
        println!("[4/7] starting both gateways (configuration download, OCSP staples)");
        gateways
    } else {
        println!("[4/7] gateways configured, not started (run them from their gateway.toml)");
        // Dropping the listeners releases the ports for the gateway processes.
        for (_, listeners) in gateways {
            client_urls.push(format!("http://{}", address(&listeners[0])?));
            admin_urls.push(format!("http://{}", address(&listeners[2])?));
        }
        Vec::new()
    };
    let mut client_tls = with_gateways.then_some(ports.client_gw_tls);
    for (gw_dir, listeners) in gateways {
        let config = lienthong_gateway::config::Config::load(&gw_dir.join("gateway.toml"))
            .map_err(anyhow::Error::msg)?;
        let keys = unlock(&config, &passphrase)?;
        let [client, peer, admin] = listeners;
        let client_tls = if running.is_empty() {
            client_tls.take()
        } else {
            None
        };
        client_urls.push(format!("http://{}", address(&client)?));
        admin_urls.push(format!("http://{}", address(&admin)?));
        let gateway = lienthong_gateway::Gateway::start(config, keys).await?;
        running.push(gateway.clone());
        tokio::spawn(lienthong_gateway::run(
            gateway,
            lienthong_gateway::Listeners {
                client,
                client_tls,
                peer,
                admin,
            },
            until_stopped(),
        ));
    }

    // 5. The sample provider system.
    println!("[5/7] sample provider system (citizen registry)");
    let served = lienthong_sample::Counter::default();
    tokio::spawn(lienthong_sample::run(
        ports.sample,
        served.clone(),
        until_stopped(),
    ));

    // 6. Register the service at the provider's gateway and grant access.
    if with_gateways {
        println!("[6/7] service registration and access grant at the provider's gateway");
        register_services(&admin_urls[1], &admin_token, &sample_url).await?;
    }

    // 7. endpoints.json and the ready-to-paste command.
    let service_path = format!("/r1/{PROVIDER_SUBSYSTEM}/{SERVICE_CODE}");
    let endpoints = json!({
        "client_gateway_url": client_urls[0],
        "client_id": CLIENT_SUBSYSTEM,
        "unauthorized_client_id": UNAUTHORIZED_SUBSYSTEM,
        "service_path": service_path,
        "provider_subsystem_path": format!("/r1/{PROVIDER_SUBSYSTEM}"),
        "service_code": SERVICE_CODE,
        "provider_backend_url": format!("{sample_url}/persons"),
        "provider_gateway_url": client_urls[1],
        "central_url": central_url,
        "ocsp_url": format!("{pki_url}/ocsp"),
        "tsa_url": format!("{pki_url}/tsa"),
        "root_ca_pem": authority.files().root_pem(),
        "anchor": dir.join("anchor.json"),
        "client_gateway_admin_url": admin_urls[0],
        "provider_gateway_admin_url": admin_urls[1],
        "admin_token": admin_token,
        "client_gateway_tls_url": client_tls_url,
        "mtls_client_id": MTLS_SUBSYSTEM,
        "mtls_client_certificate": dir.join("gw-client/local-client/client.pem"),
        "mtls_client_key": dir.join("gw-client/local-client/client.key"),
        "registry_officer_token": officer,
    });
    std::fs::write(
        dir.join("endpoints.json"),
        serde_json::to_vec_pretty(&endpoints)?,
    )?;
    Ok(Federation {
        dir,
        passphrase,
        endpoints,
        authority,
        registry,
        gateways: running,
        served,
        stop,
    })
}

/// Register the sample provider's services (`persons` -> `SAMPLE_URL/persons`, `digest` ->
/// `SAMPLE_URL/digest`) at the provider's gateway through its admin API, and grant them to
/// the client subsystems.
pub async fn register_services(
    provider_admin: &str,
    admin_token: &str,
    sample_url: &str,
) -> anyhow::Result<()> {
    for (code, path) in [
        (SERVICE_CODE, "/persons"),
        ("digest", "/digest"),
        ("payload", "/payload"),
    ] {
        register_service(
            provider_admin,
            admin_token,
            (code, &format!("{sample_url}{path}"), 30000),
            &[CLIENT_SUBSYSTEM, MTLS_SUBSYSTEM],
        )
        .await?;
    }
    Ok(())
}

/// Register service `code` of the demo provider at `base_url` with a time limit of
/// `timeout_ms`, and grant it to `clients`, through the provider gateway's admin API.
pub async fn register_service(
    provider_admin: &str,
    admin_token: &str,
    (code, base_url, timeout_ms): (&str, &str, u64),
    clients: &[&str],
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value, what: &'static str| {
        let request = http
            .post(format!("{provider_admin}/api/v1/{path}"))
            .bearer_auth(admin_token)
            .json(&body);
        async move {
            let response = request.send().await?;
            ensure!(
                response.status().is_success(),
                "{what} failed: {}",
                response.text().await.unwrap_or_default()
            );
            anyhow::Ok(())
        }
    };
    post(
        "services",
        json!({"provider": PROVIDER_SUBSYSTEM, "code": code, "base_url": base_url, "timeout_ms": timeout_ms}),
        "service registration",
    )
    .await?;
    for client in clients {
        post(
            "grants",
            json!({"service": format!("{PROVIDER_SUBSYSTEM}/{code}"), "subject": {"subsystem": client}}),
            "access grant",
        )
        .await?;
    }
    Ok(())
}

/// The curl command that makes one exchange.
pub fn curl_command(federation: &Federation) -> String {
    format!(
        "curl -i -H 'X-Road-Client: {}' {}{}/001099012345",
        federation.endpoint("client_id"),
        federation.endpoint("client_gateway_url"),
        federation.endpoint("service_path")
    )
}

/// One exchange through the federation, checked; and the unauthorized client refused.
pub async fn smoke(federation: &Federation) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let client_gateway = federation.endpoint("client_gateway_url");
    let service_path = federation.endpoint("service_path");
    let response = http
        .get(format!("{client_gateway}{service_path}/001099012345"))
        .header("X-Road-Client", CLIENT_SUBSYSTEM)
        .send()
        .await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await?;
    ensure!(status == 200, "exchange failed with {status}: {body}");
    for name in [
        "x-road-id",
        "x-road-request-id",
        "x-road-request-hash",
        "x-road-client",
        "x-road-service",
    ] {
        ensure!(headers.contains_key(name), "response lacks {name}");
    }
    ensure!(body.contains("Nguyễn Văn An"), "unexpected answer: {body}");
    println!(
        "exchange OK: {status}, X-Road-Id {:?}",
        headers.get("x-road-id")
    );
    let refused = http
        .get(format!("{client_gateway}{service_path}/001099012345"))
        .header("X-Road-Client", UNAUTHORIZED_SUBSYSTEM)
        .send()
        .await?;
    let error = refused
        .headers()
        .get("x-road-error")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    ensure!(
        error == "Server.ServerProxy.AccessDenied",
        "the unauthorized client was not refused (X-Road-Error {error:?})"
    );
    println!("unauthorized client refused: {error}");
    Ok(())
}

/// Make `dir` empty: recreate it if it holds an earlier demo; refuse anything else.
fn prepare(dir: &Path) -> anyhow::Result<PathBuf> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)?.next().is_none();
        if !empty {
            if !dir.join(MARKER).exists() {
                bail!(
                    "{} is not empty and holds no earlier demo; choose another --dir",
                    dir.display()
                );
            }
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("remove the earlier demo in {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(MARKER),
        "created by `lienthong demo`; safe to delete\n",
    )?;
    let dir = dir.canonicalize()?;
    Ok(dir)
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    Ok(())
}

/// Unlock a gateway's auth key and every member's sign key.
pub fn unlock(
    config: &lienthong_gateway::config::Config,
    passphrase: &[u8],
) -> anyhow::Result<lienthong_gateway::GatewayKeys> {
    let store = KeyStore::new(&config.keystore);
    let auth: Arc<dyn Signer> = Arc::new(
        store
            .load(&config.auth_key, passphrase)
            .with_context(|| format!("unlock the auth key {}", config.auth_key))?,
    );
    let mut members: std::collections::HashMap<_, Arc<dyn Signer>> =
        std::collections::HashMap::new();
    for member in &config.members {
        let key = store
            .load(&member.sign_key, passphrase)
            .with_context(|| format!("unlock the sign key of {}", member.id))?;
        members.insert(member.id.clone(), Arc::new(key));
    }
    Ok(lienthong_gateway::GatewayKeys { auth, members })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A self-signed certificate and key (PEM) for a local client system that connects over
/// mutual TLS; returns the certificate's SHA-256 (hex), which the gateway registers.
fn local_client_certificate(dir: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir)?;
    let (key, pkcs8) = lienthong_crypto::SoftwareKey::generate(Suite::EcdsaP256Sha256)?;
    let now = std::time::SystemTime::now();
    let certificate = lienthong_pki::CertificateAuthority::create_root(
        Arc::new(key),
        "Lien thong demo client agency",
        "secure-app local client",
        &lienthong_pki::Serial::random()?,
        now - Duration::from_secs(300),
        now + Duration::from_secs(365 * 86_400),
        lienthong_crypto::CryptoPolicy::vn(),
    )?;
    let der = &certificate.certificate().der;
    std::fs::write(
        dir.join("client.pem"),
        lienthong_pki::pem_encode_certificate(der),
    )?;
    let key_pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(&*pkcs8)
    );
    write_private(&dir.join("client.key"), key_pem.as_bytes())?;
    Ok(lienthong_crypto::HashAlgorithm::Sha256
        .digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
