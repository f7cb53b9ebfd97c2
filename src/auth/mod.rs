//! Who is calling and what they may do: OAuth2 client credentials are exchanged for EdDSA-signed
//! JWTs ([`keys`]), client secrets are kept as Argon2id hashes ([`clients`]), and each operation
//! names the scopes that grant it ([`Permission`]).

pub mod clients;
pub mod keys;

use serde::{Deserialize, Serialize};

use crate::domain::{AccountId, FieldError};
use crate::store::StoreError;

/// Why a caller was not let in. Each variant maps to one HTTP status in `http::error`.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    MissingToken,
    #[error("invalid or expired access token")]
    InvalidToken,
    #[error("invalid client credentials")]
    InvalidClient,
    #[error("unsupported grant_type: only client_credentials is supported")]
    UnsupportedGrantType,
    #[error("the client may not act for account {0}")]
    AccountMismatch(String),
    #[error("the access token is not valid for account {0}")]
    WrongAccount(String),
    #[error("the access token lacks the required scope: one of {0}")]
    MissingScope(String),
    #[error("{field}: {message}", field = .0.field, message = .0.message)]
    InvalidField(FieldError),
    #[error("signing failed: {0}")]
    Signing(String),
    /// A client was given a scope tokenvault does not know; the text names it.
    #[error("{0}")]
    UnknownScope(String),
    #[error("too many client credential checks at once; retry shortly")]
    Busy,
    /// A signing key in the database could not be opened (another master key, or a key still in
    /// clear where a sealed one is needed).
    #[error(transparent)]
    SealedKey(#[from] crate::crypto::CryptoError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The claims of a tokenvault access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The client id: recorded as `created_by` / `deleted_by`.
    pub sub: String,
    pub aud: String,
    pub aid: String,
    /// Space-separated scopes.
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    /// Not before: tokenvault does not issue it, but a token carrying it is refused until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
    /// The client's secret generation when the token was issued (not a Dintero claim; their
    /// clients ignore it). Tokens of older versions lack it and count as generation 1.
    #[serde(default = "first_secret_generation")]
    pub gen: i64,
}

fn first_secret_generation() -> i64 {
    1
}

/// Every scope tokenvault knows, as Dintero names them: a client holds some of these.
pub const SCOPES: &[&str] = &[
    "admin:customers",
    "read:customers",
    "write:customers",
    "create:customers:/users",
    "public:customers",
    "admin:accounts",
    "admin:checkout",
    "read:checkout",
    "write:checkout",
    "admin:hooks",
    "read:hooks",
    "write:hooks",
    // tokenvault's own: operating the installation (entering master-key shares).
    "admin:vault",
];

/// Refuses a scope tokenvault does not know (a typo, or several joined by commas), naming it.
pub fn check_scopes(scopes: &[String]) -> Result<(), AuthError> {
    if scopes.is_empty() {
        return Err(AuthError::UnknownScope("at least one scope is needed".to_owned()));
    }
    match scopes.iter().find(|scope| !SCOPES.contains(&scope.as_str())) {
        Some(unknown) => Err(AuthError::UnknownScope(format!(
            "unknown scope {unknown:?} (scopes are separated by spaces; known: {})",
            SCOPES.join(" ")
        ))),
        None => Ok(()),
    }
}

/// The scopes that grant one kind of operation; holding any one of them is enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission(pub &'static [&'static str]);

