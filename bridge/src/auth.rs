//! Open WebUI's session tokens: HS256 JWTs signed with `WEBUI_SECRET_KEY`, and the check of
//! the user they name.

use std::collections::HashSet;

use chatstore_core::{Error, ErrorKind, Store};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The claims the bridge reads from an Open WebUI token (Open WebUI also sets `jti`, `iat` and
/// `typ`; they are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub id: String,
    /// Expiry, epoch seconds; Open WebUI leaves it out when tokens never expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// The user's session stamp when the token was issued (`auth.session_stamp`); Open WebUI
    /// rotates the stamp to revoke every token issued before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_stamp: Option<String>,
}

/// Why a socket is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    NoKey,
    NoToken,
    BadToken,
    NoUser,
    Role,
    Revoked,
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
            Refusal::Revoked => "the session was revoked (session stamp changed)",
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

/// A token for `user_id` as Open WebUI issues one: signed with `secret_key`, expiring at `exp`
/// (epoch seconds), carrying the user's current session stamp where the store keeps one (for
/// tests and tools).
pub async fn issue_token(
    store: &Store,
    secret_key: &str,
    user_id: &str,
    exp: Option<u64>,
) -> chatstore_core::Result<String> {
    let session_stamp = match store.users.session_stamp(user_id).await {
        Ok(stamp) => stamp,
        Err(e) if e.kind() == ErrorKind::Unsupported => None,
        Err(e) => return Err(e),
    };
    let claims = Claims {
        id: user_id.to_owned(),
        exp,
        session_stamp,
    };
    sign_token(secret_key, &claims)
}

/// The claims of a valid token: signed with `secret_key` by HS256, not expired. An empty key
/// is no key (anyone could sign with it): jsonwebtoken refuses to make one, tested below.
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

/// Checks a token's user ([`check_user`]) and its session: where the store keeps Open WebUI's
/// credentials and the user's `auth` row has a session stamp, the token must carry that same
/// stamp (a rotated stamp revokes every token issued before it). A row without a stamp has
/// nothing to compare; a store without credentials (`Unsupported`: PocketBase, memory) leaves
/// the session unchecked, as the application's own login does there.
pub(crate) async fn check_session(store: &Store, claims: &Claims) -> Result<(), Refusal> {
    // Both reads at once: a connect waits for one round trip, not two.
    let (user, stamp) = tokio::join!(
        check_user(store, &claims.id),
        store.users.session_stamp(&claims.id)
    );
    user?;
    match stamp {
        Ok(Some(stamp)) if claims.session_stamp.as_deref() == Some(stamp.as_str()) => Ok(()),
        Ok(Some(_)) => Err(Refusal::Revoked),
        Ok(None) => Ok(()),
        Err(e) if e.kind() == ErrorKind::Unsupported => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(Refusal::NoUser),
        Err(e) => {
            tracing::warn!(error = %e, "bridge: cannot check a session stamp");
            Err(Refusal::Store)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            id: "ada".into(),
            exp: None,
            session_stamp: None,
        }
    }

    #[test]
    fn an_empty_key_verifies_nothing_and_signs_nothing() {
        let signed = sign_token("k", &claims()).expect("sign");
        assert_eq!(verify(Some("k"), &signed), Ok(claims()));
        assert_eq!(verify(Some(""), &signed), Err(Refusal::NoKey));
        assert_eq!(verify(None, &signed), Err(Refusal::NoKey));
        let err = sign_token("", &claims()).expect_err("empty key");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
}
