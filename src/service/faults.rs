//! Faults on demand for test accounts: the rules (`sandbox/faults`) and the decision, for each
//! request, whether one of them fails it. The rules live in the store, so that every instance on
//! one database applies them; each instance keeps an account's rules in memory for at most
//! [`RULES_CACHE_TTL`], so a request to an account without rules costs no query most of the
//! time. A rule added or removed through this instance applies at once here, and on the others
//! within that time. Counting a match (the next N, a probability's n-th draw) is always one
//! atomic statement in the store, so it holds across instances.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use uuid::Uuid;

use super::{test_accounts_only, ServiceError, ServiceResult, Vault};
pub use crate::domain::fault::{FaultEffect, FaultFrequency};
use crate::domain::fault::{FaultRule, FaultTarget, MAX_RULES_PER_ACCOUNT};
use crate::domain::{AccountId, Timestamp};

/// How long an instance goes on using the rules it read for an account: how late another
/// instance's change of the rules takes effect here.
pub const RULES_CACHE_TTL: Duration = Duration::from_secs(1);

/// An account's rules as read from the store, and when they were read.
type ReadRules = (Instant, Arc<Vec<FaultRule>>);

/// The rules the middleware compares requests with, per account, as read from the store.
#[derive(Default)]
pub(super) struct RulesCache {
    accounts: Mutex<HashMap<AccountId, ReadRules>>,
}

impl RulesCache {
    fn get(&self, account: &AccountId) -> Option<Arc<Vec<FaultRule>>> {
        let accounts = self.accounts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        accounts.get(account).filter(|(read, _)| read.elapsed() < RULES_CACHE_TTL).map(|(_, rules)| rules.clone())
    }

    fn put(&self, account: &AccountId, rules: Arc<Vec<FaultRule>>) {
        let mut accounts = self.accounts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Entries of accounts no longer called would otherwise stay: drop the stale ones now and then.
        if accounts.len() > 1024 {
            accounts.retain(|_, (read, _)| read.elapsed() < RULES_CACHE_TTL);
        }
        accounts.insert(account.clone(), (Instant::now(), rules));
    }

    fn forget(&self, account: &AccountId) {
        self.accounts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(account);
    }
}

/// A fault a request is to get, and the rule that gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub rule_id: Uuid,
    pub effect: FaultEffect,
}

impl Vault {
    /// Adds a fault rule to a test account (production accounts are refused), from a
    /// `POST …/sandbox/faults` body.
    pub async fn add_fault(&self, account: &AccountId, body: &Map<String, Value>, actor: &str) -> ServiceResult<Value> {
        test_accounts_only(account, "sandbox operations")?;
        let now = Timestamp::now();
        let rule = FaultRule::from_body(body, account, actor, now)?;
        if self.store.list_faults(account, now).await?.len() >= MAX_RULES_PER_ACCOUNT {
            return Err(ServiceError::Conflict(format!(
                "an account holds at most {MAX_RULES_PER_ACCOUNT} fault rules; delete some first"
            )));
        }
        self.store.add_fault(&rule).await?;
        self.fault_rules.forget(account);
        Ok(rule.to_json())
    }

    /// The account's rules that have not expired, oldest first.
    pub async fn list_faults(&self, account: &AccountId) -> ServiceResult<Vec<Value>> {
        test_accounts_only(account, "sandbox operations")?;
        let rules = self.store.list_faults(account, Timestamp::now()).await?;
        Ok(rules.iter().map(FaultRule::to_json).collect())
    }

    /// Removes one rule (`NotFound` when the account has none of this id).
    pub async fn remove_fault(&self, account: &AccountId, id: Uuid, actor: &str) -> ServiceResult<()> {
        test_accounts_only(account, "sandbox operations")?;
        let deleted = self.store.delete_fault(account, id, actor, Timestamp::now()).await?;
        self.fault_rules.forget(account);
        if deleted {
            Ok(())
        } else {
            Err(ServiceError::NotFound("fault rule"))
        }
    }

    /// Removes every rule of the account; returns how many had not expired.
    pub async fn clear_faults(&self, account: &AccountId, actor: &str) -> ServiceResult<u64> {
        test_accounts_only(account, "sandbox operations")?;
        let count = self.store.delete_faults(account, actor, Timestamp::now()).await?;
        self.fault_rules.forget(account);
        Ok(count)
    }

    /// Forgets what this instance read of the account's rules (after a reset).
    pub(super) fn forget_fault_rules(&self, account: &AccountId) {
        self.fault_rules.forget(account);
    }

    /// The fault a request to `account` is to get, if any: the oldest rule that matches it and
    /// fires (each matching rule counts the request, in order, until one fires). Production
    /// accounts never get one. A database that fails here fails no request: it is logged, and
    /// the request goes on unfaulted (its own handler meets the database next).
    pub async fn fault_for(&self, account: &AccountId, target: &FaultTarget<'_>) -> Option<Fault> {
        if !account.is_test() {
            return None;
        }
        match self.find_fault(account, target).await {
            Ok(fault) => fault,
            Err(error) => {
                tracing::warn!(%error, "could not read the account's fault rules; the request goes on without");
                None
            }
        }
    }

    async fn find_fault(&self, account: &AccountId, target: &FaultTarget<'_>) -> ServiceResult<Option<Fault>> {
        let now = Timestamp::now();
        let rules = match self.fault_rules.get(account) {
            Some(rules) => rules,
            None => {
                let mut rules = self.store.list_faults(account, now).await?;
                rules.retain(|rule| rule.remaining.is_none_or(|left| left > 0));
                let rules = Arc::new(rules);
                self.fault_rules.put(account, rules.clone());
                rules
            }
        };
        for rule in rules.iter().filter(|rule| rule.matches(target, now)) {
            match self.store.count_fault_match(account, rule.id, now).await? {
                Some(n) if rule.fires(n) => {
                    return Ok(Some(Fault { rule_id: rule.id, effect: rule.effect.clone() }));
                }
                Some(_) => {}
                // Used up, expired or removed meanwhile (perhaps by another instance).
                None => self.fault_rules.forget(account),
            }
        }
        Ok(None)
    }
}
