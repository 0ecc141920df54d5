//! The progress bars, in a real terminal: toastrep runs in a tmux pane and
//! the test reads the final screen, as a person would see it.

use std::process::Command;
use std::time::Duration;

use crate::harness::{self, Cleanup, eventually, unique_name};

fn tmux(args: &[&str]) -> std::process::Output {
    Command::new("tmux")
        .args(args)
        .output()
        .expect("tmux runs (the machine's image has it: `apt-get install tmux` otherwise)")
}

/// A screen as `tmux capture-pane -e` gives it: its text, with every cell's
/// attributes as SGR escape sequences.
struct Screen {
    /// The text without its escape sequences.
    text: String,
    /// The text shown in bold, run by run.
    bold: Vec<String>,
    /// Every escape sequence that is not bold or back to plain: a colour,
    /// another attribute, anything but an SGR.
    other: Vec<String>,
}

impl Screen {
    fn parse(captured: &str) -> Screen {
        let mut screen = Screen {
            text: String::new(),
            bold: Vec::new(),
            other: Vec::new(),
        };
        let mut bold = false;
        let mut chars = captured.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '\u{1b}' {
                screen.text.push(c);
                if bold {
                    screen.bold.last_mut().expect("a bold run").push(c);
                }
                continue;
            }
            let mut sequence = String::from("\u{1b}");
            if chars.peek() == Some(&'[') {
                for c in chars.by_ref() {
                    sequence.push(c);
                    if c.is_ascii_alphabetic() || c == '~' {
                        break;
                    }
                }
            }
            let Some(parameters) = sequence
                .strip_prefix("\u{1b}[")
                .and_then(|s| s.strip_suffix('m'))
            else {
                screen.other.push(sequence);
                continue;
            };
            for parameter in parameters.split(';') {
                match parameter {
                    "1" if !bold => {
                        bold = true;
                        screen.bold.push(String::new());
                    }
                    "1" => {}
                    // Plain again, and the default colours.
                    "" | "0" | "22" => bold = false,
                    "39" | "49" => {}
                    _ => screen.other.push(sequence.clone()),
                }
            }
        }
        screen
    }
}

/// The pane's screen; with its cells' attributes (`-e`), or as plain text,
/// from which tmux drops every escape sequence.
fn capture(session: &str, attributes: bool) -> String {
    let mut args = vec!["capture-pane", "-p", "-t", session];
    if attributes {
        args.push("-e");
    }
    String::from_utf8_lossy(&tmux(&args).stdout).into_owned()
}

/// Waits until the pane's command has printed `exited`, and returns its
/// screen (with attributes).
async fn final_screen(session: &str, limit: Duration) -> String {
    eventually("the pane's command to end", limit, || async move {
        let text = capture(session, true);
        text.contains("exited ").then_some(text)
    })
    .await
}

/// A shell word.
fn quoted(word: &str) -> String {
    shlex::try_quote(word).expect("no NUL").into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_draws_a_bar_per_stack_that_ends_ticked_in_a_real_terminal() {
    let name = unique_name("tty");
    let cleanup = Cleanup::new(&name);
    let session = format!("toastrep-{name}");
    let zip = harness::lambda_zip();
    let deploy = [
        "deploy",
        "--name",
        &name,
        "--regions",
        "us-east-1,eu-west-2",
        "--lambda-zip",
        zip.to_str().unwrap(),
    ];
    // The pane gets the same environment the other tests give toastrep,
    // and a terminal type for the bars.
    let command = harness::toastrep_command();
    let mut environment: Vec<(String, String)> = command
        .get_envs()
        .filter_map(|(key, value)| Some((key.to_str()?.to_owned(), value?.to_str()?.to_owned())))
        .collect();
    environment.push(("TERM".into(), "xterm-256color".into()));
    let mut line = String::from("env -i");
    for (key, value) in &environment {
        line.push_str(&format!(" {key}={}", quoted(value)));
    }
    line.push_str(&format!(" {}", quoted(env!("CARGO_BIN_EXE_toastrep"))));
    for arg in deploy {
        line.push_str(&format!(" {}", quoted(arg)));
    }
    // The pane stays once toastrep has exited, so its last screen can be read.
    line.push_str("; echo \"exited $?\"; sleep 3600");
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "160",
        "-y",
        "60",
        &line,
    ]);
    assert!(started.status.success(), "{started:?}");

    // With the cells' attributes: without, tmux drops every escape sequence,
    // and the screen could never show one.
    let screen = final_screen(&session, Duration::from_secs(600)).await;
    tmux(&["kill-session", "-t", &session]);
    cleanup.teardown();

    let captured = screen;
    let screen = Screen::parse(&captured);
    // No escape sequence is left but the bars' own bold prefixes: no
    // colour, no attribute, nothing a half-drawn frame would leave.
    assert!(
        screen.other.is_empty(),
        "escape sequences on the screen: {:?}\n{captured}",
        screen.other
    );
    let (bold, screen) = (screen.bold, screen.text);
    assert!(screen.contains("exited 0"), "{screen}");
    // Every stack's bar ends ticked with what was done, one line each.
    let stacks = [
        ("us-east-1", format!("toastrep-{name}")),
        ("eu-west-2", format!("toastrep-{name}")),
        ("eu-west-2", format!("toastrep-{name}-from-us-east-1")),
        ("us-east-1", format!("toastrep-{name}-to-eu-west-2")),
        ("us-east-1", format!("toastrep-{name}-from-eu-west-2")),
        ("eu-west-2", format!("toastrep-{name}-to-us-east-1")),
    ];
    for (region, stack) in &stacks {
        let bar = format!("[{region}] {stack} ");
        let lines: Vec<&str> = screen.lines().filter(|l| l.contains(&bar)).collect();
        assert_eq!(lines.len(), 1, "one line for {bar} on\n{screen}");
        assert!(lines[0].contains("✔ created"), "{}", lines[0]);
        // Its prefix in bold, as the bar's style has it.
        let prefix = format!("[{region}] {stack}");
        assert!(bold.contains(&prefix), "{prefix} is not bold in {bold:?}");
    }
    // The spinners are gone (no frame left half drawn) and the result shows.
    assert!(
        screen.contains("Deployed: 6 created, 0 updated, 0 unchanged."),
        "{screen}"
    );
}

/// The check on the deploy's screen can fail: what a bar leaves styled but
/// for its bold prefix is caught, and it is seen only with `-e`.
#[tokio::test]
async fn an_escape_sequence_left_on_the_screen_is_caught() {
    let session = format!("toastrep-{}", unique_name("esc"));
    let line = "printf '\\033[1m[us-east-1] toastrep-x\\033[0m \\033[31m✔ created\\033[0m\\n'; \
                echo 'exited 0'; sleep 3600";
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "80",
        "-y",
        "5",
        line,
    ]);
    assert!(started.status.success(), "{started:?}");
    let captured = final_screen(&session, Duration::from_secs(30)).await;
    let plain = capture(&session, false);
    tmux(&["kill-session", "-t", &session]);

    let screen = Screen::parse(&captured);
    assert_eq!(screen.other, ["\u{1b}[31m"], "{captured:?}");
    assert_eq!(screen.bold, ["[us-east-1] toastrep-x"], "{captured:?}");
    assert!(
        screen.text.contains("[us-east-1] toastrep-x ✔ created"),
        "{captured:?}"
    );
    // Without -e the red tick is plain text: no check could see it.
    assert!(!plain.contains('\u{1b}'), "{plain:?}");
    assert!(
        plain.contains("[us-east-1] toastrep-x ✔ created"),
        "{plain:?}"
    );
}
