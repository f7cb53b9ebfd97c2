//! The master key inside a PKCS#11 token (an HSM; SoftHSM2 in the tests): generated there as a
//! sensitive, non-extractable AES-256 key and only ever asked to encrypt and decrypt the keys
//! tokenvault keeps wrapped in its database (AES-GCM, computed inside the token). The key's bytes
//! never reach this process; what the database holds opens only where the token is.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as Pkcs11Error, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use rand::RngCore;
use serde::Serialize;

use super::{CryptoError, NONCE_LEN};

/// Where the master key lives: the PKCS#11 module, the token (by label), the user PIN and the
/// key's label within the token.
#[derive(Clone, PartialEq, Eq)]
pub struct HsmSettings {
    pub module: PathBuf,
    pub token_label: String,
    pub pin: String,
    pub key_label: String,
}

impl std::fmt::Debug for HsmSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsmSettings")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("pin", &"<redacted>")
            .field("key_label", &self.key_label)
            .finish()
    }
}

/// What the token says of the master key: shown by `tokenvault keys hsm-init` so an operator (and
/// a test) sees that the key cannot leave the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HsmKeyReport {
    pub token_label: String,
    pub key_label: String,
    /// Whether this call generated the key (false: it was there already).
    pub generated: bool,
    pub sensitive: bool,
    pub extractable: bool,
    pub never_extractable: bool,
    /// Whether the token handed out the key's value when asked (it must not).
    pub value_readable: bool,
}

/// An open session on the token with the master key found in it. PKCS#11 sessions are not to be
/// used from two threads at once: every operation takes the lock (wrapping is rare: start-up,
/// key rotation, a ring reload), and the module's calls lock (see [`one_call_at_a_time`]).
pub struct HsmKey {
    /// `None` only while the key is dropped.
    session: Mutex<Option<Session>>,
    key: ObjectHandle,
    label: String,
}

fn hsm_error(what: &str) -> impl FnOnce(Pkcs11Error) -> CryptoError + '_ {
    move |error| CryptoError::Hsm(format!("{what}: {error}"))
}

/// Every call into a module, from every key of the process, one at a time, the closing of a
/// key's session included. SoftHSM2's file object store failed calls made side by side on
/// different sessions (a key generated on one while another searched: `CKR_GENERAL_ERROR`, about
/// one run in eighty of the HSM tests); the calls are rare, so nothing waits for long.
fn one_call_at_a_time() -> MutexGuard<'static, ()> {
    static CALLS: Mutex<()> = Mutex::new(());
    CALLS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The process's one context on the module at `path`, loaded and initialised on first use and
/// kept for the life of the process. PKCS#11 state (initialisation, logins, sessions) belongs to
/// the loaded library, not to a context: a context per key, dropped with it, let one key's end
/// unload the library under another's sessions (invalid session handles and crashes when keys
/// were opened and dropped on several threads at once).
fn module(path: &Path) -> Result<Pkcs11, CryptoError> {
    static MODULES: Mutex<Vec<(PathBuf, Pkcs11)>> = Mutex::new(Vec::new());
    let mut modules = MODULES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, module)) = modules.iter().find(|(loaded, _)| loaded == path) {
        return Ok(module.clone());
    }
    let module = Pkcs11::new(path)
        .map_err(|e| CryptoError::Hsm(format!("cannot load the PKCS#11 module {}: {e}", path.display())))?;
    match module.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // Another user of the library in this process initialised it first.
        Ok(()) | Err(Pkcs11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(error) => return Err(hsm_error("cannot initialise the PKCS#11 module")(error)),
    }
    modules.push((path.to_owned(), module.clone()));
    Ok(module)
}

