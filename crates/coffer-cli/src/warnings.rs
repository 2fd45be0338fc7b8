//! The libraries' warnings, in coffer's one style: `coffer: warning: MESSAGE (field=value,
//! …)`, each distinct line once per run.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};

/// A layer that prints each warning or error event once, as `coffer: warning: …` (or
/// `coffer: error: …`).
#[derive(Default)]
pub(crate) struct Warnings {
    seen: Mutex<HashSet<String>>,
}

/// The event's message and its other fields, `name=value`.
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.field(field, format_args!("{value}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.field(field, format_args!("{value:?}"));
        }
    }
}

impl Text {
    fn field(&mut self, field: &Field, value: std::fmt::Arguments<'_>) {
        if !self.fields.is_empty() {
            self.fields.push_str(", ");
        }
        let _ = write!(self.fields, "{}={value}", field.name());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > tracing::Level::WARN {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        let kind = if level == tracing::Level::ERROR {
            "error"
        } else {
            "warning"
        };
        let mut line = format!("coffer: {kind}: {}", text.message);
        if !text.fields.is_empty() {
            let _ = write!(line, " ({})", text.fields);
        }
        let line = crate::out::printable(&line).into_owned();
        let fresh = self
            .seen
            .lock()
            .map(|mut seen| seen.insert(line.clone()))
            .unwrap_or(true);
        if fresh {
            crate::out::note!("{line}");
        }
    }
}
