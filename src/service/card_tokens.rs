//! Card tokens (seeds 001, 004): stored with their PSP `token` sealed, shown with it opened, and
//! every change announced to webhook subscribers through the outbox its transaction writes.

use super::{ServiceError, ServiceResult, Vault};
use crate::crypto::TokenCipher;
use crate::domain::card_token::{CardToken, CardTokenDeletion, CardTokenFilter, CardTokenRecord, CardTokenStatus};
use crate::domain::sealed::SealedToken;
use crate::domain::{validation, AccountId, Page, PageRequest};

/// No stored card token can have an id that is not a valid identifier: such an id is simply not
/// found.
fn require_card_id(id: &str) -> ServiceResult<()> {
    validation::identifier("token_id", id).map_err(|_| ServiceError::NotFound("card token"))
}

impl Vault {
    /// Stores a new card token (`POST /v1/card-tokens`, fixtures), `checkout_token_add` announced.
    pub async fn create_card_token(&self, card: CardToken) -> ServiceResult<CardToken> {
        let (card, sealed) = seal_card(&self.cipher, card);
        let record = self.store.create_card_token(&card, sealed.as_ref()).await?;
        self.announce();
        self.reveal(record).await
    }

    /// Stores a batch in one transaction, skipping tokens already present (by id or token).
    pub(super) async fn import_card_token_batch(
        &self,
        cards: Vec<CardToken>,
    ) -> ServiceResult<Vec<crate::store::ImportOutcome>> {
        let batch: Vec<(CardToken, Option<SealedToken>)> =
            cards.into_iter().map(|card| seal_card(&self.cipher, card)).collect();
        let outcomes = self.store.import_card_tokens(&batch).await?;
        self.announce();
        Ok(outcomes)
    }

    pub async fn list_card_tokens(
        &self,
        account: &AccountId,
        filter: &CardTokenFilter,
        page: &PageRequest,
    ) -> ServiceResult<Page<CardToken>> {
        let records = self.store.list_card_tokens(account, filter, page).await?;
        Ok(Page { items: self.reveal_all(records.items).await?, has_more: records.has_more, total: records.total })
    }

    pub async fn card_token(&self, account: &AccountId, id: &str) -> ServiceResult<CardToken> {
        require_card_id(id)?;
        let record = self.store.get_card_token(account, id).await?.ok_or(ServiceError::NotFound("card token"))?;
        self.reveal(record).await
    }

    /// Marks the token `DELETED` and erases its secret; deleting it again returns it unchanged.
    pub async fn delete_card_token(
        &self,
        account: &AccountId,
        id: &str,
        deletion: &CardTokenDeletion,
    ) -> ServiceResult<CardToken> {
        require_card_id(id)?;
        let record = self.store.delete_card_token(account, id, deletion).await?;
        self.announce();
        self.reveal(record).await
    }

    /// Moves a card token between the states a sandbox user may try (tokenvault extension).
    pub async fn set_card_token_status(
        &self,
        account: &AccountId,
        id: &str,
        status: CardTokenStatus,
        actor: &str,
    ) -> ServiceResult<CardToken> {
        require_card_id(id)?;
        let record = self.store.set_card_token_status(account, id, status, actor, self.now(account).await?).await?;
        self.announce();
        self.reveal(record).await
    }

    /// The card with its `token` opened (loading a key a rotation elsewhere added, if need be).
    async fn reveal(&self, record: CardTokenRecord) -> ServiceResult<CardToken> {
        Ok(self.reveal_all(vec![record]).await?.remove(0))
    }

    async fn reveal_all(&self, records: Vec<CardTokenRecord>) -> ServiceResult<Vec<CardToken>> {
        self.ensure_keys(records.iter().filter_map(|r| r.sealed_token.as_deref())).await?;
        Ok(records.into_iter().map(|record| reveal(&self.cipher, record)).collect::<Result<_, _>>()?)
    }
}

/// Splits a new card into what the store keeps: the card without its secret, and the sealed
/// secret.
fn seal_card(cipher: &TokenCipher, mut card: CardToken) -> (CardToken, Option<SealedToken>) {
    let sealed = card.token.take().map(|token| cipher.seal(&card.account_id, &card.id, &token));
    (card, sealed)
}

/// Puts the decrypted `token` back into a stored card. A deleted card's secret is never shown,
/// even where a row still holds it (an import of data exported before deletes erased it).
fn reveal(cipher: &TokenCipher, record: CardTokenRecord) -> Result<CardToken, crate::crypto::CryptoError> {
    let mut card = record.card;
    if card.status == CardTokenStatus::Deleted {
        return Ok(card);
    }
    if let Some(sealed) = record.sealed_token {
        card.token = Some(cipher.open(&card.account_id, &card.id, &sealed)?);
    }
    Ok(card)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;

    #[test]
    fn a_deleted_cards_secret_is_never_revealed() {
        let cipher = TokenCipher::from_master_key(&[7; 32]);
        let account = AccountId::parse("aid", "T12345678").unwrap();
        let body = serde_json::json!({"id": "card-1", "card_brand": "visa", "payment_product_type": "x", "token": "psp-secret"});
        let card = CardToken::from_create_body(body.as_object().unwrap(), &account, "c", Timestamp::now()).unwrap();
        let (card, sealed) = seal_card(&cipher, card);
        let record = CardTokenRecord { card, sealed_token: sealed.map(|s| s.ciphertext) };
        assert_eq!(reveal(&cipher, record.clone()).unwrap().token.as_deref(), Some("psp-secret"));
        // A row deleted before deletes erased secrets, imported from an old export, still holds one.
        let mut deleted = record;
        deleted.card.status = CardTokenStatus::Deleted;
        assert_eq!(reveal(&cipher, deleted).unwrap().token, None);
    }
}
