//! The certificates of PROCEDURE.md step 8 (what `create-cert.sh` does),
//! made natively instead of by `openssl` in a container: a local CA
//! (`local-ca.crt/.key`) and a server certificate (`server.crt/.key`) signed
//! by it, both PEM. Pure: the caller says which files already exist and
//! writes what comes back.
//!
//! The rules follow the script: a CA is made only when its certificate is
//! absent (an existing one signs the new server certificate), and an existing
//! server certificate is kept, with a warning, never overwritten.

use std::fmt;
use std::net::IpAddr;
use std::time::SystemTime;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, PublicKeyData as _,
    SanType, SerialNumber,
};
use rsa::pkcs8::EncodePrivateKey as _;
use thiserror::Error;
use time::{Duration, OffsetDateTime};

use crate::topology::Secret;

/// Days both certificates are valid, as the script's `CA_DAYS`/`CERT_DAYS`.
pub const DEFAULT_DAYS: u32 = 3650;

/// Why certificates could not be made.
#[derive(Debug, Error)]
pub enum CertError {
    /// A parameter that cannot go into a certificate.
    #[error("`{field}`: {message}")]
    Invalid { field: String, message: String },
    /// An existing CA file that cannot be used to sign.
    #[error("cannot use the existing CA `{path}`: {message}")]
    Ca { path: String, message: String },
    /// Key generation or signing failed.
    #[error("cannot {action}: {detail}")]
    Crypto { action: String, detail: String },
}

fn invalid(field: &str, message: impl Into<String>) -> CertError {
    CertError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

fn crypto(action: &str, e: impl fmt::Display) -> CertError {
    CertError::Crypto {
        action: action.to_string(),
        detail: e.to_string(),
    }
}

/// The key of a certificate (`CA_KEYTYPE`/`CERT_KEYTYPE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyType {
    /// `rsa:2048`, the script's default, signed with SHA-256.
    #[default]
    Rsa2048,
    /// ECDSA on P-256 with SHA-256, for clients that prefer small keys.
    EcdsaP256,
}

impl KeyType {
    /// Parses the script's `openssl -newkey` spelling (`rsa:2048`) or an
    /// ECDSA name (`ec:prime256v1`, `ec:P-256`, `ecdsa-p256`).
    pub fn parse(field: &str, s: &str) -> Result<Self, CertError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rsa:2048" | "rsa" => Ok(KeyType::Rsa2048),
            "ec:prime256v1" | "ec:p-256" | "ec:secp256r1" | "ecdsa-p256" => Ok(KeyType::EcdsaP256),
            _ => Err(invalid(
                field,
                format!(
                    "unsupported key type `{s}`: expected `rsa:2048` or `ec:prime256v1` (ECDSA P-256)"
                ),
            )),
        }
    }

    fn generate(self) -> Result<KeyPair, CertError> {
        match self {
            KeyType::Rsa2048 => {
                // ring signs with RSA keys but cannot make them; the `rsa`
                // crate makes the key and hands it over as PKCS#8.
                let mut rng = rsa::rand_core::OsRng;
                let key = rsa::RsaPrivateKey::new(&mut rng, 2048)
                    .map_err(|e| crypto("generate an RSA-2048 key", e))?;
                let der = key
                    .to_pkcs8_der()
                    .map_err(|e| crypto("encode the RSA key as PKCS#8", e))?;
                KeyPair::from_pkcs8_der_and_sign_algo(&der.as_bytes().into(), &PKCS_RSA_SHA256)
                    .map_err(|e| crypto("load the RSA key", e))
            }
            KeyType::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
                .map_err(|e| crypto("generate an ECDSA P-256 key", e)),
        }
    }
}

/// One subject alternative name (`CERT_SAN_ALTNAMES` entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AltName {
    Dns(String),
    Ip(IpAddr),
}

impl fmt::Display for AltName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AltName::Dns(d) => write!(f, "DNS:{d}"),
            AltName::Ip(ip) => write!(f, "IP:{ip}"),
        }
    }
}

/// Parses the script's `CERT_SAN_ALTNAMES` syntax: comma-separated
/// `DNS:<name>` and `IP:<address>` entries.
pub fn parse_alt_names(field: &str, s: &str) -> Result<Vec<AltName>, CertError> {
    let mut out = Vec::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (kind, value) = entry.split_once(':').ok_or_else(|| {
            invalid(
                field,
                format!("`{entry}` is not `DNS:<name>` or `IP:<address>`"),
            )
        })?;
        match kind.trim().to_ascii_uppercase().as_str() {
            "DNS" => out.push(AltName::Dns(value.trim().to_string())),
            "IP" => out.push(AltName::Ip(value.trim().parse().map_err(|_| {
                invalid(field, format!("`{value}` is not an IP address"))
            })?)),
            _ => {
                return Err(invalid(
                    field,
                    format!("`{kind}` is not a supported name type: expected `DNS` or `IP`"),
                ));
            }
        }
    }
    Ok(out)
}

