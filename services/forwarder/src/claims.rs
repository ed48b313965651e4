//! One message per delivery at a time, in this process. A message claims
//! its delivery before reading the delivery's row and keeps the claim until
//! its outcome is committed and acked. Another message for the same delivery
//! waits for the claim, then reads the row the holder committed — and triage
//! decides from that: a true duplicate finds the attempt already made (or the
//! delivery done) and is acked unsent; the holder's own retry or put-back
//! copy, which is published before the holder's commit and can arrive before
//! it, finds the state it needs and is sent. (Treating every copy that
//! arrives during the claim as a duplicate would drop those successors.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use salesync_core::domain::ids::DeliveryId;
use tokio::sync::OwnedMutexGuard;
use tokio_util::sync::CancellationToken;

type Slots = Arc<Mutex<HashMap<DeliveryId, Arc<tokio::sync::Mutex<()>>>>>;

#[derive(Clone, Default)]
pub struct Claims {
    slots: Slots,
}

/// A held claim; released when dropped (also when the work is abandoned).
#[derive(Debug)]
pub struct Claim {
    slots: Slots,
    id: DeliveryId,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Claims {
    /// Claims `id`, waiting (first come, first served) while another message
    /// holds it; `None` if `shutdown` comes first.
    pub async fn claim(&self, id: DeliveryId, shutdown: &CancellationToken) -> Option<Claim> {
        let slot = Arc::clone(lock(&self.slots).entry(id).or_default());
        let mut claim = Claim {
            slots: Arc::clone(&self.slots),
            id,
            guard: None,
        };
        // If shutdown wins, `claim` is dropped unheld and tidies the map.
        claim.guard = tokio::select! {
            guard = slot.lock_owned() => Some(guard),
            _ = shutdown.cancelled() => None,
        };
        claim.guard.is_some().then_some(claim)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut slots = lock(&self.slots);
        // Only the map still knows the slot: nobody holds or waits for it.
        if slots
            .get(&self.id)
            .is_some_and(|slot| Arc::strong_count(slot) == 1)
        {
            slots.remove(&self.id);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The map cannot be left half-updated; ignore poisoning.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_holder_per_delivery_others_wait_their_turn() {
        let claims = Claims::default();
        let stop = CancellationToken::new();
        let (a, b) = (DeliveryId::new(), DeliveryId::new());
        let first = claims.claim(a, &stop).await.expect("free");
        assert!(
            claims.claim(b, &stop).await.is_some(),
            "other deliveries are free"
        );
        let waiter = {
            let (claims, stop) = (claims.clone(), stop.clone());
            tokio::spawn(async move { claims.claim(a, &stop).await.is_some() })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!waiter.is_finished(), "waits while a is held");
        drop(first);
        assert!(waiter.await.unwrap(), "gets it once released");
        assert!(lock(&claims.slots).is_empty(), "released slots are removed");
    }

    #[tokio::test]
    async fn shutdown_ends_the_wait() {
        let claims = Claims::default();
        let stop = CancellationToken::new();
        let id = DeliveryId::new();
        let _held = claims.claim(id, &stop).await.expect("free");
        stop.cancel();
        assert!(claims.claim(id, &stop).await.is_none());
        assert_eq!(
            lock(&claims.slots).len(),
            1,
            "only the holder's slot is left"
        );
    }
}
