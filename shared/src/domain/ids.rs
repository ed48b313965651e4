//! Strongly typed identifiers. Every id is a UUID underneath, but wrapping each
//! kind in its own newtype means the compiler rejects passing a `TenantId` where
//! a `SaleId` is expected — a mistake that would otherwise only surface as a
//! cross-tenant data leak.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! define_ids {
    ($( $(#[$meta:meta])* $name:ident ),+ $(,)?) => {$(
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
        )]
        // Transparent on both sides: on the wire and in Postgres the id is a
        // plain UUID, the newtype exists only in Rust.
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh id. UUIDv7 is time-ordered, so freshly inserted rows land
            /// at the end of btree indexes instead of scattering across them.
            // No `Default`: a default that silently mints a random id would
            // hide missing assignments (`..Default::default()`).
            #[allow(clippy::new_without_default)]
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            #[must_use]
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            #[must_use]
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    )+};
}

define_ids! {
    /// A tenant: one merchant account. Every row and message is scoped by it.
    TenantId,
    /// A sale as stored by salesync (not the source system's own id, which is
    /// `SaleInput::external_id`).
    SaleId,
    /// One configured connection of a tenant to a source or destination system.
    IntegrationId,
    /// One attempt-tracked delivery of a sale to one destination integration.
    DeliveryId,
    /// An API token issued to a tenant.
    TokenId,
    /// A message on the queue; used for de-duplicating redeliveries.
    MessageId,
    /// A provider's partner (a reseller): what it is granted of the
    /// provider's catalogue.
    OrganizationId,
    /// A provider's user that exists only for one organization's
    /// integration; its token is integration-only.
    AgentId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_ids_roundtrip_through_string_and_json() {
        let id = SaleId::new();
        let parsed: SaleId = id.to_string().parse().expect("own Display output parses");
        assert_eq!(parsed, id);

        let json = serde_json::to_string(&id).expect("serialize");
        // Transparent: a bare UUID string, not `{"0": ...}` or `["..."]`.
        assert_eq!(json, format!("\"{}\"", id.as_uuid()));
        let back: SaleId = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, id);
    }

    #[test]
    fn domain_ids_reject_garbage() {
        assert!("not-a-uuid".parse::<TenantId>().is_err());
        assert!(serde_json::from_str::<TenantId>("42").is_err());
    }

    #[test]
    fn domain_ids_are_time_ordered() {
        let a = MessageId::new();
        let b = MessageId::new();
        assert!(a < b, "UUIDv7 ids minted later sort later");
        assert_eq!(a.as_uuid().get_version_num(), 7);
    }

    #[test]
    fn domain_ids_convert_to_and_from_uuid() {
        let uuid = Uuid::new_v4();
        let id = TokenId::from_uuid(uuid);
        assert_eq!(*id.as_uuid(), uuid);
        assert_eq!(Uuid::from(id), uuid);
        assert_eq!(TokenId::from(uuid), id);
    }

    /// Compile-time check that the ids bind and decode directly in sqlx
    /// queries against Postgres, including as `uuid[]`.
    #[test]
    fn domain_ids_bind_in_sqlx() {
        fn assert_sqlx<T>()
        where
            T: sqlx::Type<sqlx::Postgres>
                + for<'q> sqlx::Encode<'q, sqlx::Postgres>
                + for<'r> sqlx::Decode<'r, sqlx::Postgres>
                + sqlx::postgres::PgHasArrayType,
        {
        }
        assert_sqlx::<TenantId>();
        assert_sqlx::<SaleId>();
        assert_sqlx::<IntegrationId>();
        assert_sqlx::<DeliveryId>();
        assert_sqlx::<TokenId>();
        assert_sqlx::<MessageId>();
    }
}
