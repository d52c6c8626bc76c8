//! Renders a model's Jinja chat template (the GGUF key `tokenizer.chat_template`) the way
//! transformers' `apply_chat_template` does: minijinja configured like jinja2 with
//! `trim_blocks` and `lstrip_blocks`, loop controls, a `tojson` filter that writes
//! `json.dumps(x, ensure_ascii=False)`, a `raise_exception` function, and the variables
//! `messages`, `tools`, `add_generation_prompt`, `add_vision_id` (false unless set) and any
//! other keyword arguments a request passes (`chat_template_kwargs`, as transformers'
//! `apply_chat_template(**kwargs)` takes them).

use anyhow::{anyhow, Result};
use minijinja::{context, AutoEscape, Environment, Error, ErrorKind, Value};

use super::message::Message;
use super::python_json;

const TEMPLATE_NAME: &str = "chat_template";

/// The official Qwen3-VL Instruct chat template, byte for byte (used for model files that
/// carry none).
pub const QWEN3_VL_CHAT_TEMPLATE: &str = include_str!("qwen3vl_chat_template.jinja");

/// The official Qwen3-VL Thinking chat template (the Qwen3-VL-*-Thinking checkpoints carry
/// it; see scripts/make_thinking_template_fixture.py for where this copy comes from).
pub const QWEN3_VL_THINKING_CHAT_TEMPLATE: &str =
    include_str!("qwen3vl_thinking_chat_template.jinja");

/// What a template is rendered with besides the messages.
#[derive(Clone, Copy, Debug, Default)]
pub struct TemplateArgs<'a> {
    /// Tool (function) definitions offered to the model, as OpenAI tool objects.
    pub tools: &'a [serde_json::Value],
    /// More variables for the template (`add_vision_id`, …).
    pub kwargs: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

/// Variables a template's keyword arguments may not set: the renderer sets them.
pub const RESERVED_TEMPLATE_VARIABLES: [&str; 3] = ["messages", "tools", "add_generation_prompt"];

/// A compiled chat template.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
}

impl ChatTemplate {
    /// Compiles the template source; a syntax error is reported with its line.
    pub fn new(source: &str) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.add_filter("tojson", tojson);
        env.add_function("raise_exception", raise_exception);
        // Python's string methods (`startswith`, `split`, `strip`…), which thinking templates use.
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_template_owned(TEMPLATE_NAME, source.to_owned())
            .map_err(|e| anyhow!("the chat template does not compile: {e}"))?;
        Ok(Self {
            env,
            source: source.to_owned(),
        })
    }

    /// The template's Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The prompt text for `messages`; with `add_generation_prompt` it ends with the opening of
    /// the assistant's turn.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        self.render_with(messages, TemplateArgs::default(), add_generation_prompt)
    }

    /// Like `render`, with tool (function) definitions offered to the model. An empty `tools`
    /// is passed to the template as `none`, as transformers does. Each tool object is written
    /// with its keys in the order they came in, as Python's dicts keep them.
    /// Keyword arguments are added to the variables; one that names a variable the renderer
    /// sets is an error.
    pub fn render_with(
        &self,
        messages: &[Message],
        args: TemplateArgs,
        add_generation_prompt: bool,
    ) -> Result<String> {
        let tools = if args.tools.is_empty() {
            Value::from(())
        } else {
            Value::from_serialize(args.tools)
        };
        let mut kwargs = args.kwargs.cloned().unwrap_or_default();
        if let Some(name) = RESERVED_TEMPLATE_VARIABLES
            .iter()
            .find(|name| kwargs.contains_key(**name))
        {
            return Err(anyhow!("the template variable '{name}' cannot be set"));
        }
        kwargs
            .entry("add_vision_id")
            .or_insert(serde_json::Value::Bool(false));
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| anyhow!("the chat template is missing: {e}"))?;
        template
            .render(context! {
                messages => Value::from_serialize(messages),
                tools => tools,
                add_generation_prompt => add_generation_prompt,
                ..Value::from_serialize(&kwargs)
            })
            .map_err(|e| anyhow!("rendering the chat template failed: {e}"))
    }
}

/// The transformers `tojson` filter: `json.dumps(value, ensure_ascii=False)`.
fn tojson(value: &Value) -> Result<Value, Error> {
    python_json::dumps(value)
        .map(Value::from_safe_string)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, "tojson failed").with_source(e))
}

/// The transformers `raise_exception(message)` template function.
fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

