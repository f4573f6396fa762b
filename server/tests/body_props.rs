//! Property tests of the server's JSON request-body reader (`jiuzhu_server::body`), with
//! their case counts (BENCHMARKS.md): arbitrary bytes never panic and every refusal is a
//! 400 or 422 with a stable code; a body agrees with serde_json except that a repeated key
//! is always refused; a start body is accepted exactly when its shape is right.

use jiuzhu_server::api::cases::StartCase;
use jiuzhu_server::body::parse;
use proptest::prelude::*;
use serde_json::Value;

const CASES: u32 = 512;

fn json_tree() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        "\\PC{0,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every refusal is the client's fault: 400 or 422, never a server error.
fn client_error(code: &str) -> bool {
    matches!(jiuzhu_server::problem::status_of(code).as_u16(), 400 | 422)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_read_or_refused_as_the_clients_fault(
        bytes in prop::collection::vec(any::<u8>(), 0..256)
    ) {
        match parse::<Value>(&bytes) {
            Ok(value) => {
                let text = std::str::from_utf8(&bytes);
                prop_assert!(text.is_ok());
                let loose: Value = serde_json::from_slice(&bytes).expect("serde_json reads it too");
                prop_assert_eq!(value, loose);
            }
            Err(e) => prop_assert!(client_error(e.code), "{}: {}", e.code, e.detail),
        }
    }

    #[test]
    fn a_repeated_key_is_refused_wherever_it_is(tree in json_tree(), key in "[a-z]{1,3}") {
        // Wrap the tree in an object that names `key` twice, around the tree.
        let text = format!("{{\"{key}\": 1, \"t\": {tree}, \"{key}\": 2}}");
        let text = if key == "t" { text.replacen("\"t\": ", "\"u\": ", 1) } else { text };
        let e = parse::<Value>(text.as_bytes()).err();
        prop_assert_eq!(e.map(|e| e.code), Some("duplicate_key"));
        // The tree alone is read, and agrees with serde_json.
        let alone = parse::<Value>(tree.to_string().as_bytes());
        prop_assert_eq!(alone.ok(), Some(tree));
    }

    #[test]
    fn a_start_body_is_accepted_exactly_when_its_shape_is_right(
        fields in prop::collection::btree_map(
            prop_oneof![Just("process".to_string()), Just("data".to_string()), "[a-z]{1,6}"],
            json_tree(),
            0..4,
        )
    ) {
        let text = Value::Object(fields.clone().into_iter().collect()).to_string();
        let right = fields.get("process").is_some_and(Value::is_string)
            && fields.keys().all(|k| k == "process" || k == "data");
        match parse::<StartCase>(text.as_bytes()) {
            Ok(start) => {
                prop_assert!(right, "{text}");
                prop_assert_eq!(Some(&Value::String(start.process)), fields.get("process"));
                prop_assert_eq!(&start.data, fields.get("data").unwrap_or(&Value::Null));
            }
            Err(e) => {
                prop_assert!(!right, "{text}: {}", e.detail);
                prop_assert_eq!(e.code, "invalid_request");
                prop_assert!(e.detail.starts_with('$'), "{}", e.detail);
            }
        }
    }
}
