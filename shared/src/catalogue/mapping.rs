//! How a reseller (A) maps its own vocabulary onto a provider's (B): where the
//! answer to each of B's questions comes from, and which of B's flows each of
//! A's flows is. Plain data; `mapping_check` judges it and `answer_mapping`
//! applies it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where the answer to one of B's questions comes from.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AnswerSource {
    /// From the answer to A's question `question`. A's option values are
    /// renamed through `options` (A's value → B's value); a value not in the
    /// map is sent as it is.
    FromQuestion {
        question: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        options: BTreeMap<String, String>,
    },
    /// The same answer on every order, e.g. the sales channel.
    Constant(Value),
}

/// A's answer source for B's questions, keyed by B's question key. It applies
/// to every imported product of B that has a question with that key.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuestionMapping {
    #[serde(default)]
    pub questions: BTreeMap<String, AnswerSource>,
}

/// A's flow key → B's flow key.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowMapping {
    #[serde(default)]
    pub flows: BTreeMap<String, String>,
}

impl FlowMapping {
    /// B's flow for a sale in A's flow `a_flow`; `None` when unmapped (such a
    /// sale is not forwarded).
    #[must_use]
    pub fn b_flow(&self, a_flow: &str) -> Option<&str> {
        self.flows.get(a_flow).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn catalogue_mapping_serde() {
        let m: QuestionMapping = serde_json::from_value(json!({"questions": {
            "iban": {"from_question": {"question": "bank_account"}},
            "customer_type": {"from_question": {"question": "klant", "options": {"particulier": "home"}}},
            "channel": {"constant": "door-to-door"},
        }}))
        .expect("mapping");
        assert_eq!(
            m.questions["iban"],
            AnswerSource::FromQuestion {
                question: "bank_account".into(),
                options: BTreeMap::new()
            }
        );
        assert_eq!(
            m.questions["channel"],
            AnswerSource::Constant(json!("door-to-door"))
        );
        let back: QuestionMapping =
            serde_json::from_value(serde_json::to_value(&m).expect("serialize"))
                .expect("round trip");
        assert_eq!(back, m);
        let typo = serde_json::from_value::<QuestionMapping>(
            json!({"questions": {"iban": {"from_question": {"qestion": "x"}}}}),
        );
        assert!(typo.is_err());
    }

    #[test]
    fn catalogue_mapping_b_flow() {
        let f = FlowMapping {
            flows: [("deur".to_owned(), "door-to-door".to_owned())].into(),
        };
        assert_eq!(f.b_flow("deur"), Some("door-to-door"));
        assert_eq!(f.b_flow("web"), None);
    }
}
