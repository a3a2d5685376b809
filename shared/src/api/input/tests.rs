use serde_json::json;

use super::*;
use crate::config::SchemaType;

fn parse_base(body: &[u8]) -> Result<InvokeInput, String> {
    parse_invoke_body(body, &InputType::BaseInput).map_err(|e| e.to_string())
}

#[test]
fn both_input_forms_parse() {
    let h = parse_base(
        br#"{"chat_history":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}"#,
    )
    .expect("valid");
    assert_eq!(h.messages, vec![Message::user("hi"), Message::assistant("yo")]);
    assert!(!h.continues_session);
    let i = parse_base(
        br#"{"session_id":"s-1","items":[{"content_type":"text","content":"a"},{"content_type":"text","content":"b"}]}"#,
    )
    .expect("valid");
    assert_eq!(i.messages, vec![Message::user("a\nb")]);
    assert_eq!(i.session_id.as_ref().map(SessionId::as_str), Some("s-1"));
    assert!(i.continues_session);
}

#[test]
fn errors_name_the_field() {
    let cases: [(&[u8], &str); 9] = [
        (b"{not json", "invalid JSON body: key must be a string at line 1 column 2"),
        (br#"{"chat_history":[{"role":"user","content":5}]}"#, "chat_history[0].content: invalid type: integer `5`, expected a string at line 1 column 43"),
        (br#"{"chat_history":[{"role":"user"}]}"#, "chat_history[0]: missing field `content`"),
        (br#"{"chat_history":[{"role":"system","content":"x"}]}"#, "chat_history[0].role: must be \"user\" or \"assistant\", got \"system\""),
        (br#"{"items":[{"content_type":"video","content":"x"}]}"#, "items[0].content_type: must be \"text\" or \"image\", got \"video\""),
        (br#"{"items":[{"content_type":"image","content":"x"}]}"#, "items[0].content: an image is a data:image/…;base64,… URI or an https URL"),
        (br#"{}"#, "body needs a non-empty `chat_history` or `items`"),
        (br#"{"chat_history":[{"role":"user","content":"a"}],"items":[{"content_type":"text","content":"b"}]}"#, "give either `chat_history` or `items`, not both"),
        (br#"{"session_id":"a b","items":[{"content_type":"text","content":"b"}]}"#, "session_id: must be 1-128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'"),
    ];
    for (body, want) in cases {
        assert_eq!(parse_base(body).expect_err("invalid"), want, "body {}", String::from_utf8_lossy(body));
    }
}

#[test]
fn multimodal_history_carries_images_and_text_types_refuse_items() {
    let body = json!({"chat_history": [
        {"role": "user", "items": [
            {"content_type": "text", "content": "what is this?"},
            {"content_type": "image", "content": "data:image/png;base64,iVBORw0KGgo="}
        ]},
        {"role": "assistant", "content": "a cat"}
    ]})
    .to_string();
    let m = parse_invoke_body(body.as_bytes(), &InputType::BaseMultiModalInput).expect("valid");
    assert_eq!(m.messages[0].content.as_deref(), Some("what is this?"));
    assert_eq!(m.messages[0].images, vec!["data:image/png;base64,iVBORw0KGgo=".to_owned()]);
    assert_eq!(m.messages[1], Message::assistant("a cat"));
    let e = parse_base(body.as_bytes()).expect_err("BaseInput takes text");
    assert_eq!(e, "chat_history[0].items: BaseInput takes `content` text; use BaseMultiModalInput for items");
}

#[test]
fn user_context_becomes_teals_message_only_for_types_that_carry_it() {
    let body = json!({"chat_history": [{"role": "user", "content": "hi"}], "user_context": {"user_id": "u-7", "city": "Rome"}})
        .to_string();
    let with = parse_invoke_body(body.as_bytes(), &InputType::BaseInputWithUserContext).expect("valid");
    assert_eq!(
        with.context,
        Some(Message::user("The following user context was provided:\n  city: Rome\n  user_id: u-7\n"))
    );
    let without = parse_base(body.as_bytes()).expect("ignored as Teal ignores it");
    assert_eq!(without.context, None);
}

#[test]
fn custom_types_are_validated_against_their_schema_and_fill_the_fields() {
    let schema = json!({
        "type": "object",
        "properties": {"number_1": {"type": "integer"}, "number_2": {"type": "integer"}},
        "required": ["number_1", "number_2"]
    });
    let t = InputType::Custom(SchemaType::new("NumbersInput", schema).expect("schema"));
    let ok = parse_invoke_body(br#"{"number_1": 2, "number_2": 3}"#, &t).expect("valid");
    assert_eq!(ok.fields.get("number_1"), Some(&json!(2)));
    assert!(ok.messages.is_empty());
    let e =
        parse_invoke_body(br#"{"number_1": "two", "number_2": 3}"#, &t).expect_err("wrong type").to_string();
    assert!(e.starts_with("number_1: "), "{e}");
    let e = parse_invoke_body(br#"{"number_1": 2}"#, &t).expect_err("missing").to_string();
    assert!(e.starts_with("NumbersInput: ") && e.contains("number_2"), "{e}");
}

#[test]
fn embedded_images_become_data_uris() {
    let t = InputType::Custom(SchemaType::new("ImageInput", json!({"type": "object"})).expect("schema"));
    let ok = parse_invoke_body(br#"{"embedded_image": {"format": "image/jpeg", "data": "/9j/4AAQ"}}"#, &t)
        .expect("valid");
    assert_eq!(ok.image.as_deref(), Some("data:image/jpeg;base64,/9j/4AAQ"));
    let e = parse_invoke_body(br#"{"embedded_image": {"format": "text/html", "data": "x"}}"#, &t)
        .expect_err("bad")
        .to_string();
    assert_eq!(e, "embedded_image.format: expected an image MIME type, got \"text/html\"");
}
