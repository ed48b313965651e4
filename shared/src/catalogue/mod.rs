//! The provider's catalogue (issue 17): products with versions, their
//! questions and flows, the check B runs on an incoming order, and the checks
//! A runs on its mapping onto B's catalogue. Pure logic only: no database, no
//! HTTP; the services load and store, this decides.

pub mod answer;
pub mod condition;
pub mod flow;
pub mod formats;
pub mod key;
pub mod listing;
pub mod order_check;
pub mod pattern;
pub mod product;
pub mod question;
pub mod validations;

#[cfg(test)]
mod test_support;

pub use answer::{Answer, Problem, ProblemKind, check_answer, is_blank};
pub use condition::Condition;
pub use flow::{Flow, check_flow};
pub use listing::{Catalogue, check_catalogue};
pub use order_check::{Grants, Order, OrderLine, check_order};
pub use pattern::Pattern;
pub use product::{Attachment, Price, ProductVersion, check_answers, check_product};
pub use question::{AnswerOption, Question, QuestionKind, check_definition};
pub use validations::{Limit, Rule, Validations};