/// Logs in to the token labelled `token_label` of the module and returns a read-write session.
fn login(settings: &HsmSettings) -> Result<Session, CryptoError> {
    let module = module(&settings.module)?;
    let slot = module
        .get_slots_with_initialized_token()
        .map_err(hsm_error("cannot list the tokens"))?
        .into_iter()
        .find(|slot| module.get_token_info(*slot).is_ok_and(|info| info.label().trim_end() == settings.token_label))
        .ok_or_else(|| CryptoError::Hsm(format!("no initialised token is labelled {:?}", settings.token_label)))?;
    let session = module.open_rw_session(slot).map_err(hsm_error("cannot open a session on the token"))?;
    match session.login(UserType::User, Some(&AuthPin::from(settings.pin.clone()))) {
        // Logins are per process, not per session: an earlier session's holds.
        Ok(()) | Err(Pkcs11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
        Err(error) => Err(hsm_error("cannot log in to the token (is the PIN right?)")(error)),
    }
}

fn find_key(session: &Session, label: &str) -> Result<Option<ObjectHandle>, CryptoError> {
    let template = [Attribute::Class(ObjectClass::SECRET_KEY), Attribute::Label(label.as_bytes().to_vec())];
    let found = session.find_objects(&template).map_err(hsm_error("cannot search the token"))?;
    match found.as_slice() {
        [] => Ok(None),
        [key] => Ok(Some(*key)),
        _ => Err(CryptoError::Hsm(format!("the token holds {} secret keys labelled {label:?}; keep one", found.len()))),
    }
}

impl HsmKey {
    /// Opens the master key of `settings`; fails when the token or the key is missing
    /// (`tokenvault keys hsm-init` makes the key).
    pub fn open(settings: &HsmSettings) -> Result<Self, CryptoError> {
        let _calls = one_call_at_a_time();
        let session = login(settings)?;
        let key = find_key(&session, &settings.key_label)?.ok_or_else(|| {
            CryptoError::Hsm(format!(
                "the token {:?} holds no key labelled {:?} (make one with `tokenvault keys hsm-init`)",
                settings.token_label, settings.key_label
            ))
        })?;
        Ok(Self { session: Mutex::new(Some(session)), key, label: settings.key_label.clone() })
    }

    /// Makes the master key in the token unless it is there, and reports its protection as the
    /// token states it.
    pub fn generate(settings: &HsmSettings) -> Result<HsmKeyReport, CryptoError> {
        let _calls = one_call_at_a_time();
        let session = login(settings)?;
        let (key, generated) = match find_key(&session, &settings.key_label)? {
            Some(key) => (key, false),
            None => {
                let template = [
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32.into()),
                    Attribute::Label(settings.key_label.as_bytes().to_vec()),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                ];
                let key = session
                    .generate_key(&Mechanism::AesKeyGen, &template)
                    .map_err(hsm_error("cannot generate the key in the token"))?;
                (key, true)
            }
        };
        let flags = session
            .get_attributes(
                key,
                &[AttributeType::Sensitive, AttributeType::Extractable, AttributeType::NeverExtractable],
            )
            .map_err(hsm_error("cannot read the key's attributes"))?;
        let flag = |wanted: AttributeType| {
            flags.iter().any(|attribute| match (attribute, wanted) {
                (Attribute::Sensitive(value), AttributeType::Sensitive)
                | (Attribute::Extractable(value), AttributeType::Extractable)
                | (Attribute::NeverExtractable(value), AttributeType::NeverExtractable) => *value,
                _ => false,
            })
        };
        let value_readable = session.get_attributes(key, &[AttributeType::Value]).is_ok_and(|values| {
            values.iter().any(|value| matches!(value, Attribute::Value(bytes) if !bytes.is_empty()))
        });
        Ok(HsmKeyReport {
            token_label: settings.token_label.clone(),
            key_label: settings.key_label.clone(),
            generated,
            sensitive: flag(AttributeType::Sensitive),
            extractable: flag(AttributeType::Extractable),
            never_extractable: flag(AttributeType::NeverExtractable),
            value_readable,
        })
    }

    /// `[nonce][ciphertext and tag]` of `key` under the token's key, `context` as associated data.
    pub(super) fn wrap(&self, context: &[u8], key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut iv = nonce;
        let params = GcmParams::new(&mut iv, context, 128.into()).map_err(hsm_error("GCM parameters"))?;
        let _calls = one_call_at_a_time();
        let session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let session = session.as_ref().expect("a key's session is open until the key is dropped");
        let ciphertext = session
            .encrypt(&Mechanism::AesGcm(params), self.key, key)
            .map_err(hsm_error("the token could not wrap a key"))?;
        let mut wrapped = nonce.to_vec();
        wrapped.extend_from_slice(&ciphertext);
        Ok(wrapped)
    }

    /// The key [`HsmKey::wrap`] wrapped with the same context, `None` when it does not open;
    /// errors are the token's own failures.
    pub(super) fn unwrap(&self, context: &[u8], wrapped: &[u8]) -> Result<Option<Vec<u8>>, CryptoError> {
        if wrapped.len() < NONCE_LEN {
            return Ok(None);
        }
        let mut iv: [u8; NONCE_LEN] = wrapped[..NONCE_LEN].try_into().expect("length checked");
        let params = GcmParams::new(&mut iv, context, 128.into()).map_err(hsm_error("GCM parameters"))?;
        let _calls = one_call_at_a_time();
        let session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let session = session.as_ref().expect("a key's session is open until the key is dropped");
        match session.decrypt(&Mechanism::AesGcm(params), self.key, &wrapped[NONCE_LEN..]) {
            Ok(plain) => Ok(Some(plain)),
            // A tag that does not verify: SoftHSM2 reports it as a general error, others as invalid
            // data. Either way the bytes were not wrapped under this key with this context.
            Err(Pkcs11Error::Pkcs11(
                RvError::EncryptedDataInvalid
                | RvError::EncryptedDataLenRange
                | RvError::DataInvalid
                | RvError::GeneralError,
                _,
            )) => Ok(None),
            Err(error) => Err(hsm_error("the token could not unwrap a key")(error)),
        }
    }

    /// How logs and errors name this key.
    pub fn describe(&self) -> String {
        format!("PKCS#11 key {:?}", self.label)
    }
}

impl Drop for HsmKey {
    /// Closes the session as one of the module's calls (see [`one_call_at_a_time`]).
    fn drop(&mut self) {
        let _calls = one_call_at_a_time();
        drop(self.session.get_mut().unwrap_or_else(PoisonError::into_inner).take());
    }
}