/// The CA's parameters (`CA_NAME`, `CA_SUBJECT`'s CN, `CA_DAYS`, `CA_KEYTYPE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaParams {
    /// File stem: `<name>.crt` and `<name>.key`.
    pub name: String,
    pub common_name: String,
    pub days: u32,
    pub key_type: KeyType,
}

/// The server certificate's parameters (`CERT_NAME`, `CERT_CN`,
/// `CERT_SAN_ALTNAMES`, `CERT_DAYS`, `CERT_KEYTYPE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerParams {
    pub name: String,
    pub common_name: String,
    pub alt_names: Vec<AltName>,
    pub days: u32,
    pub key_type: KeyType,
}

/// Everything `create-cert.sh` can be told: the directory (`SOURCE`, the
/// checkout's `ssl/`) and both certificates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertParams {
    pub dir: String,
    pub ca: CaParams,
    pub server: ServerParams,
}

/// The short hostname (`hostname -s`): the part before the first dot.
pub fn short_hostname(hostname: &str) -> &str {
    hostname.split('.').next().unwrap_or(hostname)
}

impl CertParams {
    /// The script's defaults for a host called `hostname` (its `hostname`
    /// output, possibly an FQDN): CA `Kompira local CA (<short hostname>)`,
    /// server CN the hostname with the SAN `DNS:<hostname>`, 3650 days,
    /// RSA-2048, files `local-ca.*` and `server.*` in `dir`.
    pub fn for_host(dir: impl Into<String>, hostname: &str) -> Self {
        CertParams {
            dir: dir.into(),
            ca: CaParams {
                name: "local-ca".into(),
                common_name: format!("Kompira local CA ({})", short_hostname(hostname)),
                days: DEFAULT_DAYS,
                key_type: KeyType::Rsa2048,
            },
            server: ServerParams {
                name: "server".into(),
                common_name: hostname.to_string(),
                alt_names: vec![AltName::Dns(hostname.to_string())],
                days: DEFAULT_DAYS,
                key_type: KeyType::Rsa2048,
            },
        }
    }

    fn path(&self, name: &str, ext: &str) -> String {
        format!("{}/{name}.{ext}", self.dir.trim_end_matches('/'))
    }

    pub fn ca_cert_path(&self) -> String {
        self.path(&self.ca.name, "crt")
    }

    pub fn ca_key_path(&self) -> String {
        self.path(&self.ca.name, "key")
    }

    pub fn server_cert_path(&self) -> String {
        self.path(&self.server.name, "crt")
    }

    pub fn server_key_path(&self) -> String {
        self.path(&self.server.name, "key")
    }

    fn validate(&self) -> Result<(), CertError> {
        for (field, v) in [
            ("ca.name", &self.ca.name),
            ("server.name", &self.server.name),
        ] {
            if v.is_empty() || v.contains('/') {
                return Err(invalid(field, format!("`{v}` is not a file name")));
            }
        }
        if self.ca.name == self.server.name {
            return Err(invalid(
                "server.name",
                format!("`{}` is also the CA's name", self.server.name),
            ));
        }
        for (field, v) in [
            ("ca.common_name", &self.ca.common_name),
            ("server.common_name", &self.server.common_name),
        ] {
            if v.trim().is_empty() {
                return Err(invalid(field, "must not be empty"));
            }
        }
        for (field, d) in [("ca.days", self.ca.days), ("server.days", self.server.days)] {
            if d == 0 {
                return Err(invalid(field, "must be at least 1"));
            }
        }
        if self.server.alt_names.is_empty() {
            // Clients check the SAN, not the CN: a certificate without one
            // would be refused by every modern client.
            return Err(invalid("server.alt_names", "at least one name is required"));
        }
        Ok(())
    }
}

/// A certificate and its private key, both PEM. The key is a [`Secret`], so
/// it never shows in `Debug` output.
#[derive(Clone, Debug)]
pub struct Pem {
    pub cert: String,
    pub key: Secret,
}

/// What already exists in the directory. Only presence matters for the
/// server certificate; the CA's files are needed to sign with it.
#[derive(Clone, Debug, Default)]
pub struct Existing {
    pub ca_cert: Option<String>,
    pub ca_key: Option<Secret>,
    pub server_cert: bool,
}

