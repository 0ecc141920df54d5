//! Settings in words, as status and plan print them.

/// How deletes are treated, in words: `status` and `plan` say it alike.
pub fn deletes_phrase(replicated: bool) -> &'static str {
    match replicated {
        true => "replicated to every region",
        false => "kept in the region that made them",
    }
}

/// How long noncurrent versions are kept, in words.
pub fn kept_phrase(days: u32) -> String {
    match days {
        0 => "forever".to_owned(),
        days => format!("{days} days"),
    }
}
