//! The pure domain layer: ids, money, currencies, the sale wire model and its
//! validation. No I/O here, so everything is unit-testable and every service
//! agrees on what a valid sale is.

pub mod currency;
pub mod ids;
pub mod money;
pub mod sale;
pub mod validation;
pub mod whole;

pub use currency::Currency;
pub use ids::{
    AgentId, DeliveryId, IntegrationId, MessageId, OrganizationId, SaleId, TenantId, TokenId,
};
pub use money::{Minor, line_net, round_half_up, vat_of};
/// Re-exported so dependent crates can build sales without depending on
/// `rust_decimal` themselves.
pub use rust_decimal::Decimal;
pub use sale::{Customer, OptIn, Payment, SaleInput, SaleLine, ServiceCharge, Totals, VatTotal};
pub use validation::{FieldError, sample_refund, sample_sale, validate_sale};
