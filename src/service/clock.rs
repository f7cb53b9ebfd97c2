//! The clocks of test accounts (`sandbox/clock`): every use case asks [`Vault::now`] for an
//! account's "now" instead of reading the system clock, so that a test account whose clock was
//! set or advanced gets that time in `created_at`, `updated_at` and `deleted_at`, token-event and
//! idempotency-key expiry, webhook retry schedules and journal times. Production accounts always
//! run on real time, without a query. Access tokens stay on real time: they are verified by
//! other instances and by clients whose clocks are real, and an account's clock moved a day
//! ahead must not expire (or, moved back, revive) the credentials its test run is using.
//!
//! The offsets live in the store, so that every instance on one database agrees; each instance
//! keeps an account's offset for at most [`CLOCK_CACHE_TTL`] (a change through this instance
//! applies here at once, and on the others within that time), as it does with fault rules.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::{test_accounts_only, ServiceResult, Vault};
use crate::domain::clock::AccountClock;
use crate::domain::{AccountId, Timestamp};

/// How long an instance goes on using the clock offset it read for an account: how late another
/// instance's change of the clock takes effect here.
pub const CLOCK_CACHE_TTL: Duration = Duration::from_secs(1);

/// The offsets this instance read lately, per test account, and when it read them.
#[derive(Default)]
pub(super) struct ClockCache {
    accounts: Mutex<HashMap<AccountId, (Instant, i64)>>,
}

impl ClockCache {
    fn get(&self, account: &AccountId) -> Option<i64> {
        let accounts = self.accounts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        accounts.get(account).filter(|(read, _)| read.elapsed() < CLOCK_CACHE_TTL).map(|(_, offset)| *offset)
    }

    fn put(&self, account: &AccountId, offset_ms: i64) {
        let mut accounts = self.accounts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Entries of accounts no longer called would otherwise stay: drop the stale ones now and then.
        if accounts.len() > 1024 {
            accounts.retain(|_, (read, _)| read.elapsed() < CLOCK_CACHE_TTL);
        }
        accounts.insert(account.clone(), (Instant::now(), offset_ms));
    }

    pub(super) fn forget(&self, account: &AccountId) {
        self.accounts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(account);
    }
}

impl Vault {
    /// The account's "now": real time for production accounts and for test accounts whose clock
    /// was never set, else real time plus the account's offset.
    pub async fn now(&self, account: &AccountId) -> ServiceResult<Timestamp> {
        let real = Timestamp::now();
        if !account.is_test() {
            return Ok(real);
        }
        Ok(AccountClock::at(self.clock_offset(account).await?, real))
    }

    /// How far the account's time lies from real time, in milliseconds (0 for production
    /// accounts and clocks never set).
    pub async fn clock_offset(&self, account: &AccountId) -> ServiceResult<i64> {
        if !account.is_test() {
            return Ok(0);
        }
        if let Some(offset) = self.clocks.get(account) {
            return Ok(offset);
        }
        let offset = self.store.account_clock(account).await?.map_or(0, |clock| clock.offset_ms);
        self.clocks.put(account, offset);
        Ok(offset)
    }

    /// The `GET …/sandbox/clock` answer.
    pub async fn clock(&self, account: &AccountId) -> ServiceResult<Value> {
        test_accounts_only(account, "sandbox operations")?;
        let clock = self.store.account_clock(account).await?;
        Ok(AccountClock::to_json(account, clock.as_ref(), Timestamp::now()))
    }

    /// Sets or advances a test account's clock from a `PUT …/sandbox/clock` body; answers as
    /// [`Vault::clock`] does.
    pub async fn set_clock(&self, account: &AccountId, body: &Map<String, Value>, actor: &str) -> ServiceResult<Value> {
        test_accounts_only(account, "sandbox operations")?;
        let current = self.store.account_clock(account).await?.map_or(0, |clock| clock.offset_ms);
        let real = Timestamp::now();
        let clock = AccountClock::from_body(body, account, current, actor, real)?;
        self.store.set_account_clock(&clock).await?;
        self.clocks.forget(account);
        // The webhook worker may have retries that are due now.
        self.announce();
        Ok(AccountClock::to_json(account, Some(&clock), real))
    }

    /// Returns a test account to real time (`DELETE …/sandbox/clock`); answers as
    /// [`Vault::clock`] does.
    pub async fn clear_clock(&self, account: &AccountId, actor: &str) -> ServiceResult<Value> {
        test_accounts_only(account, "sandbox operations")?;
        let real = Timestamp::now();
        self.store.clear_account_clock(account, actor, real).await?;
        self.clocks.forget(account);
        Ok(AccountClock::to_json(account, None, real))
    }
}
