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

    let screen = eventually(
        "deploy to end in the pane",
        Duration::from_secs(600),
        || {
            let session = session.clone();
            async move {
                let shown = tmux(&["capture-pane", "-p", "-t", &session]);
                let text = String::from_utf8_lossy(&shown.stdout).into_owned();
                text.contains("exited ").then_some(text)
            }
        },
    )
    .await;
    tmux(&["kill-session", "-t", &session]);
    cleanup.teardown();

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
    }
    // The spinners are gone (no frame left half drawn) and the result shows.
    assert!(
        screen.contains("Deployed: 6 created, 0 updated, 0 unchanged."),
        "{screen}"
    );
    assert!(!screen.contains('\u{1b}'), "{screen}");
}