impl Permission {
    pub const CUSTOMERS_READ: Permission = Permission(&["admin:customers", "read:customers"]);
    pub const CUSTOMERS_WRITE: Permission = Permission(&["admin:customers", "write:customers"]);
    pub const CUSTOMERS_CREATE_USER: Permission =
        Permission(&["admin:customers", "write:customers", "create:customers:/users"]);
    /// aid_customers_head and aid_customers_atributes_get also grant `public:customers`.
    pub const CUSTOMERS_HEAD: Permission = Permission(&["admin:customers", "read:customers", "public:customers"]);
    /// See [`Permission::CUSTOMERS_HEAD`].
    pub const CUSTOMERS_SETTINGS_READ: Permission = Self::CUSTOMERS_HEAD;
    /// aid_customers_cid_change_customer_id_post lists `admin:customers` and `admin:accounts`.
    pub const CUSTOMERS_CHANGE_ID: Permission = Permission(&["admin:customers", "admin:accounts"]);
    pub const CHECKOUT_ADMIN: Permission = Permission(&["admin:checkout"]);
    /// Creating payment-token sessions (checkout_payment_token_session_post's x-scopes).
    pub const CHECKOUT_WRITE: Permission = Permission(&["admin:checkout", "write:checkout"]);
    /// Reading sessions and transactions (checkout_session_get, transactions_id_get).
    pub const CHECKOUT_SESSION_READ: Permission = Permission(&["admin:checkout", "read:checkout"]);
    /// Listing and getting card tokens: `admin:checkout` only, as Dintero's spec lists for
    /// card_tokens_get and card_tokens_token_id_get (`read:checkout` does not grant them there).
    pub const CHECKOUT_READ: Permission = Permission(&["admin:checkout"]);
    pub const HOOKS_WRITE: Permission = Permission(&["admin:hooks", "write:hooks"]);
    pub const CUSTOMERS_ADMIN: Permission = Permission(&["admin:customers"]);
    pub const HOOKS_ADMIN: Permission = Permission(&["admin:hooks"]);
    /// Resetting a test account: any administrator of a part of its data (each part is reset
    /// only for its administrator).
    pub const SANDBOX: Permission = Permission(&["admin:customers", "admin:checkout", "admin:hooks"]);
    pub const HOOKS_READ: Permission = Permission(&["admin:hooks", "read:hooks"]);
    /// Operating the installation itself (an extension): entering master-key shares.
    pub const VAULT_ADMIN: Permission = Permission(&["admin:vault"]);
    /// Faults on demand and triggered webhooks of a test account: an administrator of its
    /// customers or of its checkout (the APIs the faults and events are about).
    pub const SANDBOX_ADMIN: Permission = Permission(&["admin:customers", "admin:checkout"]);
    /// Reading and clearing a test account's request journal: an administrator of its customers
    /// or of its checkout (the journal shows both kinds of calls).
    pub const JOURNAL: Permission = Permission(&["admin:customers", "admin:checkout"]);

    pub fn describe(self) -> String {
        self.0.join(", ")
    }
}

/// An authenticated caller: the verified claims of its access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub client_id: String,
    pub account: AccountId,
    pub scopes: Vec<String>,
}

impl Caller {
    pub fn from_claims(claims: &Claims) -> Result<Self, AuthError> {
        let account = AccountId::parse("aid", &claims.aid).map_err(|_| AuthError::InvalidToken)?;
        if !claims.aud.ends_with(&format!("/v1/accounts/{}", claims.aid)) {
            return Err(AuthError::InvalidToken);
        }
        Ok(Self {
            client_id: claims.sub.clone(),
            account,
            scopes: claims.scope.split_whitespace().map(str::to_owned).collect(),
        })
    }

    /// Checks that the caller may perform an operation of `permission` on account `aid` (a raw
    /// path segment): a malformed `aid` is 400, another account or a missing scope 403.
    pub fn authorize(&self, aid: &str, permission: Permission) -> Result<AccountId, AuthError> {
        let account = AccountId::parse("aid", aid).map_err(AuthError::InvalidField)?;
        if account != self.account {
            return Err(AuthError::WrongAccount(account.to_string()));
        }
        self.require(permission)?;
        Ok(account)
    }

    /// Checks the scope alone, for operations whose account comes from the token itself.
    pub fn require(&self, permission: Permission) -> Result<(), AuthError> {
        if self.scopes.iter().any(|scope| permission.0.contains(&scope.as_str())) {
            Ok(())
        } else {
            Err(AuthError::MissingScope(permission.describe()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(scopes: &str) -> Caller {
        Caller {
            client_id: "c".into(),
            account: AccountId::parse("aid", "T12345678").unwrap(),
            scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        }
    }

    #[test]
    fn any_listed_scope_grants() {
        assert!(caller("admin:customers").authorize("T12345678", Permission::CUSTOMERS_READ).is_ok());
        assert!(caller("read:customers").authorize("T12345678", Permission::CUSTOMERS_READ).is_ok());
        assert!(matches!(
            caller("read:customers").authorize("T12345678", Permission::CUSTOMERS_WRITE),
            Err(AuthError::MissingScope(_))
        ));
        assert!(matches!(
            caller("admin:customers").authorize("T87654321", Permission::CUSTOMERS_READ),
            Err(AuthError::WrongAccount(_))
        ));
        assert!(matches!(
            caller("admin:customers").authorize("T1", Permission::CUSTOMERS_READ),
            Err(AuthError::InvalidField(_))
        ));
        assert!(caller("read:checkout").require(Permission::CHECKOUT_ADMIN).is_err());
    }
}