/// The files to write (`None`: keep what is there) and the warnings for the
/// operator.
#[derive(Clone, Debug)]
pub struct CertSet {
    pub ca: Option<Pem>,
    pub server: Option<Pem>,
    pub warnings: Vec<String>,
}

fn name_with_cn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// A positive random 16-byte serial, as `openssl` gives (RFC 5280 asks for
/// unique, positive serials of at most 20 bytes).
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

fn validity(params: &mut CertificateParams, now: SystemTime, days: u32) {
    let now = OffsetDateTime::from(now)
        .replace_nanosecond(0)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    params.not_before = now;
    params.not_after = now + Duration::days(i64::from(days));
}

fn ca_params(p: &CaParams, now: SystemTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name_with_cn(&p.common_name);
    // The script's extensions: critical CA:true, keyCertSign and cRLSign,
    // and a subject key identifier.
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(random_serial());
    validity(&mut params, now, p.days);
    params
}

fn server_params(p: &ServerParams, now: SystemTime) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = name_with_cn(&p.common_name);
    params.subject_alt_names = p
        .alt_names
        .iter()
        .map(|a| match a {
            AltName::Dns(d) => d.clone().try_into().map(SanType::DnsName).map_err(|_| {
                invalid(
                    "server.alt_names",
                    format!("`{d}` is not an ASCII DNS name"),
                )
            }),
            AltName::Ip(ip) => Ok(SanType::IpAddress(*ip)),
        })
        .collect::<Result<_, _>>()?;
    // The script's v3_req section: CA:false, digitalSignature, serverAuth
    // and clientAuth (RabbitMQ's peers present it as a client too), and both
    // key identifiers.
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    validity(&mut params, now, p.days);
    Ok(params)
}

/// An existing CA's key must be the key of its certificate, or every
/// certificate it signs would fail verification far from here.
fn check_key_matches(params: &CertParams, cert_pem: &str, key: &KeyPair) -> Result<(), CertError> {
    let ca_err = |message: String| CertError::Ca {
        path: params.ca_cert_path(),
        message,
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| ca_err(format!("not a PEM certificate ({e})")))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| ca_err(format!("not a readable certificate ({e})")))?;
    if cert.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(ca_err(format!(
            "its key `{}` belongs to another certificate",
            params.ca_key_path()
        )));
    }
    Ok(())
}

