//! TLS in front of a plain server (feature `tls`), for testing `https` clients against the real
//! server: a throwaway CA is made at start, it signs a certificate for `localhost` and
//! `127.0.0.1`, and every accepted TLS connection is relayed, decrypted, to the target.

use std::net::SocketAddr;
use std::path::Path;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509, X509NameBuilder};
use tokio::net::{TcpListener, TcpStream};

/// A TLS terminator on a free loopback port, relaying to a plain TCP server. Its certificate
/// is signed by a CA made for it alone: a client trusts it only when given [`ca_pem`]
/// (`Self::ca_pem`). Dropped, it stops accepting.
#[derive(Debug)]
pub struct TlsTerminator {
    addr: SocketAddr,
    ca_pem: Vec<u8>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsTerminator {
    /// Starts TLS on a free loopback port in front of `target` (`host:port`).
    pub async fn start(target: &str) -> std::io::Result<TlsTerminator> {
        let (ca_pem, identity) = throwaway_identity().map_err(std::io::Error::other)?;
        let acceptor = native_tls::TlsAcceptor::new(identity).map_err(std::io::Error::other)?;
        let acceptor = tokio_native_tls::TlsAcceptor::from(acceptor);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let target = target.to_owned();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (acceptor, target) = (acceptor.clone(), target.clone());
                tokio::spawn(async move {
                    // A refused handshake (the client does not trust the CA) just ends here.
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
                    }
                });
            }
        });
        Ok(TlsTerminator { addr, ca_pem, task })
    }

    /// The terminator's port (TLS, certificate for `localhost` and `127.0.0.1`).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The PEM certificate of the CA that signed the terminator's certificate.
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }

    /// Writes [`ca_pem`](Self::ca_pem) to `path` (for clients that take a CA file).
    pub fn write_ca(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, &self.ca_pem)
    }
}

impl Drop for TlsTerminator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn new_key() -> Result<PKey<Private>, openssl::error::ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    PKey::from_ec_key(EcKey::generate(&group)?)
}

fn serial() -> Result<openssl::asn1::Asn1Integer, openssl::error::ErrorStack> {
    let mut n = BigNum::new()?;
    n.rand(64, MsbOption::MAYBE_ZERO, false)?;
    n.to_asn1_integer()
}

/// A CA (its PEM certificate) and a server identity it signed for `localhost` / `127.0.0.1`.
fn throwaway_identity()
-> Result<(Vec<u8>, native_tls::Identity), Box<dyn std::error::Error + Send + Sync>> {
    let ca_key = new_key()?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", "chatstore throwaway test CA")?;
    let ca_name = name.build();
    let mut ca = X509::builder()?;
    ca.set_version(2)?;
    let serial_number = serial()?;
    ca.set_serial_number(&serial_number)?;
    ca.set_subject_name(&ca_name)?;
    ca.set_issuer_name(&ca_name)?;
    ca.set_pubkey(&ca_key)?;
    let (from, until) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(2)?);
    ca.set_not_before(&from)?;
    ca.set_not_after(&until)?;
    ca.append_extension(BasicConstraints::new().critical().ca().build()?)?;
    ca.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()?,
    )?;
    ca.sign(&ca_key, MessageDigest::sha256())?;
    let ca = ca.build();

    let key = new_key()?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", "localhost")?;
    let name = name.build();
    let mut leaf = X509::builder()?;
    leaf.set_version(2)?;
    let serial_number = serial()?;
    leaf.set_serial_number(&serial_number)?;
    leaf.set_subject_name(&name)?;
    leaf.set_issuer_name(ca.subject_name())?;
    leaf.set_pubkey(&key)?;
    let (from, until) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(2)?);
    leaf.set_not_before(&from)?;
    leaf.set_not_after(&until)?;
    leaf.append_extension(BasicConstraints::new().build()?)?;
    leaf.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_encipherment()
            .build()?,
    )?;
    leaf.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .ip("127.0.0.1")
        .build(&leaf.x509v3_context(Some(&ca), None))?;
    leaf.append_extension(san)?;
    leaf.sign(&ca_key, MessageDigest::sha256())?;
    let leaf = leaf.build();

    let identity =
        native_tls::Identity::from_pkcs8(&leaf.to_pem()?, &key.private_key_to_pem_pkcs8()?)?;
    Ok((ca.to_pem()?, identity))
}
