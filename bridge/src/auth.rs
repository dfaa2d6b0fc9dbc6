//! Open WebUI's session tokens: HS256 JWTs signed with `WEBUI_SECRET_KEY`, and the check of
//! the user they name.

use std::collections::HashSet;

use chatstore_core::{Error, ErrorKind, Store};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The claims the bridge reads from an Open WebUI token (Open WebUI also sets `jti`, `iat`,
/// `session_stamp`, `typ`; they are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub id: String,
    /// Expiry, epoch seconds; Open WebUI leaves it out when tokens never expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
}

/// Why a socket is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    NoKey,
    NoToken,
    BadToken,
    NoUser,
    Role,
    Store,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::NoKey => "the bridge has no secret key",
            Refusal::NoToken => "auth {token} is required",
            Refusal::BadToken => "invalid or expired token",
            Refusal::NoUser => "no such user",
            Refusal::Role => "the user is not allowed (pending)",
            Refusal::Store => "the store is unavailable",
        })
    }
}

/// A token signed the way Open WebUI signs them (for tests and tools).
pub fn sign_token(secret_key: &str, claims: &Claims) -> chatstore_core::Result<String> {
    let key = EncodingKey::from_secret(secret_key.as_bytes())
        .map_err(|e| Error::invalid(format!("cannot use the secret key: {e}")))?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key)
        .map_err(|e| Error::invalid(format!("cannot sign a token: {e}")))
}

/// The claims of a valid token: signed with `secret_key` by HS256, not expired.
pub(crate) fn verify(secret_key: Option<&str>, token: &str) -> Result<Claims, Refusal> {
    let key = secret_key.ok_or(Refusal::NoKey)?;
    let mut validation = Validation::new(Algorithm::HS256);
    // Open WebUI issues tokens without `exp` when JWT_EXPIRES_IN is -1; `exp` is checked
    // whenever it is present, with no leeway (as PyJWT does by default).
    validation.required_spec_claims = HashSet::new();
    validation.leeway = 0;
    validation.validate_exp = true;
    let key = DecodingKey::from_secret(key.as_bytes()).map_err(|_| Refusal::NoKey)?;
    jsonwebtoken::decode::<Claims>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|_| Refusal::BadToken)
}

/// Checks that the user exists and may connect (role `user` or `admin`, as Open WebUI).
pub(crate) async fn check_user(store: &Store, user_id: &str) -> Result<(), Refusal> {
    match store.users.get(user_id).await {
        Ok(user) if user.role == "user" || user.role == "admin" => Ok(()),
        Ok(_) => Err(Refusal::Role),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(Refusal::NoUser),
        Err(e) => {
            tracing::warn!(error = %e, "bridge: cannot check a user");
            Err(Refusal::Store)
        }
    }
}