/// Makes what is missing, following `create-cert.sh`: the CA when its
/// certificate is absent, the server certificate when absent (signed by the
/// new or the existing CA). An existing server certificate is kept and
/// reported in `warnings`.
pub fn generate(
    params: &CertParams,
    existing: &Existing,
    now: SystemTime,
) -> Result<CertSet, CertError> {
    params.validate()?;
    let mut warnings = Vec::new();
    if existing.server_cert {
        warnings.push(format!(
            "the server certificate `{}` already exists: kept, not overwritten",
            params.server_cert_path()
        ));
        return Ok(CertSet {
            ca: None,
            server: None,
            warnings,
        });
    }

    let (ca, ca_key, ca_cert_pem) = match &existing.ca_cert {
        None => {
            let key = params.ca.key_type.generate()?;
            let cert = ca_params(&params.ca, now)
                .self_signed(&key)
                .map_err(|e| crypto("sign the CA certificate", e))?;
            let pem = Pem {
                cert: cert.pem(),
                key: Secret::new(key.serialize_pem()),
            };
            let cert_pem = pem.cert.clone();
            (Some(pem), key, cert_pem)
        }
        Some(cert) => {
            let path = params.ca_key_path();
            let key_pem = existing.ca_key.as_ref().ok_or_else(|| CertError::Ca {
                path: params.ca_cert_path(),
                message: format!(
                    "its key `{path}` is missing, so it cannot sign a server certificate"
                ),
            })?;
            let key = KeyPair::from_pem(key_pem.expose()).map_err(|e| CertError::Ca {
                path: path.clone(),
                // rcgen's message never contains the key material.
                message: format!("the key is not a PKCS#8 PEM private key ({e})"),
            })?;
            check_key_matches(params, cert, &key)?;
            (None, key, cert.clone())
        }
    };

    let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, &ca_key).map_err(|e| CertError::Ca {
        path: params.ca_cert_path(),
        message: format!("not a readable certificate ({e})"),
    })?;
    let key = params.server.key_type.generate()?;
    let cert = server_params(&params.server, now)?
        .signed_by(&key, &issuer)
        .map_err(|e| crypto("sign the server certificate", e))?;
    Ok(CertSet {
        ca,
        server: Some(Pem {
            cert: cert.pem(),
            key: Secret::new(key.serialize_pem()),
        }),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::certificate::X509Certificate;
    use x509_parser::extensions::GeneralName;
    use x509_parser::public_key::PublicKey;

    const HOST: &str = "ke2-server1.example.com";
    const DAY: i64 = 86_400;

    fn der_of(pem: &str) -> Vec<u8> {
        let (rest, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        assert!(rest.iter().all(u8::is_ascii_whitespace), "one PEM block");
        assert_eq!(pem.label, "CERTIFICATE");
        pem.contents
    }

    fn parse(der: &[u8]) -> X509Certificate<'_> {
        let (rest, cert) = x509_parser::parse_x509_certificate(der).unwrap();
        assert!(rest.is_empty());
        cert
    }

    fn cn(cert: &X509Certificate<'_>) -> String {
        cert.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    fn san(cert: &X509Certificate<'_>) -> Vec<String> {
        let ext = cert.subject_alternative_name().unwrap().unwrap();
        ext.value
            .general_names
            .iter()
            .map(|g| match g {
                GeneralName::DNSName(d) => format!("DNS:{d}"),
                GeneralName::IPAddress(b) if b.len() == 4 => {
                    format!("IP:{}", std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                }
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn rsa_bits(cert: &X509Certificate<'_>) -> usize {
        match cert.public_key().parsed().unwrap() {
            PublicKey::RSA(k) => k.key_size(),
            other => panic!("not an RSA key: {other:?}"),
        }
    }

    fn days(cert: &X509Certificate<'_>) -> i64 {
        let v = cert.validity();
        (v.not_after.timestamp() - v.not_before.timestamp()) / DAY
    }

    #[test]
    fn defaults_match_create_cert_sh() {
        let params = CertParams::for_host("/opt/ke2-docker/ssl/", HOST);
        assert_eq!(params.ca.common_name, "Kompira local CA (ke2-server1)");
        assert_eq!(params.ca_cert_path(), "/opt/ke2-docker/ssl/local-ca.crt");
        assert_eq!(params.server_key_path(), "/opt/ke2-docker/ssl/server.key");
        assert_eq!(params.server.alt_names, [AltName::Dns(HOST.into())]);
    }

    #[test]
    fn new_ca_and_server_certificate_parse_back() {
        let params = CertParams::for_host("/ssl", HOST);
        let now = SystemTime::now();
        let set = generate(&params, &Existing::default(), now).unwrap();
        assert!(set.warnings.is_empty());
        let ca_pem = set.ca.expect("a new CA");
        let server_pem = set.server.expect("a new server certificate");
        assert!(
            ca_pem
                .key
                .expose()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        assert!(
            server_pem
                .key
                .expose()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        assert_eq!(format!("{:?}", server_pem.key), "***", "keys never print");

        let ca_der = der_of(&ca_pem.cert);
        let ca = parse(&ca_der);
        assert_eq!(cn(&ca), "Kompira local CA (ke2-server1)");
        assert_eq!(ca.issuer(), ca.subject(), "self-signed");
        let bc = ca.basic_constraints().unwrap().unwrap();
        assert!(bc.critical);
        assert!(bc.value.ca);
        let ku = ca.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
        assert_eq!(rsa_bits(&ca), 2048);
        assert_eq!(days(&ca), 3650);
        let start = ca.validity().not_before.timestamp();
        let now_s = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((start - now_s).abs() <= 1, "valid from now");
        ca.verify_signature(None).unwrap();

        let server_der = der_of(&server_pem.cert);
        let server = parse(&server_der);
        assert_eq!(cn(&server), HOST);
        assert_eq!(san(&server), [format!("DNS:{HOST}")]);
        assert_eq!(server.issuer(), ca.subject());
        assert_eq!(rsa_bits(&server), 2048);
        assert_eq!(days(&server), 3650);
        assert!(!server.basic_constraints().unwrap().unwrap().value.ca);
        let eku = server.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        server.verify_signature(Some(ca.public_key())).unwrap();
        assert_ne!(server.serial, ca.serial);
    }

    #[test]
    fn overrides_names_days_and_ecdsa() {
        let mut params = CertParams::for_host("/ssl", "h1");
        params.ca.name = "my-ca".into();
        params.ca.common_name = "Lab CA".into();
        params.ca.days = 30;
        params.server.name = "kompira".into();
        params.server.common_name = "kompira.lab".into();
        params.server.alt_names = parse_alt_names(
            "CERT_SAN_ALTNAMES",
            "DNS:kompira.lab, DNS:h1,IP:10.20.0.100",
        )
        .unwrap();
        params.server.days = 90;
        params.server.key_type = KeyType::parse("CERT_KEYTYPE", "ec:prime256v1").unwrap();
        assert_eq!(params.server_cert_path(), "/ssl/kompira.crt");
        let set = generate(&params, &Existing::default(), SystemTime::now()).unwrap();
        let ca_der = der_of(&set.ca.unwrap().cert);
        let ca = parse(&ca_der);
        assert_eq!(cn(&ca), "Lab CA");
        assert_eq!(days(&ca), 30);
        let server_der = der_of(&set.server.unwrap().cert);
        let server = parse(&server_der);
        assert_eq!(cn(&server), "kompira.lab");
        assert_eq!(
            san(&server),
            ["DNS:kompira.lab", "DNS:h1", "IP:10.20.0.100"]
        );
        assert_eq!(days(&server), 90);
        assert!(matches!(
            server.public_key().parsed().unwrap(),
            PublicKey::EC(_)
        ));
        server.verify_signature(Some(ca.public_key())).unwrap();
    }

    #[test]
    fn an_existing_ca_signs_and_an_existing_server_certificate_is_kept() {
        let params = CertParams::for_host("/ssl", HOST);
        let mut fast = params.clone();
        fast.ca.key_type = KeyType::EcdsaP256;
        fast.server.key_type = KeyType::EcdsaP256;
        let first = generate(&fast, &Existing::default(), SystemTime::now()).unwrap();
        let ca_pem = first.ca.unwrap();

        let existing = Existing {
            ca_cert: Some(ca_pem.cert.clone()),
            ca_key: Some(ca_pem.key.clone()),
            server_cert: false,
        };
        let again = generate(&fast, &existing, SystemTime::now()).unwrap();
        assert!(again.ca.is_none(), "the existing CA is reused");
        let ca_der = der_of(&ca_pem.cert);
        let server_der = der_of(&again.server.unwrap().cert);
        parse(&server_der)
            .verify_signature(Some(parse(&ca_der).public_key()))
            .unwrap();

        let kept = generate(
            &params,
            &Existing {
                server_cert: true,
                ..existing.clone()
            },
            SystemTime::now(),
        )
        .unwrap();
        assert!(kept.ca.is_none() && kept.server.is_none());
        assert_eq!(
            kept.warnings,
            ["the server certificate `/ssl/server.crt` already exists: kept, not overwritten"]
        );
    }

    #[test]
    fn an_unusable_existing_ca_is_refused() {
        let mut params = CertParams::for_host("/ssl", HOST);
        params.ca.key_type = KeyType::EcdsaP256;
        params.server.key_type = KeyType::EcdsaP256;
        let a = generate(&params, &Existing::default(), SystemTime::now())
            .unwrap()
            .ca
            .unwrap();
        let b = generate(&params, &Existing::default(), SystemTime::now())
            .unwrap()
            .ca
            .unwrap();
        let no_key = Existing {
            ca_cert: Some(a.cert.clone()),
            ca_key: None,
            server_cert: false,
        };
        let e = generate(&params, &no_key, SystemTime::now()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot use the existing CA `/ssl/local-ca.crt`: its key `/ssl/local-ca.key` is \
             missing, so it cannot sign a server certificate"
        );
        let wrong_key = Existing {
            ca_key: Some(b.key.clone()),
            ..no_key
        };
        let e = generate(&params, &wrong_key, SystemTime::now()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot use the existing CA `/ssl/local-ca.crt`: its key `/ssl/local-ca.key` \
             belongs to another certificate"
        );
        assert!(!e.to_string().contains("PRIVATE KEY"));
    }

    #[test]
    fn bad_parameters_name_the_field() {
        let e = parse_alt_names("CERT_SAN_ALTNAMES", "DNS:a,URI:x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`CERT_SAN_ALTNAMES`: `URI` is not a supported name type: expected `DNS` or `IP`"
        );
        let e = parse_alt_names("CERT_SAN_ALTNAMES", "IP:300.1.1.1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`CERT_SAN_ALTNAMES`: `300.1.1.1` is not an IP address"
        );
        let e = KeyType::parse("CA_KEYTYPE", "rsa:1024").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("`CA_KEYTYPE`: unsupported key type `rsa:1024`")
        );
        let mut p = CertParams::for_host("/ssl", HOST);
        p.server.alt_names.clear();
        let e = generate(&p, &Existing::default(), SystemTime::now()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`server.alt_names`: at least one name is required"
        );
        let mut p = CertParams::for_host("/ssl", HOST);
        p.ca.days = 0;
        let e = generate(&p, &Existing::default(), SystemTime::now()).unwrap_err();
        assert_eq!(e.to_string(), "`ca.days`: must be at least 1");
    }
}