#[cfg(test)]
mod tests {
    use super::super::message::{ImageRef, Message, Part, Role};
    use super::super::test_support::qwen3vl_template;
    use super::{ChatTemplate, TemplateArgs};

    fn image() -> Part {
        Part::Image(ImageRef(0))
    }

    fn text(text: &str) -> Part {
        Part::Text(text.to_owned())
    }

    #[test]
    fn spec_example_single_image_renders_byte_exact() {
        let messages = [Message::new(
            Role::User,
            vec![image(), text("Describe this image.")],
        )];
        assert_eq!(
            qwen3vl_template().render(&messages, true).unwrap(),
            "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe this image.<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn spec_example_multi_turn_with_two_images_renders_byte_exact() {
        let messages = [
            Message::new(Role::System, "You are helpful."),
            Message::new(Role::User, "Hi"),
            Message::new(Role::Assistant, "Hello!"),
            Message::new(Role::User, vec![text("A"), image(), image()]),
        ];
        assert_eq!(
            qwen3vl_template().render(&messages, true).unwrap(),
            "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nA<|vision_start|><|image_pad|><|vision_end|><|vision_start|><|image_pad|><|vision_end|><|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn system_prompt_given_as_parts_keeps_only_text() {
        let messages = [
            Message::new(Role::System, vec![text("Be "), text("brief.")]),
            Message::new(Role::User, "Hi"),
        ];
        assert_eq!(
            qwen3vl_template().render(&messages, true).unwrap(),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn no_default_system_prompt_and_no_generation_prompt_when_not_asked() {
        let messages = [
            Message::new(Role::User, "Hi"),
            Message::new(Role::Assistant, vec![text("Hello"), text(" there")]),
        ];
        assert_eq!(
            qwen3vl_template().render(&messages, false).unwrap(),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello there<|im_end|>\n"
        );
    }

    #[test]
    fn string_content_and_text_parts_render_the_same() {
        let template = qwen3vl_template();
        let as_string = [Message::new(Role::User, "line one\nline two")];
        let as_parts = [Message::new(
            Role::User,
            vec![text("line one\n"), text("line two")],
        )];
        assert_eq!(
            template.render(&as_string, true).unwrap(),
            template.render(&as_parts, true).unwrap()
        );
    }

    #[test]
    fn consecutive_tool_messages_share_one_user_turn() {
        let messages = [
            Message::new(Role::User, "Weather?"),
            Message::new(Role::Assistant, ""),
            Message::new(Role::Tool, "sunny"),
            Message::new(Role::Tool, vec![text("see "), image()]),
        ];
        assert_eq!(
            qwen3vl_template().render(&messages, true).unwrap(),
            "<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n\
             <|im_start|>user\n<tool_response>\nsunny\n</tool_response>\n<tool_response>\nsee \
             <|vision_start|><|image_pad|><|vision_end|>\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn tools_are_listed_with_python_json() {
        let tools = [serde_json::json!({
            "type": "function",
            "function": {"name": "get_weather", "description": "Météo à <ville>", "parameters": {"type": "object"}}
        })];
        let messages = [Message::new(Role::User, "Hi")];
        let rendered = qwen3vl_template()
            .render_with(
                &messages,
                TemplateArgs {
                    tools: &tools,
                    kwargs: None,
                },
                true,
            )
            .unwrap();
        assert!(rendered.starts_with(
            "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
             You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n\
             {\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Météo à <ville>\", \"parameters\": {\"type\": \"object\"}}}\n</tools>"
        ), "{rendered}");
        assert!(rendered.ends_with(
            "</tool_call><|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        ));
    }

    #[test]
    fn raise_exception_becomes_an_error_with_its_message() {
        let template = ChatTemplate::new(
            "{% if messages|length > 1 %}{{ raise_exception('one message only') }}{% endif %}ok",
        )
        .unwrap();
        let one = [Message::new(Role::User, "a")];
        assert_eq!(template.render(&one, true).unwrap(), "ok");
        let two = [Message::new(Role::User, "a"), Message::new(Role::User, "b")];
        let error = template.render(&two, true).unwrap_err();
        assert!(error.to_string().contains("one message only"), "{error}");
    }

    #[test]
    fn syntax_error_is_reported_at_compile_time() {
        let error = ChatTemplate::new("{% for m in messages %}{{ m.role }}").unwrap_err();
        assert!(error.to_string().contains("does not compile"), "{error}");
    }
}
