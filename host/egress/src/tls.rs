//! The per-bottle CA, the leaf certificates it signs and the TLS configs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use time::{Duration, OffsetDateTime};

use crate::error::EgressError;

/// Parses every certificate in a PEM text.
pub fn parse_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM: {e}"))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Upper bound on cached leaf configs; routes bound the hosts, this bounds
/// memory if a policy is huge.
const MAX_CACHED_LEAVES: usize = 4096;

/// The CA that signs leaves. Its key stays in this process.
pub struct CertAuthority {
    cert_pem: String,
    issuer: rcgen::Certificate,
    issuer_key: KeyPair,
    leaf_key: KeyPair,
    leaf_key_der: Vec<u8>,
    cache: Mutex<HashMap<String, Arc<ServerConfig>>>,
}

impl std::fmt::Debug for CertAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAuthority").finish_non_exhaustive()
    }
}

impl CertAuthority {
    /// Generates a fresh CA in memory.
    pub fn generate() -> Result<CertAuthority, EgressError> {
        let key = KeyPair::generate().map_err(|e| EgressError::Ca(format!("generate key: {e}")))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "bot-bottle egress CA (per bottle)");
        dn.push(DnType::OrganizationName, "bot-bottle");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(3650);
        let cert = params
            .self_signed(&key)
            .map_err(|e| EgressError::Ca(format!("self-sign: {e}")))?;
        let pem = cert.pem();
        CertAuthority::with_issuer(pem, cert, key)
    }

    /// Loads a CA from PEM certificate and key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<CertAuthority, EgressError> {
        let key = KeyPair::from_pem(key_pem)
            .map_err(|e| EgressError::Ca(format!("CA key is not a usable PEM private key: {e}")))?;
        let params = CertificateParams::from_ca_cert_pem(cert_pem)
            .map_err(|e| EgressError::Ca(format!("CA certificate is not usable: {e}")))?;
        // Re-signing reproduces the subject and key; leaves chain to the
        // original certificate the agent trusts by name and key.
        let issuer = params
            .self_signed(&key)
            .map_err(|e| EgressError::Ca(format!("CA certificate and key do not match: {e}")))?;
        CertAuthority::with_issuer(cert_pem.to_owned(), issuer, key)
    }

    fn with_issuer(
        cert_pem: String,
        issuer: rcgen::Certificate,
        issuer_key: KeyPair,
    ) -> Result<CertAuthority, EgressError> {
        // One leaf key for all hosts: a fresh key per host would cost a
        // keygen per new host without making any name more isolated.
        let leaf_key =
            KeyPair::generate().map_err(|e| EgressError::Ca(format!("generate leaf key: {e}")))?;
        let leaf_key_der = leaf_key.serialize_der();
        Ok(CertAuthority {
            cert_pem,
            issuer,
            issuer_key,
            leaf_key,
            leaf_key_der,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The CA certificate (public) in PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A leaf certificate naming exactly `host` (DNS name or IP), DER.
    pub fn leaf_der(&self, host: &str) -> Result<CertificateDer<'static>, EgressError> {
        let mut params = CertificateParams::default();
        let san = match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                host.to_owned()
                    .try_into()
                    .map_err(|e| EgressError::Ca(format!("host `{host}` for leaf: {e}")))?,
            ),
        };
        params.subject_alt_names = vec![san];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(90);
        let cert = params
            .signed_by(&self.leaf_key, &self.issuer, &self.issuer_key)
            .map_err(|e| EgressError::Ca(format!("sign leaf for `{host}`: {e}")))?;
        Ok(cert.der().clone())
    }

    /// The TLS server config presenting the leaf for `host`, cached.
    pub fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>, EgressError> {
        if let Some(c) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(host)
        {
            return Ok(c.clone());
        }
        let leaf = self.leaf_der(host)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key_der.clone()));
        let mut cfg = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| EgressError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![leaf], key)
            .map_err(|e| EgressError::Tls(format!("leaf for `{host}`: {e}")))?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let cfg = Arc::new(cfg);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED_LEAVES {
            cache.clear();
        }
        cache.insert(host.to_owned(), cfg.clone());
        Ok(cfg)
    }
}

/// The client config for upstreams: webpki roots plus the policy's extra roots.
pub fn client_config(extra_roots_pem: &[String]) -> Result<Arc<ClientConfig>, EgressError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for (i, pem) in extra_roots_pem.iter().enumerate() {
        for der in
            parse_certs(pem).map_err(|e| EgressError::Tls(format!("extra_roots_pem[{i}]: {e}")))?
        {
            roots
                .add(der)
                .map_err(|e| EgressError::Tls(format!("extra_roots_pem[{i}]: {e}")))?;
        }
    }
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| EgressError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
