//! The provider's catalogue (issue 17): products with versions, their
//! questions and flows, the check B runs on an incoming order, and the checks
//! A runs on its mapping onto B's catalogue. Pure logic only: no database, no
//! HTTP; the services load and store, this decides.

pub mod answer;
pub mod answer_mapping;
pub mod condition;
pub mod conversion;
pub mod flow;
pub mod formats;
pub mod forwarding;
pub mod import;
pub mod key;
pub mod listing;
pub mod mapping;
pub mod mapping_check;
pub mod order_check;
pub mod pattern;
pub mod product;
pub mod question;
pub mod status_map;
mod stricter;
pub mod validations;

#[cfg(test)]
mod test_support;

pub use answer::{Answer, Problem, ProblemKind, check_answer, is_blank};
pub use answer_mapping::map_answers;
pub use condition::Condition;
pub use conversion::{Conversion, conversion, convert};
pub use flow::{Flow, check_flow};
pub use forwarding::{ProviderMapping, map_order};
pub use import::{Change, ImportedProduct, RemovalPolicy, SourceState, SyncPlan, plan_sync};
pub use listing::{Catalogue, check_catalogue};
pub use mapping::{AnswerSource, FlowMapping, QuestionMapping};
pub use mapping_check::{Mismatch, MismatchKind, Severity, check_mapping};
pub use order_check::{Grants, Order, OrderLine, check_order, versions_used};
pub use pattern::Pattern;
pub use product::{
    Attachment, Price, ProductInput, ProductVersion, Revision, check_answers, check_product, revise,
};
pub use question::{AnswerOption, Question, QuestionKind, check_definition};
pub use status_map::{
    StatusMap, StatusMapping, SystemStatus, SystemStatusMapping, check_status_map, map_status,
    map_status_with, system_status_mappings, unmapped_statuses,
};
pub use validations::{Limit, Rule, Validations};
